"""The CronJob controller inside a running control service, on a clock the tests move.

Covers: a Job per scheduled time, named by the time in minutes and made from
the jobTemplate; status active, lastScheduleTime and lastSuccessfulTime;
concurrencyPolicy Allow, Forbid (the due run starts once the active Job
ends) and Replace; successful and failed history limits; suspend;
startingDeadlineSeconds; more than 100 missed times (one Job, a warning);
a schedule read in spec.timeZone; the API refusing a broken schedule or
time zone; and, as pure functions, the most recent due time.

The Jobs run through the real Job controller; no agent runs their pods, so
the test writes each pod's final phase (tests/controllers/batch_support.py).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from control.api import errors
from control.api.cron import parse_schedule
from control.api.timestamps import format_time, parse_time
from control.client import Client
from control.controllers.cronjob import MISSED_TIMES_WARNING, SCHEDULED_TIMESTAMP, most_recent_due
from tests.controllers.batch_support import (
    NAMESPACE, MovableClock, condition, cronjob_manifest, eventually, events_about, finish_job_pods, next_minute,
    owned_jobs, start_batch_service,
)


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def api(tmp_path, clock):
    service = await start_batch_service(tmp_path, clock)
    async with Client.connect(f"127.0.0.1:{service.port}") as client:
        yield client
    await service.stop()


async def create(api, manifest) -> float:
    """Create a CronJob; its creation time (where its schedule starts)."""
    created = await api.create(manifest)
    return parse_time(created.metadata.creation_timestamp)


async def jobs_named(api, cronjob: str, count: int) -> list:
    async def there():
        jobs = await owned_jobs(api, cronjob)
        return jobs if len(jobs) == count else None

    return await eventually(there, what=f"{count} jobs of cronjob {cronjob}")


async def settled(api, cronjob: str, count: int) -> list:
    """The CronJob's Jobs once a few passes more (at the 0.05 s recheck) made no difference."""
    await asyncio.sleep(0.3)
    jobs = await owned_jobs(api, cronjob)
    assert len(jobs) == count, [j.metadata.name for j in jobs]
    return jobs


async def cronjob_status(api, name: str):
    return (await api.get("CronJob", name, namespace=NAMESPACE)).status


async def complete(api, job: str) -> None:
    await finish_job_pods(api, job, "Succeeded")

    async def done():
        found = await api.get("Job", job, namespace=NAMESPACE)
        return condition(found, "Complete") == ("True", "CompletionsReached")

    await eventually(done, what=f"job {job} complete")


async def test_a_job_is_created_at_each_scheduled_time_named_by_that_minute(api, clock):
    created_at = await create(api, cronjob_manifest("tick", "* * * * *"))
    await settled(api, "tick", 0)
    first = next_minute(created_at)
    clock.now = first
    [job] = await jobs_named(api, "tick", 1)
    assert job.metadata.name == f"tick-{int(first // 60)}"
    assert job.metadata.annotations[SCHEDULED_TIMESTAMP] == format_time(first)
    [owner] = job.metadata.owner_references
    assert (owner.kind, owner.name, owner.controller) == ("CronJob", "tick", True)
    assert list(job.spec.template.spec.containers[0].command) == ["sh", "-c", "exit 0"]

    async def active_recorded():
        status = await cronjob_status(api, "tick")
        return status if [r.name for r in status.active] == [job.metadata.name] else None

    status = await eventually(active_recorded, what="the job in status.active")
    assert status.last_schedule_time == format_time(first)
    assert status.active[0].uid == job.metadata.uid

    await complete(api, job.metadata.name)

    async def success_recorded():
        status = await cronjob_status(api, "tick")
        return status if status.last_successful_time and not status.active else None

    status = await eventually(success_recorded, what="lastSuccessfulTime")
    clock.now = first + 60
    jobs = await jobs_named(api, "tick", 2)
    assert jobs[1].metadata.name == f"tick-{int(first // 60) + 1}"
    assert (await eventually(lambda: _events(api, "tick", "SawCompletedJob")))


async def _events(api, name: str, reason: str):
    return await events_about(api, name, reason)


