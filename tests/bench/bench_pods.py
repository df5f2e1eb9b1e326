"""Benchmark 3: pod startup latency, creation to Running, against the runtime's own floor.

On a private containerd (``agent_node.private_containerd``) and a control
service subprocess on SQLite, both runs start ``plan.pods`` pods of one
busybox container (``sleep 3600``, image already present), paced at
``plan.rate`` per second, each pod as its own task:

1. **CRI calls** (the baseline, the floor any agent stands on):
   ``CRIRuntime.run_sandbox``, ``create_container`` and ``start_container``
   one after the other for each pod, in the benchmark process, with the specs
   the agent would build for the same pod (``agent.pods.runtime_specs``).
   A pod's latency: launch to ``start_container`` returning.
2. **agent**: one ``sampan agent --runtime containerd`` process; the
   benchmark creates each pod through the API (bound to the agent's node),
   and a ``Client.watch`` on Pods records when it first sees it Running. A
   pod's latency: the client's ``time.time()`` just before its create (the
   stored creationTimestamp has whole seconds only) to that moment.

The agent rows carry "agent / CRI" at p50 and at p99. A second table splits
each pod's time with containerd's own timestamps (same machine clock): to
the sandbox's creation (for the agent: the API, its watch to the agent, the
agent's work before RunPodSandbox), from there to the container's start (the
runtime), and from the start to the end (for the agent: its status write and
the watch back to the benchmark).

One unmeasured pod is started and removed through the CRI first, so neither
run pays for containerd's first sandbox. Every sandbox is removed after each
run (the agent is killed first, so it cannot restart anything).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from agent.pods import runtime_specs
from agent.runtime.base import ContainerRuntime, RuntimeInfo
from agent.runtime.cri import CRIRuntime
from control.client import Client
from protos.api.v1 import core_pb2
from tests.bench.agent_node import (
    NAMESPACE,
    RunningPods,
    private_containerd,
    remove_sandboxes,
    running_agent,
    sleeper_pod,
    wait_node_ready,
)
from tests.bench.environment import control_service, scratch_dir, sqlite_url
from tests.bench.measure import CpuMeter, LatencySummary
from tests.bench.report import AGENT_PATH, CRI_PATH, PodStartupRow, Report, progress

READY_TIMEOUT = 60.0  # for the agent's node to be Ready


@dataclass(frozen=True)
class PodStartupPlan:
    pods: int
    rate: float  # pods started per second
    running_seconds: float  # after the last create, for every pod to run


FULL = PodStartupPlan(pods=30, rate=5.0, running_seconds=120.0)
QUICK = PodStartupPlan(pods=4, rate=5.0, running_seconds=60.0)


@dataclass(frozen=True)
class Paced:
    """How ``paced`` went: the rate achieved and what failed."""

    rate: float
    errors: list[str]


@dataclass(frozen=True)
class Startups:
    """One run's pods: when each was launched and finished (epoch seconds), and the runtime's stamps."""

    launched: dict[str, float]
    finished: dict[str, float]
    sandbox_created: dict[str, float]
    container_started: dict[str, float]
    paced: Paced
    cpu: dict[str, float]


async def paced(count: int, *, rate: float, start: Callable[[int], Awaitable[None]]) -> Paced:
    """Launch start(0..count-1) at rate per second, each as its own task so a
    slow one never delays the next; wait for all."""
    errors: list[str] = []

    async def guarded(index: int) -> None:
        try:
            await start(index)
        except Exception as err:
            errors.append(f"#{index}: {type(err).__name__}: {err}")

    tasks = []
    began = time.perf_counter()
    for index in range(count):
        delay = began + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(guarded(index)))
    span = time.perf_counter() - began
    await asyncio.gather(*tasks)
    return Paced(rate=(count - 1) / span if count > 1 and span > 0 else float("nan"), errors=errors)


def run_pod_startup_benchmark(plan: PodStartupPlan, report: Report, *, profile_dir: Path | None) -> None:
    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(scratch_dir("pods"))
        containerd = stack.enter_context(private_containerd())
        server = stack.enter_context(control_service(workdir / "control", store_url=sqlite_url(workdir, "api")))
        assert containerd.process is not None
        pids = {"ctl": server.process.pid, "containerd": containerd.process.pid, "bench": os.getpid()}

        progress(f"pod-startup: CRI calls, {plan.pods} pods at {plan.rate:g}/s")
        info, cri_run = asyncio.run(_through_cri(containerd.socket, plan, log_root=workdir / "cri-logs", pids=pids))
        baseline = _row(CRI_PATH, info=info, plan=plan, run=cri_run, baseline=None, report=report)
        report.pod_startup.append(baseline)

        progress(f"pod-startup: agent, {plan.pods} pods at {plan.rate:g}/s")
        profile_to = profile_dir / "pod-startup-agent.txt" if profile_dir else None
        with running_agent(server.address, workdir / "agent", runtime="containerd",
                           containerd_socket=containerd.socket, profile_to=profile_to) as agent:
            agent_run = asyncio.run(_through_agent(server.address, socket=containerd.socket, agent=agent, plan=plan,
                                                   pids={**pids, "agent": agent.pid}))
        removed = asyncio.run(_remove_all(containerd.socket))
        progress(f"pod-startup: removed {removed} sandboxes")
        report.pod_startup.append(
            _row(AGENT_PATH, info=info, plan=plan, run=agent_run, baseline=baseline, report=report))
    report.notes.append(
        f"pod startup: {plan.pods} pods of one busybox container (sleep 3600, image present) paced at"
        f" {plan.rate:g}/s per run, on a private containerd; with {plan.pods} pods p99 is the"
        f" {'maximum' if plan.pods < 100 else '99th percentile'}; CPU 'bench' is the benchmark process"
        " (the CRI client in the baseline, the API client and watch in the agent run)")


def _row(path: str, *, info: RuntimeInfo, plan: PodStartupPlan, run: Startups, baseline: PodStartupRow | None,
         report: Report) -> PodStartupRow:
    names = [name for name in run.launched if name in run.finished]
    latency = LatencySummary.of([run.finished[n] - run.launched[n] for n in names])

    def stage(start: dict[str, float], end: dict[str, float]) -> LatencySummary:
        return LatencySummary.of([end[n] - start[n] for n in names if n in start and n in end])

    row = PodStartupRow(
        path=path, runtime=info.version, pods=plan.pods, rate_target=plan.rate, rate_achieved=run.paced.rate,
        started=len(names), latency=latency,
        to_sandbox=stage(run.launched, run.sandbox_created),
        sandbox_to_container=stage(run.sandbox_created, run.container_started),
        container_to_done=stage(run.container_started, run.finished),
        ratio_p50=latency.p50 / baseline.latency.p50 if baseline else None,
        ratio_p99=latency.p99 / baseline.latency.p99 if baseline else None,
        cpu=run.cpu)
    for error in run.paced.errors[:5]:
        report.failures.append(f"pod-startup {path}: {error}")
    if row.started < plan.pods:
        report.failures.append(f"pod-startup {path}: only {row.started} of {plan.pods} pods started")
    return row


async def _runtime_stamps(runtime: ContainerRuntime) -> tuple[dict[str, float], dict[str, float]]:
    """Each pod's sandbox creation and container start, as the runtime stamped them."""
    sandboxes = {s.id: s for s in await runtime.list_sandboxes()}
    created = {s.pod_name: s.created_at for s in sandboxes.values()}
    started = {sandboxes[c.sandbox_id].pod_name: c.started_at
               for c in await runtime.list_containers() if c.sandbox_id in sandboxes and c.started_at}
    return created, started


