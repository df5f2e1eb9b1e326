"""A synthetic cluster for the proxy benchmark, and the timing of its syncs.

``SyntheticCluster`` holds what the proxy's reflectors would hold: N
Services (``ns/svc-00000`` ..., ClusterIP 10.96.x.y:80/TCP, port name
``http``) and one EndpointSlice each with E ready endpoints (10.128.x.y and
up, port 8080), keyed as the reflectors key them. ``add_endpoint`` makes
the benchmark's one change: a new ready endpoint in one Service's slice.

``time_syncs`` drives the proxy's own pipeline without the API: a
``StateTracker`` (proxy/tracker.py) computes the state from those objects,
as ``ServiceProxy.sync`` does, and a mode's sync applies it. It times the
first full sync (empty kernel tables), a second full sync (the periodic
resync, over a table that already holds everything) and then one change at
a time, each split into the state's computation and the mode's sync. The
same code runs on the host and, for the IPVS mode, inside the test VM
(tests/bench/proxy_vm.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from protos.api.v1 import services_pb2
from proxy.state import SERVICE_NAME_LABEL, ProxyState
from proxy.tracker import StateTracker

NODE_NAME = "bench-node"
NAMESPACE = "bench"

ModeSync = Callable[[ProxyState, bool], Awaitable[object]]


def _address(base: int, index: int) -> str:
    return f"10.{base + index // 65536}.{index // 256 % 256}.{index % 256}"


@dataclass
class SyntheticCluster:
    services: dict[tuple[str, str], services_pb2.Service] = field(default_factory=dict)
    slices: dict[tuple[str, str], services_pb2.EndpointSlice] = field(default_factory=dict)
    endpoints: int = 0  # endpoints made so far (each gets its own address)

    @classmethod
    def make(cls, services: int, endpoints: int) -> SyntheticCluster:
        cluster = cls()
        for index in range(services):
            name = f"svc-{index:05d}"
            service = services_pb2.Service()
            service.metadata.namespace, service.metadata.name = NAMESPACE, name
            service.spec.type = "ClusterIP"
            service.spec.cluster_ip = _address(96, index)
            service.spec.ports.add(name="http", port=80, protocol="TCP")
            slice_ = services_pb2.EndpointSlice(address_type="IPv4")
            slice_.metadata.namespace, slice_.metadata.name = NAMESPACE, f"{name}-0"
            slice_.metadata.labels[SERVICE_NAME_LABEL] = name
            slice_.ports.add(name="http", port=8080, protocol="TCP")
            for _ in range(endpoints):
                cluster._add_address(slice_)
            cluster.services[(NAMESPACE, name)] = service
            cluster.slices[(NAMESPACE, slice_.metadata.name)] = slice_
        return cluster

    def _add_address(self, slice_: services_pb2.EndpointSlice) -> None:
        slice_.endpoints.add(addresses=[_address(128, self.endpoints)]).conditions.ready = True
        self.endpoints += 1

    def add_endpoint(self, index: int) -> tuple[tuple[str, str], services_pb2.EndpointSlice,
                                                services_pb2.EndpointSlice]:
        """One more ready endpoint for Service ``index``: (slice key, old slice, new slice)."""
        key = (NAMESPACE, f"svc-{index:05d}-0")
        old = self.slices[key]
        new = services_pb2.EndpointSlice()
        new.CopyFrom(old)
        self._add_address(new)
        self.slices[key] = new
        return key, old, new


@dataclass
class SyncTimes:
    """Seconds: (state, mode) for each sync timed."""

    first_full: tuple[float, float]
    resync: tuple[float, float]
    changes: list[tuple[float, float]]


async def time_syncs(mode_sync: ModeSync, *, services: int, endpoints: int, changes: int,
                     on_change: Callable[[int], None] | None = None) -> SyncTimes:
    """Full, full again, then ``changes`` single-endpoint changes, spread over the Services."""
    cluster = SyntheticCluster.make(services, endpoints)
    tracker = StateTracker(node_name=NODE_NAME)

    async def sync(full: bool) -> tuple[float, float]:
        started = time.perf_counter()
        state = tracker.state(services=cluster.services, slices=cluster.slices, node=None, full=full)
        computed = time.perf_counter()
        await mode_sync(state, full)
        return computed - started, time.perf_counter() - computed

    first = await sync(True)
    again = await sync(True)
    timed = []
    for change in range(changes):
        index = (change * 7919 + 13) % services  # spread over the table, not always the first Service
        key, old, new = cluster.add_endpoint(index)
        tracker.slice_changed(old, new, key=key)
        timed.append(await sync(False))
        if on_change is not None:
            on_change(index)
    return SyncTimes(first, again, timed)
