"""Leader election on a Lease (control/leaderelection.py), against the
in-process API: the first candidate creates the Lease and leads, the leader
renews, a second candidate waits, takes over once the leader's lease runs out
(never sooner) or at once after a release, a leader that loses the Lease to
another holder or cannot reach the API stops its work before its lease could
expire and campaigns again, and transitions are counted. Then the wiring in
the control service: only the holder schedules, the
``sampan_leader_is_leader`` gauge, and the flags of ``sampan control``.

Timings are shortened (a 2 s lease renewed every 0.2 s); the bounds asserted
are the election's correctness properties, not speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import subprocess
import sys
import time
from typing import AsyncIterator

import pytest

from control.api import errors
from control.client import Client
from control.leaderelection import LEASE_NAME, LEASE_NAMESPACE, LeaderElectionConfig, LeaderElector, micro_time
from control.service import ControlConfig, ControlService
from protos.api.v1 import core_pb2
from tests.scheduler.builders import make_node, make_pod

LEASE = "test-election"
FAST = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.2}


def fast_config(identity: str, **overrides) -> LeaderElectionConfig:
    return LeaderElectionConfig(identity=identity, name=LEASE, **{**FAST, **overrides})


class Work:
    """What an elector leads: notes when each term's work starts and when it is cancelled."""

    def __init__(self) -> None:
        self.started: list[float] = []
        self.stopped: list[float] = []

    @property
    def running(self) -> bool:
        return len(self.started) > len(self.stopped)

    async def __call__(self) -> None:
        self.started.append(time.monotonic())
        try:
            await asyncio.Event().wait()
        finally:
            self.stopped.append(time.monotonic())


def candidate(api: Client, identity: str, **overrides) -> tuple[LeaderElector, Work, list[bool]]:
    """An elector for LEASE, its Work, and the leadership changes it reported."""
    work, changes = Work(), []
    elector = LeaderElector(api, fast_config(identity, **overrides), lead=work, on_change=changes.append)
    return elector, work, changes


