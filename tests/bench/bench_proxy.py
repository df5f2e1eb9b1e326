"""Benchmark: the service proxy's syncs (nftables, IPVS) and its userspace forwarder.

**Syncs.** A synthetic cluster of N Services with E ready endpoints each
(tests/bench/proxy_cluster.py) goes through the proxy's own pipeline, the
API left out: the ``StateTracker`` computes the state from the Service and
EndpointSlice objects and the mode applies it. Timed: the first full sync
(empty tables), a second full sync (the periodic resync over a full
table), and one change at a time (one endpoint added to one Service),
each split into the state's computation and the mode's sync.

- **nftables**, on this machine's kernel, inside a network namespace the
  benchmark creates (``ip netns add``) and deletes: the host's rules are
  never read or touched. ``nft`` runs through ``nsenter --net``. Baseline:
  ``nft -f`` of a trivial ruleset (add and delete a table) the same way, in
  the same namespace: the cost of running ``nft`` at all.
- **ipvs**, twice. On the host (whose kernel has no IPVS): the mode's own
  work, the layout, the plan, the ``nft`` script text and every IPVS
  netlink message packed, against a kernel stand-in that records the
  messages and sends nothing. In the test VM (qemu, Debian's kernel,
  software emulation: every figure there is many times the host's): the
  same syncs on a real kernel, at the VM's sizes, with the VM's own
  ``nft -f`` baseline (tests/bench/proxy_vm.py). The quick run skips the VM.

**Userspace.** The userspace mode's forwarder in its own process, against
a direct connection to the same backend, on loopback
(tests/bench/proxy_userspace.py): throughput of one connection, 64-byte
round trips on one connection, and new connections each carrying one
round trip; ratios forwarder / direct.

Every figure is a ratio against a baseline of the same run: the nft run's,
the smallest size's, or the direct connection's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from proxy import ipvs_netlink as nl
from proxy.ipvs import IPVSMode
from proxy.ipvs_kernel import RealServer, VirtualKey, VirtualServer, dest_attrs, service_attrs, service_key_attrs
from proxy.modes import ModeOptions
from proxy.nftables import NftablesMode
from tests.bench import proxy_userspace
from tests.bench.environment import scratch_dir
from tests.bench.measure import LatencySummary, process_cpu_seconds
from tests.bench.proxy_cluster import NODE_NAME, SyncTimes, time_syncs
from tests.bench.proxy_report import FIRST_FULL, ONE_CHANGE, REPLAYED, RESYNC, ProxySyncRow, UserspaceRow, median
from tests.bench.proxy_vm import nft_baseline
from tests.bench.report import Report, progress
from tests.support.components import in_ci

REPO = Path(__file__).resolve().parents[2]
HOST, HOST_MESSAGES, VM = "host (netns)", "host: mode's work, messages not sent", "VM (qemu TCG), real IPVS"


@dataclass(frozen=True)
class ProxyPlan:
    sizes: tuple[int, ...]  # Services, on the host
    endpoints: int
    changes: int  # one-change syncs timed per size
    vm_sizes: tuple[int, ...]  # Services, in the VM; () skips the VM
    transfer_seconds: float
    round_trips: int
    connections: int


FULL = ProxyPlan(sizes=(1000, 10000), endpoints=5, changes=20, vm_sizes=(200, 1000), transfer_seconds=2.0,
                 round_trips=5000, connections=500)
QUICK = ProxyPlan(sizes=(100, 1000), endpoints=5, changes=3, vm_sizes=(), transfer_seconds=0.3,
                  round_trips=200, connections=50)


def run_proxy_benchmark(plan: ProxyPlan, report: Report) -> None:
    missing = _missing_for_nftables()
    if missing:
        (report.failures if in_ci() else report.notes).append(
            f"proxy nftables: {missing}" + ("" if in_ci() else "; skipped"))
    else:
        with network_namespace() as nft:
            for size in plan.sizes:
                progress(f"proxy: nftables, {size} services")
                report.proxy_syncs += _nftables(nft, size, plan)
    for size in plan.sizes:
        progress(f"proxy: ipvs on the host (messages not sent), {size} services")
        mode = IPVSMode(ModeOptions(node_name=NODE_NAME), kernel_factory=RecordingKernel)
        times = asyncio.run(time_syncs(_blocking(mode), services=size, endpoints=plan.endpoints,
                                       changes=plan.changes))
        report.proxy_syncs += _rows("ipvs", HOST_MESSAGES, size, plan.endpoints, times, None)
    if plan.vm_sizes:
        _ipvs_in_vm(plan, report)
    else:
        report.notes.append("proxy: the quick run does not time IPVS in the VM")
    progress("proxy: userspace forwarder")
    report.userspace += _userspace(plan)
    report.notes.append(
        f"proxy: {plan.endpoints} ready endpoints a Service, one port each; one change adds an endpoint to one"
        f" Service ({plan.changes} changes a size, medians); state = the StateTracker's computation from the"
        " Service and EndpointSlice objects, mode = the mode's sync; nftables baseline: nft -f of a trivial"
        " ruleset through nsenter in the same namespace, run after each change (and 3 times before the size)")


def _rows(mode: str, where: str, size: int, endpoints: int, times: SyncTimes,
          baseline_ms: float | None) -> list[ProxySyncRow]:
    def row(sync: str, runs: list[tuple[float, float]]) -> ProxySyncRow:
        totals = [state + work for state, work in runs]
        return ProxySyncRow(
            mode=mode, where=where, services=size, endpoints=endpoints, sync=sync, runs=len(runs),
            state_ms=median([s for s, _ in runs]) * 1000, mode_ms=median([w for _, w in runs]) * 1000,
            total_ms=median(totals) * 1000, max_ms=max(totals) * 1000, baseline_ms=baseline_ms)

    return [row(FIRST_FULL, [times.first_full]), row(RESYNC, [times.resync]), row(ONE_CHANGE, times.changes)]


def _nftables(nft: tuple[str, ...], size: int, plan: ProxyPlan) -> list[ProxySyncRow]:
    """The nftables rows of one size; the baseline runs between the changes, so both see the same machine."""
    mode = NftablesMode(ModeOptions(node_name=NODE_NAME, nft=nft))
    baseline = nft_baseline(nft, 3)
    transactions: list[str] = []

    def after_change(_index: int) -> None:
        transactions.append(mode.last_transaction)
        baseline.extend(nft_baseline(nft, 1))

    times = asyncio.run(time_syncs(lambda state, full: mode.sync(state, full=full), services=size,
                                   endpoints=plan.endpoints, changes=plan.changes, on_change=after_change))
    # Each change's transaction again, alone: what nft and the kernel take for it, Python left out.
    # (Flushing and refilling a chain and adding an element that is there already change nothing.)
    replayed = []
    for script in transactions:
        started = time.perf_counter()
        subprocess.run([*nft, "-f", "-"], input=script, text=True, check=True, capture_output=True)
        replayed.append(time.perf_counter() - started)
    asyncio.run(mode.cleanup())
    baseline_ms = median(baseline) * 1000
    rows = _rows("nftables", HOST, size, plan.endpoints, times, baseline_ms)
    rows.append(ProxySyncRow(
        mode="nftables", where=HOST, services=size, endpoints=plan.endpoints, sync=REPLAYED, runs=len(replayed),
        state_ms=float("nan"), mode_ms=median(replayed) * 1000, total_ms=median(replayed) * 1000,
        max_ms=max(replayed) * 1000, baseline_ms=baseline_ms))
    return rows


def _blocking(mode: IPVSMode):
    async def sync(state, full: bool) -> None:
        mode.sync_blocking(state, full)  # on this thread: the worker thread's hand-off is not the mode's work
    return sync


# ------------------------------------------------------------ nftables: a private network namespace


def _missing_for_nftables() -> str:
    if os.geteuid() != 0:
        return "needs root (a network namespace and nftables)"
    for binary, package in (("nft", "nftables"), ("ip", "iproute2"), ("nsenter", "util-linux")):
        if shutil.which(binary) is None:
            return f"{binary} not found: install the Debian package {package!r}"
    return ""


@contextlib.contextmanager
def network_namespace() -> Iterator[tuple[str, ...]]:
    """A fresh network namespace, deleted afterwards; yields the nft command that runs inside it."""
    name = f"sampan-bench-proxy-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, text=True)
    try:
        yield ("nsenter", f"--net=/run/netns/{name}", "nft")
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


# ------------------------------------------------------------ ipvs: the mode's work on the host


class RecordingKernel:
    """An IPVSKernel that packs every IPVS message's attributes as the real one does, and sends nothing.

    The host's kernel has no IPVS; this times the mode's own work (layout,
    plan, nft script, message packing) apart from the kernel's.
    """

    def __init__(self) -> None:
        self.messages: list[tuple[int, bytes]] = []  # (IPVS command, its attributes) until commit
        self.addresses: set[str] = set()
        self.scripts: list[str] = []

    def _queue(self, command: int, payload: bytes) -> None:
        self.messages.append((command, payload))

    def ensure_interface(self) -> None:
        pass

    def delete_interface(self) -> None:
        self.addresses.clear()

    def interface_addresses(self) -> set[str]:
        return set(self.addresses)

    def add_interface_address(self, address: str) -> None:
        self.addresses.add(address)

    def delete_interface_address(self, address: str) -> None:
        self.addresses.discard(address)

    def local_addresses(self) -> set[str]:
        return set()

    def virtual_servers(self) -> dict[VirtualKey, VirtualServer]:
        return {}  # a listing of the kernel's table: nothing, here

    def add_virtual_server(self, server: VirtualServer) -> None:
        self._queue(nl.CMD_NEW_SERVICE, service_attrs(server))

    def update_virtual_server(self, server: VirtualServer) -> None:
        self._queue(nl.CMD_SET_SERVICE, service_attrs(server))

    def delete_virtual_server(self, key: VirtualKey) -> None:
        self._queue(nl.CMD_DEL_SERVICE, nl.nested(nl.CMD_ATTR_SERVICE, *service_key_attrs(key)))

    def add_real_server(self, key: VirtualKey, real: RealServer) -> None:
        self._queue(nl.CMD_NEW_DEST, dest_attrs(key, real))

    def update_real_server(self, key: VirtualKey, real: RealServer) -> None:
        self._queue(nl.CMD_SET_DEST, dest_attrs(key, real))

    def delete_real_server(self, key: VirtualKey, real: RealServer) -> None:
        self._queue(nl.CMD_DEL_DEST, dest_attrs(key, real, full=False))

    def commit(self) -> None:
        self.messages.clear()

    def apply_nftables(self, script: str) -> None:
        self.scripts.append(script)

    def delete_nftables_table(self) -> None:
        pass

    def set_sysctl(self, name: str, value: str) -> None:
        pass

    def close(self) -> None:
        pass


# ------------------------------------------------------------ ipvs: the real kernel, in the VM


def _ipvs_in_vm(plan: ProxyPlan, report: Report) -> None:
    from tests.support.qemu_vm import missing_host_tools, prepare_kernel, run_in_vm

    missing = missing_host_tools()
    if missing:
        message = f"proxy ipvs in the VM: needs the Debian packages {', '.join(missing)}"
        (report.failures if in_ci() else report.notes).append(message + ("" if in_ci() else "; skipped"))
        return
    kernel = prepare_kernel()
    progress(f"proxy: ipvs in the VM, {', '.join(map(str, plan.vm_sizes))} services (software emulation)")
    with scratch_dir("proxy-vm") as share:
        script = (f"cd {REPO}\nexec {sys.executable} -m tests.bench.proxy_vm {share}/report.json"
                  f" {plan.endpoints} {plan.changes} {' '.join(map(str, plan.vm_sizes))}\n")
        result = run_in_vm(script, kernel=kernel, workdir=share, timeout=900, memory_mb=2048).check()
        figures = json.loads((share / "report.json").read_text())
    baseline_ms = median(figures["baseline"]) * 1000
    for size, times in figures["sizes"].items():
        synced = SyncTimes(tuple(times["first_full"]), tuple(times["resync"]),
                           [tuple(change) for change in times["changes"]])
        report.proxy_syncs += _rows("ipvs", VM, int(size), plan.endpoints, synced, baseline_ms)
    report.notes.append(f"proxy: the VM ran {result.seconds:.0f} s (boot included), kernel {kernel.version},"
                        " one emulated CPU")


# ------------------------------------------------------------ userspace


@contextlib.contextmanager
def _process(*args: str) -> Iterator[tuple[subprocess.Popen, int]]:
    process = subprocess.Popen([sys.executable, "-m", "tests.bench.proxy_userspace", *args], cwd=REPO,
                               stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.startswith("ready "):
            raise RuntimeError(f"proxy_userspace {' '.join(args)} did not start (said {line!r})")
        yield process, int(line.split()[1])
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _userspace(plan: ProxyPlan) -> list[UserspaceRow]:
    node_port = random.randrange(30000, 32768)
    with _process("backend") as (_, backend_port), _process("forwarder", str(backend_port), str(node_port)) as (
            forwarder, _):
        def cpu_during(call, port: int):
            before, started = process_cpu_seconds(forwarder.pid), time.perf_counter()
            value = call(port)
            return value, (process_cpu_seconds(forwarder.pid) - before) / (time.perf_counter() - started)

        for port in (backend_port, node_port):  # warm up both paths
            proxy_userspace.round_trips(port, 20)
        direct_rate = proxy_userspace.throughput(backend_port, plan.transfer_seconds)
        forwarded_rate, rate_cpu = cpu_during(lambda p: proxy_userspace.throughput(p, plan.transfer_seconds),
                                              node_port)
        direct_trips = LatencySummary.of(proxy_userspace.round_trips(backend_port, plan.round_trips))
        forwarded, trip_cpu = cpu_during(lambda p: proxy_userspace.round_trips(p, plan.round_trips), node_port)
        forwarded_trips = LatencySummary.of(forwarded)
        direct_connects = LatencySummary.of(proxy_userspace.connect_round_trips(backend_port, plan.connections))
        forwarded, connect_cpu = cpu_during(lambda p: proxy_userspace.connect_round_trips(p, plan.connections),
                                            node_port)
        forwarded_connects = LatencySummary.of(forwarded)
    mb = 1024 * 1024
    nan = float("nan")
    return [
        UserspaceRow("throughput, one connection", "MiB/s", direct_rate / mb, forwarded_rate / mb, rate_cpu, True),
        UserspaceRow(f"round trip p50, {plan.round_trips} on one connection", "ms", direct_trips.p50,
                     forwarded_trips.p50, trip_cpu),
        UserspaceRow("round trip p99", "ms", direct_trips.p99, forwarded_trips.p99, nan),
        UserspaceRow(f"connect + round trip p50, {plan.connections} connections", "ms", direct_connects.p50,
                     forwarded_connects.p50, connect_cpu),
        UserspaceRow("connect + round trip p99", "ms", direct_connects.p99, forwarded_connects.p99, nan),
    ]
