"""Benchmark 4: the agent's memory and CPU while its pods run and nothing changes.

A control service subprocess on SQLite and one ``sampan agent`` process on a
private containerd (or, where containerd cannot run, on the process runtime:
the table says which). The benchmark creates ``plan.pods`` busybox pods
(``sleep 3600``) for the agent's node, waits until a watch has seen every one
Running, lets the agent settle for ``plan.settle_seconds`` (its status
writes and events for the new pods), and then, for ``plan.window_seconds``
in which nothing is created, changed or deleted, reads every
``plan.sample_seconds``:

- the agent's resident memory (``VmRSS`` in /proc/PID/status; ``VmHWM``, the
  peak over its whole life, once at the end: the kernel updates it lazily,
  so a higher sample counts as the peak too);
- its CPU: utime + stime from /proc/PID/stat at the window's ends
  (``measure.CpuMeter``), as a percentage of one core.

What the agent does in such a window is its steady work: relisting the
runtime every second, resyncing each pod every 10 s, the node's Lease and
status every 10 s, container stats every 10 s.

Baseline, in the same window: an idle Python process that imports what the
agent's entry point imports (``import agent.service, control.client``) and
sleeps; the agent's row carries "RSS / baseline". What the agent holds
beyond that baseline is its own state (its caches of pods, the runtime's
snapshot) and what running it loads lazily (the pod manager, gRPC's
channels and threads).

The CPU column adds the control service (``ctl``), containerd and the whole
machine over the same window: the agent's relisting costs containerd CPU too.
With ``--profile DIR``, py-spy samples the agent during the window only, at
1,000 samples a second without pausing it (``--nonblocking``, so Python
frames only), into ``DIR/agent-footprint-agent.txt`` (sampling still costs
the agent some CPU: such a run's figures are not for quoting).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from agent.runtime.base import ContainerRuntime
from agent.runtime.cri import CRIRuntime
from agent.runtime.process import ProcessRuntime
from control.client import Client
from tests.bench.agent_node import (
    NAMESPACE,
    NODE,
    RunningPods,
    containerd_missing,
    private_containerd,
    profiled,
    remove_sandboxes,
    running_agent,
    sleeper_pod,
    wait_node_ready,
)
from tests.bench.bench_pods import paced
from tests.bench.environment import control_service, scratch_dir, sqlite_url
from tests.bench.measure import CpuMeter
from tests.bench.report import AGENT_PROCESS, IDLE_PROCESS, FootprintRow, Report, progress

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 60.0
WINDOW_PROFILE_RATE = 1000  # samples per second
IDLE_IMPORTS = "import time, agent.service, control.client; print('ready', flush=True); time.sleep(3600)"


@dataclass(frozen=True)
class FootprintPlan:
    pods: int
    create_rate: float  # pods created per second
    running_seconds: float  # after the last create, for every pod to run
    settle_seconds: float
    window_seconds: float
    sample_seconds: float


FULL = FootprintPlan(pods=50, create_rate=10.0, running_seconds=180.0, settle_seconds=10.0,
                     window_seconds=20.0, sample_seconds=1.0)
QUICK = FootprintPlan(pods=4, create_rate=10.0, running_seconds=60.0, settle_seconds=1.0,
                      window_seconds=3.0, sample_seconds=0.5)


@dataclass(frozen=True)
class MemorySamples:
    rss_mb: list[float]
    peak_mb: float

    @classmethod
    def read(cls, pid: int, rss_mb: list[float]) -> "MemorySamples":
        """The samples, and the peak: VmHWM, or a sample above it (the kernel updates VmHWM lazily)."""
        return cls(rss_mb, max([memory_mb(pid, "VmHWM"), *rss_mb]))

    @property
    def mean(self) -> float:
        return sum(self.rss_mb) / len(self.rss_mb) if self.rss_mb else float("nan")

    @property
    def max(self) -> float:
        return max(self.rss_mb, default=float("nan"))


def memory_mb(pid: int, field: str) -> float:
    """A /proc/PID/status memory field (VmRSS, VmHWM), in MB (10^6 bytes)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / 1e6
    raise ValueError(f"no {field} in /proc/{pid}/status")


