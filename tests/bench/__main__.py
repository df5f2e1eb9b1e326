"""``python -m tests.bench [--quick] [--only NAME]... [--profile DIR]``

Runs the benchmarks and prints the results as markdown on stdout (progress
goes to stderr). Exits 1 if a benchmark could not run, an operation failed,
or a watcher missed or repeated an event; never because of a figure.

NAME is a benchmark (``api-sqlite``) or any part of one (``api``, ``etcd``).
``--profile DIR`` samples each control service with py-spy into
``DIR/<benchmark>.txt`` (the agent, for the agent's benchmarks, into
``DIR/<benchmark>-agent.txt``); read those with ``python -m tests.bench.hotspots``.
The scheduler benchmarks run their control service under cProfile instead
(``DIR/scheduler-<store>-<workload>.prof``, for ``python -m pstats``).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

from tests.bench import (
    bench_agent_footprint, bench_api, bench_density, bench_failover, bench_pods, bench_proxy, bench_scheduler,
    bench_watch,
)
from tests.bench.agent_node import containerd_missing
from tests.bench.environment import find_etcd
from tests.bench.measure import machine_busy_seconds
from tests.bench.report import Report, progress
from tests.support.components import in_ci

Benchmark = Callable[..., None]


def _api(store: str) -> Benchmark:
    def run(report: Report, *, quick: bool, etcd_binary: str | None, profile_dir: Path | None) -> None:
        plan = bench_api.QUICK if quick else bench_api.FULL
        bench_api.run_api_benchmark(store, plan, report, etcd_binary=etcd_binary, profile_dir=profile_dir)
    return run


def _watch(store: str) -> Benchmark:
    def run(report: Report, *, quick: bool, etcd_binary: str | None, profile_dir: Path | None) -> None:
        plan = bench_watch.QUICK if quick else bench_watch.FULL
        bench_watch.run_watch_benchmark(store, plan, report, etcd_binary=etcd_binary, profile_dir=profile_dir)
    return run


def _pod_startup(report: Report, *, quick: bool, etcd_binary: str | None, profile_dir: Path | None) -> None:
    plan = bench_pods.QUICK if quick else bench_pods.FULL
    bench_pods.run_pod_startup_benchmark(plan, report, profile_dir=profile_dir)


def _agent_footprint(report: Report, *, quick: bool, etcd_binary: str | None, profile_dir: Path | None) -> None:
    plan = bench_agent_footprint.QUICK if quick else bench_agent_footprint.FULL
    bench_agent_footprint.run_agent_footprint_benchmark(plan, report, profile_dir=profile_dir)


def _failover(report: Report, *, quick: bool, etcd_binary: str | None, profile_dir: Path | None) -> None:
    assert etcd_binary is not None  # benchmarks named *-etcd run only where etcd is found
    plan = bench_failover.QUICK if quick else bench_failover.FULL
    bench_failover.run_failover_benchmark(plan, report, etcd_binary=etcd_binary)


def _scheduler(store: str, workload: str) -> Benchmark:
    def run(report: Report, *, quick: bool, etcd_binary: str | None, profile_dir: Path | None) -> None:
        plan = bench_scheduler.QUICK if quick else bench_scheduler.FULL
        bench_scheduler.run_scheduler_benchmark(store, workload, plan, report, etcd_binary=etcd_binary,
                                                profile_dir=profile_dir)
    return run


def _density(report: Report, *, quick: bool, etcd_binary: str | None, profile_dir: Path | None) -> None:
    plan = bench_density.QUICK if quick else bench_density.FULL
    bench_density.run_density_benchmark(plan, report, profile_dir=profile_dir)


def _proxy(report: Report, *, quick: bool, etcd_binary: str | None, profile_dir: Path | None) -> None:
    bench_proxy.run_proxy_benchmark(bench_proxy.QUICK if quick else bench_proxy.FULL, report)


BENCHMARKS: dict[str, Benchmark] = {
    "api-sqlite": _api("sqlite"),
    "api-etcd": _api("etcd"),
    "watch-sqlite": _watch("sqlite"),
    "watch-etcd": _watch("etcd"),
    "pod-startup": _pod_startup,
    "agent-footprint": _agent_footprint,  # on the process runtime where containerd cannot run
    "failover-etcd": _failover,  # two control replicas on one etcd; the leader killed
    "scheduler-sqlite": _scheduler("sqlite", bench_scheduler.PLAIN),
    "scheduler-etcd": _scheduler("etcd", bench_scheduler.PLAIN),
    "scheduler-anti-affinity-sqlite": _scheduler("sqlite", bench_scheduler.ANTI_AFFINITY),
    "density-sqlite": _density,  # 30 pods a node on 1,000 simulated nodes through Deployments: ~30 min
    "proxy": _proxy,  # nftables and IPVS syncs at 1,000 and 10,000 Services, the userspace forwarder
}
NEEDS_CONTAINERD = {"pod-startup"}


def selected(only: list[str] | None) -> list[str]:
    if not only:
        return list(BENCHMARKS)
    chosen = [name for name in BENCHMARKS if any(o == name or o in name.split("-") for o in only)]
    if not chosen:
        raise SystemExit(f"no benchmark matches {only}; choose from {', '.join(BENCHMARKS)}")
    return chosen


def idle_machine_load(seconds: float = 1.0) -> float:
    """Cores busy while this benchmark does nothing: work by others on a shared machine."""
    before = machine_busy_seconds()
    time.sleep(seconds)
    return (machine_busy_seconds() - before) / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.split("\n\n")[1])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the benchmarks run")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help=f"run only matching benchmarks ({', '.join(BENCHMARKS)}); repeatable")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy the control service (for the agent's benchmarks, the agent) into DIR")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the etcd and control service processes are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    date = subprocess.run(["date"], capture_output=True, text=True).stdout.strip()
    report = Report(quick=args.quick, date=date)
    report.notes.append(f"before the run, other work kept {idle_machine_load():.2f} cores of the machine busy"
                        " (CPU column 'machine' minus the named processes is the kernel's share plus such work)")
    etcd_binary = find_etcd()
    for name in selected(args.only):
        if name.endswith("etcd") and etcd_binary is None:
            message = f"{name}: etcd not found (install Debian's etcd-server)"
            (report.failures if in_ci() else report.notes).append(message + ("" if in_ci() else "; skipped"))
            continue
        if name in NEEDS_CONTAINERD and (why_not := containerd_missing()):
            message = f"{name}: {why_not}"
            (report.failures if in_ci() else report.notes).append(message + ("" if in_ci() else "; skipped"))
            continue
        progress(f"{name}: starting")
        try:
            BENCHMARKS[name](report, quick=args.quick, etcd_binary=etcd_binary, profile_dir=args.profile)
        except Exception as err:
            traceback.print_exc()  # the whole story (with the service's log) goes to stderr
            last_line = (str(err).strip().splitlines() or [""])[-1]
            report.failures.append(f"{name} did not complete: {type(err).__name__}: {last_line}")
    for row in report.throughput:
        if row.result.errors:
            report.failures.append(
                f"{row.store} {row.op} c{row.concurrency} {row.path}: {row.result.errors} errors,"
                f" first: {row.result.first_error}")
    if args.profile:
        report.notes.append(f"profiled with py-spy into {args.profile}: figures are slowed by sampling")
    print(report.render())
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
