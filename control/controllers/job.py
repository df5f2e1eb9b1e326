"""The Job controller: runs a Job's pods until enough succeed, and counts every finished pod exactly once.

One level-triggered ``sync`` per Job key, fed by the Job and Pod informers,
makes each pass in this order:

1. Tracking. Every pod the controller creates carries the finalizer
   ``batch.kubernetes.io/job-tracking``, so it cannot vanish before it has
   been counted. A finished pod (Succeeded; Failed, or deleted before it
   succeeded) still holding the finalizer is first recorded by uid in
   ``status.uncountedTerminatedPods`` (one status write), then its finalizer
   is removed, then its uid moves from that list into ``succeeded`` or
   ``failed``. Whatever the controller's crash point, a pod is counted once:
   a uid already listed is never listed again, and a listed uid whose pod no
   longer holds the finalizer (or is gone) is moved. This is Kubernetes'
   finalizer-based Job tracking.
2. Suspension (``spec.suspend``): active pods are deleted (their finalizer
   removed first, so they do not count as failures) and the Suspended
   condition is set; resuming restarts the clock (``status.startTime``).
3. Failure: more failures than ``backoffLimit`` (restartPolicy Never: failed
   pods; OnFailure: container restarts of running pods too), or running longer
   than ``activeDeadlineSeconds``, sets FailureTarget, deletes the active
   pods (they count as failed) and, once no pod is left running, Failed with
   reason BackoffLimitExceeded or DeadlineExceeded.
4. Success: ``completions`` succeeded pods (without completions: any pod
   succeeded and none left running) sets SuccessCriteriaMet, then Complete
   with ``completionTime`` once no pod is left running.
5. Otherwise it keeps ``min(parallelism, completions still needed)`` pods
   active: creating pods from the template (generateName ``NAME-``, the
   template's labels including the job-name and controller-uid labels the
   API puts there), after a back-off once pods have failed (10 s doubling to
   6 min, ``job_backoff_base``/``job_backoff_max`` in ControllerOptions), or
   deleting extra ones.

With ``completionMode: Indexed`` each of the indexes 0..completions-1 needs
one succeeded pod: a pod for index i is named ``NAME-i-xxxxx``, carries the
annotation and label ``batch.kubernetes.io/job-completion-index: "i"``, the
environment variable ``JOB_COMPLETION_INDEX=i`` and the hostname ``NAME-i``;
``status.completedIndexes`` lists the done ones ("0-2,5") and
``status.succeeded`` counts them.

Status (active, ready, terminating, succeeded, failed, startTime,
completionTime, conditions) is written through the status subresource, only
when it changed. Times come from ``ctx.clock``, so tests can move it; the
controller looks again when a deadline or a back-off is due.

Pods that carry the finalizer but whose Job is gone (deleted, or replaced by
a new Job of the same name) are released: their finalizer is removed once a
live read confirms the owner is gone, so the garbage collector can delete them.

A pod this controller saw deleted (its own write removed the last finalizer,
or the API said it is gone) leaves the pod cache at once (``assume_deleted``);
the shared informer keeps a stale event from before the deletion from
putting it back, finalizer and all, to be counted a second time.

The counting rules and the reading of a Job's spec and conditions are pure
functions in control/controllers/job_state.py.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Hashable

from google.protobuf.message import Message

from control.api import errors
from control.api.timestamps import format_time, parse_time
from control.controllers import job_state
from control.controllers.job_state import (
    BACKOFF_LIMIT_EXCEEDED, COMPLETE, COMPLETION_INDEX, COMPLETION_INDEX_ENV, COMPLETIONS_REACHED,
    DEADLINE_EXCEEDED, FAILED, FAILURE_TARGET, SUCCESS_CRITERIA_MET, SUSPENDED, TRACKING_FINALIZER,
    completion_index, counts_as_failed, finished_condition, format_indexes, holds_finalizer, is_indexed,
    job_reference, move_counted, parse_indexes, set_condition, true_condition,
)
from control.controllers.manager import ControllerContext
from control.controllers.pods import is_active, is_finished, is_ready, is_terminating, pod_from_template
from control.controllers.queue import WorkQueue, run_workers
from control.recorder import EventRecorder
from protos.api.v1 import batch_pb2, core_pb2

log = logging.getLogger(__name__)

COMPONENT = "job-controller"


# ---------------------------------------------------------------- the controller


@dataclass(frozen=True)
class OrphanPod:
    """Queue key of a pod holding the tracking finalizer whose Job may be gone."""

    namespace: str
    name: str


@dataclass
class _Failures:
    """Failures since the Job's last success, for the back-off before replacing pods."""

    count: int = 0
    last_at: float = 0.0


