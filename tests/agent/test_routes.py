"""Routes between nodes' pod networks, kept by each agent from the Node objects.

The policy (``desired_routes``): every other node's pod CIDR via its
InternalIP; not this node, not simulated nodes, not nodes whose address is
this machine's, not an overlapping CIDR. End to end with network namespaces
as two hosts on one LAN, each with a pod bridge and a pod: the pods cannot
reach each other until each host's keeper, watching the real API, routes the
other's pod CIDR; routes the kernel refuses (a gateway off the LAN) are
logged and the rest still applied; a stale Sampan route goes, a route with
another protocol number stays; deleting a Node removes its route.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from agent.routes import ROUTE_PROTOCOL, NetlinkRouteTable, PodRoute, PodRouteKeeper, desired_routes
from control.client import Client
from protos.api.v1 import core_pb2
from tests.support.components import require, require_binary
from tests.support.netns_hosts import NetnsLab


def make_node(name: str, *, pod_cidr: str = "", ip: str = "", labels: dict | None = None) -> core_pb2.Node:
    node = core_pb2.Node(api_version="v1", kind="Node")
    node.metadata.name = name
    node.metadata.labels.update(labels or {})
    if pod_cidr:
        node.spec.pod_cidr = pod_cidr
        node.spec.pod_cidrs.append(pod_cidr)
    if ip:
        node.status.addresses.add(type="InternalIP", address=ip)
    node.status.addresses.add(type="Hostname", address=name)
    return node


def test_every_other_node_is_routed_through_its_internal_ip():
    nodes = [make_node("a", pod_cidr="10.244.1.0/24", ip="10.0.0.1"),
             make_node("b", pod_cidr="10.244.2.0/24", ip="10.0.0.2"),
             make_node("c", pod_cidr="10.244.3.0/24", ip="10.0.0.3")]
    assert desired_routes(nodes, node_name="a") == [PodRoute("10.244.2.0/24", "10.0.0.2", "b"),
                                                    PodRoute("10.244.3.0/24", "10.0.0.3", "c")]


def test_nodes_without_a_cidr_or_address_simulated_or_on_this_machine_are_not_routed():
    nodes = [make_node("a", pod_cidr="10.244.1.0/24", ip="10.0.0.1"),
             make_node("no-cidr", ip="10.0.0.2"),
             make_node("no-ip", pod_cidr="10.244.3.0/24"),
             make_node("hollow-0", pod_cidr="10.244.4.0/24", ip="100.64.0.1", labels={"sampan.io/simulated": "true"}),
             make_node("same-machine", pod_cidr="10.244.5.0/24", ip="10.0.0.1")]
    assert desired_routes(nodes, node_name="a", local_addresses=["10.0.0.1", "127.0.0.1"]) == []


def test_a_cidr_overlapping_this_nodes_or_one_already_routed_is_not_routed():
    nodes = [make_node("a", pod_cidr="10.244.0.0/16", ip="10.0.0.1"),
             make_node("b", pod_cidr="10.244.7.0/24", ip="10.0.0.2"),
             make_node("c", pod_cidr="10.245.0.0/24", ip="10.0.0.3"),
             make_node("d", pod_cidr="10.245.0.128/25", ip="10.0.0.4")]
    assert desired_routes(nodes, node_name="a") == [PodRoute("10.245.0.0/24", "10.0.0.3", "c")]


# ------------------------------------------------------------ end to end, in network namespaces


@pytest.fixture
def lab():
    require(os.geteuid() == 0, "network namespaces need root")
    require_binary("ip", package="iproute2")
    require_binary("busybox", package="busybox-static")
    lab = NetnsLab()
    try:
        yield lab
    finally:
        lab.close()


async def reaches(pod, address: str) -> bool:
    code, _ = await pod.run("busybox", "ping", "-c", "1", "-W", "1", address)
    return code == 0


def sampan_routes(host) -> set[str]:
    """The host's routes with Sampan's protocol number (``ip route`` leaves the filtered-on proto out)."""
    return {line.strip() for line in host.ip("route", "show", "proto", str(ROUTE_PROTOCOL)).splitlines()
            if line.strip()}


async def wait_until(predicate, *, timeout: float = 20.0, what: str, seen=lambda: None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}; seen: {seen()!r}")


async def register(api: Client, node: core_pb2.Node) -> None:
    created = await api.create(node)
    created.status.CopyFrom(node.status)
    await api.update_status(created)


async def test_pods_on_two_hosts_reach_each_other_through_routes_kept_from_the_nodes(api, lab, caplog):
    host_a = lab.host("a", address="10.250.0.2", pod_gateway="10.244.1.1/24")
    host_b = lab.host("b", address="10.250.0.3", pod_gateway="10.244.2.1/24")
    pod_a = lab.pod(host_a, "pa", address="10.244.1.2/24")
    pod_b = lab.pod(host_b, "pb", address="10.244.2.2/24")
    assert not await reaches(pod_a, "10.244.2.2")
    # Someone else's route, and one an earlier run of ours left behind.
    host_a.ip("route", "add", "10.99.0.0/24", "via", "10.250.0.3", "proto", "static")
    host_a.ip("route", "add", "10.98.0.0/24", "via", "10.250.0.3", "proto", str(ROUTE_PROTOCOL))

    await register(api, make_node("node-a", pod_cidr="10.244.1.0/24", ip="10.250.0.2"))
    await register(api, make_node("node-b", pod_cidr="10.244.2.0/24", ip="10.250.0.3"))
    # A node whose address is off the LAN: the kernel refuses its route, the others are still made.
    await register(api, make_node("node-far", pod_cidr="10.244.9.0/24", ip="10.251.0.9"))
    keepers = [PodRouteKeeper(api, node_name=name, table=NetlinkRouteTable(netns=host.name), debounce=0.01)
               for name, host in (("node-a", host_a), ("node-b", host_b))]
    tasks = [asyncio.create_task(keeper.run()) for keeper in keepers]
    try:
        await wait_until(lambda: sampan_routes(host_a) == {"10.244.2.0/24 via 10.250.0.3 dev eth0"}
                         and sampan_routes(host_b) == {"10.244.1.0/24 via 10.250.0.2 dev eth0"},
                         what="each host to route the other's pod CIDR",
                         seen=lambda: (sampan_routes(host_a), sampan_routes(host_b)))
        assert await reaches(pod_a, "10.244.2.2") and await reaches(pod_b, "10.244.1.2")
        assert "10.99.0.0/24 via 10.250.0.3 dev eth0 proto static" in host_a.ip("route", "show")
        assert any("10.244.9.0/24 via 10.251.0.9" in record.getMessage() and "refused" in record.getMessage()
                   for record in caplog.records)

        await api.delete("Node", "node-b")
        await wait_until(lambda: not sampan_routes(host_a), what="node-b's route to go from host a")
        assert not await reaches(pod_a, "10.244.2.2")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
