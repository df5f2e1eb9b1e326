"""The benchmarks' results as markdown: a table or two per benchmark, the targets, notes.

Every figure is printed beside the baseline measured in the same run and
their ratio, and beside the CPU each process used while it was taken (in
cores: 1.00 is one core busy throughout), which is what tells a server limit
from a client or store limit on a small machine.
"""

from __future__ import annotations

import math
import os
import platform
import sys
from dataclasses import dataclass, field

from tests.bench import proxy_report
from tests.bench.measure import LatencySummary, LoadResult, percentile
from tests.bench.server_metrics import ServerTimes, VerbLatency

THROUGHPUT_TITLE = "## API create and get: throughput and latency"
THROUGHPUT_HEADER = (
    "| store | op | concurrency | path | ops | ops/s | p50 ms | p99 ms | API/raw time per op | CPU (cores) | errors |"
)
BREAKDOWN_TITLE = "## Where an API request's time goes (means per request, from the service's metrics)"
BREAKDOWN_HEADER = (
    "| store | op | concurrency | client sees ms | in server handler ms | in store calls ms"
    " | store calls per request (ms each) | outside the server ms |"
)
FANOUT_TITLE = "## Watch fan-out: delivery latency"
FANOUT_HEADER = (
    "| store | path | watchers | client processes | updates | rate/s (target) | update p99 ms | delivered | missing"
    " | duplicates | p50 ms | p99 ms | max ms | API/raw p99 | CPU (cores) |"
)

POD_STARTUP_TITLE = "## Pod startup: creation to Running"
POD_STARTUP_HEADER = (
    "| path | runtime | pods | rate/s (target) | started | p50 ms | p99 ms | max ms | agent/CRI p50 | agent/CRI p99"
    " | CPU (cores) |"
)
POD_STAGES_TITLE = "## Where a pod's startup time goes (p50 / p99 ms, from containerd's timestamps)"
POD_STAGES_HEADER = (
    "| path | launch to sandbox created | sandbox created to container started | container started to done"
    " | done is |"
)
FOOTPRINT_TITLE = "## Agent footprint: idle with pods running"
FOOTPRINT_HEADER = (
    "| process | runtime | pods | window s | RSS MB (mean) | RSS MB (max) | peak RSS MB (VmHWM) | RSS/baseline"
    " | CPU % of one core | CPU (cores) |"
)

API = "API"
RAW = "raw store"
CRI_PATH = "CRI calls"
AGENT_PATH = "agent"
AGENT_PROCESS = "agent"
IDLE_PROCESS = "idle Python (same imports)"
FANOUT_TARGET_RATE = 200.0  # updates per second the fan-out target is stated for
POD_STARTUP_TARGET_MS = 1500.0
POD_STARTUP_SLO_MS = 5000.0  # Kubernetes' pod startup SLO (p99)
FOOTPRINT_TARGET_MB = 60.0
SCHEDULER_TITLE = "## Scheduler throughput: pre-created pods, first to last binding"
SCHEDULER_HEADER = (
    "| store | workload | nodes | pods | bound | first to last binding s | pods/s | baseline: API pod updates/s"
    " | pods/s / baseline | Running | all Running after s | Scheduled events | CPU (cores) |"
)
SCHEDULER_TARGET_RATE = 1000.0  # pods/s on SQLite
SCHEDULER_ANTI_AFFINITY_THRESHOLD = 60.0  # Kubernetes' CI threshold for SchedulingPodAntiAffinity
FAILOVER_TITLE = "## Failover: leader killed to the new leader acting"
FAILOVER_HEADER = (
    "| lease / renew deadline / retry s | round | lease taken s | first binding s | bound s (lease + retry)"
    " | first binding / bound |"
)
FOOTPRINT_TARGET_CPU_PERCENT = 1.0
DENSITY_TITLE = "## Density: pods through Deployments at a steady rate, creation to Running"
DENSITY_HEADER = (
    "| cluster | nodes | Deployments x replicas | pods | requested/s (target) | Running | p50 ms | p90 ms | p99 ms"
    " | max ms | p50 / p90 / p99 vs baseline | p99 of the last tenth ms | from creationTimestamp p50 / p99 ms"
    " | most pods waiting for a controller / for a node | Deployments complete after s | CPU (cores) |"
)
DENSITY_API_TITLE = "## Density: mutating API calls (the control service's request-duration histogram)"
DENSITY_API_HEADER = (
    "| cluster | phase | verb | requests | p99 ms | within 1 s | p99 vs baseline | slowest kind (its p99 ms) |"
)
DENSITY_RESOURCES_TITLE = "## Density: the control service's memory and CPU"
DENSITY_RESOURCES_HEADER = (
    "| cluster | pods | ctl RSS peak MB | ctl RSS all Running MB | ctl RSS after deletion MB | peak vs baseline"
    " | ctl CPU s (create / delete) | nodes CPU s (create / delete) | ctl CPU ms per pod | vs baseline"
    " | nodes RSS peak MB | deletion: all pods gone after s |"
)
DENSITY_STARTUP_SLO_MS = 5000.0  # Kubernetes' pod startup SLO (p99)
DENSITY_API_SLO_S = 1.0  # Kubernetes' mutating API call SLO (p99)
DENSITY_RSS_TARGET_MB = 500.0
DENSITY_BASELINE = "baseline"


