"""What watchers received in the fan-out benchmark, whatever fed them.

One ``WatcherTally`` per watcher records the stamped ConfigMaps it is handed
(see ``configmaps.stamp``): the warm-up stamp marks the watcher ready, every
other stamp is a delivery whose latency is receive time minus send time. A
``FanoutTally`` holds a group of them (one process's API watchers, or the
in-process raw-store watchers) and sums them into a ``FanoutCounts`` that
travels between processes as JSON.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field

from protos.api.v1 import core_pb2
from tests.bench.configmaps import WARMUP_SEQUENCE, read_stamp


class WatcherTally:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen: set[int] = set()
        self.latencies: list[float] = []
        self.duplicates = 0
        self.error: str | None = None
        self.ready = asyncio.Event()
        self.done = asyncio.Event()

    def record(self, configmap: core_pb2.ConfigMap, received: float) -> None:
        stamped = read_stamp(configmap)
        if stamped is None:
            return
        sequence, sent = stamped
        if sequence == WARMUP_SEQUENCE:
            self.ready.set()
            return
        if sequence in self.seen:
            self.duplicates += 1
            return
        self.seen.add(sequence)
        self.latencies.append(received - sent)
        if len(self.seen) >= self.expected:
            self.done.set()

    def failed(self, error: BaseException) -> None:
        """The watch ended with an error; what it did not receive counts as missing."""
        self.error = f"{type(error).__name__}: {error}"
        self.ready.set()
        self.done.set()


@dataclass
class FanoutCounts:
    """Deliveries of a group of watchers (latencies in seconds)."""

    watchers: int = 0
    delivered: int = 0
    duplicates: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0

    def add(self, other: "FanoutCounts") -> None:
        self.watchers += other.watchers
        self.delivered += other.delivered
        self.duplicates += other.duplicates
        self.latencies.extend(other.latencies)
        self.errors.extend(other.errors)
        self.cpu_seconds += other.cpu_seconds

    def to_json(self) -> dict:
        data = asdict(self)
        data["latencies"] = [round(value, 6) for value in self.latencies]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "FanoutCounts":
        return cls(**data)


class FanoutTally:
    def __init__(self, watchers: int, expected: int) -> None:
        self.watchers = [WatcherTally(expected) for _ in range(watchers)]

    async def wait_ready(self) -> None:
        await asyncio.gather(*(w.ready.wait() for w in self.watchers))

    async def wait_done(self) -> None:
        await asyncio.gather(*(w.done.wait() for w in self.watchers))

    def counts(self, *, cpu_seconds: float = 0.0) -> FanoutCounts:
        counts = FanoutCounts(watchers=len(self.watchers), cpu_seconds=cpu_seconds)
        for watcher in self.watchers:
            counts.delivered += len(watcher.seen)
            counts.duplicates += watcher.duplicates
            counts.latencies.extend(watcher.latencies)
            if watcher.error is not None:
                counts.errors.append(watcher.error)
        return counts