@contextlib.asynccontextmanager
async def campaigning(elector: LeaderElector) -> AsyncIterator[asyncio.Task]:
    """elector.run() in a task, cancelled at exit (which releases the lease if configured to)."""
    task = asyncio.create_task(elector.run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def eventually(check, *, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout}s")
        await asyncio.sleep(0.02)


async def read_lease(api: Client, name: str = LEASE, namespace: str = LEASE_NAMESPACE) -> core_pb2.Lease:
    return await api.get("Lease", name, namespace=namespace)


async def take_lease(api: Client, holder: str, *, name: str = LEASE) -> core_pb2.Lease:
    """Write holder into the Lease as another replica would: a compare-and-swap, retried on conflict."""
    while True:
        lease = await read_lease(api, name)
        lease.spec.holder_identity = holder
        lease.spec.acquire_time = lease.spec.renew_time = micro_time()
        lease.spec.lease_transitions += 1
        try:
            return await api.update(lease)
        except errors.ConflictError:
            continue


# ------------------------------------------------------------------ the election


async def test_first_candidate_creates_the_lease_and_leads(api):
    elector, work, changes = candidate(api, "a")
    async with campaigning(elector):
        await eventually(lambda: work.running)
        lease = await read_lease(api)
    assert elector.is_leader is False  # after the campaign was cancelled
    assert changes == [True, False]
    assert lease.spec.holder_identity == "a"
    assert lease.spec.lease_duration_seconds == 2
    assert lease.spec.acquire_time and lease.spec.acquire_time == lease.spec.renew_time
    assert lease.spec.lease_transitions == 0


async def test_the_leader_renews_its_lease_every_retry_period(api):
    elector, work, _ = candidate(api, "a")
    async with campaigning(elector):
        await eventually(lambda: work.running)
        first = await read_lease(api)
        renewed = await eventually(lambda: _renewed_since(api, first))
    assert renewed.spec.holder_identity == "a"
    assert renewed.spec.acquire_time == first.spec.acquire_time
    assert renewed.spec.lease_transitions == 0
    assert work.started and len(work.started) == 1  # one term throughout


async def _renewed_since(api: Client, before: core_pb2.Lease) -> core_pb2.Lease | None:
    lease = await read_lease(api)
    return lease if lease.spec.renew_time > before.spec.renew_time else None


async def test_a_second_candidate_waits_while_the_leader_renews(api):
    a, a_work, _ = candidate(api, "a")
    b, b_work, b_changes = candidate(api, "b")
    async with campaigning(a):
        await eventually(lambda: a_work.running)
        async with campaigning(b):
            await asyncio.sleep(2 * FAST["lease_duration"])  # twice the lease: it is renewed meanwhile
            assert b_work.started == [] and b_changes == []
            assert b.observed_holder == "a"
        assert a_work.running


async def test_a_candidate_takes_over_once_the_dead_leaders_lease_runs_out(api):
    a, a_work, _ = candidate(api, "a", release_on_cancel=False)  # dies without a word
    b, b_work, _ = candidate(api, "b")
    a_task = asyncio.create_task(a.run())
    await eventually(lambda: a_work.running)
    async with campaigning(b):
        await eventually(lambda: b.observed_holder == "a")
        a_task.cancel()
        await asyncio.gather(a_task, return_exceptions=True)
        killed = time.monotonic()
        await eventually(lambda: b_work.running)
        lease = await read_lease(api)
    print(f"takeover {b_work.started[0] - killed:.2f} s after the leader stopped")
    assert lease.spec.holder_identity == "b"
    assert lease.spec.lease_transitions == 1
    # b acted only once a's last renewal was a whole lease duration old.
    assert a.renewed_at is not None
    assert b_work.started[0] >= a.renewed_at + FAST["lease_duration"]


async def test_a_released_lease_is_taken_at_the_first_attempt(api):
    a, a_work, _ = candidate(api, "a")
    async with campaigning(a):
        await eventually(lambda: a_work.running)
    released = await read_lease(api)
    assert not released.spec.holder_identity
    assert released.spec.lease_duration_seconds == 1

    b, _, _ = candidate(api, "b")
    assert await b.try_acquire_or_renew() is True
    assert (await read_lease(api)).spec.holder_identity == "b"


async def test_a_leader_that_finds_another_holder_stops_its_work_at_once(api):
    a, a_work, a_changes = candidate(api, "a")
    async with campaigning(a):
        await eventually(lambda: a_work.running)
        await take_lease(api, "intruder")
        await eventually(lambda: not a.is_leader)  # said once the work has ended
        assert not a_work.running and a_changes == [True, False]
        assert a.renewed_at is not None
        assert a_work.stopped[0] < a.renewed_at + FAST["lease_duration"]
        assert (await read_lease(api)).spec.holder_identity == "intruder"


async def test_a_deposed_leader_campaigns_again_and_leads_once_the_other_lets_go(api):
    a, a_work, a_changes = candidate(api, "a")
    async with campaigning(a):
        await eventually(lambda: a_work.running)
        await take_lease(api, "intruder")
        intruder, intruder_work, _ = candidate(api, "intruder")  # keeps renewing the lease it took
        async with campaigning(intruder):
            await eventually(lambda: intruder_work.running)
            await eventually(lambda: not a_work.running)
            await asyncio.sleep(FAST["retry_period"] * 5)
            assert len(a_work.started) == 1  # no new term while the intruder renews
        # The intruder released the lease on its way out.
        await eventually(lambda: len(a_work.started) == 2 and a_work.running)
        lease = await read_lease(api)
    assert a_changes == [True, False, True, False]
    assert lease.spec.holder_identity == "a"
    assert lease.spec.lease_transitions == 2  # a -> intruder -> a


async def test_a_leader_that_cannot_reach_the_api_stops_before_its_lease_could_expire(tmp_path):
    service = ControlService(ControlConfig(
        store_url=f"sqlite:///{tmp_path}/state.db", listen="127.0.0.1:0", metrics_listen="",
        shutdown_grace=0.1, leader_election=None))
    await service.start()
    async with Client.connect(f"127.0.0.1:{service.port}", timeout=5) as api:
        a, a_work, a_changes = candidate(api, "a")
        async with campaigning(a):
            await eventually(lambda: a_work.running)
            await service.stop()  # every later renewal fails
            cut_off = time.monotonic()
            await eventually(lambda: not a.is_leader)
            assert not a_work.running and a_changes == [True, False]
    assert a.renewed_at is not None
    print(f"work stopped {a_work.stopped[0] - cut_off:.2f} s after the API went away "
          f"({a_work.stopped[0] - a.renewed_at:.2f} s after the last renewal was sent)")
    assert a_work.stopped[0] < a.renewed_at + FAST["lease_duration"]


async def test_transitions_count_each_change_of_holder_and_not_renewals(api):
    holders = []
    for identity in ("a", "b", "a"):
        elector, work, _ = candidate(api, identity)
        async with campaigning(elector):
            await eventually(lambda: work.running)
            first = await read_lease(api)
            await eventually(lambda: _renewed_since(api, first))
            lease = await read_lease(api)
            holders.append((lease.spec.holder_identity, lease.spec.lease_transitions))
    assert holders == [("a", 0), ("b", 1), ("a", 2)]


async def test_work_that_ends_by_itself_ends_the_term_and_a_new_term_starts(api):
    terms = []

    async def lead() -> None:
        terms.append(time.monotonic())
        if len(terms) == 1:
            raise RuntimeError("broken on the first term")
        await asyncio.Event().wait()

    elector = LeaderElector(api, fast_config("a"), lead=lead)
    async with campaigning(elector):
        await eventually(lambda: len(terms) == 2)
        assert elector.is_leader
        assert (await read_lease(api)).spec.holder_identity == "a"


@pytest.mark.parametrize(("timings", "rule"), [
    ({"lease_duration": 10.0, "renew_deadline": 10.0}, "lease_duration (10.0) must be greater than renew_deadline"),
    ({"renew_deadline": 2.0, "retry_period": 2.0}, "renew_deadline (2.0) must be greater than retry_period"),
    ({"lease_duration": 15.5}, "lease_duration must be a whole number of seconds"),
    ({"retry_period": 0.0}, "retry_period must be greater than 0"),
])
def test_inconsistent_timings_are_refused_naming_the_setting(timings, rule):
    with pytest.raises(ValueError, match=rule.replace("(", r"\(").replace(")", r"\)")):
        LeaderElectionConfig(identity="a", **timings)


# ------------------------------------------------------- the control service's use of it


def leading_gauge(service: ControlService) -> float | None:
    return service.metrics.registry.get_sample_value("sampan_leader_is_leader")


async def test_the_control_service_leads_through_its_lease_and_says_so(service, api):
    assert service.elector is not None
    await eventually(lambda: service.elector.is_leader)
    lease = await read_lease(api, LEASE_NAME)
    assert lease.spec.holder_identity == service.elector.identity
    assert leading_gauge(service) == 1.0


async def _add_ready_node(api: Client, name: str) -> None:
    node = make_node(name)
    created = await api.create(node)
    created.status.CopyFrom(node.status)
    await api.update_status(created)


async def _node_of(api: Client, pod: str) -> str:
    return (await api.get("Pod", pod, namespace="default")).spec.node_name


async def _scheduled_pods(api: Client, *, count: int = 0) -> list[str] | None:
    """The pods named by Scheduled events; None while there are fewer than count."""
    events, _ = await api.list("Event", namespace="default")
    scheduled = [e.involved_object.name for e in events if e.reason == "Scheduled"]
    return scheduled if len(scheduled) >= count else None


async def test_a_replica_schedules_only_while_it_holds_the_lease(tmp_path):
    service = ControlService(ControlConfig(
        store_url=f"sqlite:///{tmp_path}/state.db", listen="127.0.0.1:0", metrics_listen="", shutdown_grace=0.1,
        leader_election=LeaderElectionConfig(identity="replica", **FAST)))
    await service.start()
    try:
        async with Client.connect(f"127.0.0.1:{service.port}") as api:
            await _add_ready_node(api, "n1")
            await api.create(make_pod("before"))
            assert await eventually(lambda: _node_of(api, "before")) == "n1"

            await take_lease(api, "other", name=LEASE_NAME)
            other = LeaderElector(api, LeaderElectionConfig(identity="other", **FAST), lead=Work())
            async with campaigning(other):
                await eventually(lambda: not service.elector.is_leader)
                assert leading_gauge(service) == 0.0
                await api.create(make_pod("while-other-leads"))
                await asyncio.sleep(1.0)
                assert await _node_of(api, "while-other-leads") == ""
            # The other replica released the lease: this one leads again, on fresh caches.
            assert await eventually(lambda: _node_of(api, "while-other-leads")) == "n1"
            assert service.elector.is_leader and leading_gauge(service) == 1.0
            # The Scheduled event follows the binding.
            scheduled = await eventually(lambda: _scheduled_pods(api, count=2))
            await asyncio.sleep(FAST["retry_period"])
            assert sorted(scheduled) == sorted(await _scheduled_pods(api)) == ["before", "while-other-leads"]
    finally:
        await service.stop()


def test_sampan_control_refuses_inconsistent_flags_naming_them(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "control.cli.main", "control", "--insecure-plaintext", "--store", f"sqlite:///{tmp_path}/state.db",
         "--metrics-listen", "", "--listen", "127.0.0.1:0",
         "--leader-elect-lease-duration", "5", "--leader-elect-renew-deadline", "8"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert ("--leader-elect-lease-duration (5.0) must be greater than --leader-elect-renew-deadline (8.0)"
            in result.stderr)
