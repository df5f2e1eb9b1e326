"""Benchmark 2: watch fan-out, delivery latency from one writer to many watchers.

For one store kind, a control service runs as a subprocess on a fresh store.
In each run, ``watchers`` API watches (``Client.watch`` on ConfigMaps in one
namespace) run in ``tests.bench.watch_client`` processes; the benchmark
process then updates ``configmaps`` ConfigMaps ``updates`` times, paced at a
fixed rate, each update stamped with its sequence number and its send time
(``time.time()``). Each watcher records receive time minus send time. Every
watcher must receive every update: anything less is reported as missing (and
fails the run), as are duplicates.

``api_runs`` lists the runs as (rate, watcher processes): the target rate
with the watchers in one process and spread over two (if latency falls when
the same watchers are spread wider, the client, not the server, was the
limit), and a lower rate to show how much headroom the service has.

Baseline, in the same run, at each rate: the same fan-out with ``watchers``
raw ``store.watch`` iterators in the benchmark process, on a fresh store of
the same kind, fed by ``store.update`` with the same paced, stamped values
(decoded by each watcher as an API client would). The API rows carry
"API p99 / raw p99" at the same rate.

Before the timed updates, one warm-up update must reach every watcher, so
every stream is established when timing starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from control.client import Client
from control.store import Store, open_store
from protos.api.v1 import core_pb2
from tests.bench.configmaps import NAMESPACE, WARMUP_SEQUENCE, small_configmap, stamp, storage_key, stored_value
from tests.bench.environment import control_service, etcd_pid, scratch_dir, sqlite_url
from tests.bench.fanout import FanoutCounts, FanoutTally, WatcherTally
from tests.bench.measure import MACHINE, CpuMeter, LatencySummary
from tests.bench.report import API, RAW, FanoutRow, Report, progress
from tests.support.etcd import running_etcd

WATCHERS_PER_CHANNEL = 25
RAW_PREFIX = "/bench-raw-watch"
# A watch client's report is one JSON line with every latency it measured.
REPORT_LINE_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class WatchPlan:
    watchers: int
    updates: int
    configmaps: int  # updates cycle over this many objects
    api_runs: tuple[tuple[float, int], ...]  # (updates per second, watcher processes) of each API run
    ready_seconds: float  # for every watcher to receive the warm-up update
    drain_seconds: float  # after the last update, for every delivery

    @property
    def rates(self) -> list[float]:
        return sorted({rate for rate, _ in self.api_runs})


# The target rate (200/s) with the watchers in one process and in two, and half
# that rate to show the headroom.
FULL = WatchPlan(watchers=100, updates=1000, configmaps=50, api_runs=((100.0, 1), (200.0, 1), (200.0, 2)),
                 ready_seconds=60.0, drain_seconds=30.0)
QUICK = WatchPlan(watchers=20, updates=40, configmaps=10, api_runs=((100.0, 1), (200.0, 2)),
                  ready_seconds=30.0, drain_seconds=15.0)

Update = Callable[[int], Awaitable[None]]
"""``update(sequence)``: stamp one ConfigMap with sequence and the time now, and write it."""


@dataclass(frozen=True)
class Sending:
    """How the paced updates went, from the writer's side."""

    rate: float
    latency: LatencySummary
    errors: list[str]


def run_watch_benchmark(
    store: str, plan: WatchPlan, report: Report, *, etcd_binary: str | None, profile_dir: Path | None
) -> None:
    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(scratch_dir(f"watch-{store}"))
        pids: dict[str, int] = {}
        if store == "etcd":
            cluster = stack.enter_context(running_etcd(binary=etcd_binary))
            server_url = raw_url = f"etcd://{cluster.endpoints[0]}"
            pids["etcd"] = etcd_pid(cluster)
        else:
            server_url, raw_url = sqlite_url(workdir, "api"), sqlite_url(workdir, "raw")
        profile_to = profile_dir / f"watch-{store}.txt" if profile_dir else None
        server = stack.enter_context(control_service(workdir / "control", store_url=server_url, profile_to=profile_to))
        pids = {"ctl": server.process.pid, **pids, "bench": os.getpid()}

        baselines = {}
        for run, rate in enumerate(plan.rates):
            progress(f"watch {store}: raw store baseline, {plan.watchers} watchers in-process, {rate:g} updates/s")
            counts, sending, cpu = asyncio.run(_raw_fanout(raw_url, plan, rate, pids, run))
            baselines[rate] = _row(store, RAW, 0, plan, rate, counts, sending, cpu, None, report)
            report.fanout.append(baselines[rate])
        for run, (rate, processes) in enumerate(plan.api_runs):
            progress(f"watch {store}: API, {plan.watchers} watchers in {processes} client process(es),"
                     f" {rate:g} updates/s")
            counts, sending, cpu = asyncio.run(_api_fanout(server.address, plan, rate, pids, processes, run))
            report.fanout.append(_row(store, API, processes, plan, rate, counts, sending, cpu, baselines[rate], report))
    report.notes.append(
        f"watch fan-out: each run is {plan.updates} updates over {plan.configmaps} ConfigMaps, paced;"
        f" {WATCHERS_PER_CHANNEL} watchers per client channel; 'update p99' is the writer's view of its"
        " updates; CPU 'bench' is the writer (and, for the raw baseline, the watchers too), 'watchers' the"
        " watcher processes together")


