"""The ProxyMode contract (proxy/modes.py), one harness run against every mode that can run here.

Each test runs inside a fresh node namespace (tests/proxy/netns.py), on a
thread that entered it: the mode's sockets and its ``nft`` commands are the
node's. Backends are small servers on addresses of the node's loopback
(10.253.0.2-4), answering with their name; clients connect to the
Service's NodePort on the node's address, which every mode serves (the
userspace mode cannot serve ClusterIPs without root, see its own tests).

The contract: a sync makes the node serve exactly the state: every backend
gets connections; a backend taken out gets none; a Service port without
backends refuses; a Service taken out is no longer served; a full sync of
the same state changes nothing; ClientIP affinity keeps a client on one
backend. The ipvs mode needs a kernel with IPVS and is tested in its VM.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from typing import Callable

import pytest

from proxy.modes import ModeOptions, ProxyMode
from proxy.nftables import NftablesMode
from proxy.state import Backend, ProxyState, ServicePortName, VirtualService
from proxy.userspace import UserspaceMode
from tests.proxy.netns import NodeNamespace, run_in

MODES: dict[str, Callable[[], ProxyMode]] = {
    "nftables": lambda: NftablesMode(ModeOptions(node_name="n1")),
    "userspace": lambda: UserspaceMode(ModeOptions(node_name="n1"), connect_timeout=1.0),
}
BACKEND_IPS = ("10.253.0.2", "10.253.0.3", "10.253.0.4")
BACKEND_PORT = 8080
NODE_PORT = 30080
CLUSTER_IP = "10.96.0.10"


@pytest.fixture(params=sorted(MODES))
def mode_name(request) -> str:
    return request.param


@pytest.fixture
def backend_node(node: NodeNamespace) -> NodeNamespace:
    """The node, with the backends' addresses on its loopback (this kernel may lack dummy interfaces)."""
    for address in BACKEND_IPS:
        subprocess.run(["ip", "-n", node.name, "address", "add", f"{address}/32", "dev", "lo"], check=True)
    return node


def web(*backend_ips: str, affinity: int = 0) -> VirtualService:
    return VirtualService(name=ServicePortName("default", "web", "http", "TCP"), cluster_ip=CLUSTER_IP, port=80,
                          protocol="TCP", node_port=NODE_PORT, affinity_timeout=affinity,
                          backends=tuple(Backend(ip, BACKEND_PORT) for ip in backend_ips))


def state(node: NodeNamespace, *services: VirtualService) -> ProxyState:
    return ProxyState(node_name="n1", node_addresses=(node.node_ip,), services=services)


async def start_backends() -> list[asyncio.AbstractServer]:
    servers = []
    for address in BACKEND_IPS:
        async def answer(reader, writer, name=address):
            writer.write(name.encode())
            await writer.drain()
            writer.close()
        servers.append(await asyncio.start_server(answer, address, BACKEND_PORT))
    return servers


async def ask(node: NodeNamespace) -> str:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(node.node_ip, NODE_PORT), 5)
    try:
        return (await asyncio.wait_for(reader.read(), 5)).decode()
    finally:
        writer.close()


async def answers(node: NodeNamespace, count: int = 20) -> Counter:
    return Counter([await ask(node) for _ in range(count)])


def run_contract(node: NodeNamespace, mode_name: str, scenario) -> None:
    """Run scenario(mode) in the node, with the backends serving, and leave nothing behind."""
    async def body() -> None:
        servers = await start_backends()
        mode = MODES[mode_name]()
        try:
            await scenario(mode)
        finally:
            await mode.cleanup()
            await mode.close()
            for server in servers:
                server.close()
    run_in(node, body)


def test_every_backend_gets_connections(backend_node, mode_name):
    async def scenario(mode: ProxyMode) -> None:
        await mode.sync(state(backend_node, web(*BACKEND_IPS)), full=True)
        got = await answers(backend_node, 45)  # a backend left out at random: about 3 * (2/3)**45, 4e-8
        assert set(got) == set(BACKEND_IPS) and sum(got.values()) == 45
    run_contract(backend_node, mode_name, scenario)


def test_a_backend_taken_out_gets_no_more_connections(backend_node, mode_name):
    async def scenario(mode: ProxyMode) -> None:
        await mode.sync(state(backend_node, web(*BACKEND_IPS)), full=True)
        await mode.sync(state(backend_node, web(BACKEND_IPS[0], BACKEND_IPS[2])), full=False)
        assert set(await answers(backend_node)) == {BACKEND_IPS[0], BACKEND_IPS[2]}
    run_contract(backend_node, mode_name, scenario)


def test_a_service_port_without_backends_refuses(backend_node, mode_name):
    async def scenario(mode: ProxyMode) -> None:
        await mode.sync(state(backend_node, web(BACKEND_IPS[0])), full=True)
        await mode.sync(state(backend_node, web()), full=False)
        for _ in range(3):
            with pytest.raises((ConnectionRefusedError, ConnectionResetError)):
                await ask(backend_node)
    run_contract(backend_node, mode_name, scenario)


def test_a_service_taken_out_is_no_longer_served(backend_node, mode_name):
    async def scenario(mode: ProxyMode) -> None:
        await mode.sync(state(backend_node, web(BACKEND_IPS[0])), full=True)
        assert await ask(backend_node) == BACKEND_IPS[0]
        await mode.sync(state(backend_node), full=False)
        with pytest.raises(ConnectionRefusedError):
            await ask(backend_node)
    run_contract(backend_node, mode_name, scenario)


def test_a_full_sync_of_the_same_state_keeps_serving(backend_node, mode_name):
    async def scenario(mode: ProxyMode) -> None:
        desired = state(backend_node, web(*BACKEND_IPS[:2]))
        await mode.sync(desired, full=True)
        await mode.sync(desired, full=True)
        await mode.sync(desired, full=False)
        assert set(await answers(backend_node)) == set(BACKEND_IPS[:2])
    run_contract(backend_node, mode_name, scenario)


def test_client_ip_affinity_keeps_a_client_on_one_backend(backend_node, mode_name):
    async def scenario(mode: ProxyMode) -> None:
        await mode.sync(state(backend_node, web(*BACKEND_IPS, affinity=60)), full=True)
        assert len(await answers(backend_node)) == 1
    run_contract(backend_node, mode_name, scenario)
