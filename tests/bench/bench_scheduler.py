"""Benchmark 6: scheduler throughput, the way Kubernetes' scheduler_perf measures it.

Each run has its own control service subprocess (on SQLite, or on a private
etcd) and its own ``sampan simulate-nodes`` process serving ``plan.nodes``
simulated nodes (4 CPU, 16Gi, 110 pods each), which mark every pod bound to
them Running, as a kubemark cluster does. Then, in the benchmark process:

1. **baseline**, the rate binding writes alone could reach: ``plan.baseline``
   pods are created in their own namespace with a schedulerName no profile
   serves (the scheduler leaves them alone), then each is updated with
   ``spec.nodeName`` set, to a node that does not exist (no simulated node
   picks it up), by ``scheduler.MAX_BINDINGS_IN_FLIGHT`` concurrent tasks,
   the scheduler's own binding concurrency: updates per second;
2. **pre-created pods, scheduler paused**: ``plan.pods`` pods (one container
   requesting 100m CPU and 500Mi, like scheduler_perf's default pod) are
   created with ``schedulerName: bench-scheduler``, which the running
   scheduler has no profile for; then the control service restarts with a
   scheduler config adding a ``bench-scheduler`` profile (the default
   plugins, the adaptive percentageOfNodesToScore), and a watch started at
   once, from the resourceVersion before the restart, records when it first
   sees each pod bound and Running. Throughput: pods bound divided by the
   time from the first binding seen to the last.

Workloads: ``plain`` (the pods above) and ``anti-affinity`` (scheduler_perf's
SchedulingPodAntiAffinity: every pod labelled ``color: green`` with required
anti-affinity to ``color: green`` by hostname, so at most one per node;
``plan.anti_affinity_pods`` of them, no more than there are nodes).

The row's CPU column covers the scheduling window: ``ctl`` the control
service (API, store client, scheduler, controllers: one process),
``nodes`` the simulated nodes, ``bench`` the benchmark's watch, ``etcd``.

With a profile directory the restarted control service (the scheduling
window and its shutdown) runs under cProfile, writing
``DIR/scheduler-<store>-<workload>.prof`` (read it with ``python -m pstats``);
cProfile slows the service, so such a run's figures are not for quoting.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from control.api import errors
from control.client import Client
from control.scheduler.scheduler import MAX_BINDINGS_IN_FLIGHT
from protos.api.v1 import core_pb2
from tests.bench.environment import etcd_pid, scratch_dir, sqlite_url
from tests.bench.measure import CpuMeter, run_closed_loop
from tests.bench.report import Report, SchedulerRow, progress
from tests.bench.server_metrics import scrape
from tests.support.control import ControlServer
from tests.support.etcd import running_etcd

BENCH_SCHEDULER = "bench-scheduler"
UNSERVED_SCHEDULER = "nobody"
NOWHERE = "bench-no-such-node"
BASELINE_NAMESPACE = "bench-baseline"
NAMESPACE = "bench"
CREATE_CONCURRENCY = 32
TASKS_PER_CHANNEL = 16
NODE_CPU, NODE_MEMORY = "4", "16Gi"
POD_CPU, POD_MEMORY = "100m", "500Mi"
PLAIN, ANTI_AFFINITY = "plain", "anti-affinity"
SCHEDULER_CONFIG = f"""\
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
- schedulerName: {BENCH_SCHEDULER}
"""


@dataclass(frozen=True)
class SchedulerPlan:
    nodes: int
    pods: int
    anti_affinity_pods: int
    baseline: int  # pod updates measured for the baseline
    timeout: float  # for the nodes to register, and for every pod to be bound and Running


FULL = SchedulerPlan(nodes=1000, pods=10_000, anti_affinity_pods=1000, baseline=3000, timeout=600.0)
QUICK = SchedulerPlan(nodes=10, pods=100, anti_affinity_pods=10, baseline=100, timeout=60.0)


def run_scheduler_benchmark(store: str, workload: str, plan: SchedulerPlan, report: Report, *,
                            etcd_binary: str | None, profile_dir: Path | None = None) -> None:
    """One run (store "sqlite" or "etcd", workload PLAIN or ANTI_AFFINITY); adds its row to report."""
    pods = plan.pods if workload == PLAIN else min(plan.anti_affinity_pods, plan.nodes)
    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(scratch_dir(f"scheduler-{store}-{workload}"))
        pids: dict[str, int] = {}
        if store == "etcd":
            cluster = stack.enter_context(running_etcd(binary=etcd_binary))
            store_url = f"etcd://{cluster.endpoints[0]}"
            pids["etcd"] = etcd_pid(cluster)
        else:
            store_url = sqlite_url(workdir, "state")
        config = workdir / "scheduler.yaml"
        config.write_text(SCHEDULER_CONFIG)
        server = stack.enter_context(_control_service(workdir / "control", store_url))
        nodes = stack.enter_context(simulated_nodes(server.address, workdir / "nodes.log", plan.nodes))
        profile = None
        if profile_dir is not None:
            profile_dir.mkdir(parents=True, exist_ok=True)
            profile = ("-m", "cProfile", "-o", str(profile_dir / f"scheduler-{store}-{workload}.prof"))
        row, requests = asyncio.run(_run(server, nodes, store=store, workload=workload, pods=pods, plan=plan,
                                         pids=pids, restart_args=("--scheduler-config", str(config)),
                                         profile=profile))
    report.scheduler.append(row)
    report.notes.append(f"scheduler {store} {workload}: API requests per bound pod from the restart to the last"
                        f" pod Running (all clients, the scheduler included): {requests}")
    if row.scheduled < pods:
        report.failures.append(f"scheduler {store} {workload}: only {row.scheduled} of {pods} pods bound")
    elif row.running < pods:
        report.failures.append(f"scheduler {store} {workload}: only {row.running} of {pods} pods Running")
    report.notes.append(
        f"scheduler: {plan.nodes} simulated nodes ({NODE_CPU} CPU, {NODE_MEMORY}, 110 pods); pods pre-created"
        f" with the scheduler paused (no profile for their schedulerName until the control service restarts"
        f" with one); pods/s is bound pods over first to last binding seen by a watch; baseline: API pod updates"
        f" setting spec.nodeName at concurrency {MAX_BINDINGS_IN_FLIGHT} (the scheduler's binding concurrency);"
        f" CPU 'nodes' is the simulated nodes' process")


@contextlib.contextmanager
def _control_service(workdir: Path, store_url: str) -> Iterator[ControlServer]:
    # One replica: no leader election, so a restart schedules at once.
    server = ControlServer(workdir, store_url=store_url, extra_args=("--leader-elect", "false")).start()
    try:
        yield server
    except BaseException:
        print(f"control service log ({server.log_path}):\n{server.log()[-4000:]}", file=sys.stderr)
        raise
    finally:
        server.stop()


@contextlib.contextmanager
def simulated_nodes(server: str, log_path: Path, count: int) -> Iterator[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "control.cli.main", "--server", server, "simulate-nodes", "--count", str(count),
               "--cpu", NODE_CPU, "--memory", NODE_MEMORY]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        yield process
    except BaseException:
        print(f"simulated nodes log ({log_path}):\n{log_path.read_text(errors='replace')[-4000:]}", file=sys.stderr)
        raise
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def bench_pod(name: str, namespace: str, *, scheduler: str, workload: str = PLAIN) -> core_pb2.Pod:
    pod = core_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = name
    pod.metadata.namespace = namespace
    pod.spec.scheduler_name = scheduler
    container = pod.spec.containers.add(name="pause", image="registry.k8s.io/pause:3.9")
    container.resources.requests.update({"cpu": POD_CPU, "memory": POD_MEMORY})
    if workload == ANTI_AFFINITY:
        pod.metadata.labels["color"] = "green"
        term = pod.spec.affinity.pod_anti_affinity.required_during_scheduling_ignored_during_execution.add(
            topology_key="kubernetes.io/hostname")
        term.label_selector.match_labels["color"] = "green"
    return pod


async def wait_nodes_ready(api: Client, nodes: subprocess.Popen[bytes], count: int, timeout: float) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if nodes.poll() is not None:
            raise RuntimeError(f"simulate-nodes exited with {nodes.returncode}")
        items, _ = await api.list("Node")
        if sum(1 for n in items if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)) >= count:
            return time.monotonic() - began
        await asyncio.sleep(0.2)
    raise RuntimeError(f"fewer than {count} Ready nodes after {timeout:g} s")


async def ensure_namespace(api: Client, name: str) -> None:
    namespace = core_pb2.Namespace(api_version="v1", kind="Namespace")
    namespace.metadata.name = name
    with contextlib.suppress(errors.AlreadyExistsError):
        await api.create(namespace)


async def _create_pods(clients: list[Client], count: int, namespace: str, *, scheduler: str,
                       workload: str = PLAIN) -> list[core_pb2.Pod]:
    created: list[core_pb2.Pod] = [core_pb2.Pod()] * count

    async def create(worker: int, index: int) -> None:
        pod = bench_pod(f"pod-{index}", namespace, scheduler=scheduler, workload=workload)
        created[index] = await clients[worker // TASKS_PER_CHANNEL].create(pod)

    result = await run_closed_loop(create, concurrency=CREATE_CONCURRENCY, max_ops=count, max_seconds=3600)
    if result.errors:
        raise RuntimeError(f"creating pods: {result.errors} failed, first: {result.first_error}")
    return created


async def _baseline(clients: list[Client], count: int) -> float:
    """Pod updates per second (spec.nodeName set) at the scheduler's binding concurrency."""
    await ensure_namespace(clients[0], BASELINE_NAMESPACE)
    pods = await _create_pods(clients, count, BASELINE_NAMESPACE, scheduler=UNSERVED_SCHEDULER)

    async def bind(worker: int, index: int) -> None:
        pod = pods[index]
        pod.spec.node_name = NOWHERE
        await clients[worker * len(clients) // MAX_BINDINGS_IN_FLIGHT].update(pod)

    result = await run_closed_loop(bind, concurrency=MAX_BINDINGS_IN_FLIGHT, max_ops=count, max_seconds=3600)
    if result.errors:
        raise RuntimeError(f"baseline updates: {result.errors} failed, first: {result.first_error}")
    return result.ops_per_second


class Bindings:
    """When a watch first saw each pod bound, and Running (perf_counter seconds)."""

    def __init__(self) -> None:
        self.bound: dict[str, float] = {}
        self.running: dict[str, float] = {}

    async def follow(self, api: Client, resource_version: str, expected: int) -> None:
        async for event in api.watch("Pod", namespace=NAMESPACE, resource_version=resource_version):
            pod, now = event.object, time.perf_counter()
            name = pod.metadata.name
            if pod.spec.node_name and name not in self.bound:
                self.bound[name] = now
            if pod.status.phase == "Running" and name not in self.running:
                self.running[name] = now
                if len(self.running) >= expected:
                    return


async def _run(server: ControlServer, nodes: subprocess.Popen[bytes], *, store: str, workload: str, pods: int,
               plan: SchedulerPlan, pids: dict[str, int], restart_args: tuple[str, ...],
               profile: tuple[str, ...] | None) -> tuple[SchedulerRow, str]:
    channels = max(1, MAX_BINDINGS_IN_FLIGHT // TASKS_PER_CHANNEL)
    clients = [Client.connect(server.address) for _ in range(channels)]
    try:
        waited = await wait_nodes_ready(clients[0], nodes, plan.nodes, plan.timeout)
        progress(f"scheduler {store} {workload}: {plan.nodes} nodes Ready after {waited:.1f} s; baseline")
        baseline = await _baseline(clients, plan.baseline)
        progress(f"scheduler {store} {workload}: baseline {baseline:,.0f} pod updates/s;"
                 f" creating {pods} pods with the scheduler paused")
        await ensure_namespace(clients[0], NAMESPACE)
        await _create_pods(clients, pods, NAMESPACE, scheduler=BENCH_SCHEDULER, workload=workload)
        _, resource_version = await clients[0].list("Pod", namespace=NAMESPACE)
        progress(f"scheduler {store} {workload}: restarting the control service with a {BENCH_SCHEDULER} profile")
        server.extra_args = (*server.extra_args, *restart_args)
        if profile:
            server.python_args = profile
        await asyncio.to_thread(server.restart)
        bindings = Bindings()
        meter = CpuMeter({"ctl": server.process.pid, "nodes": nodes.pid, **pids, "bench": os.getpid()}).start()
        try:
            await asyncio.wait_for(bindings.follow(clients[0], resource_version, pods), plan.timeout)
        except TimeoutError:
            pass
        cpu = meter.stop()
        # The restarted service counts from zero: these are the window's requests (and its startup lists).
        requests = _requests_per_pod(await asyncio.to_thread(scrape, server.metrics_url), max(1, len(bindings.bound)))
        events, _ = await clients[0].list("Event", namespace=NAMESPACE)
    finally:
        for client in clients:
            await client.close()
    times = sorted(bindings.bound.values())
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    rate = (len(times) - 1) / span if len(times) > 1 and span > 0 else float("nan")
    last_running = max(bindings.running.values(), default=float("nan"))
    return SchedulerRow(
        store=store, workload=workload, nodes=plan.nodes, pods=pods, scheduled=len(times), seconds=span,
        rate=rate, baseline=baseline, running=len(bindings.running),
        running_after=last_running - times[0] if times else float("nan"),
        scheduled_events=sum(1 for e in events if e.reason == "Scheduled"), cpu=cpu), requests


def _requests_per_pod(samples: dict, pods: int) -> str:
    """The service's request counters (kind, verb) as requests per pod, the most frequent first
    (the first eight, each at least 0.05 a pod; status writes count as updates)."""
    counts: dict[tuple[str, str], float] = {}
    for (name, labels), value in samples.items():
        if name == "sampan_apiserver_requests_total":
            found = dict(labels)
            key = (found["kind"], found["verb"])
            counts[key] = counts.get(key, 0.0) + value
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    return ", ".join(f"{kind} {verb} {count / pods:.2f}" for (kind, verb), count in ranked[:8] if count / pods >= 0.05)