def _row(
    store: str, path: str, processes: int, plan: WatchPlan, rate: float, counts: FanoutCounts, sending: Sending,
    cpu: dict[str, float], baseline: FanoutRow | None, report: Report,
) -> FanoutRow:
    latency = LatencySummary.of(counts.latencies)
    row = FanoutRow(
        store=store, path=path, watchers=counts.watchers, client_processes=processes, updates=plan.updates,
        rate_target=rate, rate_achieved=sending.rate, update_latency=sending.latency,
        expected=counts.watchers * plan.updates,
        delivered=counts.delivered, duplicates=counts.duplicates, latency=latency,
        ratio=latency.p99 / baseline.latency.p99 if baseline is not None else None, cpu=cpu)
    where = f"watch {store} {path} at {rate:g}/s" + (f" ({processes} client processes)" if processes else "")
    for error in sorted(set(counts.errors + sending.errors))[:5]:
        report.failures.append(f"{where}: {error}")
    if row.missing or row.duplicates:
        report.failures.append(f"{where}: {row.missing} deliveries missing, {row.duplicates} duplicated")
    return row


async def _paced_updates(update: Update, plan: WatchPlan, rate: float) -> Sending:
    """Start update(0..updates-1) at rate per second, each as its own task
    so a slow write never delays the next send."""
    latencies: list[float] = []
    errors: list[str] = []

    async def timed(sequence: int) -> None:
        began = time.perf_counter()
        try:
            await update(sequence)
        except Exception as err:
            errors.append(f"update {sequence}: {type(err).__name__}: {err}")
            return
        latencies.append(time.perf_counter() - began)

    tasks = []
    start = time.perf_counter()
    for sequence in range(plan.updates):
        delay = start + sequence / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(sequence)))
    span = time.perf_counter() - start
    await asyncio.gather(*tasks)
    achieved = (plan.updates - 1) / span if plan.updates > 1 and span > 0 else float("nan")
    return Sending(rate=achieved, latency=LatencySummary.of(latencies), errors=errors)


# ----------------------------------------------------------------- raw store


async def _raw_fanout(
    url: str, plan: WatchPlan, rate: float, pids: dict[str, int], run: int
) -> tuple[FanoutCounts, Sending, dict]:
    store = await open_store(url)
    try:
        names = [f"watched-{run}-{j}" for j in range(plan.configmaps)]
        keys = [RAW_PREFIX + storage_key(name) for name in names]
        templates = [_stored_template(name) for name in names]
        revisions = {}
        for key, template in zip(keys, templates):
            revisions[key] = (await store.create(key, template.SerializeToString(deterministic=True))).mod_revision
        start_revision = max(revisions.values()) + 1
        locks = {key: asyncio.Lock() for key in keys}

        async def update(sequence: int) -> None:
            key, template = keys[sequence % plan.configmaps], templates[sequence % plan.configmaps]
            async with locks[key]:  # the raw store wants the expected revision; writes to a key go one at a time
                configmap = core_pb2.ConfigMap()
                configmap.CopyFrom(template)
                stamp(configmap, sequence=sequence, sent=time.time())
                written = await store.update(
                    key, configmap.SerializeToString(deterministic=True), expected_revision=revisions[key])
                revisions[key] = written.mod_revision

        tally = FanoutTally(plan.watchers, plan.updates)
        prefix = RAW_PREFIX + storage_key("")
        watches = [asyncio.create_task(_raw_watch_into(store, prefix, start_revision, watcher))
                   for watcher in tally.watchers]
        try:
            await update(WARMUP_SEQUENCE)
            await asyncio.wait_for(tally.wait_ready(), plan.ready_seconds)
            meter = CpuMeter(pids).start()
            cpu_before = time.process_time()
            sending = await _paced_updates(update, plan, rate)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tally.wait_done(), plan.drain_seconds)
            cpu = meter.stop()
            counts = tally.counts(cpu_seconds=time.process_time() - cpu_before)
        finally:
            for task in watches:
                task.cancel()
            await asyncio.gather(*watches, return_exceptions=True)
    finally:
        await store.close()
    return counts, sending, cpu