async def test_allow_runs_jobs_side_by_side(api, clock):
    created_at = await create(api, cronjob_manifest("both", "* * * * *"))
    clock.now = next_minute(created_at)
    await jobs_named(api, "both", 1)
    clock.advance(60)
    jobs = await jobs_named(api, "both", 2)

    async def two_active():
        return len((await cronjob_status(api, "both")).active) == 2

    await eventually(two_active, what="two active jobs")
    assert all(condition(j, "Complete") is None for j in jobs)


async def test_forbid_skips_a_run_while_a_job_is_active_and_starts_it_when_that_ends(api, clock):
    created_at = await create(api, cronjob_manifest("single", "* * * * *", concurrencyPolicy="Forbid"))
    first = next_minute(created_at)
    clock.now = first
    [job] = await jobs_named(api, "single", 1)
    clock.now = first + 60
    await settled(api, "single", 1)
    assert await eventually(lambda: _events(api, "single", "JobAlreadyActive"))
    assert (await cronjob_status(api, "single")).last_schedule_time == format_time(first)
    await complete(api, job.metadata.name)
    jobs = await jobs_named(api, "single", 2)
    assert jobs[1].metadata.name == f"single-{int(first // 60) + 1}"


async def test_replace_deletes_the_active_job_and_starts_the_new_one(api, clock):
    created_at = await create(api, cronjob_manifest("fresh", "* * * * *", concurrencyPolicy="Replace"))
    first = next_minute(created_at)
    clock.now = first
    [old] = await jobs_named(api, "fresh", 1)
    clock.now = first + 60

    async def replaced():
        jobs = await owned_jobs(api, "fresh")
        return jobs if [j.metadata.name for j in jobs] == [f"fresh-{int(first // 60) + 1}"] else None

    [new] = await eventually(replaced, what="the old job replaced")
    assert new.metadata.uid != old.metadata.uid

    async def only_the_new_one_active():
        # The controller writes status after it has created the job: wait for that write.
        return [r.uid for r in (await cronjob_status(api, "fresh")).active] == [new.metadata.uid]

    await eventually(only_the_new_one_active, what="status.active naming the new job alone")


async def test_history_limits_keep_only_the_newest_finished_jobs(api, clock):
    manifest = cronjob_manifest("history", "* * * * *", successfulJobsHistoryLimit=2, failedJobsHistoryLimit=1,
                                job={"backoffLimit": 0})
    created_at = await create(api, manifest)
    first = next_minute(created_at)
    names = []
    for run in range(4):
        clock.now = first + 60 * run
        names.append(f"history-{int(first // 60) + run}")
        await eventually(lambda: _exists(api, "history", names[-1]), what=f"job {names[-1]}")
        await complete(api, names[-1])
    for run in range(4, 6):
        clock.now = first + 60 * run
        names.append(f"history-{int(first // 60) + run}")
        await eventually(lambda: _exists(api, "history", names[-1]), what=f"job {names[-1]}")
        await finish_job_pods(api, names[-1], "Failed")
        await eventually(lambda: _failed(api, names[-1]), what=f"job {names[-1]} failed")

    async def trimmed():
        jobs = [j.metadata.name for j in await owned_jobs(api, "history")]
        return jobs if jobs == [names[2], names[3], names[5]] else None

    await eventually(trimmed, what="two successful and one failed job kept")


async def _exists(api, cronjob: str, name: str):
    return name in [j.metadata.name for j in await owned_jobs(api, cronjob)]


async def _failed(api, name: str):
    job = await api.get("Job", name, namespace=NAMESPACE)
    return condition(job, "Failed") == ("True", "BackoffLimitExceeded")


async def test_a_suspended_cronjob_starts_nothing_and_on_resume_runs_only_the_latest_missed_time(api, clock):
    created_at = await create(api, cronjob_manifest("sleepy", "* * * * *", suspend=True))
    clock.now = next_minute(created_at) + 600
    await settled(api, "sleepy", 0)
    await api.patch("CronJob", "sleepy", {"spec": {"suspend": False}}, namespace=NAMESPACE)
    [job] = await jobs_named(api, "sleepy", 1)
    assert job.metadata.name == f"sleepy-{int(clock.now // 60)}"
    await settled(api, "sleepy", 1)