@dataclass(frozen=True)
class ThroughputRow:
    store: str
    op: str
    concurrency: int
    path: str
    result: LoadResult
    ratio: float | None
    cpu: dict[str, float]
    server: ServerTimes | None = None


@dataclass(frozen=True)
class FanoutRow:
    store: str
    path: str
    watchers: int
    client_processes: int  # 0: in the benchmark's own process
    updates: int
    rate_target: float
    rate_achieved: float
    update_latency: LatencySummary  # the writer's view of its updates
    expected: int
    delivered: int
    duplicates: int
    latency: LatencySummary
    ratio: float | None
    cpu: dict[str, float]

    @property
    def missing(self) -> int:
        return self.expected - self.delivered


@dataclass(frozen=True)
class PodStartupRow:
    path: str  # CRI_PATH or AGENT_PATH
    runtime: str
    pods: int
    rate_target: float
    rate_achieved: float
    started: int
    latency: LatencySummary  # launch (or create sent) to started (or seen Running)
    to_sandbox: LatencySummary
    sandbox_to_container: LatencySummary
    container_to_done: LatencySummary
    ratio_p50: float | None
    ratio_p99: float | None
    cpu: dict[str, float]


@dataclass(frozen=True)
class FootprintRow:
    process: str  # AGENT_PROCESS or IDLE_PROCESS
    runtime: str
    pods: int
    seconds: float
    rss_mb_mean: float
    rss_mb_max: float
    peak_rss_mb: float
    ratio: float | None  # mean RSS over the idle process's
    cpu_percent: float  # of one core, over the window
    cpu: dict[str, float]


@dataclass(frozen=True)
class FailoverRow:
    timings: str  # "15 / 10 / 2"
    round: int
    lease_taken: float  # kill to the survivor's acquisition (its Lease write, seen by a watch)
    first_binding: float  # kill to the survivor's first pod binding
    bound: float  # lease duration + retry period

    @property
    def ratio(self) -> float:
        return self.first_binding / self.bound


@dataclass(frozen=True)
class SchedulerRow:
    store: str
    workload: str
    nodes: int
    pods: int
    scheduled: int  # pods seen bound
    seconds: float  # first to last binding seen
    rate: float  # pods/s over that span
    baseline: float  # API pod updates/s at the scheduler's binding concurrency
    running: int  # pods seen Running
    running_after: float  # first binding to the last pod seen Running
    scheduled_events: int
    cpu: dict[str, float]

    @property
    def ratio(self) -> float:
        return self.rate / self.baseline if self.baseline else float("nan")


@dataclass(frozen=True)
class Percentiles:
    """Latencies in milliseconds."""

    count: int
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, seconds: list[float]) -> "Percentiles":
        ordered = sorted(seconds)
        return cls(len(ordered), *(percentile(ordered, q) * 1000 for q in (50, 90, 99, 100)))