def _stored_template(name: str) -> core_pb2.ConfigMap:
    return core_pb2.ConfigMap.FromString(stored_value(small_configmap(name)))


async def _raw_watch_into(store: Store, prefix: str, start_revision: int, tally: WatcherTally) -> None:
    try:
        async with contextlib.aclosing(store.watch(prefix, start_revision=start_revision)) as events:
            async for event in events:
                received = time.time()
                tally.record(core_pb2.ConfigMap.FromString(event.kv.value), received)
                if tally.done.is_set():
                    return
    except Exception as err:
        tally.failed(err)


# ----------------------------------------------------------------------- API


async def _api_fanout(
    address: str, plan: WatchPlan, rate: float, pids: dict[str, int], processes: int, run: int
) -> tuple[FanoutCounts, Sending, dict]:
    async with Client.connect(address) as api:
        templates = []
        for j in range(plan.configmaps):
            created = await api.create(small_configmap(f"watched-{run}-{j}"))
            created.metadata.ClearField("resource_version")  # updates retry against the latest
            templates.append(created)
        _, resource_version = await api.list("ConfigMap", namespace=NAMESPACE)

        async def update(sequence: int) -> None:
            configmap = core_pb2.ConfigMap()
            configmap.CopyFrom(templates[sequence % plan.configmaps])
            stamp(configmap, sequence=sequence, sent=time.time())
            await api.update(configmap)

        shares = [plan.watchers // processes + (n < plan.watchers % processes) for n in range(processes)]
        children = [await _start_watch_client(address, resource_version, share, plan) for share in shares]
        try:
            await update(WARMUP_SEQUENCE)
            await asyncio.wait_for(asyncio.gather(*(_expect_ready(child) for child in children)), plan.ready_seconds)
            meter = CpuMeter(pids).start()
            began = time.perf_counter()
            sending = await _paced_updates(update, plan, rate)
            counts = await _collect(children, plan.drain_seconds)
            cpu = meter.stop()
            machine = cpu.pop(MACHINE)
            cpu["watchers"] = counts.cpu_seconds / (time.perf_counter() - began)
            cpu[MACHINE] = machine
        finally:
            for child in children:
                if child.returncode is None:
                    child.kill()
                # Reading to the end lets the pipe close; only then does the child count as ended.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(child.communicate(), 10)
    return counts, sending, cpu


async def _start_watch_client(
    address: str, resource_version: str, watchers: int, plan: WatchPlan
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.bench.watch_client",
        "--server", address, "--resource-version", resource_version, "--watchers", str(watchers),
        "--channels", str(math.ceil(watchers / WATCHERS_PER_CHANNEL)), "--expected", str(plan.updates),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=REPORT_LINE_LIMIT)


async def _expect_ready(child: asyncio.subprocess.Process) -> None:
    line = await child.stdout.readline()
    if line.strip() != b"READY":
        raise RuntimeError(f"watch client {child.pid} said {line!r} instead of READY (exit {child.returncode})")


async def _collect(children: list[asyncio.subprocess.Process], drain_seconds: float) -> FanoutCounts:
    """Every child's counts: they end by themselves once all their watchers
    have everything; after drain_seconds the rest are told to stop."""
    reads = [asyncio.create_task(child.stdout.readline()) for child in children]
    try:
        await asyncio.wait(reads, timeout=drain_seconds)
        for child in children:
            child.stdin.close()  # end of file: stop now and report
        total = FanoutCounts()
        for child, read in zip(children, reads):
            line = await asyncio.wait_for(read, 30)
            if not line:
                raise RuntimeError(f"watch client {child.pid} ended without a report (exit {await child.wait()})")
            total.add(FanoutCounts.from_json(json.loads(line)))
        return total
    finally:
        for read in reads:
            read.cancel()
