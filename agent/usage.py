"""Resource usage of the node and its pods' containers, for ``sampan top``.

The agent's Stats RPC (agent/server.py) answers from a ``UsageTracker``. A
sample is the runtime's cumulative container stats (``container_stats``),
named by the labels the agent put on each container (``list_containers``),
plus the machine's non-idle CPU time (/proc/stat) and memory in use
(/proc/meminfo). A CPU *rate* needs two samples: the tracker keeps the last
one and reports millicores over the window since then; the first request (or
one less than half a second after the last) waits for a window of its own.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field

from agent.runtime.base import (
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    ContainerRuntime,
)
from protos.agent.v1 import agent_pb2

FIRST_WINDOW = 1.0
MIN_WINDOW = 0.5
# /proc/stat's cpu line: user nice system idle iowait irq softirq steal ...
_IDLE_FIELDS = (3, 4)
_COUNTED_FIELDS = 8


@dataclass(frozen=True)
class ContainerSample:
    namespace: str
    pod: str
    container: str
    cpu_seconds: float
    memory_bytes: int


@dataclass(frozen=True)
class UsageSample:
    timestamp: float
    node_cpu_seconds: float
    node_memory_bytes: int
    containers: dict[str, ContainerSample] = field(default_factory=dict)


def node_cpu_seconds(proc_stat: str) -> float:
    """Non-idle CPU seconds of all CPUs, from /proc/stat's text."""
    fields = [int(value) for value in proc_stat.split("\n", 1)[0].split()[1:1 + _COUNTED_FIELDS]]
    busy = sum(value for index, value in enumerate(fields) if index not in _IDLE_FIELDS)
    return busy / os.sysconf("SC_CLK_TCK")


def node_memory_bytes(meminfo: str) -> int:
    """MemTotal - MemAvailable in bytes, from /proc/meminfo's text."""
    values = {}
    for line in meminfo.splitlines():
        key, _, rest = line.partition(":")
        if rest.split():
            values[key] = int(rest.split()[0]) * 1024
    return values.get("MemTotal", 0) - values.get("MemAvailable", 0)


def _read_machine() -> tuple[float, int]:
    with open("/proc/stat") as stat, open("/proc/meminfo") as meminfo:
        return node_cpu_seconds(stat.read()), node_memory_bytes(meminfo.read())


def millicores(cpu_seconds: float, window: float) -> int:
    return max(0, round(cpu_seconds / window * 1000)) if window > 0 else 0


class UsageTracker:
    """Samples usage on demand and reports rates over the window since the last sample."""

    def __init__(self, runtime: ContainerRuntime) -> None:
        self._runtime = runtime
        self._previous: UsageSample | None = None
        self._lock = asyncio.Lock()

    async def sample(self) -> UsageSample:
        listed = {c.id: c.labels for c in await self._runtime.list_containers()}
        stats = await self._runtime.container_stats()
        cpu, memory = await asyncio.to_thread(_read_machine)
        containers = {}
        for stat in stats:
            labels = listed.get(stat.container_id, {})
            if LABEL_POD_NAME not in labels:
                continue  # not a pod's container
            containers[stat.container_id] = ContainerSample(
                namespace=labels.get(LABEL_POD_NAMESPACE, ""), pod=labels[LABEL_POD_NAME],
                container=labels.get(LABEL_CONTAINER_NAME, ""), cpu_seconds=stat.cpu_usage_seconds,
                memory_bytes=stat.memory_working_set_bytes)
        return UsageSample(timestamp=time.time(), node_cpu_seconds=cpu, node_memory_bytes=memory,
                           containers=containers)

    async def stats(self) -> agent_pb2.StatsResponse:
        """The node's and its containers' usage, rates over the last window."""
        async with self._lock:
            previous = self._previous
            if previous is None:
                previous = await self.sample()
                await asyncio.sleep(FIRST_WINDOW)
            elif time.time() - previous.timestamp < MIN_WINDOW:
                await asyncio.sleep(MIN_WINDOW - (time.time() - previous.timestamp))
            current = await self.sample()
            self._previous = current
        return usage_response(previous, current)


def usage_response(previous: UsageSample, current: UsageSample) -> agent_pb2.StatsResponse:
    """Stats from two samples: cumulative values of current, rates over the window between them."""
    window = current.timestamp - previous.timestamp
    response = agent_pb2.StatsResponse(window_seconds=window)
    response.node.CopyFrom(agent_pb2.NodeUsage(
        cpu_usage_seconds_total=current.node_cpu_seconds,
        cpu_millicores=millicores(current.node_cpu_seconds - previous.node_cpu_seconds, window),
        memory_used_bytes=current.node_memory_bytes, timestamp=current.timestamp))
    for container_id, sample in sorted(current.containers.items()):
        before = previous.containers.get(container_id)
        response.containers.add(
            namespace=sample.namespace, pod=sample.pod, container=sample.container,
            cpu_usage_seconds_total=sample.cpu_seconds,
            cpu_millicores=millicores(sample.cpu_seconds - before.cpu_seconds, window) if before else 0,
            memory_working_set_bytes=sample.memory_bytes, timestamp=current.timestamp)
    return response
