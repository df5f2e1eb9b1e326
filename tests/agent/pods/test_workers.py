"""Pod workers: one sync at a time per pod, requests during a sync coalesce
into one more pass, different pods sync concurrently, failures retry."""

from __future__ import annotations

import asyncio

from agent.pods.workers import RETRY_SECONDS, PodWorkers
from tests.agent.pods.support import eventually


class Recorder:
    def __init__(self, hold: asyncio.Event | None = None, fail_first: bool = False) -> None:
        self.hold = hold
        self.fail_first = fail_first
        self.running: dict[str, int] = {}
        self.overlap = False
        self.calls: list[str] = []
        self.retries: list[tuple[str, float]] = []

    async def sync(self, uid: str) -> None:
        self.running[uid] = self.running.get(uid, 0) + 1
        self.overlap |= self.running[uid] > 1
        self.calls.append(uid)
        try:
            if self.hold is not None:
                await self.hold.wait()
            if self.fail_first and self.calls.count(uid) == 1:
                raise RuntimeError("boom")
        finally:
            self.running[uid] -= 1


async def test_requests_during_a_sync_coalesce_into_one_more_pass():
    hold = asyncio.Event()
    recorder = Recorder(hold)
    workers = PodWorkers(recorder.sync, on_retry=lambda uid, delay: None)
    workers.dispatch("a")
    await asyncio.sleep(0)
    for _ in range(5):
        workers.dispatch("a")
    hold.set()
    await eventually(lambda: workers.busy("a"), lambda busy: not busy)
    assert recorder.calls == ["a", "a"]
    assert not recorder.overlap


async def test_different_pods_sync_concurrently():
    hold = asyncio.Event()
    recorder = Recorder(hold)
    workers = PodWorkers(recorder.sync, on_retry=lambda uid, delay: None)
    workers.dispatch("a")
    workers.dispatch("b")
    await asyncio.sleep(0)
    assert recorder.running == {"a": 1, "b": 1}
    hold.set()
    await workers.stop()


async def test_a_failed_sync_asks_for_a_retry_and_does_not_end_the_worker_pool():
    recorder = Recorder(fail_first=True)
    retries: list[tuple[str, float]] = []
    workers = PodWorkers(recorder.sync, on_retry=lambda uid, delay: retries.append((uid, delay)))
    workers.dispatch("a")
    await eventually(lambda: workers.busy("a"), lambda busy: not busy)
    assert retries == [("a", RETRY_SECONDS)]
    workers.dispatch("a")
    await eventually(lambda: len(recorder.calls), lambda n: n == 2)


async def test_stop_cancels_running_syncs():
    recorder = Recorder(asyncio.Event())
    workers = PodWorkers(recorder.sync, on_retry=lambda uid, delay: None)
    workers.dispatch("a")
    await asyncio.sleep(0)
    await workers.stop()
    assert not workers.busy("a") and len(workers) == 0