async def test_a_run_missed_by_more_than_the_starting_deadline_is_skipped(api, clock):
    created_at = await create(api, cronjob_manifest("strict", "* * * * *", startingDeadlineSeconds=30))
    first = next_minute(created_at)
    clock.now = first + 45
    await settled(api, "strict", 0)
    clock.now = first + 60 + 20
    [job] = await jobs_named(api, "strict", 1)
    assert job.metadata.name == f"strict-{int(first // 60) + 1}"


async def test_more_than_a_hundred_missed_times_start_one_job_and_warn(api, clock):
    created_at = await create(api, cronjob_manifest("behind", "* * * * *"))
    clock.now = next_minute(created_at) + 60 * 500 + 5
    [job] = await jobs_named(api, "behind", 1)
    assert job.metadata.name == f"behind-{int(clock.now // 60)}"
    [warning] = await eventually(lambda: _events(api, "behind", "TooManyMissedTimes"))
    assert warning.type == "Warning" and "too many missed start times" in warning.message
    await settled(api, "behind", 1)


async def test_the_schedule_is_read_on_the_clock_of_its_time_zone(api, clock):
    # 09:00 in Tokyo (UTC+9, no daylight saving) is 00:00 UTC. A one-minute
    # starting deadline keeps the other 09:00 out of each window.
    created_at = await create(api, cronjob_manifest("tokyo", "0 9 * * *", timeZone="Asia/Tokyo",
                                                    startingDeadlineSeconds=60))
    day = datetime.fromtimestamp(created_at, timezone.utc).date()
    nine_utc = datetime(day.year, day.month, day.day, 9, tzinfo=timezone.utc).timestamp() + 86400
    clock.now = nine_utc
    await settled(api, "tokyo", 0)
    midnight_utc = nine_utc + 15 * 3600
    clock.now = midnight_utc
    [job] = await jobs_named(api, "tokyo", 1)
    assert job.metadata.annotations[SCHEDULED_TIMESTAMP] == format_time(midnight_utc)


async def test_the_api_refuses_a_broken_schedule_or_time_zone(api):
    with pytest.raises(errors.InvalidError) as raised:
        await api.create(cronjob_manifest("typo", "61 * * * *"))
    assert 'spec.schedule: Invalid value: "61 * * * *": minute 61 out of range 0-59' in str(raised.value)
    with pytest.raises(errors.InvalidError) as raised:
        await api.create(cronjob_manifest("nowhere", "0 9 * * *", timeZone="Mars/Olympus_Mons"))
    assert 'spec.timeZone: Invalid value: "Mars/Olympus_Mons": unknown time zone Mars/Olympus_Mons' in str(
        raised.value)


# ---------------------------------------------------------------- the most recent due time (pure)


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_nothing_is_due_before_the_first_scheduled_time():
    schedule = parse_schedule("0 * * * *")
    assert most_recent_due(schedule, timezone.utc, earliest=at("2024-05-01T12:00:00+00:00"),
                           now=at("2024-05-01T12:59:59+00:00")) == (None, 0)


def test_the_latest_of_the_missed_times_is_due_and_they_are_counted():
    schedule = parse_schedule("*/10 * * * *")
    due, missed = most_recent_due(schedule, timezone.utc, earliest=at("2024-05-01T12:00:00+00:00"),
                                  now=at("2024-05-01T12:35:00+00:00"))
    assert (due, missed) == (at("2024-05-01T12:30:00+00:00"), 3)


def test_far_more_than_a_hundred_missed_times_still_find_the_latest():
    every_minute = parse_schedule("* * * * *")
    due, missed = most_recent_due(every_minute, timezone.utc, earliest=at("2023-05-01T12:00:00+00:00"),
                                  now=at("2024-05-01T12:34:56+00:00"))
    assert (due, missed) == (at("2024-05-01T12:34:00+00:00"), MISSED_TIMES_WARNING + 1)
    yearly = parse_schedule("@yearly")
    due, missed = most_recent_due(yearly, timezone.utc, earliest=at("1800-01-01T00:00:00+00:00"),
                                  now=at("2024-05-01T00:00:00+00:00"))
    assert (due, missed) == (at("2024-01-01T00:00:00+00:00"), MISSED_TIMES_WARNING + 1)
