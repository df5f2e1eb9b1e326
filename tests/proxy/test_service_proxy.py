"""The proxy's core (proxy/service.py) against a real control service: watching, debounced syncs, metrics.

The mode here is ``RecordingMode``, a stand-in at the ProxyMode seam that
records each sync's state and whether it was full (and fails on request):
what is under test is when and with what the core calls a mode, which no
real mode exposes. The real modes are tested on their own and end to end.
Services here have no selector and hand-written EndpointSlices, so the
endpoints controller leaves them alone and each test decides the endpoints.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

import pytest

from control.api.timestamps import format_time
from control.client import Client
from protos.api.v1 import core_pb2, services_pb2
from proxy.metrics import ProxyMetrics
from proxy.service import LAST_CHANGE_TRIGGER_TIME, ServiceProxy
from proxy.state import Backend, ProxyState


class RecordingMode:
    """Records every sync; fails the next ``failures`` of them."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[ProxyState, bool]] = []
        self.failures = 0

    async def sync(self, state: ProxyState, *, full: bool) -> None:
        self.calls.append((state, full))
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the kernel said no")

    async def cleanup(self) -> None:
        pass

    async def close(self) -> None:
        pass

    @property
    def last(self) -> ProxyState:
        return self.calls[-1][0]


def sample(metrics: ProxyMetrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


async def eventually(check: Callable[[], bool], *, timeout: float = 10.0, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def service(name: str = "web", ports: int = 1) -> services_pb2.Service:
    svc = services_pb2.Service(api_version="v1", kind="Service")
    svc.metadata.name, svc.metadata.namespace = name, "default"
    for i in range(ports):
        svc.spec.ports.add(name=f"p{i}", port=80 + i, protocol="TCP")
    return svc


def endpoint_slice(service_name: str, addresses: list[str], *, trigger: float = 0.0) -> services_pb2.EndpointSlice:
    slice_ = services_pb2.EndpointSlice(api_version="discovery.k8s.io/v1", kind="EndpointSlice", address_type="IPv4")
    slice_.metadata.name, slice_.metadata.namespace = f"{service_name}-hand", "default"
    slice_.metadata.labels["kubernetes.io/service-name"] = service_name
    if trigger:
        slice_.metadata.annotations[LAST_CHANGE_TRIGGER_TIME] = format_time(trigger)
    slice_.ports.add(name="p0", port=8080, protocol="TCP")
    for address in addresses:
        slice_.endpoints.add(addresses=[address]).conditions.ready = True
    return slice_


async def set_addresses(api: Client, slice_: services_pb2.EndpointSlice, addresses: list[str]) -> None:
    current = await api.get("EndpointSlice", slice_.metadata.name, namespace="default")
    del current.endpoints[:]
    for address in addresses:
        current.endpoints.add(addresses=[address]).conditions.ready = True
    await api.update(current)


class Running:
    def __init__(self, proxy: ServiceProxy, mode: RecordingMode, metrics: ProxyMetrics) -> None:
        self.proxy, self.mode, self.metrics = proxy, mode, metrics


@pytest.fixture
async def start_proxy(api: Client):
    tasks: list[asyncio.Task] = []

    async def start(*, min_sync_period: float = 0.05, sync_period: float = 30.0, failures: int = 0) -> Running:
        mode, metrics = RecordingMode(), ProxyMetrics()
        mode.failures = failures
        proxy = ServiceProxy(api, mode, node_name="n1", metrics=metrics, min_sync_period=min_sync_period,
                             sync_period=sync_period)
        tasks.append(asyncio.create_task(proxy.run()))
        return Running(proxy, mode, metrics)

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_the_first_sync_is_full_and_holds_what_the_api_already_has(api, start_proxy):
    await api.create(service())
    await api.create(endpoint_slice("web", ["10.244.0.2", "10.244.0.3"]))
    running = await start_proxy()
    await asyncio.wait_for(running.proxy.synced.wait(), 10)
    state, full = running.mode.calls[0]
    assert full
    [web] = state.services
    assert web.backends == (Backend("10.244.0.2", 8080), Backend("10.244.0.3", 8080))
    assert sample(running.metrics, "sampan_proxy_services") == 1
    assert sample(running.metrics, "sampan_proxy_endpoints") == 2


async def test_an_endpoint_change_reaches_the_mode_in_a_sync_that_is_not_full(api, start_proxy):
    await api.create(service())
    slice_ = await api.create(endpoint_slice("web", ["10.244.0.2"]))
    running = await start_proxy()
    await asyncio.wait_for(running.proxy.synced.wait(), 10)
    await set_addresses(api, slice_, ["10.244.0.2", "10.244.0.9"])
    await eventually(lambda: running.mode.calls and len(running.mode.last.services[0].backends) == 2,
                     what="the new backend in a sync")
    assert running.mode.calls[-1][1] is False
    assert sample(running.metrics, "sampan_proxy_network_programming_duration_seconds_count") >= 1


async def test_a_burst_of_changes_is_applied_in_a_few_syncs(api, start_proxy):
    await api.create(service())
    slice_ = await api.create(endpoint_slice("web", []))
    running = await start_proxy(min_sync_period=1.0)
    await asyncio.wait_for(running.proxy.synced.wait(), 10)
    before = len(running.mode.calls)
    for count in range(1, 11):
        await set_addresses(api, slice_, [f"10.244.0.{i}" for i in range(1, count + 1)])
    await eventually(lambda: len(running.mode.last.services[0].backends) == 10, what="all ten backends")
    assert len(running.mode.calls) - before <= 3  # ten changes, at most one sync per second


async def test_everything_is_resynced_in_full_every_sync_period(api, start_proxy):
    running = await start_proxy(sync_period=0.2)
    await eventually(lambda: sum(full for _, full in running.mode.calls) >= 3, what="periodic full syncs")


async def test_a_failed_sync_is_counted_and_retried_in_full(api, start_proxy):
    await api.create(service())
    running = await start_proxy(failures=2)
    await asyncio.wait_for(running.proxy.synced.wait(), 20)
    assert [full for _, full in running.mode.calls[:3]] == [True, True, True]
    assert sample(running.metrics, "sampan_proxy_sync_proxy_rules_errors_total") == 2
    assert sample(running.metrics, "sampan_proxy_sync_proxy_rules_duration_seconds_count") >= 3


async def test_network_programming_latency_starts_at_the_slices_trigger_time(api, start_proxy):
    await api.create(service())
    running = await start_proxy()
    await asyncio.wait_for(running.proxy.synced.wait(), 10)
    await api.create(endpoint_slice("web", ["10.244.0.2"], trigger=time.time() - 30))
    await eventually(lambda: sample(running.metrics, "sampan_proxy_network_programming_duration_seconds_count") >= 1,
                     what="a network programming sample")
    # The annotation says the change happened 30 s ago (its resolution is one second).
    assert sample(running.metrics, "sampan_proxy_network_programming_duration_seconds_sum") >= 29


async def test_node_addresses_come_from_this_proxys_own_node(api, start_proxy):
    for name, address in (("n1", "192.168.7.1"), ("n2", "192.168.7.2")):
        node = core_pb2.Node(api_version="v1", kind="Node")
        node.metadata.name = name
        created = await api.create(node)
        created.status.addresses.add(type="InternalIP", address=address)
        await api.update_status(created)
    running = await start_proxy()
    await eventually(lambda: running.mode.calls and running.mode.last.node_addresses == ("192.168.7.1",),
                     what="n1's address in the state")
