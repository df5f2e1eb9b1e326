"""The CronJob controller: creates a Job at each time a CronJob's schedule names.

One level-triggered pass per CronJob key (fed by the CronJob informer, and
the Job informer for the Jobs a CronJob controls):

1. ``status.active`` is brought up to date: finished Jobs leave it (Event
   SawCompletedJob), Jobs that vanished leave it (after a live read), running
   Jobs it controls join it; ``lastSuccessfulTime`` follows the newest
   completion.
2. Finished Jobs beyond ``successfulJobsHistoryLimit`` and
   ``failedJobsHistoryLimit`` are deleted, oldest first (propagation
   Background: the garbage collector takes their pods).
3. Unless ``spec.suspend``, the most recent scheduled time not yet run is
   found: the schedule's times after ``lastScheduleTime`` (or the CronJob's
   creation), no further back than ``startingDeadlineSeconds``, up to now.
   More than 100 such times earns a TooManyMissedTimes warning, as in
   Kubernetes, but only the most recent one runs.
4. ``concurrencyPolicy`` decides what a due run does while a Job is active:
   Allow starts another, Forbid skips the run (it stays due, so it starts
   when the active Job ends if the starting deadline allows), Replace deletes
   the active Jobs first.
5. The Job is ``NAME-<scheduled time in minutes since the epoch>``, made
   from ``jobTemplate`` and controlled by the CronJob, annotated with its
   scheduled time; a Job of that name already ours counts as created, so a
   run never happens twice. ``lastScheduleTime`` records the run.

Schedules are read by control/api/cron.py, on the wall clock of
``spec.timeZone`` (UTC when unset). "Now" is ``ctx.clock``, so tests move
time; each pass asks to look again at the next scheduled time (no later than
``clock_recheck_max``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone, tzinfo
from typing import Hashable

from control.api import cron, errors
from control.api.cronjob_jobs import SCHEDULED_TIMESTAMP, job_for_cronjob
from control.api.timestamps import format_time, parse_time
from control.controllers.informers import queue_key_of, queue_owner_of
from control.controllers.job_state import finished_condition
from control.controllers.manager import ControllerContext
from control.controllers.queue import WorkQueue, run_workers
from control.recorder import EventRecorder
from protos.api.v1 import batch_pb2, meta_pb2

log = logging.getLogger(__name__)

COMPONENT = "cronjob-controller"
# More missed times than this earns a warning (Kubernetes' limit).
MISSED_TIMES_WARNING = 100
# Looking again this long after a scheduled time, so the clock has surely passed it.
_AFTER_DUE = 0.1


def job_name(cronjob_name: str, scheduled: float) -> str:
    """The Job for one scheduled time: the CronJob's name and the time in minutes since the epoch."""
    return f"{cronjob_name}-{int(scheduled // 60)}"


def most_recent_due(schedule: cron.Schedule, tz: tzinfo, *, earliest: float, now: float) -> tuple[float | None, int]:
    """The latest scheduled time in (earliest, now], and how many there are (counted up to 101).

    Counting stops past the warning limit; the most recent time is then found
    by looking back from now over a window that doubles until it holds one,
    so a schedule missed for a year costs a few dozen steps, not half a million.
    """
    moment = datetime.fromtimestamp(earliest, timezone.utc)
    latest: datetime | None = None
    count = 0
    while count <= MISSED_TIMES_WARNING:
        following = schedule.next_after(moment, tz)
        if following is None or following.timestamp() > now:
            return (latest.timestamp() if latest is not None else None), count
        latest, moment, count = following, following, count + 1
    assert latest is not None
    window = 60.0
    while True:
        start = max(latest.timestamp(), now - window)
        moment = datetime.fromtimestamp(start, timezone.utc)
        found = None
        while True:
            following = schedule.next_after(moment, tz)
            if following is None or following.timestamp() > now:
                break
            found, moment = following, following
        if found is not None:
            return found.timestamp(), count
        window *= 2


async def run_cronjob_controller(ctx: ControllerContext) -> None:
    await CronJobController(ctx).run()


