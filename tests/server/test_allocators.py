"""The allocators of control/server/allocators.py, on every store backend (SQLite and a real etcd).

Covers: the ranges' arithmetic (network and broadcast addresses left out,
the static band, the first address never picked at random, bad flags
refused with the flag's name); random picks fill the upper band before the
static band, then the range is full, with Kubernetes' message through the
API; allocators sharing one store (two control replicas, or one after a
restart) never hand out one value twice, even when racing; a release frees
only the holder's record; and repair: a leaked record (a crash between the
record and the Service write) is released once older than the grace
period, not before; a record missing for a stored Service is restored; a
value two Services claim is reported on both, with an Event.

The store is the one of the ``any_service`` control service, so records
are checked against Services written through its API; tests that need a
small range or a later clock make their own ServiceAllocations over that
store, as a second replica or a restarted one would.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time

import pytest

from control.api import errors, kinds
from control.api.manifest import to_message
from control.server.allocators import (
    DEFAULT_LEAK_GRACE_SECONDS, Holder, IPRange, PortRange, RangeFull, ServiceAllocations,
)
from control.server.resources import ResourceService

SMALL_CIDR = "10.100.0.0/27"  # 30 addresses: 16 in the static band, 14 above; .1 never picked at random


def holder(name: str) -> Holder:
    return Holder("default", name, f"uid-{name}")


def service(name: str, **spec) -> object:
    spec.setdefault("ports", [{"port": 80}])
    return to_message({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
                       "spec": {"selector": {"app": name}, **spec}})


# ------------------------------------------------------------ ranges


def test_an_ip_range_leaves_out_network_and_broadcast_and_keeps_a_static_band():
    values = IPRange(SMALL_CIDR)
    assert values.size == 30
    assert (values.value_at(0), values.value_at(29)) == ("10.100.0.1", "10.100.0.30")
    assert values.index_of("10.100.0.0") is None and values.index_of("10.100.0.31") is None
    assert values.static_size == 16 and values.reserved == {0}
    assert IPRange("10.96.0.0/12").static_size == 256


def test_a_port_range_has_a_static_band_of_its_own():
    values = PortRange("30000-32767")
    assert (values.size, values.static_size) == (2768, 86)
    assert values.index_of(29999) is None and values.index_of(32767) == 2767


@pytest.mark.parametrize("flag, make, text", [
    ("--service-cidr", IPRange, "10.96.0.1/12"),
    ("--service-cidr", IPRange, "fd00::/108"),
    ("--service-node-port-range", PortRange, "30000"),
    ("--service-node-port-range", PortRange, "high-low"),
])
def test_a_bad_range_is_refused_naming_its_flag(flag, make, text):
    with pytest.raises(ValueError) as refused:
        make(text)
    assert str(refused.value).startswith(f"{flag}: Invalid value: {text!r}")


# ------------------------------------------------------------ allocation


async def test_random_picks_fill_the_upper_band_then_the_static_band_then_the_range_is_full(any_service):
    allocations = ServiceAllocations(any_service._store, service_cidr=SMALL_CIDR)
    values = allocations.ip_range

    picked = [await allocations.ips.allocate_next(holder(f"s{i}")) for i in range(29)]

    indexes = [values.index_of(ip) for ip in picked]
    assert sorted(indexes[:14]) == list(range(16, 30))  # the upper band first
    assert sorted(indexes[14:]) == list(range(1, 16))  # then the static band, never its first address
    with pytest.raises(RangeFull):
        await allocations.ips.allocate_next(holder("one-too-many"))
    await allocations.ips.allocate("10.100.0.1", holder("kubernetes"))  # still there for the asking


async def test_allocators_sharing_a_store_never_give_a_value_twice(any_service):
    # Two replicas (or one before and one after a restart) over one store, racing for a small range.
    first = ServiceAllocations(any_service._store, service_cidr=SMALL_CIDR)
    second = ServiceAllocations(any_service._store, service_cidr=SMALL_CIDR)

    picked = await asyncio.gather(*(
        (first if i % 2 else second).ips.allocate_next(holder(f"s{i}")) for i in range(29)))

    assert len(set(picked)) == 29
    assert {record.value for record in await first.ips.records()} == set(picked)
    with pytest.raises(RangeFull):
        await second.ips.allocate_next(holder("late"))


async def test_a_full_range_is_refused_through_the_api_with_kubernetes_message(any_service, any_api):
    allocations = ServiceAllocations(any_service._store, service_cidr=SMALL_CIDR)
    resources = ResourceService(any_service._store, cache_watches=False, allocations=allocations)
    for i in range(29):
        await resources.create(service(f"s{i}"))

    with pytest.raises(errors.InternalError) as refused:
        await resources.create(service("late"))

    assert str(refused.value) == "Internal error occurred: failed to allocate a serviceIP: range is full"
    items, _ = await resources.list(kinds.by_kind("Service"))
    assert len({item.spec.cluster_ip for item in items}) == 29


async def test_a_release_frees_only_the_holders_record(any_service):
    allocations = ServiceAllocations(any_service._store, service_cidr=SMALL_CIDR)
    await allocations.ports.allocate(30080, holder("web"))

    assert not await allocations.ports.release(30080, uid="uid-someone-else")
    assert await allocations.ports.release(30080, uid="uid-web")
    await allocations.ports.allocate(30080, holder("next"))


# ------------------------------------------------------------ repair


async def test_a_record_leaked_by_a_crash_is_released_once_older_than_the_grace(any_service, any_api):
    # A create that took its IP, then died before writing the Service.
    store = any_service._store
    crashed = ServiceAllocations(store)
    await crashed.ips.allocate("10.96.0.60", holder("never-written"))

    right_after = ServiceAllocations(store)
    report = await right_after.repair()
    assert report.released == [] and [r.value for r in await right_after.ips.records()] == ["10.96.0.60"]

    later = ServiceAllocations(store, clock=lambda: time.time() + DEFAULT_LEAK_GRACE_SECONDS + 1)
    report = await later.repair()

    assert report.released == ["clusterips 10.96.0.60: leaked by default/never-written, released"]
    created = await any_api.create(service("web", clusterIP="10.96.0.60"))
    assert created.spec.cluster_ip == "10.96.0.60"


async def test_a_missing_record_is_restored_for_the_service_that_holds_it(any_service, any_api):
    web = await any_api.create(service("web", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))
    store = any_service._store
    await store.delete(f"/registry/allocations/clusterips/{web.spec.cluster_ip}")
    await store.delete("/registry/allocations/nodeports/30080")
    events = []

    async def note(svc, reason, message):
        events.append((svc.metadata.name, reason, message))

    report = await any_service._resources.allocations.repair(report=note)

    assert sorted(report.restored) == sorted([
        f"clusterips {web.spec.cluster_ip}: record restored for default/web",
        "nodeports 30080: record restored for default/web"])
    assert ("web", "PortNotAllocated", "Port 30080 is not allocated; repairing") in events
    with pytest.raises(errors.InvalidError, match="provided port is already allocated"):
        await any_api.create(service("other", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))


async def test_a_value_two_services_claim_is_reported(any_service, any_api):
    web = await any_api.create(service("web", clusterIP="10.96.0.70"))
    # A second Service holding the same IP, as only a damaged store could have it: written past the API.
    copy = to_message({"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": "copy", "namespace": "default", "uid": "uid-copy",
                                    "creationTimestamp": "2099-01-01T00:00:00Z"},
                       "spec": {"clusterIP": "10.96.0.70", "clusterIPs": ["10.96.0.70"], "ports": [{"port": 80}]}})
    kind = kinds.by_kind("Service")
    await any_service._store.create(kind.storage_key(namespace="default", name="copy"), ResourceService.encode(copy))

    await any_service._resources.allocations.repair(report=any_service._report_allocation_problem)
    report = await any_service._resources.allocations.repair()

    assert report.shared == ["clusterips 10.96.0.70: claimed by default/web, default/copy"]
    [record] = await any_service._resources.allocations.ips.records()
    assert record.holder.uid == web.metadata.uid  # the older Service keeps the record
    events, _ = await any_api.list("Event", namespace="default", field_selector="involvedObject.name=copy")
    assert [(e.type, e.reason) for e in events] == [("Warning", "ClusterIPAlreadyAllocated")]


async def test_the_control_service_repairs_at_start(any_service, any_api):
    web = await any_api.create(service("web"))
    await any_service._store.delete(f"/registry/allocations/clusterips/{web.spec.cluster_ip}")
    await any_service.stop()

    # A restart on the same store (the fixture's service is stopped; a new one takes its place).
    from control.service import ControlConfig, ControlService
    restarted = ControlService(ControlConfig(store_url=any_service.config.store_url, listen="127.0.0.1:0",
                                             metrics_listen="", shutdown_grace=0.5))
    await restarted.start()
    try:
        [record] = await restarted._resources.allocations.ips.records()
        assert (record.value, record.holder.name) == (web.spec.cluster_ip, "web")
        assert ipaddress.ip_address(record.value) in ipaddress.ip_network("10.96.0.0/12")
    finally:
        await restarted.stop()