async def run_job_controller(ctx: ControllerContext) -> None:
    await JobController(ctx).run()


class JobController:
    """See the module docstring; ``reconcile`` is one pass over one key."""

    def __init__(self, ctx: ControllerContext) -> None:
        self.api = ctx.api
        self.clock = ctx.clock
        self.options = ctx.options
        self.jobs = ctx.informers.get("Job")
        self.pods = ctx.informers.get("Pod")
        self.queue = WorkQueue()
        self.recorder = EventRecorder(ctx.api, component=COMPONENT)
        self._failures: dict[str, _Failures] = {}

    async def run(self) -> None:
        # Handlers are added once both caches hold everything (add_handler
        # replays what they hold), so no pod looks orphaned for want of its Job.
        await self.jobs.synced.wait()
        await self.pods.synced.wait()
        self.jobs.add_handler(self._job_changed)
        self.pods.add_handler(self._pod_changed)
        recorder = asyncio.create_task(self.recorder.run())
        try:
            await run_workers(self.queue, self.reconcile, workers=self.options.workers)
        finally:
            recorder.cancel()
            self.queue.close()

    # ------------------------------------------------------------ handlers (record only)

    def _job_changed(self, old: Message | None, new: Message | None) -> None:
        job = new if new is not None else old
        assert job is not None
        self.queue.add((job.metadata.namespace, job.metadata.name))
        if new is None:
            self._failures.pop(job.metadata.uid, None)
            for pod in self.pods.owned_by(job.metadata.uid):
                if TRACKING_FINALIZER in pod.metadata.finalizers:
                    self.queue.add(OrphanPod(pod.metadata.namespace, pod.metadata.name))

    def _pod_changed(self, old: Message | None, new: Message | None) -> None:
        for pod in (old, new):
            if pod is None:
                continue
            ref = job_reference(pod)
            if ref is not None:
                self.queue.add((pod.metadata.namespace, ref.name))
        if new is not None and TRACKING_FINALIZER in new.metadata.finalizers:
            ref = job_reference(new)
            owner = self.jobs.get(new.metadata.namespace, ref.name) if ref is not None else None
            if owner is None or owner.metadata.uid != ref.uid:
                self.queue.add(OrphanPod(new.metadata.namespace, new.metadata.name))

    # ------------------------------------------------------------ one pass

    async def reconcile(self, key: Hashable) -> float | None:
        if isinstance(key, OrphanPod):
            await self._release_orphan(key)
            return None
        namespace, name = key  # type: ignore[misc]
        job = self.jobs.get(namespace, name)
        if job is None:
            return None
        if job.metadata.HasField("deletion_timestamp"):
            for pod in self.pods.owned_by(job.metadata.uid):
                await self._drop_finalizer(pod)
            return None
        return await self.sync(job)

    async def sync(self, job: batch_pb2.Job) -> float | None:
        now = self.clock()
        job, pods = await self._track(job, now)
        status = batch_pb2.JobStatus()
        status.CopyFrom(job.status)
        move_counted(job, status, pods)
        indexed = is_indexed(job)
        completed_indexes = parse_indexes(status.completed_indexes)
        uncounted = status.uncounted_terminated_pods
        succeeded = len(completed_indexes) if indexed else status.succeeded + len(uncounted.succeeded)
        failed = status.failed + len(uncounted.failed)
        active = [pod for pod in pods if is_active(pod)]
        again: float | None = None

        if finished_condition(job) is not None:
            await self._delete_pods(job, active, counted=True)
        elif job.spec.suspend:
            await self._delete_pods(job, active, counted=False)
            if set_condition(status, SUSPENDED, "True", "JobSuspended", "Job suspended", now):
                self.recorder.normal(job, "Suspended", "Job suspended")
            status.ClearField("start_time")
        else:
            suspended = true_condition(status, SUSPENDED)
            if suspended is not None:
                set_condition(status, SUSPENDED, "False", "JobResumed", "Job resumed", now)
                self.recorder.normal(job, "Resumed", "Job resumed")
            if not status.start_time:
                status.start_time = format_time(now)
            failure = self._failure(job, status, failed, active, now)
            completions = job_state.completions(job)
            if completions is not None:
                success = succeeded >= completions
            else:
                success = succeeded > 0 and not active
            if failure is not None or true_condition(status, FAILURE_TARGET):
                await self._fail(job, status, failure, active, now)
            elif success or true_condition(status, SUCCESS_CRITERIA_MET):
                set_condition(status, SUCCESS_CRITERIA_MET, "True", *COMPLETIONS_REACHED, now)
                await self._delete_pods(job, active, counted=False)
            else:
                again = await self._manage_pods(job, active, succeeded, completed_indexes, now)
                deadline = job_state.deadline(job, status)
                if deadline is not None:
                    again = min(again, deadline - now) if again is not None else deadline - now

        pods = self.pods.owned_by(job.metadata.uid)
        running = [pod for pod in pods if not is_finished(pod)]
        if not running:
            self._finish(job, status, now)
        status.active = len([pod for pod in pods if is_active(pod)])
        status.ready = len([pod for pod in pods if is_active(pod) and is_ready(pod)])
        status.terminating = len([pod for pod in pods if is_terminating(pod) and not is_finished(pod)])
        await self._write_status(job, status)
        if again is None:
            return None
        return max(0.0, min(again, self.options.clock_recheck_max))

    # ------------------------------------------------------------ step 1: tracking

    async def _track(self, job: batch_pb2.Job, now: float) -> tuple[batch_pb2.Job, list[core_pb2.Pod]]:
        """Record newly finished pods as uncounted, then release their finalizers."""
        pods = self.pods.owned_by(job.metadata.uid)
        uncounted = job.status.uncounted_terminated_pods
        listed = {*uncounted.succeeded, *uncounted.failed}
        new_succeeded = [p for p in pods if holds_finalizer(p) and p.metadata.uid not in listed
                         and p.status.phase == "Succeeded"]
        new_failed = [p for p in pods if holds_finalizer(p) and p.metadata.uid not in listed
                      and p.status.phase != "Succeeded" and counts_as_failed(p)]
        if new_succeeded or new_failed:
            status = batch_pb2.JobStatus()
            status.CopyFrom(job.status)
            status.uncounted_terminated_pods.succeeded.extend(p.metadata.uid for p in new_succeeded)
            status.uncounted_terminated_pods.failed.extend(p.metadata.uid for p in new_failed)
            if is_indexed(job):
                completions = job_state.completions(job) or 0
                done = parse_indexes(status.completed_indexes)
                done.update(i for i in map(completion_index, new_succeeded) if i is not None and i < completions)
                status.completed_indexes = format_indexes(done)
                status.succeeded = len(done)
            job = await self._write_status(job, status)
            self._note_failures(job, succeeded=len(new_succeeded), failed=len(new_failed), now=now)
        listed = {*job.status.uncounted_terminated_pods.succeeded, *job.status.uncounted_terminated_pods.failed}
        for pod in pods:
            if pod.metadata.uid in listed:
                await self._drop_finalizer(pod)
        return job, self.pods.owned_by(job.metadata.uid)

    def _note_failures(self, job: batch_pb2.Job, *, succeeded: int, failed: int, now: float) -> None:
        record = self._failures.setdefault(job.metadata.uid, _Failures())
        if succeeded:
            record.count = 0
        if failed:
            record.count += failed
            record.last_at = now

    # ------------------------------------------------------------ step 3: failure

    def _failure(self, job: batch_pb2.Job, status: batch_pb2.JobStatus, failed: int,
                 active: list[core_pb2.Pod], now: float) -> tuple[str, str] | None:
        limit = job_state.backoff_limit(job)
        if failed > limit:
            return BACKOFF_LIMIT_EXCEEDED
        # With OnFailure the kubelet restarts failing containers in place:
        # those restarts are the failures.
        if job.spec.template.spec.restart_policy == "OnFailure" and job_state.restarts(active) >= max(limit, 1):
            return BACKOFF_LIMIT_EXCEEDED
        deadline = job_state.deadline(job, status)
        if deadline is not None and now >= deadline:
            return DEADLINE_EXCEEDED
        return None

    async def _fail(self, job: batch_pb2.Job, status: batch_pb2.JobStatus, failure: tuple[str, str] | None,
                    active: list[core_pb2.Pod], now: float) -> None:
        if failure is not None and set_condition(status, FAILURE_TARGET, "True", *failure, now):
            self.recorder.warning(job, failure[0], failure[1])
        await self._delete_pods(job, active, counted=True)

    # ------------------------------------------------------------ step 4: the end

    def _finish(self, job: batch_pb2.Job, status: batch_pb2.JobStatus, now: float) -> None:
        """With no pod left running, turn an interim condition into Complete or Failed."""
        if finished_condition(job) is not None:
            return
        target = true_condition(status, FAILURE_TARGET)
        if target is not None:
            set_condition(status, FAILED, "True", target.reason, target.message, now)
        elif true_condition(status, SUCCESS_CRITERIA_MET) is not None:
            reason, message = COMPLETIONS_REACHED
            set_condition(status, COMPLETE, "True", reason, message, now)
            status.completion_time = format_time(now)
            self.recorder.normal(job, "Completed", "Job completed")

    # ------------------------------------------------------------ step 5: pods

    async def _manage_pods(self, job: batch_pb2.Job, active: list[core_pb2.Pod], succeeded: int,
                           completed_indexes: set[int], now: float) -> float | None:
        """Create or delete pods towards the number wanted; seconds until a back-off ends, if waiting."""
        parallelism = job_state.parallelism(job)
        completions = job_state.completions(job)
        if is_indexed(job):
            assert completions is not None
            keep, extra = _indexed_pods(active, completions, completed_indexes)
            pending = [i for i in range(completions) if i not in completed_indexes and i not in keep]
            extra += sorted(keep.values(), key=_newest_first)[:max(0, len(keep) - parallelism)]
            to_create: list[int | None] = list(pending[:max(0, parallelism - len(keep))])
        else:
            if completions is None:
                wanted = len(active) if succeeded > 0 else parallelism
            else:
                wanted = max(0, min(parallelism, completions - succeeded))
            extra = sorted(active, key=_newest_first)[:max(0, len(active) - wanted)]
            to_create = [None] * max(0, wanted - len(active))
        await self._delete_pods(job, extra, counted=False)
        if not to_create:
            return None
        wait = self._backoff_remaining(job, now)
        if wait > 0:
            return wait
        for index in to_create:
            pod = _new_pod(job, index)
            try:
                created = await self.api.create(pod)
            except errors.APIError as err:
                self.recorder.warning(job, "FailedCreate", f"Error creating: {err}")
                raise
            self.pods.assume(created)
            self.recorder.normal(job, "SuccessfulCreate", f"Created pod: {created.metadata.name}")
        return None

    def _backoff_remaining(self, job: batch_pb2.Job, now: float) -> float:
        record = self._failures.get(job.metadata.uid)
        if record is None or record.count == 0:
            return 0.0
        delay = min(self.options.job_backoff_max, self.options.job_backoff_base * 2 ** (record.count - 1))
        return record.last_at + delay - now

    async def _delete_pods(self, job: batch_pb2.Job, pods: list[core_pb2.Pod], *, counted: bool) -> None:
        """Delete pods; counted=False releases their finalizer first, so they never count as failed."""
        for pod in pods:
            if not counted:
                released = await self._drop_finalizer(pod)
                if released is None:
                    continue
                pod = released
            try:
                found, gone = await self.api.delete("Pod", pod.metadata.name, namespace=pod.metadata.namespace,
                                                    uid=pod.metadata.uid)
            except (errors.NotFoundError, errors.ConflictError):
                continue
            if gone:
                self.pods.assume_deleted(found)
            else:
                self.pods.assume(found)
            self.recorder.normal(job, "SuccessfulDelete", f"Deleted pod: {pod.metadata.name}")

    # ------------------------------------------------------------ writes

    async def _write_status(self, job: batch_pb2.Job, status: batch_pb2.JobStatus) -> batch_pb2.Job:
        if status == job.status:
            return job
        changed = batch_pb2.Job()
        changed.CopyFrom(job)
        changed.status.CopyFrom(status)
        try:
            written = await self.api.update_status(changed)
        except errors.NotFoundError:
            # Deleted while this pass worked from a cache that had not heard yet; its
            # deletion event ends the Job's story (and releases its pods).
            log.debug("job %s/%s is gone; its status stays unwritten", job.metadata.namespace, job.metadata.name)
            return job
        self.jobs.assume(written)
        return written

    async def _drop_finalizer(self, pod: core_pb2.Pod) -> core_pb2.Pod | None:
        """Remove the tracking finalizer (re-reading on a conflict); the pod after, None if it is gone."""
        for _ in range(5):
            if TRACKING_FINALIZER not in pod.metadata.finalizers:
                return pod
            changed = core_pb2.Pod()
            changed.CopyFrom(pod)
            del changed.metadata.finalizers[:]
            changed.metadata.finalizers.extend(f for f in pod.metadata.finalizers if f != TRACKING_FINALIZER)
            try:
                written = await self.api.update(changed)
            except errors.NotFoundError:
                self.pods.assume_deleted(pod)
                return None
            except errors.ConflictError:
                try:
                    pod = await self.api.get("Pod", pod.metadata.name, namespace=pod.metadata.namespace)
                except errors.NotFoundError:
                    self.pods.assume_deleted(pod)
                    return None
                continue
            if written.metadata.HasField("deletion_timestamp") and not written.metadata.finalizers \
                    and written.metadata.deletion_grace_period_seconds == 0:
                self.pods.assume_deleted(written)  # that was the last thing keeping it
                return None
            self.pods.assume(written)
            return written
        raise errors.ConflictError(f"pod {pod.metadata.name} keeps changing; its finalizer is still there")

    async def _release_orphan(self, key: OrphanPod) -> None:
        pod = self.pods.get(key.namespace, key.name)
        if pod is None or TRACKING_FINALIZER not in pod.metadata.finalizers:
            return
        ref = job_reference(pod)
        if ref is not None:
            try:
                owner = await self.api.get("Job", ref.name, namespace=key.namespace)
            except errors.NotFoundError:
                owner = None
            if owner is not None and owner.metadata.uid == ref.uid:
                self.queue.add((key.namespace, ref.name))  # not an orphan: the owner's cache lags
                return
        await self._drop_finalizer(pod)


