"""The bootstrap token cleaner: deletes bootstrap tokens once they expire.

As Kubernetes' tokencleaner: every Secret of type
``bootstrap.kubernetes.io/token`` in kube-system whose ``expiration`` has
passed (or cannot be read) is deleted, so an expired token is gone from
``sampan token list`` too (the authenticator refuses it from the moment it
expires, cleaner or not). Each token's key waits in the queue until its
expiry (at most ``clock_recheck_max``); "now" is ``ctx.clock``.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Hashable

from control.api import errors
from control.auth.bootstrap import SECRET_TYPE, TOKEN_NAMESPACE, expiration_of, is_expired
from control.controllers.informers import queue_key_of
from control.controllers.manager import ControllerContext
from control.controllers.queue import WorkQueue, run_workers

log = logging.getLogger(__name__)


async def run_bootstrap_token_cleaner(ctx: ControllerContext) -> None:
    secrets = ctx.informers.get("Secret")
    queue = WorkQueue()

    async def reconcile(key: Hashable) -> float | None:
        namespace, name = key  # type: ignore[misc]
        if namespace != TOKEN_NAMESPACE:
            return None
        cached = secrets.get(namespace, name)
        if cached is None or cached.type != SECRET_TYPE or cached.metadata.deletion_timestamp:
            return None
        now = dt.datetime.fromtimestamp(ctx.clock(), dt.timezone.utc)
        if not is_expired(cached, now):
            expiration = expiration_of(cached)
            if expiration is None:
                return None
            return min((expiration - now).total_seconds() + 0.1, ctx.options.clock_recheck_max)
        try:
            await ctx.api.delete("Secret", name, namespace=namespace, uid=cached.metadata.uid)
            log.info("deleted the expired bootstrap token %s", name)
        except (errors.NotFoundError, errors.ConflictError):
            pass  # gone already, or replaced by a new token of that name
        return None

    await secrets.synced.wait()
    secrets.add_handler(queue_key_of(queue.add))
    try:
        await run_workers(queue, reconcile, workers=1)
    finally:
        queue.close()