@dataclass(frozen=True)
class DensityRow:
    cluster: str  # DENSITY_BASELINE or the loaded cluster's name
    nodes: int
    deployments: int
    replicas: int  # each Deployment's
    pods: int  # requested in all
    rate_target: float  # pods requested per second
    rate_achieved: float  # pods created per second, first to last seen by the watch
    running: int  # pods seen Running
    latency: Percentiles  # creation (the tighter of creationTimestamp and first seen) to Running seen
    stamp_latency: Percentiles  # creationTimestamp (whole seconds) to Running seen
    last_tenth_p99: float  # ms, the last tenth of the pods created
    controller_backlog: int  # most pods the Deployments asked for but not yet created, at any second
    node_backlog: int  # most pods created but not yet Running, at any second
    deployments_complete_after: float  # last pod Running to the last Deployment reporting every replica available
    api: dict[str, list[VerbLatency]]  # phase -> verbs
    rss_peak_mb: float
    rss_running_mb: float  # every pod Running
    rss_after_mb: float  # every pod deleted
    nodes_rss_peak_mb: float
    cpu_seconds: dict[str, tuple[float, float]]  # process -> (creation, deletion)
    cpu: dict[str, float]  # cores over the creation phase
    deleted_after: float  # first Deployment deletion sent to the last pod gone
    left: int  # pods not gone when deletion timed out

    @property
    def ctl_ms_per_pod(self) -> float:
        return self.cpu_seconds["ctl"][0] / self.pods * 1000 if self.pods else float("nan")


