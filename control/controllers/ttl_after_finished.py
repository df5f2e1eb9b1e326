"""The TTL-after-finished controller: deletes finished Jobs ``ttlSecondsAfterFinished`` after they finished.

A Job with ``spec.ttlSecondsAfterFinished`` that is Complete or Failed
expires that many seconds after it finished (its completionTime, else the
time its Complete or Failed condition became True). Until then the Job's
key waits in the queue for the remaining time (no longer than
``clock_recheck_max``); once expired, the Job is read again from the API
(the TTL may have been changed, the Job replaced) and deleted with
propagation Background, with its uid as a precondition; the garbage
collector then deletes its pods. "Now" is ``ctx.clock``, so tests move time.
"""

from __future__ import annotations

import logging
from typing import Hashable

from control.api import errors
from control.controllers.informers import queue_key_of
from control.controllers.job_state import finish_time
from control.controllers.manager import ControllerContext
from control.controllers.queue import WorkQueue, run_workers
from protos.api.v1 import batch_pb2

log = logging.getLogger(__name__)


def expires_at(job: batch_pb2.Job) -> float | None:
    """When a finished Job with a TTL is due for deletion; None if it has no TTL or is not finished."""
    if not job.spec.HasField("ttl_seconds_after_finished") or job.metadata.HasField("deletion_timestamp"):
        return None
    finished = finish_time(job)
    if finished is None:
        return None
    return finished + job.spec.ttl_seconds_after_finished


async def run_ttl_after_finished_controller(ctx: ControllerContext) -> None:
    jobs = ctx.informers.get("Job")
    queue = WorkQueue()

    async def reconcile(key: Hashable) -> float | None:
        namespace, name = key  # type: ignore[misc]
        cached = jobs.get(namespace, name)
        if cached is None or expires_at(cached) is None:
            return None
        remaining = expires_at(cached) - ctx.clock()  # type: ignore[operator]
        if remaining > 0:
            return min(remaining, ctx.options.clock_recheck_max)
        try:
            job = await ctx.api.get("Job", name, namespace=namespace)
        except errors.NotFoundError:
            return None
        expiry = expires_at(job)
        if expiry is None:
            return None
        if expiry > ctx.clock():
            return min(expiry - ctx.clock(), ctx.options.clock_recheck_max)
        log.info("deleting job %s/%s: finished more than %ds ago", namespace, name,
                 job.spec.ttl_seconds_after_finished)
        try:
            await ctx.api.delete("Job", name, namespace=namespace, uid=job.metadata.uid,
                                 propagation_policy="Background")
        except (errors.NotFoundError, errors.ConflictError):
            pass  # gone already, or replaced by a new Job of that name (which gets its own pass)
        return None

    await jobs.synced.wait()
    jobs.add_handler(queue_key_of(queue.add))
    try:
        await run_workers(queue, reconcile, workers=ctx.options.workers)
    finally:
        queue.close()