async def _remove_all(socket: str) -> int:
    runtime = CRIRuntime(socket)
    try:
        return await remove_sandboxes(runtime)
    finally:
        await runtime.close()


# ------------------------------------------------------------ CRI calls


async def _through_cri(socket: str, plan: PodStartupPlan, *, log_root: Path, pids: dict[str, int]
                       ) -> tuple[RuntimeInfo, Startups]:
    runtime = CRIRuntime(socket)
    host_dns = runtime_specs.read_resolv_conf()
    launched: dict[str, float] = {}
    finished: dict[str, float] = {}

    async def start_pod(name: str) -> None:
        pod = sleeper_pod(name)
        pod.metadata.uid = str(uuid.uuid4())
        log_directory = log_root / name
        log_directory.mkdir(parents=True)
        sandbox_spec = runtime_specs.sandbox_spec(pod, attempt=0, log_directory=str(log_directory),
                                                  host_dns=host_dns)
        container = pod.spec.containers[0]
        spec = runtime_specs.container_spec(pod, container, kind=runtime_specs.APP, attempt=0,
                                            command=tuple(container.command), args=(), env={}, mounts=())
        launched[name] = time.time()
        sandbox = await runtime.run_sandbox(sandbox_spec)
        container_id = await runtime.create_container(sandbox.id, spec, sandbox_spec)
        await runtime.start_container(container_id)
        finished[name] = time.time()

    try:
        info = await runtime.info()
        await start_pod("cri-warmup")
        await remove_sandboxes(runtime)
        launched.clear()
        finished.clear()
        meter = CpuMeter(pids).start()
        run = await paced(plan.pods, rate=plan.rate, start=lambda index: start_pod(f"cri-{index}"))
        cpu = meter.stop()
        created, started = await _runtime_stamps(runtime)
        removed = await remove_sandboxes(runtime)
        progress(f"pod-startup: removed {removed} sandboxes")
    finally:
        await runtime.close()
    return info, Startups(launched=launched, finished=finished, sandbox_created=created,
                          container_started=started, paced=run, cpu=cpu)


# ----------------------------------------------------------------- agent


async def _through_agent(server: str, *, socket: str, agent: subprocess.Popen[bytes], plan: PodStartupPlan,
                         pids: dict[str, int]) -> Startups:
    launched: dict[str, float] = {}
    async with Client.connect(server) as api:
        ready_after = await wait_node_ready(api, agent, timeout=READY_TIMEOUT)
        progress(f"pod-startup: node Ready after waiting {ready_after:.1f} s")
        names = [f"pod-{index}" for index in range(plan.pods)]
        _, resource_version = await api.list("Pod", namespace=NAMESPACE)
        async with RunningPods(api, resource_version) as running:
            async def create(index: int) -> None:
                pod: core_pb2.Pod = sleeper_pod(names[index])
                launched[pod.metadata.name] = time.time()
                await api.create(pod)

            meter = CpuMeter(pids).start()
            run = await paced(plan.pods, rate=plan.rate, start=create)
            late = await running.wait_for(set(names), timeout=plan.running_seconds)
            cpu = meter.stop()
            finished = dict(running.seen)
    if late:
        run.errors.append(f"{len(late)} pods not Running {plan.running_seconds:g} s after the last create"
                          f" (e.g. {sorted(late)[0]})")
    runtime = CRIRuntime(socket)
    try:
        created, started = await _runtime_stamps(runtime)
    finally:
        await runtime.close()
    return Startups(launched=launched, finished=finished, sandbox_created=created, container_started=started,
                    paced=run, cpu=cpu)
