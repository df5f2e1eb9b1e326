"""The TTL-after-finished controller inside a running control service, on a clock the tests move.

Covers: a finished Job (Complete or Failed) is deleted ttlSecondsAfterFinished
after it finished, not before; a TTL of 0 deletes it as soon as it finishes;
a Job without a TTL, or not finished, stays; a TTL lengthened while the Job
waits is honoured. The Job's pods go with it through the garbage collector
(not checked here: that is the collector's own test).

No agent runs the pods: the test writes each pod's final phase
(tests/controllers/batch_support.py).
"""

from __future__ import annotations

import asyncio

import pytest

from control.api import errors
from control.client import Client
from tests.controllers.batch_support import (
    NAMESPACE, MovableClock, eventually, finish_job_pods, get_job, job_condition, job_manifest, start_batch_service,
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


async def gone(api, name: str) -> bool:
    try:
        await get_job(api, name)
    except errors.NotFoundError:
        return True
    return False


async def still_there_after_a_few_passes(api, name: str) -> None:
    await asyncio.sleep(0.3)  # the controller looks again every 0.05 s
    await get_job(api, name)


async def test_a_complete_job_is_deleted_when_its_ttl_has_passed_and_not_before(api, clock):
    await api.create(job_manifest("brief", ttlSecondsAfterFinished=100))
    await finish_job_pods(api, "brief", "Succeeded")
    await job_condition(api, "brief", "Complete")
    clock.advance(99)
    await still_there_after_a_few_passes(api, "brief")
    clock.advance(1)
    await eventually(lambda: gone(api, "brief"), what="the job deleted")


async def test_a_failed_job_expires_too(api, clock):
    await api.create(job_manifest("broken", ttlSecondsAfterFinished=10, backoffLimit=0))
    await finish_job_pods(api, "broken", "Failed")
    await job_condition(api, "broken", "Failed")
    clock.advance(10)
    await eventually(lambda: gone(api, "broken"), what="the job deleted")


async def test_a_ttl_of_zero_deletes_the_job_as_soon_as_it_finishes(api):
    await api.create(job_manifest("instant", ttlSecondsAfterFinished=0))
    await finish_job_pods(api, "instant", "Succeeded")
    await eventually(lambda: gone(api, "instant"), what="the job deleted")


async def test_jobs_without_a_ttl_or_still_running_stay(api, clock):
    await api.create(job_manifest("keeper"))
    await api.create(job_manifest("runner", ttlSecondsAfterFinished=5))
    await finish_job_pods(api, "keeper", "Succeeded")
    await job_condition(api, "keeper", "Complete")
    clock.advance(3600)
    await still_there_after_a_few_passes(api, "keeper")
    await still_there_after_a_few_passes(api, "runner")


async def test_a_ttl_lengthened_while_waiting_is_honoured(api, clock):
    await api.create(job_manifest("longer", ttlSecondsAfterFinished=10))
    await finish_job_pods(api, "longer", "Succeeded")
    await job_condition(api, "longer", "Complete")
    await api.patch("Job", "longer", {"spec": {"ttlSecondsAfterFinished": 1000}}, namespace=NAMESPACE)
    clock.advance(500)
    await still_there_after_a_few_passes(api, "longer")
    clock.advance(500)
    await eventually(lambda: gone(api, "longer"), what="the job deleted")
