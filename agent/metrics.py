"""The agent's Prometheus metrics, in cAdvisor's and kubelet's naming.

- ``container_cpu_usage_seconds_total`` and ``container_memory_working_set_bytes``
  per container (labels pod, namespace, container), sampled from the runtime's
  stats every ``interval`` seconds;
- ``kubelet_running_pods`` / ``kubelet_running_containers``;
- ``kubelet_runtime_operations_duration_seconds`` and
  ``kubelet_runtime_operations_errors_total`` by operation, from
  ``InstrumentedRuntime``, a ContainerRuntime wrapper that times every call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from agent.runtime.base import (
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    ContainerRuntime,
    ContainerStats,
)

log = logging.getLogger(__name__)

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class AgentMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.cpu = Gauge(
            "container_cpu_usage_seconds_total", "Cumulative CPU time consumed by the container, in seconds.",
            ["namespace", "pod", "container"], registry=self.registry)
        self.memory = Gauge(
            "container_memory_working_set_bytes", "Current working set of the container, in bytes.",
            ["namespace", "pod", "container"], registry=self.registry)
        self.running_pods = Gauge("kubelet_running_pods", "Pods with a running sandbox.", registry=self.registry)
        self.running_containers = Gauge(
            "kubelet_running_containers", "Containers running now.", registry=self.registry)
        self.operation_duration = Histogram(
            "kubelet_runtime_operations_duration_seconds", "Duration of container runtime operations.",
            ["operation_type"], buckets=_BUCKETS, registry=self.registry)
        self.operation_errors = Counter(
            "kubelet_runtime_operations_errors", "Container runtime operations that failed.",
            ["operation_type"], registry=self.registry)
        self.pod_start_duration = Histogram(
            "kubelet_pod_start_duration_seconds",
            "Time from the pod's creation to all its containers running, as seen by the agent.",
            buckets=_BUCKETS, registry=self.registry)

    def record_stats(self, stats: list[ContainerStats], labels_of: Callable[[str], dict[str, str]]) -> None:
        """Replace the per-container gauges with one sample of the runtime's stats."""
        self.cpu.clear()
        self.memory.clear()
        for sample in stats:
            labels = labels_of(sample.container_id)
            if not labels:
                continue
            key = (labels.get(LABEL_POD_NAMESPACE, ""), labels.get(LABEL_POD_NAME, ""),
                   labels.get(LABEL_CONTAINER_NAME, ""))
            self.cpu.labels(*key).set(sample.cpu_usage_seconds)
            self.memory.labels(*key).set(sample.memory_working_set_bytes)


async def sample_container_stats(runtime: ContainerRuntime, metrics: AgentMetrics, *, interval: float = 10.0) -> None:
    """Every interval, read container stats from the runtime into the gauges."""
    while True:
        try:
            listed = await runtime.list_containers()
            labels = {c.id: dict(c.labels) for c in listed}
            metrics.record_stats(await runtime.container_stats(), lambda cid: labels.get(cid, {}))
            metrics.running_containers.set(sum(1 for c in listed if c.state == "running"))
            metrics.running_pods.set(sum(1 for s in await runtime.list_sandboxes() if s.ready))
        except Exception as err:  # a bad sample must not end the loop
            log.warning("reading container stats failed: %s", err)
        await asyncio.sleep(interval)


class InstrumentedRuntime:
    """A ContainerRuntime that times each operation into AgentMetrics."""

    def __init__(self, inner: ContainerRuntime, metrics: AgentMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def __getattr__(self, name: str):
        # Called only for names not yet on self: the wrapper is made once and kept.
        attr = getattr(self._inner, name)
        if not asyncio.iscoroutinefunction(attr):
            return attr
        histogram = self._metrics.operation_duration.labels(name)
        errors = self._metrics.operation_errors.labels(name)

        async def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return await attr(*args, **kwargs)
            except Exception:
                errors.inc()
                raise
            finally:
                histogram.observe(time.perf_counter() - start)

        setattr(self, name, timed)
        return timed