# ---------------------------------------------------------------- helpers


def _newest_first(pod: core_pb2.Pod) -> tuple[bool, float]:
    """Sort key putting the pods to delete first: not ready before ready, then newest."""
    return is_ready(pod), -parse_time(pod.metadata.creation_timestamp)


def _indexed_pods(active: list[core_pb2.Pod], completions: int,
                  completed: set[int]) -> tuple[dict[int, core_pb2.Pod], list[core_pb2.Pod]]:
    """The one active pod kept per index, and the extra ones (no index, out of range, done, duplicate)."""
    keep: dict[int, core_pb2.Pod] = {}
    extra: list[core_pb2.Pod] = []
    for pod in sorted(active, key=lambda p: parse_time(p.metadata.creation_timestamp)):
        index = completion_index(pod)
        if index is None or index >= completions or index in completed or index in keep:
            extra.append(pod)
        else:
            keep[index] = pod
    return keep, extra


def _new_pod(job: batch_pb2.Job, index: int | None) -> core_pb2.Pod:
    """A pod from the Job's template, tracked by the finalizer; for an index, with its identity."""
    name = job.metadata.name
    generate_name = f"{name}-{index}-" if index is not None else f"{name}-"
    pod = pod_from_template(job.spec.template, job, generate_name=generate_name)
    pod.metadata.finalizers.append(TRACKING_FINALIZER)
    if index is not None:
        pod.metadata.annotations[COMPLETION_INDEX] = str(index)
        pod.metadata.labels[COMPLETION_INDEX] = str(index)
        if not pod.spec.hostname:
            pod.spec.hostname = f"{name}-{index}"
        for container in (*pod.spec.init_containers, *pod.spec.containers):
            if not any(var.name == COMPLETION_INDEX_ENV for var in container.env):
                container.env.add(name=COMPLETION_INDEX_ENV, value=str(index))
    return pod
