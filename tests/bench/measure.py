"""Measuring: closed-loop load at a fixed concurrency, percentiles, CPU time.

The machine the benchmarks run on is small and shared, so no figure here is
meant to be read alone: every benchmark measures a baseline in the same run
and reports the ratio. What this module adds to each figure is the CPU each
process used while it was taken (``CpuMeter``), which says whether a result
was limited by the server, the store or the client driving it.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping, Sequence

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values; NaN if empty."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(q / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class LatencySummary:
    """Latencies in milliseconds."""

    count: int
    mean: float
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> "LatencySummary":
        ordered = sorted(seconds)
        return cls(
            count=len(ordered),
            mean=sum(ordered) / len(ordered) * 1000 if ordered else float("nan"),
            p50=percentile(ordered, 50) * 1000,
            p99=percentile(ordered, 99) * 1000,
            max=(ordered[-1] if ordered else float("nan")) * 1000,
        )


@dataclass(frozen=True)
class LoadResult:
    """One closed-loop run: how many operations finished, in how long."""

    ops: int
    errors: int
    first_error: str | None
    elapsed: float
    latency: LatencySummary

    @property
    def ops_per_second(self) -> float:
        return self.ops / self.elapsed if self.elapsed > 0 else float("nan")

    @property
    def seconds_per_op(self) -> float:
        return self.elapsed / self.ops if self.ops else float("nan")


Operation = Callable[[int, int], Awaitable[object]]
"""``op(worker, index)``: one operation; worker is 0..concurrency-1 (to pick a
channel), index counts operations across all workers from 0."""


async def run_closed_loop(op: Operation, *, concurrency: int, max_ops: int, max_seconds: float) -> LoadResult:
    """Run op from ``concurrency`` workers, each starting its next operation as
    soon as its last one returns, until max_ops operations started or
    max_seconds passed. A failed operation is counted, not retried."""
    indexes = itertools.count()
    latencies: list[float] = []
    errors: list[BaseException] = []
    start = time.perf_counter()
    deadline = start + max_seconds

    async def worker(number: int) -> None:
        while True:
            index = next(indexes)
            began = time.perf_counter()
            if index >= max_ops or began > deadline:
                return
            try:
                await op(number, index)
            except Exception as err:  # a benchmark reports failures; it does not stop at the first
                errors.append(err)
                continue
            latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - start
    first = f"{type(errors[0]).__name__}: {errors[0]}" if errors else None
    return LoadResult(
        ops=len(latencies), errors=len(errors), first_error=first, elapsed=elapsed,
        latency=LatencySummary.of(latencies))


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (all its threads) has used so far.
    Exact for this process; to the kernel's clock tick (10 ms) for others."""
    if pid == os.getpid():
        return time.process_time()
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of proc(5)); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU time every core of the machine has spent busy so far (all processes
    and the kernel), from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


MACHINE = "machine"


class CpuMeter:
    """CPU used by named processes over a stretch of wall time, in cores
    (1.0 = one core busy the whole time), and by the whole machine
    (``machine``): on a shared machine, machine minus the named processes is
    the kernel's share plus whatever else ran meanwhile."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self._pids = dict(pids)
        self._start_wall = 0.0
        self._start_cpu: dict[str, float] = {}
        self._start_machine = 0.0

    def start(self) -> "CpuMeter":
        self._start_wall = time.perf_counter()
        self._start_cpu = {name: process_cpu_seconds(pid) for name, pid in self._pids.items()}
        self._start_machine = machine_busy_seconds()
        return self

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self._start_wall
        machine = (machine_busy_seconds() - self._start_machine) / wall
        used = {}
        for name, pid in self._pids.items():
            try:
                used[name] = (process_cpu_seconds(pid) - self._start_cpu[name]) / wall
            except FileNotFoundError:  # the process is gone; its share is unknown
                used[name] = float("nan")
        used[MACHINE] = machine
        return used