class CronJobController:
    """See the module docstring; ``reconcile`` is one pass over one CronJob."""

    def __init__(self, ctx: ControllerContext) -> None:
        self.api = ctx.api
        self.clock = ctx.clock
        self.options = ctx.options
        self.cronjobs = ctx.informers.get("CronJob")
        self.jobs = ctx.informers.get("Job")
        self.queue = WorkQueue()
        self.recorder = EventRecorder(ctx.api, component=COMPONENT)

    async def run(self) -> None:
        await self.cronjobs.synced.wait()
        await self.jobs.synced.wait()
        self.cronjobs.add_handler(queue_key_of(self.queue.add))
        self.jobs.add_handler(queue_owner_of(self.queue.add, "CronJob"))
        recorder = asyncio.create_task(self.recorder.run())
        try:
            await run_workers(self.queue, self.reconcile, workers=self.options.workers)
        finally:
            recorder.cancel()
            self.queue.close()

    async def reconcile(self, key: Hashable) -> float | None:
        namespace, name = key  # type: ignore[misc]
        cronjob = self.cronjobs.get(namespace, name)
        if cronjob is None or cronjob.metadata.HasField("deletion_timestamp"):
            return None
        now = self.clock()
        status = batch_pb2.CronJobStatus()
        status.CopyFrom(cronjob.status)
        await self._track_jobs(cronjob, status)
        await self._trim_history(cronjob)
        again: float | None = None
        if not cronjob.spec.suspend:
            again = await self._run_due(cronjob, status, now)
        await self._write_status(cronjob, status)
        if again is None:
            return None
        return max(0.0, min(again, self.options.clock_recheck_max))

    # ------------------------------------------------------------ steps 1 and 2

    async def _track_jobs(self, cronjob: batch_pb2.CronJob, status: batch_pb2.CronJobStatus) -> None:
        owned = {job.metadata.uid: job for job in self.jobs.owned_by(cronjob.metadata.uid)}
        kept: list[meta_pb2.ObjectReference] = []
        for ref in status.active:
            job = owned.get(ref.uid)
            if job is None and not await self._still_exists(ref):
                self.recorder.normal(cronjob, "MissingJob", f"Active job went missing: {ref.name}")
                continue
            if job is not None and finished_condition(job) is not None:
                done = finished_condition(job)
                self.recorder.normal(cronjob, "SawCompletedJob",
                                     f"Saw completed job: {job.metadata.name}, status: {done.type}")
                continue
            kept.append(ref)
        listed = {ref.uid for ref in kept}
        for uid, job in owned.items():
            running = finished_condition(job) is None and not job.metadata.HasField("deletion_timestamp")
            if running and uid not in listed:
                kept.append(_reference(job))
        del status.active[:]
        status.active.extend(sorted(kept, key=lambda ref: ref.name))
        newest = max((parse_time(job.status.completion_time) for job in owned.values()
                      if _finished_as(job) == "Complete"), default=0.0)
        if newest > parse_time(status.last_successful_time):
            status.last_successful_time = format_time(newest)

    async def _still_exists(self, ref: meta_pb2.ObjectReference) -> bool:
        try:
            job = await self.api.get("Job", ref.name, namespace=ref.namespace)
        except errors.NotFoundError:
            return False
        return job.metadata.uid == ref.uid

    async def _trim_history(self, cronjob: batch_pb2.CronJob) -> None:
        finished = [job for job in self.jobs.owned_by(cronjob.metadata.uid)
                    if finished_condition(job) is not None and not job.metadata.HasField("deletion_timestamp")]
        for outcome, field in (("Complete", "successful_jobs_history_limit"), ("Failed", "failed_jobs_history_limit")):
            if not cronjob.spec.HasField(field):
                continue  # no limit
            jobs = sorted((job for job in finished if _finished_as(job) == outcome), key=_age_order)
            for job in jobs[:max(0, len(jobs) - getattr(cronjob.spec, field))]:
                await self._delete_job(cronjob, _reference(job))

    # ------------------------------------------------------------ steps 3 to 5

    async def _run_due(self, cronjob: batch_pb2.CronJob, status: batch_pb2.CronJobStatus, now: float) -> float | None:
        """Start the Job due now, if any; seconds until the next scheduled time."""
        try:
            schedule = cron.parse_schedule(cronjob.spec.schedule)
            tz = cron.load_time_zone(cronjob.spec.time_zone) if cronjob.spec.time_zone else timezone.utc
        except cron.ScheduleError as err:
            self.recorder.warning(cronjob, "InvalidSchedule", f"invalid schedule {cronjob.spec.schedule!r}: {err}")
            return None
        earliest = parse_time(status.last_schedule_time) or parse_time(cronjob.metadata.creation_timestamp)
        if cronjob.spec.HasField("starting_deadline_seconds"):
            earliest = max(earliest, now - cronjob.spec.starting_deadline_seconds)
        due, missed = most_recent_due(schedule, tz, earliest=earliest, now=now)
        following = schedule.next_after(datetime.fromtimestamp(now, timezone.utc), tz)
        again = following.timestamp() - now + _AFTER_DUE if following is not None else None
        if missed > MISSED_TIMES_WARNING:
            self.recorder.warning(cronjob, "TooManyMissedTimes",
                                  f"too many missed start times: > {MISSED_TIMES_WARNING}. Set or decrease "
                                  ".spec.startingDeadlineSeconds or check clock skew")
        if due is None:
            return again
        policy = cronjob.spec.concurrency_policy or "Allow"
        if status.active and policy == "Forbid":
            self.recorder.normal(cronjob, "JobAlreadyActive", "Not starting job because prior execution is "
                                 "running and concurrency policy is Forbid")
            # The run stays due: it starts when the active Job ends, if the starting deadline allows.
            return again
        if status.active and policy == "Replace":
            for ref in list(status.active):
                await self._delete_job(cronjob, ref)
            del status.active[:]
        job = await self._create_job(cronjob, due)
        if job is not None and all(ref.uid != job.metadata.uid for ref in status.active):
            status.active.append(_reference(job))
        status.last_schedule_time = format_time(due)
        return again

    async def _create_job(self, cronjob: batch_pb2.CronJob, scheduled: float) -> batch_pb2.Job | None:
        job = job_from_template(cronjob, scheduled)
        try:
            created = await self.api.create(job)
        except errors.AlreadyExistsError:
            existing = await self.api.get("Job", job.metadata.name, namespace=job.metadata.namespace)
            if any(ref.uid == cronjob.metadata.uid for ref in existing.metadata.owner_references):
                return existing if finished_condition(existing) is None else None  # this run happened already
            self.recorder.warning(cronjob, "FailedCreate",
                                  f"Error creating job: a job named {job.metadata.name} exists and is not ours")
            return None
        except errors.APIError as err:
            self.recorder.warning(cronjob, "FailedCreate", f"Error creating job: {err}")
            raise
        self.jobs.assume(created)
        self.recorder.normal(cronjob, "SuccessfulCreate", f"Created job {created.metadata.name}")
        return created

    async def _delete_job(self, cronjob: batch_pb2.CronJob, ref: meta_pb2.ObjectReference) -> None:
        """Delete the Job ref names (that uid), whether or not the Job cache has caught up with it.

        A conflict not explained by the Job being gone fails the pass (it is
        retried): Replace must never start a new Job beside the old one.
        """
        try:
            found, gone = await self.api.delete("Job", ref.name, namespace=ref.namespace, uid=ref.uid,
                                                propagation_policy="Background")
        except errors.NotFoundError:
            return
        except errors.ConflictError:
            if await self._still_exists(ref):
                raise
            return  # replaced by another Job of that name: ours is gone
        if gone:
            self.jobs.assume_deleted(found)
        else:
            self.jobs.assume(found)
        self.recorder.normal(cronjob, "SuccessfulDelete", f"Deleted job {ref.name}")

    async def _write_status(self, cronjob: batch_pb2.CronJob, status: batch_pb2.CronJobStatus) -> None:
        if status == cronjob.status:
            return
        changed = batch_pb2.CronJob()
        changed.CopyFrom(cronjob)
        changed.status.CopyFrom(status)
        self.cronjobs.assume(await self.api.update_status(changed))


def job_from_template(cronjob: batch_pb2.CronJob, scheduled: float) -> batch_pb2.Job:
    """The Job a CronJob runs at a scheduled time, named and annotated by that time."""
    return job_for_cronjob(cronjob, name=job_name(cronjob.metadata.name, scheduled),
                           annotations={SCHEDULED_TIMESTAMP: format_time(scheduled)})


def _reference(job: batch_pb2.Job) -> meta_pb2.ObjectReference:
    return meta_pb2.ObjectReference(kind="Job", api_version="batch/v1", namespace=job.metadata.namespace,
                                    name=job.metadata.name, uid=job.metadata.uid,
                                    resource_version=job.metadata.resource_version)


def _finished_as(job: batch_pb2.Job) -> str:
    done = finished_condition(job)
    return done.type if done is not None else ""


def _age_order(job: batch_pb2.Job) -> tuple[float, str]:
    """Oldest first: by start time (creation when it never started), then name."""
    started = parse_time(job.status.start_time) or parse_time(job.metadata.creation_timestamp)
    return started, job.metadata.name
