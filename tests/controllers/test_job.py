"""The Job controller inside a running control service, on a clock the tests move.

Covers: pods made from the template (generateName, labels, the tracking
finalizer); completions with parallelism (never more pods running than
allowed); the backoff limit for restartPolicy Never (failed pods) and
OnFailure (container restarts); the delay before replacing failed pods;
activeDeadlineSeconds; suspend and resume; finished pods counted once even
when deleted at once, and when a lagging pod watch brings back a stale copy
of one already counted and gone; a running pod deleted counts as failed and is
replaced; less parallelism deletes pods without counting failures; Jobs
without completions; Indexed completion mode; a deleted Job's pods released;
each pod counted once whatever step a stopped controller left it at (state
written straight into the store, then a control service started on it).

No agent runs the pods: the test stands in for the kubelet and writes each
pod's final phase through the API (tests/controllers/batch_support.py).
Tests with a real agent are in tests/e2e/test_jobs_on_an_agent.py.
"""

from __future__ import annotations

import asyncio

import pytest

from control.api import errors, job_labels
from control.api.timestamps import format_time, parse_time
from control.client import Client
from control.controllers.job_state import COMPLETION_INDEX, COMPLETION_INDEX_ENV, TRACKING_FINALIZER
from control.controllers.pods import owner_reference
from control.server.resources import ResourceService
from control.service import ensure_system_namespaces
from control.store import open_store
from protos.api.v1 import core_pb2
from tests.controllers.batch_support import (
    NAMESPACE, MovableClock, condition, eventually, finish, get_job, job_condition, job_manifest, job_pods,
    restart_container, running, start_batch_service, tracked,
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


async def pods_running(api, name: str, count: int) -> list:
    """Wait until exactly count pods of the Job are running; them."""
    async def there():
        pods = running(await job_pods(api, name))
        return pods if len(pods) == count else None

    return await eventually(there, what=f"{count} running pods of job {name}")


async def test_a_pod_is_made_from_the_template_and_tracked_by_the_finalizer(api):
    created = await api.create(job_manifest("hello"))
    [pod] = await pods_running(api, "hello", 1)
    assert pod.metadata.generate_name == "hello-" and pod.metadata.name.startswith("hello-")
    assert [(r.kind, r.name, r.uid, r.controller) for r in pod.metadata.owner_references] == [
        ("Job", "hello", created.metadata.uid, True)]
    assert tracked(pod)
    assert dict(pod.metadata.labels).items() >= dict(created.spec.template.metadata.labels).items()
    # The labels the API put on the template select the pods by the Job's uid.
    assert pod.metadata.labels[job_labels.JOB_NAME_LABEL] == "hello"
    assert pod.metadata.labels[job_labels.CONTROLLER_UID_LABEL] == created.metadata.uid
    assert list(pod.spec.containers[0].command) == ["sh", "-c", "exit 0"]
    job = await eventually(lambda: _with_active(api, "hello", 1))
    assert job.status.start_time


async def _with_active(api, name: str, active: int):
    job = await get_job(api, name)
    return job if job.status.active == active else None


async def test_five_completions_two_at_a_time_complete_without_ever_running_more_than_two(api):
    watched = PodsAtOnce(api, "batch")
    async with watched:
        await api.create(job_manifest("batch", completions=5, parallelism=2))
        for finished in range(1, 6):
            pods = await eventually(lambda: _running_pods(api, "batch"), what="a running pod")
            await finish(api, pods[0], "Succeeded")
            await eventually(lambda: _counted(api, "batch", finished), what=f"{finished} succeeded")
        job = await job_condition(api, "batch", "Complete")
        await watched.caught_up()
    assert (watched.most_running, watched.seen) == (2, 5)
    assert (job.status.succeeded, job.status.failed, job.status.active) == (5, 0, 0)
    assert condition(job, "Complete") == ("True", "CompletionsReached")
    assert condition(job, "SuccessCriteriaMet") == ("True", "CompletionsReached")
    assert job.status.completion_time and parse_time(job.status.completion_time) >= parse_time(job.status.start_time)
    pods = await job_pods(api, "batch")
    assert len(pods) == 5 and all(p.status.phase == "Succeeded" and not tracked(p) for p in pods)


class PodsAtOnce:
    """Follows every change to a Job's pods through a watch: the most running at any one moment."""

    def __init__(self, api, job: str) -> None:
        self.api, self.job = api, job
        self.running: dict[str, bool] = {}
        self.versions: dict[str, int] = {}
        self.most_running = 0
        self._task: asyncio.Task | None = None

    @property
    def seen(self) -> int:
        return len(self.running)

    async def __aenter__(self) -> "PodsAtOnce":
        _, revision = await self.api.list("Pod", namespace=NAMESPACE)
        self._task = asyncio.create_task(self._follow(revision))
        return self

    async def caught_up(self) -> None:
        """Wait until the watch has delivered every pod of the Job as the API holds it now (watches lag)."""
        async def seen_all():
            pods = await job_pods(self.api, self.job)
            return all(self.versions.get(p.metadata.name, 0) >= int(p.metadata.resource_version) for p in pods)

        await eventually(seen_all, what=f"the watch on job {self.job}'s pods caught up")

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _follow(self, revision: str) -> None:
        async for event in self.api.watch("Pod", namespace=NAMESPACE, resource_version=revision):
            pod = event.object
            if any(r.kind == "Job" and r.name == self.job for r in pod.metadata.owner_references):
                self.running[pod.metadata.name] = event.type != "DELETED" and bool(running([pod]))
                self.versions[pod.metadata.name] = int(pod.metadata.resource_version)
                self.most_running = max(self.most_running, sum(self.running.values()))


async def _running_pods(api, name: str):
    return running(await job_pods(api, name))


async def _counted(api, name: str, succeeded: int):
    job = await get_job(api, name)
    return job.status.succeeded == succeeded and not job.status.HasField("uncounted_terminated_pods")


async def test_a_failing_job_stops_at_its_backoff_limit(api):
    await api.create(job_manifest("flaky", backoffLimit=2))
    for attempt in range(3):
        [pod] = await pods_running(api, "flaky", 1)
        await finish(api, pod, "Failed")
    job = await job_condition(api, "flaky", "Failed")
    assert condition(job, "Failed") == ("True", "BackoffLimitExceeded")
    assert condition(job, "FailureTarget") == ("True", "BackoffLimitExceeded")
    assert (job.status.failed, job.status.succeeded, job.status.active) == (3, 0, 0)
    assert not job.status.completion_time
    await asyncio.sleep(0.3)  # a further pass must not start a fourth pod
    pods = await job_pods(api, "flaky")
    assert len(pods) == 3 and all(p.status.phase == "Failed" for p in pods)


async def test_with_restart_policy_on_failure_container_restarts_count_towards_the_limit(api):
    await api.create(job_manifest("restarts", restart_policy="OnFailure", backoffLimit=3))
    [pod] = await pods_running(api, "restarts", 1)
    await restart_container(api, pod, 2)
    await asyncio.sleep(0.3)
    assert condition(await get_job(api, "restarts"), "Failed") is None
    await restart_container(api, pod, 3)
    job = await job_condition(api, "restarts", "Failed")
    assert condition(job, "Failed") == ("True", "BackoffLimitExceeded")
    # The pod still running was deleted, and counts as failed.
    assert job.status.failed == 1 and job.status.active == 0
    await eventually(lambda: _no_pods(api, "restarts"), what="the pod deleted")


async def _no_pods(api, name: str):
    return not await job_pods(api, name)


async def test_failed_pods_are_replaced_after_a_doubling_back_off(tmp_path):
    clock = MovableClock()
    service = await start_batch_service(tmp_path, clock, job_backoff_base=10.0)
    try:
        async with Client.connect(f"127.0.0.1:{service.port}") as api:
            await api.create(job_manifest("slow", backoffLimit=5))
            for delay in (10, 20):
                [pod] = await pods_running(api, "slow", 1)
                await finish(api, pod, "Failed")
                await eventually(lambda: _failed(api, "slow", 1 if delay == 10 else 2), what="the failure counted")
                clock.advance(delay - 1)
                await asyncio.sleep(0.3)  # passes at a 0.05 s recheck: still within the back-off
                assert not running(await job_pods(api, "slow"))
                clock.advance(1)
            await pods_running(api, "slow", 1)
    finally:
        await service.stop()


async def _failed(api, name: str, failed: int):
    return (await get_job(api, name)).status.failed == failed


async def test_a_job_running_past_its_active_deadline_fails_and_its_pods_are_deleted(api, clock):
    await api.create(job_manifest("deadline", parallelism=2, completions=4, activeDeadlineSeconds=30))
    await pods_running(api, "deadline", 2)
    clock.advance(29)
    await asyncio.sleep(0.3)
    assert condition(await get_job(api, "deadline"), "Failed") is None
    clock.advance(1)
    job = await job_condition(api, "deadline", "Failed")
    assert condition(job, "Failed") == ("True", "DeadlineExceeded")
    assert job.status.failed == 2 and job.status.active == 0
    await eventually(lambda: _no_pods(api, "deadline"), what="the pods deleted")


async def test_a_suspended_job_runs_nothing_until_resumed(api, clock):
    await api.create(job_manifest("later", suspend=True))
    job = await job_condition(api, "later", "Suspended")
    assert condition(job, "Suspended") == ("True", "JobSuspended")
    assert not job.status.start_time and not await job_pods(api, "later")
    clock.advance(100)
    await api.patch("Job", "later", {"spec": {"suspend": False}}, namespace=NAMESPACE)
    await pods_running(api, "later", 1)
    job = await eventually(lambda: _resumed(api, "later"), what="the job resumed")
    assert job.status.start_time == format_time(clock.now)


async def _resumed(api, name: str):
    job = await get_job(api, name)
    return job if condition(job, "Suspended") == ("False", "JobResumed") and job.status.start_time else None


async def test_suspending_a_running_job_deletes_its_pods_without_counting_failures(api):
    await api.create(job_manifest("pause", parallelism=3, completions=3))
    await pods_running(api, "pause", 3)
    await api.patch("Job", "pause", {"spec": {"suspend": True}}, namespace=NAMESPACE)
    job = await job_condition(api, "pause", "Suspended")
    await eventually(lambda: _no_pods(api, "pause"), what="the pods deleted")
    job = await get_job(api, "pause")
    assert (job.status.active, job.status.failed, job.status.succeeded) == (0, 0, 0)
    await api.patch("Job", "pause", {"spec": {"suspend": False}}, namespace=NAMESPACE)
    await pods_running(api, "pause", 3)


async def test_a_finished_pod_deleted_at_once_is_still_counted(api):
    await api.create(job_manifest("quick", completions=2, parallelism=2))
    pods = await pods_running(api, "quick", 2)
    for pod in pods:
        await finish(api, pod, "Succeeded")
        # Deleted straight away, as a pod garbage collector might: the finalizer holds it until counted.
        await api.delete("Pod", pod.metadata.name, namespace=NAMESPACE)
    job = await job_condition(api, "quick", "Complete")
    assert job.status.succeeded == 2 and job.status.failed == 0
    await eventually(lambda: _no_pods(api, "quick"), what="the deleted pods gone once counted")


class HeldPodEvents:
    """Makes the pod watches in this process lag: events past a resourceVersion wait until let through."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.through: int | None = None  # None: nothing held
        self._moved = asyncio.Condition()
        plain = Client.watch
        gate = self

        async def watch(client, kind, **kwargs):
            async for event in plain(client, kind, **kwargs):
                if kind == "Pod":
                    await gate._wait_for(int(event.object.metadata.resource_version or 0))
                yield event

        monkeypatch.setattr(Client, "watch", watch)

    async def _wait_for(self, version: int) -> None:
        async with self._moved:
            await self._moved.wait_for(lambda: self.through is None or version <= self.through)

    async def let_through(self, version: int | None) -> None:
        """Deliver the held events up to version (None: all, and hold nothing more)."""
        async with self._moved:
            self.through = version
            self._moved.notify_all()


async def test_a_stale_event_about_a_pod_counted_and_gone_does_not_count_it_again(tmp_path, monkeypatch):
    """The pod watch lags: the controller counts a pod deleted at once and removes its finalizer (so
    it goes); only then comes the older event of the pod's deletion, finalizer still on, and later
    the event saying it is gone."""
    held = HeldPodEvents(monkeypatch)  # before the service starts its watches
    service = await start_batch_service(tmp_path, MovableClock())
    try:
        async with Client.connect(f"127.0.0.1:{service.port}") as api:
            await api.create(job_manifest("lagging", completions=1))
            [pod] = await pods_running(api, "lagging", 1)
            await held.let_through(int(pod.metadata.resource_version))
            await finish(api, pod, "Succeeded")
            succeeded = await api.get("Pod", pod.metadata.name, namespace=NAMESPACE)
            marked, _ = await api.delete("Pod", pod.metadata.name, namespace=NAMESPACE)
            assert tracked(marked)  # held by the finalizer until counted
            await held.let_through(int(succeeded.metadata.resource_version))  # the success, not the deletion
            await eventually(lambda: _counted(api, "lagging", 1), what="the pod counted")
            await eventually(lambda: _no_pods(api, "lagging"), what="the pod gone once counted")
            await held.let_through(int(marked.metadata.resource_version))  # the deletion's stale event
            await asyncio.sleep(0.3)  # passes at a 0.05 s recheck: the stale copy must not count again
            assert (await get_job(api, "lagging")).status.succeeded == 1
            await held.let_through(None)
            job = await job_condition(api, "lagging", "Complete")
            assert (job.status.succeeded, job.status.failed) == (1, 0)
    finally:
        await service.stop()


async def test_a_running_pod_deleted_counts_as_failed_and_is_replaced(api):
    await api.create(job_manifest("victim", backoffLimit=3))
    [pod] = await pods_running(api, "victim", 1)
    await api.delete("Pod", pod.metadata.name, namespace=NAMESPACE)
    [replacement] = await pods_running(api, "victim", 1)
    assert replacement.metadata.uid != pod.metadata.uid
    await eventually(lambda: _failed(api, "victim", 1), what="the deleted pod counted as failed")
    with pytest.raises(errors.NotFoundError):
        await api.get("Pod", pod.metadata.name, namespace=NAMESPACE)


async def test_lowering_parallelism_deletes_pods_without_counting_failures(api):
    await api.create(job_manifest("wide", parallelism=3, completions=10))
    await pods_running(api, "wide", 3)
    await api.patch("Job", "wide", {"spec": {"parallelism": 1}}, namespace=NAMESPACE)
    await pods_running(api, "wide", 1)
    await eventually(lambda: _with_active(api, "wide", 1), what="status.active 1")
    assert (await get_job(api, "wide")).status.failed == 0


async def test_without_completions_the_job_completes_when_one_pod_succeeded_and_the_rest_finished(api):
    await api.create(job_manifest("queue", parallelism=2))
    first, second = await pods_running(api, "queue", 2)
    await finish(api, first, "Succeeded")
    await eventually(lambda: _counted(api, "queue", 1), what="one success counted")
    await asyncio.sleep(0.3)
    assert [p.metadata.name for p in running(await job_pods(api, "queue"))] == [second.metadata.name]
    assert condition(await get_job(api, "queue"), "Complete") is None
    await finish(api, second, "Succeeded")
    job = await job_condition(api, "queue", "Complete")
    assert job.status.succeeded == 2


async def test_an_indexed_job_runs_each_index_until_it_succeeds(api):
    await api.create(job_manifest("shards", completions=3, parallelism=3, completionMode="Indexed"))
    pods = await pods_running(api, "shards", 3)
    by_index = {int(p.metadata.annotations[COMPLETION_INDEX]): p for p in pods}
    assert sorted(by_index) == [0, 1, 2]
    for index, pod in by_index.items():
        assert pod.metadata.labels[COMPLETION_INDEX] == str(index)
        assert pod.metadata.name.startswith(f"shards-{index}-")
        assert pod.spec.hostname == f"shards-{index}"
        assert [(e.name, e.value) for e in pod.spec.containers[0].env] == [(COMPLETION_INDEX_ENV, str(index))]
    await finish(api, by_index[0], "Succeeded")
    await finish(api, by_index[1], "Failed")

    async def index_one_again():
        pods = running(await job_pods(api, "shards"))
        again = [p for p in pods if p.metadata.annotations[COMPLETION_INDEX] == "1"]
        return again[0] if len(pods) == 2 and again else None

    retry = await eventually(index_one_again, what="index 1 recreated")
    job = await get_job(api, "shards")
    assert job.status.completed_indexes == "0" and job.status.succeeded == 1
    await finish(api, retry, "Succeeded")
    await finish(api, by_index[2], "Succeeded")
    job = await job_condition(api, "shards", "Complete")
    assert job.status.completed_indexes == "0-2"
    assert (job.status.succeeded, job.status.failed) == (3, 1)


async def test_deleting_a_job_releases_its_pods_finalizers_so_they_go_too(api):
    await api.create(job_manifest("gone", parallelism=2, completions=2))
    pods = await pods_running(api, "gone", 2)
    await api.delete("Job", "gone", namespace=NAMESPACE, propagation_policy="Background")

    async def released():
        for pod in pods:
            try:
                current = await api.get("Pod", pod.metadata.name, namespace=NAMESPACE)
            except errors.NotFoundError:
                continue
            if TRACKING_FINALIZER in current.metadata.finalizers:
                return False
        return True

    await eventually(released, what="the tracking finalizers removed")
    await eventually(lambda: _no_pods(api, "gone"), what="the pods gone with their Job")



async def test_pods_are_counted_once_whatever_step_a_stopped_controller_was_at(tmp_path):
    """The state a controller leaves when it stops between its writes, then a control service starts on it.

    Written straight into the store (no controller runs meanwhile): pod
    "listed" finished and recorded as uncounted but still holding the
    finalizer (stopped before removing it); pod "released" recorded and
    released (stopped before moving it into the count); pod "fresh" finished
    and not yet seen. Three completions: exactly three counted, and no pod more.
    """
    store_url = f"sqlite:///{tmp_path}/state.db"
    store = await open_store(store_url)
    resources = ResourceService(store, cache_watches=False)
    await ensure_system_namespaces(resources)
    job = await resources.create(job_manifest("resume", completions=3, parallelism=3))
    pods = {}
    for name in ("listed", "released", "fresh"):
        pod = core_pb2.Pod(api_version="v1", kind="Pod")
        pod.metadata.name, pod.metadata.namespace = name, NAMESPACE
        pod.metadata.owner_references.append(owner_reference(job))
        if name != "released":
            pod.metadata.finalizers.append(TRACKING_FINALIZER)
        pod.spec.CopyFrom(job.spec.template.spec)
        pod = await resources.create(pod)
        pod.status.phase = "Succeeded"
        pods[name] = await resources.update(pod, subresource="status")
    job.status.uncounted_terminated_pods.succeeded.extend([pods["listed"].metadata.uid, pods["released"].metadata.uid])
    await resources.update(job, subresource="status")
    await resources.close()
    await store.close()

    service = await start_batch_service(tmp_path, MovableClock())
    try:
        async with Client.connect(f"127.0.0.1:{service.port}") as api:
            job = await job_condition(api, "resume", "Complete")
            assert (job.status.succeeded, job.status.failed) == (3, 0)
            assert not job.status.HasField("uncounted_terminated_pods")
            await asyncio.sleep(0.3)
            remaining = await job_pods(api, "resume")
            assert sorted(p.metadata.name for p in remaining) == ["fresh", "listed", "released"]
            assert not any(tracked(p) for p in remaining)
            assert (await get_job(api, "resume")).status.succeeded == 3
    finally:
        await service.stop()


async def test_status_counts_ready_pods(api):
    await api.create(job_manifest("readiness", parallelism=2, completions=2))
    first, _ = await pods_running(api, "readiness", 2)
    current = await api.get("Pod", first.metadata.name, namespace=NAMESPACE)
    current.status.phase = "Running"
    current.status.conditions.add(type="Ready", status="True", last_transition_time=current.metadata.creation_timestamp)
    await api.update_status(current)

    async def one_ready():
        job = await get_job(api, "readiness")
        return job if (job.status.active, job.status.ready) == (2, 1) else None

    await eventually(one_ready, what="status.ready 1 of 2 active")