@dataclass
class Report:
    quick: bool
    date: str
    throughput: list[ThroughputRow] = field(default_factory=list)
    fanout: list[FanoutRow] = field(default_factory=list)
    pod_startup: list[PodStartupRow] = field(default_factory=list)
    footprint: list[FootprintRow] = field(default_factory=list)
    scheduler: list[SchedulerRow] = field(default_factory=list)
    failover: list[FailoverRow] = field(default_factory=list)
    density: list[DensityRow] = field(default_factory=list)
    proxy_syncs: list[proxy_report.ProxySyncRow] = field(default_factory=list)
    userspace: list[proxy_report.UserspaceRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [
            "# Sampan benchmarks",
            "",
            f"- mode: {'quick (smoke test; figures not meaningful)' if self.quick else 'full'}",
            f"- date: {self.date}",
            f"- machine: {machine()}",
            "",
        ]
        if self.throughput:
            lines += [THROUGHPUT_TITLE, "", THROUGHPUT_HEADER, _separator(THROUGHPUT_HEADER)]
            lines += [_throughput_line(row) for row in self.throughput]
            lines.append("")
        broken_down = [row for row in self.throughput if row.server is not None and row.server.requests]
        if broken_down:
            lines += [BREAKDOWN_TITLE, "", BREAKDOWN_HEADER, _separator(BREAKDOWN_HEADER)]
            lines += [_breakdown_line(row) for row in broken_down]
            lines.append("")
        if self.fanout:
            lines += [FANOUT_TITLE, "", FANOUT_HEADER, _separator(FANOUT_HEADER)]
            lines += [_fanout_line(row) for row in self.fanout]
            lines.append("")
        if self.pod_startup:
            lines += [POD_STARTUP_TITLE, "", POD_STARTUP_HEADER, _separator(POD_STARTUP_HEADER)]
            lines += [_pod_startup_line(row) for row in self.pod_startup]
            lines += ["", POD_STAGES_TITLE, "", POD_STAGES_HEADER, _separator(POD_STAGES_HEADER)]
            lines += [_pod_stages_line(row) for row in self.pod_startup]
            lines.append("")
        if self.footprint:
            lines += [FOOTPRINT_TITLE, "", FOOTPRINT_HEADER, _separator(FOOTPRINT_HEADER)]
            lines += [_footprint_line(row) for row in self.footprint]
            lines.append("")
        if self.failover:
            lines += [FAILOVER_TITLE, "", FAILOVER_HEADER, _separator(FAILOVER_HEADER)]
            lines += [_failover_line(row) for row in self.failover]
            lines.append("")
        if self.scheduler:
            lines += [SCHEDULER_TITLE, "", SCHEDULER_HEADER, _separator(SCHEDULER_HEADER)]
            lines += [_scheduler_line(row) for row in self.scheduler]
            lines.append("")
        if self.density:
            lines += _density_tables(self.density)
        lines += proxy_report.render(self.proxy_syncs, self.userspace)
        verdicts = target_verdicts(self)
        if verdicts:
            lines += ["## Against the targets", ""] + [f"- {v}" for v in verdicts] + [""]
        if self.notes or self.failures:
            lines += ["## Notes", ""] + [f"- {n}" for n in dict.fromkeys(self.notes)]
            lines += [f"- FAILED: {f}" for f in self.failures] + [""]
        return "\n".join(lines)


def progress(message: str) -> None:
    """A progress line on stderr (stdout carries only the report)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def machine() -> str:
    distro = ""
    try:
        with open("/etc/os-release") as release:
            for line in release:
                if line.startswith("PRETTY_NAME="):
                    distro = line.split("=", 1)[1].strip().strip('"') + ", "
    except OSError:
        pass
    return (f"{os.cpu_count()} cores, {distro}Linux {platform.release()}, "
            f"Python {platform.python_version()}")


def target_verdicts(report: Report) -> list[str]:
    """The issue's targets, each read against this run's figures."""
    verdicts = []
    for row in report.throughput:
        if (row.store, row.op, row.concurrency, row.path) == ("sqlite", "create", 16, API):
            rate, p99 = row.result.ops_per_second, row.result.latency.p99
            verdicts.append(
                f"SQLite creates at concurrency 16: {rate:,.0f}/s (target >= 2,000/s: {_met(rate >= 2000)}),"
                f" p99 {p99:.1f} ms (target < 20 ms: {_met(p99 < 20)})")
        if row.store == "etcd" and row.op == "create" and row.path == API and row.ratio is not None:
            verdicts.append(
                f"etcd creates at concurrency {row.concurrency}: API time per write is {row.ratio:.2f}x"
                f" the raw etcd client's (target <= 1.5x: {_met(row.ratio <= 1.5)})")
    for row in report.fanout:
        if row.path != API:
            continue
        p99 = row.latency.p99
        complete = "all delivered" if row.missing == 0 and row.duplicates == 0 else (
            f"{row.missing} missing, {row.duplicates} duplicated")
        verdict = (f"target < 50 ms: {_met(p99 < 50)}" if row.rate_target == FANOUT_TARGET_RATE
                   else f"headroom run; the target is for {FANOUT_TARGET_RATE:g}/s")
        verdicts.append(
            f"{row.store} fan-out to {row.watchers} watchers in {row.client_processes} client process(es)"
            f" at {row.rate_target:g} updates/s: p99 {p99:.1f} ms ({verdict}); {complete}")
    for row in report.pod_startup:
        if row.path != AGENT_PATH:
            continue
        p99 = row.latency.p99
        verdicts.append(
            f"pod startup through the agent, {row.pods} pods at {row.rate_target:g}/s: p99 {p99:,.0f} ms"
            f" (target <= {POD_STARTUP_TARGET_MS:,.0f} ms: {_met(p99 <= POD_STARTUP_TARGET_MS)};"
            f" Kubernetes' SLO {POD_STARTUP_SLO_MS:,.0f} ms: {_met(p99 <= POD_STARTUP_SLO_MS)}),"
            f" {_ratio(row.ratio_p99)} the CRI calls' p99 (p50 {_ratio(row.ratio_p50)})")
    for row in report.footprint:
        if row.process != AGENT_PROCESS:
            continue
        verdicts.append(
            f"agent footprint with {row.pods} pods ({row.runtime}): RSS {row.rss_mb_max:.1f} MB"
            f" (target <= {FOOTPRINT_TARGET_MB:g} MB: {_met(row.rss_mb_max <= FOOTPRINT_TARGET_MB)}),"
            f" CPU {row.cpu_percent:.1f}% of one core"
            f" (target <= {FOOTPRINT_TARGET_CPU_PERCENT:g}%: {_met(row.cpu_percent <= FOOTPRINT_TARGET_CPU_PERCENT)})")
    for row in report.scheduler:
        if row.workload == "anti-affinity":
            target, what = SCHEDULER_ANTI_AFFINITY_THRESHOLD, "Kubernetes' CI threshold"
        elif row.store == "sqlite":
            target, what = SCHEDULER_TARGET_RATE, "target"
        else:
            target, what = None, ""
        verdict = f" ({what} >= {target:,.0f}/s: {_met(row.rate >= target)})" if target else ""
        verdicts.append(
            f"scheduler on {row.store}, {row.workload} pods, {row.nodes} nodes: {row.rate:,.0f} pods/s{verdict},"
            f" {_ratio(row.ratio)} the API's pod update rate")
    verdicts += _density_verdicts(report.density)
    verdicts += proxy_report.verdicts(report.proxy_syncs, report.userspace)
    if report.quick and verdicts:
        verdicts.insert(0, "quick mode: the sizes are too small for these verdicts to mean anything")
    return verdicts


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _separator(header: str) -> str:
    return "|" + "|".join("---" for _ in header.strip("|").split("|")) + "|"


def _ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}x"


def _cpu(cpu: dict[str, float]) -> str:
    return ", ".join(f"{name} {'?' if math.isnan(v) else f'{v:.2f}'}" for name, v in cpu.items())


def _throughput_line(row: ThroughputRow) -> str:
    r = row.result
    cells = [row.store, row.op, str(row.concurrency), row.path, str(r.ops), f"{r.ops_per_second:,.0f}",
             _ms(r.latency.p50), _ms(r.latency.p99), _ratio(row.ratio), _cpu(row.cpu), str(r.errors)]
    return "| " + " | ".join(cells) + " |"


def _breakdown_line(row: ThroughputRow) -> str:
    server = row.server
    assert server is not None
    client_ms = row.result.latency.mean
    calls = ", ".join(f"{op} {n:.2f} ({ms:.2f})" for op, (n, ms) in server.store_ms.items())
    cells = [row.store, row.op, str(row.concurrency), _ms(client_ms), _ms(server.handler_ms),
             _ms(server.store_total_ms), calls or "-", _ms(client_ms - server.handler_ms)]
    return "| " + " | ".join(cells) + " |"


def _fanout_line(row: FanoutRow) -> str:
    procs = "in-process" if row.client_processes == 0 else str(row.client_processes)
    cells = [row.store, row.path, str(row.watchers), procs, str(row.updates),
             f"{row.rate_achieved:.0f} ({row.rate_target:.0f})", _ms(row.update_latency.p99),
             f"{row.delivered:,}", f"{row.missing:,}",
             str(row.duplicates), _ms(row.latency.p50), _ms(row.latency.p99), _ms(row.latency.max),
             _ratio(row.ratio), _cpu(row.cpu)]
    return "| " + " | ".join(cells) + " |"


def _pod_startup_line(row: PodStartupRow) -> str:
    lat = row.latency
    cells = [row.path, row.runtime, str(row.pods), f"{row.rate_achieved:.1f} ({row.rate_target:g})",
             str(row.started), _ms(lat.p50), _ms(lat.p99), _ms(lat.max), _ratio(row.ratio_p50),
             _ratio(row.ratio_p99), _cpu(row.cpu)]
    return "| " + " | ".join(cells) + " |"


def _pod_stages_line(row: PodStartupRow) -> str:
    def both(stage: LatencySummary) -> str:
        return f"{_ms(stage.p50)} / {_ms(stage.p99)}"

    done = "Running seen by a watch" if row.path == AGENT_PATH else "StartContainer returned"
    cells = [row.path, both(row.to_sandbox), both(row.sandbox_to_container), both(row.container_to_done), done]
    return "| " + " | ".join(cells) + " |"


def _footprint_line(row: FootprintRow) -> str:
    cells = [row.process, row.runtime, str(row.pods) if row.pods else "-", f"{row.seconds:g}",
             f"{row.rss_mb_mean:.1f}", f"{row.rss_mb_max:.1f}", f"{row.peak_rss_mb:.1f}", _ratio(row.ratio),
             f"{row.cpu_percent:.2f}", _cpu(row.cpu) or "-"]
    return "| " + " | ".join(cells) + " |"


def _failover_line(row: FailoverRow) -> str:
    cells = [row.timings, str(row.round), f"{row.lease_taken:.2f}", f"{row.first_binding:.2f}", f"{row.bound:g}",
             _ratio(row.ratio)]
    return "| " + " | ".join(cells) + " |"


def _scheduler_line(row: SchedulerRow) -> str:
    cells = [row.store, row.workload, str(row.nodes), str(row.pods), str(row.scheduled), f"{row.seconds:.2f}",
             f"{row.rate:,.0f}", f"{row.baseline:,.0f}", _ratio(row.ratio), str(row.running),
             f"{row.running_after:.1f}", str(row.scheduled_events), _cpu(row.cpu)]
    return "| " + " | ".join(cells) + " |"


def _density_baseline(rows: list[DensityRow]) -> DensityRow | None:
    return next((row for row in rows if row.cluster == DENSITY_BASELINE), None)


def _over(value: float, baseline: float | None) -> float | None:
    return value / baseline if baseline and not math.isinf(value) else None


def _density_tables(rows: list[DensityRow]) -> list[str]:
    base = _density_baseline(rows)
    lines = [DENSITY_TITLE, "", DENSITY_HEADER, _separator(DENSITY_HEADER)]
    for row in rows:
        lat, stamp = row.latency, row.stamp_latency
        versus = "-" if base is None or row is base else " / ".join(
            _ratio(_over(getattr(lat, q), getattr(base.latency, q))) for q in ("p50", "p90", "p99"))
        cells = [row.cluster, str(row.nodes), f"{row.deployments} x {row.replicas}", f"{row.pods:,}",
                 f"{row.rate_achieved:.1f} ({row.rate_target:g})", f"{row.running:,}", _ms(lat.p50), _ms(lat.p90),
                 _ms(lat.p99), _ms(lat.max), versus, _ms(row.last_tenth_p99), f"{_ms(stamp.p50)} / {_ms(stamp.p99)}",
                 f"{row.controller_backlog} / {row.node_backlog}", _seconds(row.deployments_complete_after),
                 _cpu(row.cpu)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", DENSITY_API_TITLE, "", DENSITY_API_HEADER, _separator(DENSITY_API_HEADER)]
    for row in rows:
        for phase, verbs in row.api.items():
            for verb in verbs:
                if not verb.requests:
                    continue
                base_verb = None if base is None or row is base else next(
                    (v for v in base.api.get(phase, []) if v.verb == verb.verb), None)
                cells = [row.cluster, phase, verb.verb, f"{verb.requests:,}", _histogram_ms(verb.p99, verb.ceiling),
                         f"{verb.within:.2%}", _ratio(_over(verb.p99, base_verb.p99 if base_verb else None)),
                         f"{verb.slowest_kind} ({_histogram_ms(verb.slowest_p99, verb.ceiling)})"]
                lines.append("| " + " | ".join(cells) + " |")
    lines += ["", DENSITY_RESOURCES_TITLE, "", DENSITY_RESOURCES_HEADER, _separator(DENSITY_RESOURCES_HEADER)]
    for row in rows:
        other = base is not None and row is not base
        ctl, nodes = row.cpu_seconds["ctl"], row.cpu_seconds["nodes"]
        gone = _seconds(row.deleted_after) + (f" ({row.left:,} left)" if row.left else "")
        cells = [row.cluster, f"{row.pods:,}", f"{row.rss_peak_mb:.0f}", f"{row.rss_running_mb:.0f}",
                 f"{row.rss_after_mb:.0f}", _ratio(_over(row.rss_peak_mb, base.rss_peak_mb)) if other else "-",
                 f"{ctl[0]:.1f} / {ctl[1]:.1f}", f"{nodes[0]:.1f} / {nodes[1]:.1f}", _ms(row.ctl_ms_per_pod),
                 _ratio(_over(row.ctl_ms_per_pod, base.ctl_ms_per_pod)) if other else "-",
                 f"{row.nodes_rss_peak_mb:.0f}", gone]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _density_verdicts(rows: list[DensityRow]) -> list[str]:
    base = _density_baseline(rows)
    verdicts = []
    for row in rows:
        if row is base:
            continue
        lat, stamp = row.latency, row.stamp_latency
        versus = f", {_ratio(_over(lat.p99, base.latency.p99))} the baseline's" if base else ""
        verdicts.append(
            f"density, {row.pods:,} pods on {row.nodes} nodes: pod startup p99 {lat.p99:,.0f} ms{versus}"
            f" (Kubernetes' SLO <= {DENSITY_STARTUP_SLO_MS:,.0f} ms: {_met(lat.p99 <= DENSITY_STARTUP_SLO_MS)};"
            f" from creationTimestamp, {stamp.p99:,.0f} ms: {_met(stamp.p99 <= DENSITY_STARTUP_SLO_MS)}),"
            f" {row.running:,} of {row.pods:,} Running")
        for phase, verbs in row.api.items():
            for verb in verbs:
                if verb.requests:
                    verdicts.append(
                        f"density, {phase}: {verb.verb} p99 {_histogram_ms(verb.p99, verb.ceiling)} ms,"
                        f" {verb.within:.2%} within"
                        f" {verb.bound:g} s (Kubernetes' SLO p99 <= {DENSITY_API_SLO_S:g} s:"
                        f" {_met(verb.p99 <= DENSITY_API_SLO_S)})")
        verdicts.append(
            f"density: control service RSS peak {row.rss_peak_mb:.0f} MB, {row.rss_running_mb:.0f} MB with every pod"
            f" Running (target <= {DENSITY_RSS_TARGET_MB:g} MB: {_met(row.rss_peak_mb <= DENSITY_RSS_TARGET_MB)})"
            + (f", {_ratio(_over(row.rss_peak_mb, base.rss_peak_mb))} the baseline's peak" if base else ""))
    return verdicts


def _histogram_ms(seconds: float, ceiling: float) -> str:
    return f"over {ceiling * 1000:,.0f}" if math.isinf(seconds) else _ms(seconds * 1000)


def _seconds(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"
