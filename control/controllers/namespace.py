"""The namespace controller: empties a namespace being deleted, then removes it.

Deleting a namespace that still holds objects only marks it Terminating (the
API refuses new content in it). This controller sees such namespaces, deletes
everything in them (pods gracefully, as any client would) and deletes the
namespace again once nothing is left, which then removes it.
"""

from __future__ import annotations

import asyncio
import logging

from control.api import errors, kinds
from control.client import Client
from control.controllers.queue import WorkQueue, run_workers

log = logging.getLogger(__name__)
RECHECK_SECONDS = 1.0


async def reconcile_namespace(api: Client, name: str) -> float | None:
    """Delete the contents of a terminating namespace; None when finished."""
    try:
        namespace = await api.get("Namespace", name)
    except errors.NotFoundError:
        return None
    if not namespace.metadata.HasField("deletion_timestamp"):
        return None
    remaining = 0
    for kind in kinds.all_kinds():
        if not kind.namespaced:
            continue
        items, _ = await api.list(kind, namespace=name)
        for item in items:
            remaining += 1
            if item.metadata.HasField("deletion_timestamp"):
                continue
            try:
                await api.delete(kind, item.metadata.name, namespace=name)
            except errors.NotFoundError:
                pass
    if remaining:
        return RECHECK_SECONDS
    try:
        await api.delete("Namespace", name)
    except errors.NotFoundError:
        return None
    return RECHECK_SECONDS


async def run_namespace_controller(api: Client) -> None:
    """Watch namespaces and reconcile the terminating ones, until cancelled."""
    queue = WorkQueue()
    workers = asyncio.create_task(run_workers(queue, lambda key: reconcile_namespace(api, str(key))))
    try:
        while True:
            try:
                items, revision = await api.list("Namespace")
                for ns in items:
                    if ns.metadata.HasField("deletion_timestamp"):
                        queue.add(ns.metadata.name)
                async for event in api.watch("Namespace", resource_version=revision):
                    if event.type != "DELETED" and event.object.metadata.HasField("deletion_timestamp"):
                        queue.add(event.object.metadata.name)
            except errors.APIError as err:
                log.info("namespace watch restarts: %s", err)
                await asyncio.sleep(1.0)
    finally:
        workers.cancel()
        queue.close()
