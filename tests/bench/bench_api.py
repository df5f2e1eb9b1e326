"""Benchmark 1: API create and get throughput and latency, against the raw store.

For one store kind (SQLite or etcd), a control service runs as a subprocess
on a fresh store. At each concurrency (1, 16, 64 by default) the benchmark
process runs, back to back so they see the same machine conditions:

1. raw creates: ``control.store.open_store`` on a fresh store of the same
   kind (a new SQLite file; for etcd the same member, under a fresh prefix),
   ``concurrency`` tasks each creating a key as soon as its last create
   returned, with the bytes the API server would store for the same
   ConfigMap (~300 bytes);
2. API creates of those ConfigMaps through ``control.client.Client``, one
   client channel per 16 tasks;
3. raw gets, then API gets, of the keys / objects just created.

Each run stops after ``ops`` operations or ``max_seconds``, whichever comes
first, after a short unmeasured warm-up at the same concurrency. The API rows
carry "API time per op / raw time per op" (the inverse ratio of throughputs).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

from control.client import Client
from control.store import Store, open_store
from tests.bench.configmaps import small_configmap, storage_key, stored_value
from tests.bench.environment import control_service, etcd_pid, scratch_dir, sqlite_url
from tests.bench.measure import CpuMeter, LoadResult, run_closed_loop
from tests.bench.report import API, RAW, Report, ThroughputRow, progress
from tests.bench.server_metrics import ServerTimes, scrape, server_times
from tests.support.control import ControlServer
from tests.support.etcd import running_etcd

TASKS_PER_CHANNEL = 16


@dataclass(frozen=True)
class ApiPlan:
    concurrencies: tuple[int, ...]
    ops: int
    max_seconds: float
    warmup_ops: int


FULL = ApiPlan(concurrencies=(1, 16, 64), ops=20_000, max_seconds=2.5, warmup_ops=200)
QUICK = ApiPlan(concurrencies=(1, 16, 64), ops=100, max_seconds=0.5, warmup_ops=20)


def run_api_benchmark(
    store: str, plan: ApiPlan, report: Report, *, etcd_binary: str | None, profile_dir: Path | None
) -> None:
    """Measure one store kind ("sqlite" or "etcd") and add its rows to report."""
    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(scratch_dir(f"api-{store}"))
        pids: dict[str, int] = {}
        if store == "etcd":
            cluster = stack.enter_context(running_etcd(binary=etcd_binary))
            server_url = raw_url = f"etcd://{cluster.endpoints[0]}"
            pids["etcd"] = etcd_pid(cluster)
        else:
            server_url, raw_url = sqlite_url(workdir, "api"), None
        profile_to = profile_dir / f"api-{store}.txt" if profile_dir else None
        server = stack.enter_context(control_service(workdir / "control", store_url=server_url, profile_to=profile_to))
        pids = {"ctl": server.process.pid, **pids, "client": os.getpid()}
        for concurrency in plan.concurrencies:
            progress(f"api {store}: concurrency {concurrency}")
            url = raw_url or sqlite_url(workdir, f"raw-c{concurrency}")
            rows = asyncio.run(_measure_concurrency(store, concurrency, plan, server=server, raw_url=url, pids=pids))
            report.throughput.extend(rows)
    report.notes.append(
        f"API benchmark values: {len(stored_value(small_configmap('c16-000000')))}-byte ConfigMaps as stored;"
        f" runs of {plan.ops} ops or {plan.max_seconds:g} s each, after {plan.warmup_ops} warm-up ops;"
        f" {TASKS_PER_CHANNEL} tasks per client channel; raw store in the benchmark process")


async def _measure_concurrency(
    store: str, concurrency: int, plan: ApiPlan, *, server: ControlServer, raw_url: str, pids: dict[str, int]
) -> list[ThroughputRow]:
    prefix = f"/bench-raw/c{concurrency}"
    raw_store = await open_store(raw_url)
    try:
        await _warm_up_raw(raw_store, prefix, concurrency, plan)
        raw_create, raw_create_cpu = await _metered(pids, _raw_creates(raw_store, prefix, concurrency, plan))
        raw_get, raw_get_cpu = await _metered(pids, _raw_gets(raw_store, prefix, concurrency, plan, raw_create.ops))
    finally:
        await raw_store.close()
    channels = math.ceil(concurrency / TASKS_PER_CHANNEL)
    clients = [Client.connect(server.address) for _ in range(channels)]
    try:
        await _warm_up_api(clients, concurrency, plan)
        before_create = scrape(server.metrics_url)
        api_create, api_create_cpu = await _metered(pids, _api_creates(clients, concurrency, plan))
        before_get = scrape(server.metrics_url)
        api_get, api_get_cpu = await _metered(pids, _api_gets(clients, concurrency, plan, api_create.ops))
        after_get = scrape(server.metrics_url)
    finally:
        for client in clients:
            await client.close()

    def row(op: str, path: str, result: LoadResult, cpu: dict[str, float], baseline: LoadResult | None,
            times: ServerTimes | None = None) -> ThroughputRow:
        ratio = result.seconds_per_op / baseline.seconds_per_op if baseline is not None else None
        return ThroughputRow(store, op, concurrency, path, result, ratio, cpu, times)

    return [
        row("create", RAW, raw_create, raw_create_cpu, None),
        row("create", API, api_create, api_create_cpu, raw_create,
            server_times(before_create, before_get, kind="ConfigMap", verb="create")),
        row("get", RAW, raw_get, raw_get_cpu, None),
        row("get", API, api_get, api_get_cpu, raw_get,
            server_times(before_get, after_get, kind="ConfigMap", verb="get")),
    ]


async def _metered(pids: dict[str, int], run) -> tuple[LoadResult, dict[str, float]]:
    meter = CpuMeter(pids).start()
    result = await run
    return result, meter.stop()


async def _warm_up_raw(store: Store, prefix: str, concurrency: int, plan: ApiPlan) -> None:
    value = stored_value(small_configmap("c00-000000"))

    async def warm(_worker: int, index: int) -> None:
        await store.create(f"{prefix}/warm/{index}", value)

    await run_closed_loop(warm, concurrency=concurrency, max_ops=plan.warmup_ops, max_seconds=plan.max_seconds)


async def _raw_creates(store: Store, prefix: str, concurrency: int, plan: ApiPlan) -> LoadResult:
    value = stored_value(small_configmap("c00-000000"))

    async def create(_worker: int, index: int) -> None:
        await store.create(_raw_key(prefix, index), value)

    return await run_closed_loop(create, concurrency=concurrency, max_ops=plan.ops, max_seconds=plan.max_seconds)


async def _raw_gets(store: Store, prefix: str, concurrency: int, plan: ApiPlan, created: int) -> LoadResult:
    async def get(_worker: int, index: int) -> None:
        key = _raw_key(prefix, index % max(created, 1))
        if await store.get(key) is None:
            raise LookupError(f"raw key {key} not found")

    return await run_closed_loop(get, concurrency=concurrency, max_ops=plan.ops, max_seconds=plan.max_seconds)


def _raw_key(prefix: str, index: int) -> str:
    return prefix + storage_key(f"cm-{index:06d}")


async def _warm_up_api(clients: list[Client], concurrency: int, plan: ApiPlan) -> None:
    warmups = [small_configmap(f"warm-c{concurrency}-{i:06d}") for i in range(plan.warmup_ops)]

    async def warm(worker: int, index: int) -> None:
        await clients[worker // TASKS_PER_CHANNEL].create(warmups[index])

    await run_closed_loop(warm, concurrency=concurrency, max_ops=plan.warmup_ops, max_seconds=plan.max_seconds)


async def _api_creates(clients: list[Client], concurrency: int, plan: ApiPlan) -> LoadResult:
    async def create(worker: int, index: int) -> None:
        await clients[worker // TASKS_PER_CHANNEL].create(small_configmap(_api_name(concurrency, index)))

    return await run_closed_loop(create, concurrency=concurrency, max_ops=plan.ops, max_seconds=plan.max_seconds)


async def _api_gets(clients: list[Client], concurrency: int, plan: ApiPlan, created: int) -> LoadResult:
    async def get(worker: int, index: int) -> None:
        name = _api_name(concurrency, index % max(created, 1))
        await clients[worker // TASKS_PER_CHANNEL].get("ConfigMap", name, namespace="default")

    return await run_closed_loop(get, concurrency=concurrency, max_ops=plan.ops, max_seconds=plan.max_seconds)


def _api_name(concurrency: int, index: int) -> str:
    return f"c{concurrency}-{index:06d}"
