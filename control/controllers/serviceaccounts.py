"""The service account controller: every namespace has a ``default`` ServiceAccount.

Pods run as ``spec.serviceAccountName``, which defaults to ``default``, so
each namespace needs one. The controller watches Namespaces and
ServiceAccounts; a new namespace, and a ``default`` account deleted from a
live namespace, queue the namespace, and ``reconcile_default_account``
creates the account when the cache has none. A namespace being deleted is
left alone (the API refuses new content in it anyway).
"""

from __future__ import annotations

from typing import Hashable

from google.protobuf.message import Message

from control.api import errors
from control.controllers.manager import ControllerContext
from control.controllers.queue import WorkQueue, run_workers
from protos.api.v1 import core_pb2

DEFAULT_ACCOUNT = "default"


def default_account(namespace: str) -> core_pb2.ServiceAccount:
    account = core_pb2.ServiceAccount(api_version="v1", kind="ServiceAccount")
    account.metadata.name, account.metadata.namespace = DEFAULT_ACCOUNT, namespace
    return account


async def reconcile_default_account(ctx: ControllerContext, namespace: str) -> float | None:
    """Create the namespace's default ServiceAccount if it is missing."""
    ns = ctx.informers.get("Namespace").get("", namespace)
    if ns is None or ns.metadata.HasField("deletion_timestamp"):
        return None
    if ctx.informers.get("ServiceAccount").get(namespace, DEFAULT_ACCOUNT) is not None:
        return None
    try:
        await ctx.api.create(default_account(namespace))
    except errors.AlreadyExistsError:
        pass  # the cache lags behind a create: nothing to do
    except (errors.NotFoundError, errors.PreconditionError):
        pass  # the namespace went away, or is being deleted
    return None


async def run_serviceaccounts_controller(ctx: ControllerContext) -> None:
    namespaces = ctx.informers.get("Namespace")
    accounts = ctx.informers.get("ServiceAccount")
    queue = WorkQueue()

    def namespace_changed(old: Message | None, new: Message | None) -> None:
        if new is not None:
            queue.add(new.metadata.name)

    def account_changed(old: Message | None, new: Message | None) -> None:
        if new is None and old is not None and old.metadata.name == DEFAULT_ACCOUNT:
            queue.add(old.metadata.namespace)

    namespaces.add_handler(namespace_changed)
    accounts.add_handler(account_changed)
    await ctx.informers.wait_synced(["Namespace", "ServiceAccount"])
    for ns in namespaces.list():
        queue.add(ns.metadata.name)

    async def reconcile(key: Hashable) -> float | None:
        return await reconcile_default_account(ctx, str(key))

    try:
        await run_workers(queue, reconcile, workers=ctx.options.workers)
    finally:
        queue.close()