def run_agent_footprint_benchmark(plan: FootprintPlan, report: Report, *, profile_dir: Path | None) -> None:
    why_not = containerd_missing()
    runtime_name = "process" if why_not else "containerd"
    if why_not:
        report.notes.append(f"agent footprint on the process runtime: {why_not}")
    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(scratch_dir("footprint"))
        server = stack.enter_context(control_service(workdir / "control", store_url=sqlite_url(workdir, "api")))
        pids = {"ctl": server.process.pid}
        socket = ""
        if runtime_name == "containerd":
            containerd = stack.enter_context(private_containerd())
            assert containerd.process is not None
            socket, pids["containerd"] = containerd.socket, containerd.process.pid
        idle = stack.enter_context(_idle_python())
        data_dir = workdir / "agent"
        profile_to = profile_dir / "agent-footprint-agent.txt" if profile_dir else None
        try:
            with running_agent(server.address, data_dir, runtime=runtime_name, containerd_socket=socket) as agent:
                pids = {"agent": agent.pid, "idle": idle.pid, **pids}
                agent_memory, idle_memory, cpu, version = asyncio.run(_measure(
                    server.address, agent=agent, idle=idle, plan=plan, pids=pids, report=report,
                    profile_to=profile_to))
        finally:
            runtime: ContainerRuntime = (CRIRuntime(socket) if socket
                                         else ProcessRuntime(str(data_dir / "process-runtime")))
            removed = asyncio.run(_remove_and_close(runtime))
            progress(f"agent-footprint: removed {removed} sandboxes")

    agent_cpu, idle_cpu = cpu.pop("agent"), cpu.pop("idle")
    baseline = FootprintRow(
        process=IDLE_PROCESS, runtime="-", pods=0, seconds=plan.window_seconds, rss_mb_mean=idle_memory.mean,
        rss_mb_max=idle_memory.max, peak_rss_mb=idle_memory.peak_mb, ratio=None, cpu_percent=idle_cpu * 100,
        cpu={})
    report.footprint.append(FootprintRow(
        process=AGENT_PROCESS, runtime=version or runtime_name, pods=plan.pods, seconds=plan.window_seconds,
        rss_mb_mean=agent_memory.mean, rss_mb_max=agent_memory.max, peak_rss_mb=agent_memory.peak_mb,
        ratio=agent_memory.mean / idle_memory.mean, cpu_percent=agent_cpu * 100, cpu=cpu))
    report.footprint.append(baseline)
    report.notes.append(
        f"agent footprint: {plan.pods} pods created at {plan.create_rate:g}/s, then {plan.settle_seconds:g} s to"
        f" settle and a {plan.window_seconds:g} s window with no changes, RSS read every {plan.sample_seconds:g} s;"
        " MB are 10^6 bytes; 'RSS/baseline' compares the means; CPU % is the window's utime+stime over its wall time")


@contextlib.contextmanager
def _idle_python() -> Iterator[subprocess.Popen[bytes]]:
    """The baseline process, once its imports are done; killed at exit."""
    idle = subprocess.Popen([sys.executable, "-c", IDLE_IMPORTS], cwd=REPO, stdout=subprocess.PIPE)
    try:
        assert idle.stdout is not None
        if idle.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the idle Python process exited with {idle.wait()} before its imports were done")
        yield idle
    finally:
        idle.kill()
        idle.wait()


async def _measure(server: str, *, agent: subprocess.Popen[bytes], idle: subprocess.Popen[bytes],
                   plan: FootprintPlan, pids: dict[str, int], report: Report, profile_to: Path | None
                   ) -> tuple[MemorySamples, MemorySamples, dict[str, float], str]:
    async with Client.connect(server) as api:
        ready_after = await wait_node_ready(api, agent, timeout=READY_TIMEOUT)
        node = await api.get("Node", NODE)
        version = node.status.node_info.container_runtime_version
        progress(f"agent-footprint: node Ready after waiting {ready_after:.1f} s; creating {plan.pods} pods")
        names = [f"pod-{index}" for index in range(plan.pods)]
        _, resource_version = await api.list("Pod", namespace=NAMESPACE)
        async with RunningPods(api, resource_version) as running:
            began = time.monotonic()
            creating = await paced(plan.pods, rate=plan.create_rate,
                                   start=lambda index: api.create(sleeper_pod(names[index])))
            late = await running.wait_for(set(names), timeout=plan.running_seconds)
        for error in creating.errors[:5]:
            report.failures.append(f"agent-footprint: create {error}")
        if late:
            raise RuntimeError(f"{len(late)} of {plan.pods} pods not Running after {plan.running_seconds:g} s")
        progress(f"agent-footprint: {plan.pods} pods Running after {time.monotonic() - began:.1f} s;"
                 f" settling {plan.settle_seconds:g} s, then measuring {plan.window_seconds:g} s")
        await asyncio.sleep(plan.settle_seconds)
        agent_rss: list[float] = []
        idle_rss: list[float] = []
        samples = max(1, round(plan.window_seconds / plan.sample_seconds))
        # Only the window, the agent's steady work: often, as an agent at rest holds the GIL rarely,
        # and without pausing it, which would slow it down by more than it works.
        with profiled(agent.pid, profile_to, rate=WINDOW_PROFILE_RATE, nonblocking=True):
            meter = CpuMeter(pids).start()
            start = time.monotonic()
            for sample in range(samples + 1):
                await asyncio.sleep(max(0.0, start + sample * plan.sample_seconds - time.monotonic()))
                agent_rss.append(memory_mb(agent.pid, "VmRSS"))
                idle_rss.append(memory_mb(idle.pid, "VmRSS"))
            cpu = meter.stop()
        if agent.poll() is not None:
            raise RuntimeError(f"the agent exited with {agent.returncode} during the window")
        pods, _ = await api.list("Pod", namespace=NAMESPACE)
        not_running = [p.metadata.name for p in pods if p.status.phase != "Running"]
        if not_running:
            report.failures.append(f"agent-footprint: {len(not_running)} pods not Running after the window")
    return MemorySamples.read(agent.pid, agent_rss), MemorySamples.read(idle.pid, idle_rss), cpu, version


async def _remove_and_close(runtime: ContainerRuntime) -> int:
    try:
        return await remove_sandboxes(runtime)
    finally:
        await runtime.close()
