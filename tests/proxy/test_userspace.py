"""The userspace mode's forwarders (proxy/userspace.py) with real sockets, no root needed.

Backends are small servers on loopback that answer with their name; the
virtual services' ClusterIPs are loopback addresses (127.0.0.0/8 is all
local), except where the point is an address the host does not hold.
Covers round robin, skipping a dead backend, resetting when there is no
backend, ClientIP affinity, updating backends without reopening the
listener, closing a removed Service's listener, NodePorts, UDP, and a
ClusterIP the host does not hold being reported as unreachable.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from typing import AsyncIterator

import pytest

from proxy.modes import ModeOptions
from proxy.state import Backend, ProxyState, ServicePortName, VirtualService
from proxy.userspace import ListenAddress, UserspaceMode
from tests.support.control import free_port

CLUSTER_IP = "127.0.0.7"


class Backends:
    """Named TCP and UDP servers on 127.0.0.1 answering their name."""

    def __init__(self) -> None:
        self.servers: list[asyncio.AbstractServer] = []
        self.transports: list[asyncio.BaseTransport] = []
        self.ports: dict[str, int] = {}

    async def tcp(self, name: str) -> Backend:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(name.encode())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        self.servers.append(server)
        return Backend("127.0.0.1", server.sockets[0].getsockname()[1])

    async def udp(self, name: str) -> Backend:
        class Answer(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.transport = transport

            def datagram_received(self, data, addr):
                self.transport.sendto(name.encode() + b":" + data, addr)

        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            Answer, local_addr=("127.0.0.1", 0))
        self.transports.append(transport)
        return Backend("127.0.0.1", transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        for server in self.servers:
            server.close()
        for transport in self.transports:
            transport.close()


@pytest.fixture
async def backends() -> AsyncIterator[Backends]:
    made = Backends()
    yield made
    made.close()


@pytest.fixture
async def mode() -> AsyncIterator[UserspaceMode]:
    made = UserspaceMode(ModeOptions(node_name="n1"), connect_timeout=1.0)
    yield made
    await made.close()


def virtual(*backends: Backend, port: int, ip: str = CLUSTER_IP, protocol: str = "TCP", node_port: int = 0,
            affinity: int = 0, name: str = "web") -> VirtualService:
    return VirtualService(name=ServicePortName("default", name, "http", protocol), cluster_ip=ip, port=port,
                          protocol=protocol, node_port=node_port, backends=backends, affinity_timeout=affinity)


def state(*services: VirtualService) -> ProxyState:
    return ProxyState(node_name="n1", node_addresses=("127.0.0.1",), services=services)


async def ask(host: str, port: int) -> str:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        return (await asyncio.wait_for(reader.read(), 5)).decode()
    finally:
        writer.close()


async def answers(host: str, port: int, count: int) -> list[str]:
    return [await ask(host, port) for _ in range(count)]


async def test_connections_go_round_robin_over_the_backends(mode, backends):
    port = free_port()
    await mode.sync(state(virtual(await backends.tcp("a"), await backends.tcp("b"), port=port)), full=True)
    got = await answers(CLUSTER_IP, port, 6)
    assert Counter(got) == {"a": 3, "b": 3}
    assert got[0] != got[1]


async def test_a_dead_backend_is_skipped_for_the_next(mode, backends):
    dead = Backend("127.0.0.1", free_port())  # nothing listens there
    port = free_port()
    await mode.sync(state(virtual(dead, await backends.tcp("alive"), port=port)), full=True)
    assert await answers(CLUSTER_IP, port, 4) == ["alive"] * 4


async def test_a_service_without_backends_resets_connections(mode):
    port = free_port()
    await mode.sync(state(virtual(port=port)), full=True)
    for _ in range(3):
        with pytest.raises(ConnectionResetError):
            await ask(CLUSTER_IP, port)


async def test_client_ip_affinity_keeps_a_client_on_one_backend(mode, backends):
    port = free_port()
    await mode.sync(state(virtual(await backends.tcp("a"), await backends.tcp("b"), port=port, affinity=60)),
                    full=True)
    assert len(set(await answers(CLUSTER_IP, port, 6))) == 1


async def test_new_backends_are_used_without_reopening_the_listener(mode, backends):
    port = free_port()
    a = await backends.tcp("a")
    await mode.sync(state(virtual(a, port=port)), full=True)
    listening = dict(mode.listening)
    await mode.sync(state(virtual(await backends.tcp("c"), port=port)), full=False)
    assert mode.listening == listening
    assert await answers(CLUSTER_IP, port, 3) == ["c"] * 3


async def test_a_removed_service_stops_listening(mode, backends):
    port = free_port()
    await mode.sync(state(virtual(await backends.tcp("a"), port=port)), full=True)
    await mode.sync(state(), full=False)
    assert mode.listening == {}
    with pytest.raises(ConnectionRefusedError):
        await ask(CLUSTER_IP, port)


async def test_a_node_port_answers_on_the_node_addresses_and_loopback(mode, backends):
    node_port = free_port()
    await mode.sync(state(virtual(await backends.tcp("a"), port=free_port(), node_port=node_port)), full=True)
    assert await ask("127.0.0.1", node_port) == "a"
    assert ListenAddress("127.0.0.1", node_port, "TCP") in mode.listening


async def test_a_cluster_ip_the_host_does_not_hold_is_reported_unreachable(mode, backends, caplog):
    node_port = free_port()
    await mode.sync(state(virtual(await backends.tcp("a"), ip="10.96.0.10", port=80, node_port=node_port)),
                    full=True)
    why = mode.unreachable[ListenAddress("10.96.0.10", 80, "TCP")]
    assert "not on this host" in why and "needs root" in why
    assert "10.96.0.10:80/tcp" in caplog.text and "not served" in caplog.text
    assert await ask("127.0.0.1", node_port) == "a"  # the NodePort still serves


async def test_udp_datagrams_reach_a_backend_and_its_answers_come_back(mode, backends):
    port = free_port()
    await mode.sync(state(virtual(await backends.udp("a"), await backends.udp("b"), port=port, protocol="UDP")),
                    full=True)
    seen = []
    for _ in range(2):  # two clients, two sessions: round robin
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            client.sendto(b"ping", (CLUSTER_IP, port))
            data = await asyncio.to_thread(client.recv, 1024)
            seen.append(data.decode())
    assert sorted(seen) == ["a:ping", "b:ping"]
