"""Prometheus metrics of the control service (names follow Prometheus'
conventions, with the ``sampan_`` prefix).

One ``ControlMetrics`` per process, holding its own CollectorRegistry so tests
can run several services in one process.
"""

from __future__ import annotations

import time
from typing import AsyncIterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from control.store import KeyValue, Store, StoreEvent

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_SIZE_BUCKETS = (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 3145728)


class ControlMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sampan_apiserver_requests", "API requests by kind, verb and gRPC code.",
            ["kind", "verb", "code"], registry=self.registry)
        self.request_duration = Histogram(
            "sampan_apiserver_request_duration_seconds", "API request latency by kind and verb (watches excluded).",
            ["kind", "verb"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.watches = Gauge(
            "sampan_apiserver_watches", "Watches open now, by kind.", ["kind"], registry=self.registry)
        self.watch_events = Counter(
            "sampan_apiserver_watch_events", "Events sent to watchers, by kind.", ["kind"], registry=self.registry)
        self.store_duration = Histogram(
            "sampan_store_operation_duration_seconds", "Store operation latency by operation.",
            ["operation"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.store_errors = Counter(
            "sampan_store_operation_errors", "Store operations that raised, by operation and error.",
            ["operation", "error"], registry=self.registry)
        self.store_value_bytes = Histogram(
            "sampan_store_value_size_bytes", "Size of values written to the store.",
            buckets=_SIZE_BUCKETS, registry=self.registry)
        self.store_revision = Gauge(
            "sampan_store_revision", "The latest store revision this service wrote or read.", registry=self.registry)
        self.is_leader = Gauge(
            "sampan_leader_is_leader", "1 while this replica leads (runs the scheduler and controllers), else 0.",
            registry=self.registry)


class InstrumentedStore:
    """A Store that times every operation into ControlMetrics."""

    def __init__(self, inner: Store, metrics: ControlMetrics) -> None:
        self.inner = inner
        self.metrics = metrics

    async def _timed(self, operation: str, coro):
        start = time.perf_counter()
        try:
            return await coro
        except Exception as err:
            self.metrics.store_errors.labels(operation, type(err).__name__).inc()
            raise
        finally:
            self.metrics.store_duration.labels(operation).observe(time.perf_counter() - start)

    def _wrote(self, kv: KeyValue) -> KeyValue:
        self.metrics.store_revision.set(kv.mod_revision)
        return kv

    async def get(self, key: str) -> KeyValue | None:
        return await self._timed("get", self.inner.get(key))

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        return await self._timed("list", self.inner.list(prefix))

    async def create(self, key: str, value: bytes) -> KeyValue:
        self.metrics.store_value_bytes.observe(len(value))
        return self._wrote(await self._timed("create", self.inner.create(key, value)))

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> KeyValue:
        self.metrics.store_value_bytes.observe(len(value))
        return self._wrote(await self._timed("update", self.inner.update(key, value, expected_revision=expected_revision)))

    async def delete(self, key: str, *, expected_revision: int | None = None) -> KeyValue:
        return self._wrote(await self._timed("delete", self.inner.delete(key, expected_revision=expected_revision)))

    def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[StoreEvent]:
        return self.inner.watch(prefix, start_revision=start_revision)

    async def current_revision(self) -> int:
        return await self.inner.current_revision()

    async def compacted_revision(self) -> int:
        return await self.inner.compacted_revision()

    async def compact(self, revision: int) -> None:
        await self._timed("compact", self.inner.compact(revision))

    async def close(self) -> None:
        await self.inner.close()
