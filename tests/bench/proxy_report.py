"""The proxy benchmark's tables and verdicts (tests/bench/bench_proxy.py), rendered by tests/bench/report.py.

Sync rows: each sync's time split into the state's computation (the
proxy's StateTracker, from Service and EndpointSlice objects) and the
mode's sync (rules built, compared and applied), beside the baseline of
its environment (``nft -f`` of a trivial ruleset, timed the same way in the
same place) and beside the same sync at the smallest size of the run.
Userspace rows: one measure, direct to the backend and through the
forwarder, and their ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SYNC_TITLE = "## Proxy: sync time, full and one change (one endpoint added to one Service)"
SYNC_HEADER = (
    "| mode | where | services x endpoints | sync | runs | state ms | mode ms | total ms | max ms | baseline ms"
    " | total / baseline | total / smallest size's |"
)
USERSPACE_TITLE = "## Proxy: userspace forwarder against a direct connection (loopback)"
USERSPACE_HEADER = "| measure | direct | through the forwarder | forwarder / direct | forwarder CPU (cores) |"
FULL_TARGET_S = 2.0  # full sync at 10,000 Services
CHANGE_TARGET_MS = 50.0
TARGET_SERVICES = 10_000
GROWTH_LIMIT = 1.5  # "not growing": one change at 10x the Services within 1.5x the time
FIRST_FULL, RESYNC, ONE_CHANGE = "full (first)", "full (resync)", "one change"
REPLAYED = "one change's nft -f alone"  # the changes' transactions run again by themselves


@dataclass(frozen=True)
class ProxySyncRow:
    mode: str
    where: str
    services: int
    endpoints: int
    sync: str  # FIRST_FULL, RESYNC or ONE_CHANGE
    runs: int
    state_ms: float  # medians over the runs
    mode_ms: float
    total_ms: float
    max_ms: float
    baseline_ms: float | None  # None: no baseline in that environment

    @property
    def over_baseline(self) -> float | None:
        return self.total_ms / self.baseline_ms if self.baseline_ms else None


@dataclass(frozen=True)
class UserspaceRow:
    measure: str
    unit: str
    direct: float
    forwarded: float
    cpu: float  # the forwarder process's cores while it was measured; NaN when not measured
    higher_is_better: bool = False

    @property
    def ratio(self) -> float:
        return self.forwarded / self.direct if self.direct else float("nan")


def median(values: list[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _smallest(rows: list[ProxySyncRow], row: ProxySyncRow) -> ProxySyncRow | None:
    peers = [r for r in rows if (r.mode, r.where, r.sync) == (row.mode, row.where, row.sync)]
    return min(peers, key=lambda r: r.services) if peers else None


def _num(value: float) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:,.1f}"


def _x(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}x"


def render(syncs: list[ProxySyncRow], userspace: list[UserspaceRow]) -> list[str]:
    lines: list[str] = []
    if syncs:
        lines += [SYNC_TITLE, "", SYNC_HEADER, _separator(SYNC_HEADER)]
        for row in syncs:
            small = _smallest(syncs, row)
            versus = "-" if small is None or small is row else _x(row.total_ms / small.total_ms)
            cells = [row.mode, row.where, f"{row.services:,} x {row.endpoints}", row.sync, str(row.runs),
                     _num(row.state_ms), _num(row.mode_ms), _num(row.total_ms), _num(row.max_ms),
                     _num(row.baseline_ms) if row.baseline_ms else "-", _x(row.over_baseline), versus]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if userspace:
        lines += [USERSPACE_TITLE, "", USERSPACE_HEADER, _separator(USERSPACE_HEADER)]
        for row in userspace:
            cells = [f"{row.measure} ({row.unit})", _num(row.direct), _num(row.forwarded), _x(row.ratio),
                     _num(row.cpu)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def verdicts(syncs: list[ProxySyncRow], userspace: list[UserspaceRow]) -> list[str]:
    found = []
    for row in syncs:
        label = f"proxy {row.mode}, {row.where}, {row.services:,} Services"
        at_target = row.services == TARGET_SERVICES
        if row.sync == FIRST_FULL:
            seconds = row.total_ms / 1000
            target = (f" (target at {TARGET_SERVICES:,} <= {FULL_TARGET_S:g} s: {_met(seconds <= FULL_TARGET_S)})"
                      if at_target else "")
            versus = f", {_x(row.over_baseline)} the baseline" if row.baseline_ms else ""
            found.append(f"{label}: full sync {seconds:.2f} s{target}{versus}")
        elif row.sync == ONE_CHANGE:
            small = _smallest(syncs, row)
            growth = ""
            if small is not None and small is not row:
                ratio = row.total_ms / small.total_ms
                growth = (f"; {_x(ratio)} the one at {small.services:,} (target: not growing; read as <="
                          f" {GROWTH_LIMIT:g}x for {row.services // small.services}x the Services:"
                          f" {_met(ratio <= GROWTH_LIMIT)})")
            found.append(f"{label}: one change {row.total_ms:.1f} ms median (target <= {CHANGE_TARGET_MS:g} ms:"
                         f" {_met(row.total_ms <= CHANGE_TARGET_MS)}){growth}")
    for row in userspace:
        found.append(f"proxy userspace: {row.measure} through the forwarder is {_x(row.ratio)} the direct"
                     f" connection's")
    return found


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _separator(header: str) -> str:
    return "|" + "|".join("---" for _ in header.strip("|").split("|")) + "|"
