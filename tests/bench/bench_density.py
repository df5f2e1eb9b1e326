"""Benchmark 7: density, the way Kubernetes' clusterloader2 density test measures it.

Two clusters, one after the other, each its own control service subprocess
(``sampan control`` on SQLite, leader election as deployed) and its own
``sampan simulate-nodes`` process (4 CPU, 16Gi, 110 pods a node, each pod
bound to one marked Running at once, as kubemark's hollow nodes do):

- **density**: ``plan.nodes`` nodes (1,000) and ``plan.pods_per_node`` (30)
  pods a node: 30,000 pods in ``plan.deployments`` Deployments of
  ``plan.replicas`` (300 of 100), spread over one namespace per
  ``plan.nodes_per_namespace`` nodes (clusterloader2's 100: 10 namespaces of
  30 Deployments). clusterloader2 asks for its pods through one big
  Deployment per namespace and leaves the pace (DENSITY_TEST_THROUGHPUT, 20
  pods/s) to the controller manager's client rate limit; Sampan's
  controllers have no such limit, so the benchmark sets the pace itself:
  the Deployments are filled one after another, each created with
  ``plan.step`` replicas and scaled up by ``plan.step`` more (a merge patch
  of spec.replicas) until it has ``plan.replicas``, one such step every
  ``step / rate`` seconds (5 replicas every 0.25 s: ``plan.rate`` = 20 pods
  requested a second, for 25 minutes). Each Deployment's steps run in order
  in a task of their own that sleeps until each step's time, so one slow
  call delays no other Deployment;
- **baseline**: the same in miniature, ``plan.baseline_nodes`` nodes (10)
  at the same 30 pods a node, the same Deployments, step and rate: the same
  pods, created the same way at the same pace, on a cluster too small to
  load the control plane. Every figure of the density row is also printed
  over the baseline's.

What each cluster measures, once its nodes are all Ready:

- **pod startup latency**, per pod, to the moment a watch on Pods in the
  benchmark process (started before the first Deployment) first sees it
  ``Running``, on the machine's wall clock (``time.time()``; the server is on
  the same machine and clock). The start: the server's creationTimestamp has
  whole seconds only, so the watch also records when it first saw the pod
  (its ADDED event, milliseconds after the create). The pod was created no
  later than either, so the start taken is the earlier of the first sight
  and the end of the creationTimestamp's second: milliseconds from the true
  creation whenever the watch delivered within that second, never a second
  off. The table also gives the latency from the bare creationTimestamp (up
  to a second too long; what Kubernetes' own measurement reads) and the p99
  of the last tenth of the pods (the cluster at its fullest). Beside it:
  the pods requested a second, as achieved (pods created, first to last,
  seen by the watch), the most pods the Deployments had asked for that
  were not created yet at any second (the Deployment and ReplicaSet
  controllers' backlog) and the most created but not yet Running (the
  scheduler's and the nodes'), and how long after the last pod Running the
  last Deployment reported all its replicas available;
- **mutating API calls**: the control service's
  ``sampan_apiserver_request_duration_seconds`` histogram, scraped before
  and after each phase; per verb (create, update, patch, delete; every kind
  together; updates include status writes) the p99 interpolated in its
  bucket, the exact share within 1 s (a bucket bound) and the kind with the
  highest p99. Kubernetes' SLO: p99 <= 1 s per resource and verb;
- **the control service's memory**: VmRSS from /proc every second, its
  VmHWM (the peak over its life) at the end, and RSS when every pod was
  Running and after every pod was deleted; **CPU seconds** of the control
  service and the simulated nodes over each phase (and cores, with the
  benchmark's and the machine's, over the creation phase).

Then the deletion phase, as clusterloader2 ends with: the Deployments are
deleted, ``DELETE_RATE`` a second (background propagation: the garbage
collector deletes the ReplicaSets, then the pods; each simulated node then
finishes its pods), until the watch has seen every pod gone.

``--quick``: 4 nodes (baseline 2) at 5 pods a node in Deployments of 10.
When the control service lost its leadership (read from its log: when, and
why) or a phase did not finish, its log and the simulated nodes' are kept
in a directory the notes name. With a profile directory, py-spy samples the
density cluster's control service into ``DIR/density-sqlite.txt``.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import math
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from control.api import errors
from control.api.manifest import to_message
from control.api.timestamps import parse_time
from control.client import Client
from protos.api.v1 import apps_pb2
from tests.bench.bench_agent_footprint import memory_mb
from tests.bench.bench_scheduler import ensure_namespace, simulated_nodes, wait_nodes_ready
from tests.bench.environment import control_service, scratch_dir, sqlite_url
from tests.bench.measure import CpuMeter, process_cpu_seconds
from tests.bench.report import DENSITY_API_SLO_S, DENSITY_BASELINE, DensityRow, Percentiles, Report, progress
from tests.bench.server_metrics import Scrape, VerbLatency, scrape, verb_latency

MUTATING_VERBS = ("create", "update", "patch", "delete")
CREATION, DELETION = "creation", "deletion"
DELETE_RATE = 5.0  # Deployments deleted a second
POD_CPU, POD_MEMORY = "10m", "10Mi"
IMAGE = "registry.k8s.io/pause:3.9"
SAMPLE_INTERVAL = 1.0  # seconds between RSS and backlog samples
PROGRESS_INTERVAL = 60.0  # seconds between progress lines
STEP_ATTEMPTS = 10  # a failed create or scale step is tried again, this many times in all
LOST_LEADERSHIP = "lost leadership"  # the control service's log line (control/leaderelection.py)


@dataclass(frozen=True)
class DensityPlan:
    nodes: int
    pods_per_node: int
    replicas: int  # each Deployment's
    nodes_per_namespace: int
    rate: float  # pods requested a second
    step: int  # replicas added to a Deployment at a time
    baseline_nodes: int
    timeout: float  # for the nodes to be Ready, then for each phase to finish after its last request

    def deployments(self, nodes: int) -> int:
        return math.ceil(nodes * self.pods_per_node / self.replicas)

    def namespaces(self, nodes: int) -> int:
        return math.ceil(nodes / self.nodes_per_namespace)


FULL = DensityPlan(nodes=1000, pods_per_node=30, replicas=100, nodes_per_namespace=100, rate=20.0, step=5,
                   baseline_nodes=10, timeout=900.0)
QUICK = DensityPlan(nodes=4, pods_per_node=5, replicas=10, nodes_per_namespace=2, rate=20.0, step=5,
                    baseline_nodes=2, timeout=60.0)


def run_density_benchmark(plan: DensityPlan, report: Report, *, profile_dir: Path | None = None) -> None:
    """The baseline cluster, then the density cluster; adds their rows to report."""
    for cluster, nodes in ((DENSITY_BASELINE, plan.baseline_nodes), ("density", plan.nodes)):
        profile_to = profile_dir / "density-sqlite.txt" if profile_dir and cluster != DENSITY_BASELINE else None
        row, failures, notes = _run_cluster(cluster, nodes, plan, profile_to=profile_to)
        report.density.append(row)
        report.failures += failures
        report.notes += notes
    report.notes.append(
        f"density: {plan.pods_per_node} pods a node through Deployments of {plan.replicas} replicas, one namespace"
        f" per {plan.nodes_per_namespace} nodes; each Deployment created with {plan.step} replicas and scaled up by"
        f" {plan.step} every {plan.step / plan.rate:g} s, one Deployment after another ({plan.rate:g} pods requested"
        f" a second); pods of one pause container requesting {POD_CPU} CPU and {POD_MEMORY}; simulated nodes of"
        f" 4 CPU, 16Gi, 110 pods; baseline: the same on {plan.baseline_nodes} nodes; a pod's start is the earlier of"
        f" its first sight by the watch and the end of its creationTimestamp's second; Deployments deleted"
        f" {DELETE_RATE:g} a second, background propagation; CPU 'nodes' is the simulated nodes' process")


def _run_cluster(cluster: str, nodes: int, plan: DensityPlan, *,
                 profile_to: Path | None) -> tuple[DensityRow, list[str], list[str]]:
    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(scratch_dir(f"density-{cluster}"))
        server = stack.enter_context(control_service(workdir / "control", store_url=sqlite_url(workdir, "state"),
                                                     profile_to=profile_to))
        simulator = stack.enter_context(simulated_nodes(server.address, workdir / "nodes.log", nodes))
        run = _ClusterRun(cluster, nodes, plan, server.address, server.metrics_url, server.process.pid, simulator)
        row = asyncio.run(run.measure())
        losses = leadership_losses(server.log())
        kept = None
        if losses or row.running < row.pods or row.left:
            kept = Path(tempfile.mkdtemp(prefix=f"sampan-bench-density-{cluster}-logs-"))
            shutil.copy(server.log_path, kept / "control.log")
            shutil.copy(workdir / "nodes.log", kept / "nodes.log")
    failures: list[str] = []
    notes: list[str] = []
    if run.step_errors:
        notes.append(f"density {cluster}: {run.step_errors} Deployment create or scale calls failed and were tried"
                     f" again; first: {run.first_step_error}")
    if row.running < row.pods:
        failures.append(f"density {cluster}: only {row.running:,} of {row.pods:,} pods seen Running")
    if row.left:
        failures.append(f"density {cluster}: {row.left:,} of {row.pods:,} pods not gone {plan.timeout:g} s after"
                        f" the last Deployment deletion")
    if losses:
        reasons = collections.Counter(reason for _, reason in losses)
        first = losses[0][0]
        notes.append(
            f"density {cluster}: the control service lost its leadership {len(losses)} time(s) ("
            + "; ".join(f"{count} x {reason}" for reason, count in reasons.most_common())
            + f"), the first {first - run.started:,.0f} s after the first request, with {run.created_at(first):,}"
            f" pods created")
    if kept:
        notes.append(f"density {cluster}: the control service's and the simulated nodes' logs are kept in {kept}")
    if run.late_first_sight:
        notes.append(f"density {cluster}: {run.late_first_sight:,} pods first seen by the watch more than a second"
                     f" after their creationTimestamp's second began (their start is that second's end)")
    return row, failures, notes


class _ClusterRun:
    """One cluster's phases, from its nodes Ready to every pod deleted."""

    def __init__(self, cluster: str, nodes: int, plan: DensityPlan, address: str, metrics_url: str, ctl_pid: int,
                 simulator: subprocess.Popen[bytes]) -> None:
        self.cluster, self.nodes, self.plan = cluster, nodes, plan
        self.address, self.metrics_url, self.ctl_pid, self.simulator = address, metrics_url, ctl_pid, simulator
        self.deployments = [(f"density-{i % plan.namespaces(nodes)}", f"saturation-{i}")
                            for i in range(plan.deployments(nodes))]
        self.pods = len(self.deployments) * plan.replicas
        # Per pod uid, time.time() seconds: first seen, creationTimestamp, first seen Running, seen gone.
        self.first_seen: dict[str, float] = {}
        self.stamp: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.gone: dict[str, float] = {}
        self.complete: dict[str, float] = {}  # Deployment -> first seen with every replica available
        self.requested = 0  # replicas asked for by the Deployments so far
        self.controller_backlog = 0
        self.node_backlog = 0
        self.rss_mb: list[float] = []
        self.nodes_rss_mb: list[float] = []
        self.step_errors = 0
        self.first_step_error = ""
        self.late_first_sight = 0
        self.started = math.nan  # time.time() of the first request
        self.timeline: list[tuple[float, int]] = []  # (time.time(), pods created) every sample

    async def measure(self) -> DensityRow:
        plan = self.plan
        api = Client.connect(self.address)
        watching = Client.connect(self.address)  # the watches on a channel of their own
        watches: list[asyncio.Task[None]] = []
        try:
            waited = await wait_nodes_ready(api, self.simulator, self.nodes, plan.timeout)
            progress(f"density {self.cluster}: {self.nodes} nodes Ready after {waited:.1f} s; requesting"
                     f" {self.pods:,} pods in {len(self.deployments)} Deployments at {plan.rate:g}/s")
            for namespace in sorted({ns for ns, _ in self.deployments}):
                await ensure_namespace(api, namespace)
            _, pods_from = await api.list("Pod")
            _, deployments_from = await api.list("Deployment")
            watches = [asyncio.create_task(self._follow_pods(watching, pods_from)),
                       asyncio.create_task(self._follow_deployments(watching, deployments_from))]
            sampler = asyncio.create_task(self._sample())
            pids = {"ctl": self.ctl_pid, "nodes": self.simulator.pid}
            cpu_start = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
            meter = CpuMeter({**pids, "bench": os.getpid()}).start()
            before = await asyncio.to_thread(scrape, self.metrics_url)

            await self._request_pods(api)
            progress(f"density {self.cluster}: all {self.pods:,} pods requested; waiting for them to be Running")
            if await self._until(lambda: len(self.running) >= self.pods, plan.timeout, watches):
                await self._until(lambda: len(self.complete) >= len(self.deployments), plan.timeout, watches)
            cpu = meter.stop()
            cpu_created = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
            created = await asyncio.to_thread(scrape, self.metrics_url)
            rss_running = memory_mb(self.ctl_pid, "VmRSS")

            progress(f"density {self.cluster}: {len(self.running):,} pods Running; deleting the Deployments")
            deleting = time.time()
            await self._delete_deployments(api)
            await self._until(lambda: len(self.gone) >= len(self.first_seen), plan.timeout, watches)
            deleted = await asyncio.to_thread(scrape, self.metrics_url)
            cpu_deleted = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
            rss_after = memory_mb(self.ctl_pid, "VmRSS")
            peak = max([memory_mb(self.ctl_pid, "VmHWM"), *self.rss_mb])
            nodes_peak = max([memory_mb(self.simulator.pid, "VmHWM"), *self.nodes_rss_mb])
            sampler.cancel()
        finally:
            for task in watches:
                task.cancel()
            await asyncio.gather(*watches, return_exceptions=True)
            await api.close()
            await watching.close()
        return self._row(
            cpu=cpu, api={CREATION: self._api(before, created), DELETION: self._api(created, deleted)},
            cpu_seconds={name: (cpu_created[name] - cpu_start[name], cpu_deleted[name] - cpu_created[name])
                         for name in pids},
            rss=(peak, rss_running, rss_after), nodes_peak=nodes_peak,
            deleted_after=max(self.gone.values(), default=math.nan) - deleting)

    async def _request_pods(self, api: Client) -> None:
        plan = self.plan
        steps = math.ceil(plan.replicas / plan.step)
        interval = plan.step / plan.rate
        start = time.monotonic()
        self.started = time.time()

        async def fill(index: int, namespace: str, name: str) -> None:
            for step in range(steps):
                await asyncio.sleep(max(0.0, start + (index * steps + step) * interval - time.monotonic()))
                replicas = min(plan.replicas, (step + 1) * plan.step)
                await self._step(api, namespace, name, replicas, create=step == 0)
                self.requested += replicas - min(plan.replicas, step * plan.step)

        await asyncio.gather(*(fill(i, ns, name) for i, (ns, name) in enumerate(self.deployments)))

    async def _step(self, api: Client, namespace: str, name: str, replicas: int, *, create: bool) -> None:
        """Create the Deployment with replicas, or scale it to replicas; tried again after a failure
        (an absolute replica count, so a step that did land is harmless to repeat)."""
        for attempt in range(STEP_ATTEMPTS):
            try:
                if create:
                    await api.create(deployment(namespace, name, replicas))
                else:
                    await api.patch("Deployment", name, {"spec": {"replicas": replicas}}, namespace=namespace)
                return
            except errors.AlreadyExistsError:
                if attempt == 0:
                    raise
                return  # an earlier attempt created it
            except errors.APIError as err:
                self.step_errors += 1
                self.first_step_error = self.first_step_error or f"{type(err).__name__}: {err}"
                if attempt == STEP_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(1.0)

    async def _delete_deployments(self, api: Client) -> None:
        start = time.monotonic()
        for index, (namespace, name) in enumerate(self.deployments):
            await asyncio.sleep(max(0.0, start + index / DELETE_RATE - time.monotonic()))
            await api.delete("Deployment", name, namespace=namespace, propagation_policy="Background")

    async def _follow_pods(self, api: Client, resource_version: str) -> None:
        async for event in api.watch("Pod", resource_version=resource_version):
            now, pod = time.time(), event.object
            uid = pod.metadata.uid
            if uid not in self.first_seen:
                self.first_seen[uid] = now
                self.stamp[uid] = parse_time(pod.metadata.creation_timestamp)
            if pod.status.phase == "Running" and uid not in self.running:
                self.running[uid] = now
            if event.type == "DELETED":
                self.gone[uid] = now

    async def _follow_deployments(self, api: Client, resource_version: str) -> None:
        wanted = self.plan.replicas
        async for event in api.watch("Deployment", resource_version=resource_version):
            d, name = event.object, event.object.metadata.name
            if (name not in self.complete and d.spec.replicas == wanted and d.status.available_replicas == wanted
                    and d.status.observed_generation >= d.metadata.generation):
                self.complete[name] = time.time()

    async def _sample(self) -> None:
        """Every second: the service's and the simulator's RSS and the two backlogs; a progress line a minute."""
        last_progress = time.monotonic()
        while True:
            self.rss_mb.append(memory_mb(self.ctl_pid, "VmRSS"))
            self.nodes_rss_mb.append(memory_mb(self.simulator.pid, "VmRSS"))
            created = len(self.first_seen)
            self.timeline.append((time.time(), created))
            self.controller_backlog = max(self.controller_backlog, self.requested - created)
            self.node_backlog = max(self.node_backlog, created - len(self.running))
            if time.monotonic() - last_progress >= PROGRESS_INTERVAL:
                last_progress = time.monotonic()
                progress(f"density {self.cluster}: {self.requested:,} pods requested, {created:,} created,"
                         f" {len(self.running):,} Running, {len(self.gone):,} gone; ctl RSS {self.rss_mb[-1]:.0f} MB")
            await asyncio.sleep(SAMPLE_INTERVAL)

    async def _until(self, done: Callable[[], bool], timeout: float, watches: list[asyncio.Task[None]]) -> bool:
        """Wait until done() (checked every 0.1 s), at most timeout seconds: whether it came
        true. A watch that ended, or the simulator, is an error (nothing more would be seen)."""
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            for task in watches:
                if task.done():
                    task.result()
                    raise RuntimeError("a watch ended")
            if self.simulator.poll() is not None:
                raise RuntimeError(f"simulate-nodes exited with {self.simulator.returncode}")
            await asyncio.sleep(0.1)
        return done()

    def created_at(self, when: float) -> int:
        """Pods created by time.time() `when`, as last sampled before it."""
        index = bisect.bisect_right(self.timeline, (when, math.inf)) - 1
        return self.timeline[index][1] if index >= 0 else 0

    def _api(self, before: Scrape, after: Scrape) -> list[VerbLatency]:
        return [verb_latency(before, after, verb=verb, bound=DENSITY_API_SLO_S) for verb in MUTATING_VERBS]

    def _row(self, *, cpu: dict[str, float], api: dict[str, list[VerbLatency]],
             cpu_seconds: dict[str, tuple[float, float]], rss: tuple[float, float, float], nodes_peak: float,
             deleted_after: float) -> DensityRow:
        latencies: list[tuple[float, float, float]] = []  # (start, latency, latency from the stamp)
        for uid, running in self.running.items():
            first, stamp = self.first_seen[uid], self.stamp[uid]
            if first > stamp + 1.0:
                self.late_first_sight += 1
            start = min(first, stamp + 1.0)
            latencies.append((start, running - start, running - stamp))
        latencies.sort()
        last_tenth = [latency for _, latency, _ in latencies[len(latencies) - max(1, len(latencies) // 10):]]
        seen = sorted(self.first_seen.values())
        span = seen[-1] - seen[0] if len(seen) > 1 else math.nan
        last_running = max(self.running.values(), default=math.nan)
        return DensityRow(
            cluster=self.cluster, nodes=self.nodes, deployments=len(self.deployments), replicas=self.plan.replicas,
            pods=self.pods, rate_target=self.plan.rate,
            rate_achieved=(len(seen) - 1) / span if span and not math.isnan(span) else math.nan,
            running=len(self.running), latency=Percentiles.of([latency for _, latency, _ in latencies]),
            stamp_latency=Percentiles.of([stamp for _, _, stamp in latencies]),
            last_tenth_p99=Percentiles.of(last_tenth).p99, controller_backlog=self.controller_backlog,
            node_backlog=self.node_backlog,
            deployments_complete_after=max(self.complete.values(), default=math.nan) - last_running,
            api=api, rss_peak_mb=rss[0], rss_running_mb=rss[1], rss_after_mb=rss[2], nodes_rss_peak_mb=nodes_peak,
            cpu_seconds=cpu_seconds, cpu=cpu, deleted_after=deleted_after,
            left=max(0, len(self.first_seen) - len(self.gone)))


def deployment(namespace: str, name: str, replicas: int) -> apps_pb2.Deployment:
    labels = {"app": name}
    container = {"name": "pause", "image": IMAGE, "resources": {"requests": {"cpu": POD_CPU, "memory": POD_MEMORY}}}
    return to_message({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}})


def leadership_losses(log: str) -> list[tuple[float, str]]:
    """(time.time(), reason) of each leadership loss in a control service's log
    (lines "<asctime> WARNING ...: <identity> lost leadership: <reason>")."""
    losses = []
    marker = f" {LOST_LEADERSHIP}: "
    for line in log.splitlines():
        if marker in line:
            when = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            losses.append((when, line.split(marker, 1)[1].strip()))
    return losses
