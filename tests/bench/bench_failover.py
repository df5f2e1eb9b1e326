"""Benchmark: failover, from the leader's death to the new leader acting.

Two control replicas (``ControlServer`` subprocesses) share a private etcd.
The benchmark adds a Ready Node and, through the replica that will survive,
creates a pod every 100 ms; then it kills the leader with SIGKILL and times,
from the kill:

- **lease taken**: the survivor's acquisition of the leader Lease, seen by a
  watch on it;
- **first binding**: the survivor's scheduler binding its first pod, seen by
  a watch on pods: the first binding seen after its acquisition (the dead
  leader's last bindings reach the watch within milliseconds of the kill,
  long before). This is when the control plane acts again.

Each figure is set against the theoretical bound, lease duration + retry
period: a candidate sees the last renewal within a retry period and takes the
lease one lease duration after that. The killed replica is started again
before the next round (it rejoins as the follower), so each round kills
whichever replica leads then. The full run uses Kubernetes' default timings
(15 s lease, 10 s renew deadline, 2 s retry); the quick run shortens them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass

from control.api import errors
from control.client import Client
from control.leaderelection import LEASE_NAME, LEASE_NAMESPACE
from tests.bench.environment import scratch_dir
from tests.bench.report import FailoverRow, Report, progress
from tests.scheduler.builders import make_node, make_pod
from tests.support.control import ControlServer
from tests.support.etcd import running_etcd

POD_INTERVAL = 0.1
TIMEOUT_OVER_BOUND = 30.0  # seconds past the bound before a round counts as failed


@dataclass(frozen=True)
class FailoverPlan:
    rounds: int
    lease_duration: int
    renew_deadline: float
    retry_period: float

    @property
    def bound(self) -> float:
        return self.lease_duration + self.retry_period

    @property
    def flags(self) -> tuple[str, ...]:
        return ("--leader-elect-lease-duration", str(self.lease_duration),
                "--leader-elect-renew-deadline", str(self.renew_deadline),
                "--leader-elect-retry-period", str(self.retry_period))


FULL = FailoverPlan(rounds=3, lease_duration=15, renew_deadline=10.0, retry_period=2.0)
QUICK = FailoverPlan(rounds=1, lease_duration=2, renew_deadline=1.5, retry_period=0.5)


def run_failover_benchmark(plan: FailoverPlan, report: Report, *, etcd_binary: str) -> None:
    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(scratch_dir("failover"))
        etcd = stack.enter_context(running_etcd(binary=etcd_binary))
        store_url = "etcd://" + ",".join(etcd.endpoints)
        replicas = {name: ControlServer(workdir / name, store_url=store_url,
                                        extra_args=("--identity", name, *plan.flags))
                    for name in ("replica-a", "replica-b")}
        for server in replicas.values():
            stack.callback(server.kill)
            server.start()
        timings = f"{plan.lease_duration:g} / {plan.renew_deadline:g} / {plan.retry_period:g}"
        for round_ in range(1, plan.rounds + 1):
            progress(f"failover: round {round_} of {plan.rounds} (lease {timings} s)")
            lease_taken, first_binding = asyncio.run(_one_failover(replicas, plan, round_=round_))
            if round_ < plan.rounds:
                for server in replicas.values():
                    if server.process is not None and server.process.poll() is not None:
                        progress("failover: restarting the killed replica")
                        server.start()
            report.failover.append(FailoverRow(timings=timings, round=round_, lease_taken=lease_taken,
                                               first_binding=first_binding, bound=plan.bound))
    report.notes.append(
        "failover: two control replicas on one etcd, the leader killed with SIGKILL while a pod is created every"
        f" {POD_INTERVAL:g} s; times from the kill; the bound is lease duration + retry period")


async def _one_failover(replicas: dict[str, ControlServer], plan: FailoverPlan, *, round_: int) -> tuple[float, float]:
    """Kill the current leader; (seconds to the lease taken, seconds to the first binding)."""
    any_server = next(iter(replicas.values()))
    async with Client.connect(any_server.address) as api:
        leader_name = await _current_holder(api, timeout=plan.bound + TIMEOUT_OVER_BOUND)
    leader = replicas[leader_name]
    survivor_name, survivor = next((n, s) for n, s in replicas.items() if n != leader_name)
    async with Client.connect(survivor.address) as api:
        if round_ == 1:
            node = make_node("bench-node", pods="100000")
            created = await api.create(node)
            created.status.CopyFrom(node.status)
            await api.update_status(created)
        lease_seen = asyncio.Event()
        bound: dict[str, float] = {}
        watches = [asyncio.create_task(_watch_lease(api, survivor_name, lease_seen)),
                   asyncio.create_task(_watch_bindings(api, bound))]
        creator = asyncio.create_task(_create_pods(api, prefix=f"round{round_}"))
        try:
            await asyncio.sleep(0.5)  # watches open, pods flowing
            leader.kill()
            killed = time.monotonic()
            async with asyncio.timeout(plan.bound + TIMEOUT_OVER_BOUND):
                await lease_seen.wait()
                taken_at = time.monotonic()
                while not (after := [at for at in bound.values() if at >= taken_at]):
                    await asyncio.sleep(0.01)
            lease_taken, first_binding = taken_at - killed, min(after) - killed
        finally:
            for task in [creator, *watches]:
                task.cancel()
            await asyncio.gather(creator, *watches, return_exceptions=True)
    progress(f"failover: {survivor_name} took the lease after {lease_taken:.2f} s, bound a pod after "
             f"{first_binding:.2f} s")
    return lease_taken, first_binding


async def _current_holder(api: Client, *, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(errors.NotFoundError):  # not created yet
            lease = await api.get("Lease", LEASE_NAME, namespace=LEASE_NAMESPACE)
            if lease.spec.holder_identity:
                return lease.spec.holder_identity
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no replica holds the leader lease after {timeout:g} s")


async def _watch_lease(api: Client, identity: str, seen: asyncio.Event) -> None:
    async for event in api.watch("Lease", namespace=LEASE_NAMESPACE, field_selector=f"metadata.name={LEASE_NAME}"):
        if event.object.spec.holder_identity == identity:
            seen.set()


async def _watch_bindings(api: Client, bound: dict[str, float]) -> None:
    async for event in api.watch("Pod", namespace="default"):
        if event.object.spec.node_name:
            bound.setdefault(event.object.metadata.name, time.monotonic())


async def _create_pods(api: Client, *, prefix: str) -> None:
    for index in itertools.count():
        await api.create(make_pod(f"{prefix}-{index:04d}"))
        await asyncio.sleep(POD_INTERVAL)

