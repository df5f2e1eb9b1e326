"""The userspace proxy mode: asyncio forwarders, for machines where no kernel path is possible.

Nothing here needs root. For each Service port the mode listens, in this
process, on:

- the ClusterIP and port, when that address is on this host. A ClusterIP
  is virtual: no interface holds it unless someone adds it (which needs
  root), so usually the bind fails with EADDRNOTAVAIL. The port is then
  reported (logged once, and kept in ``unreachable``) as not reachable
  through its ClusterIP in this mode, and tried again on full syncs;
- for a NodePort Service, the NodePort on each of the Node's addresses and
  on 127.0.0.1 (ports 30000-32767 need no privilege).

A TCP connection accepted there is forwarded to a ready backend chosen
round robin (ClientIP affinity, when the Service asks for it, sends a
client back to its backend for the affinity timeout); a backend that
refuses or does not answer within ``connect_timeout`` is skipped for the
next. A Service port without backends, or whose backends all fail, resets
the connection. UDP: each client address gets its own session (a
connected socket to one backend), ended after ``udp_idle_timeout`` without
traffic or when the backend answers with an ICMP error (the next datagram
then tries the next backend).

What a forwarder cannot do: the backend sees the proxy's address, not the
client's (so ``externalTrafficPolicy: Local`` makes no difference here and
is not applied), and every byte passes through this process.

A sync opens the listeners the state needs and closes those it no longer
needs; a listener whose Service port stays keeps its socket (its backends
are updated in place) and established connections outlive a backend's
removal, as they do with kernel NAT.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
import time
from dataclasses import dataclass
from typing import Callable

from proxy.modes import ModeOptions
from proxy.state import Backend, ProxyState, ServicePortName, VirtualService

log = logging.getLogger(__name__)

NAME = "userspace"
LOOPBACK = "127.0.0.1"
BUFFER = 65536


@dataclass(frozen=True, order=True)
class ListenAddress:
    address: str
    port: int
    protocol: str  # "TCP" or "UDP"

    def __str__(self) -> str:
        return f"{self.address}:{self.port}/{self.protocol.lower()}"


class Balancer:
    """Round robin over a Service port's backends, with optional ClientIP affinity."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.backends: tuple[Backend, ...] = ()
        self.affinity_timeout = 0
        self._next = 0
        self._affinity: dict[str, tuple[Backend, float]] = {}
        self._clock = clock

    def update(self, backends: tuple[Backend, ...], affinity_timeout: int) -> None:
        self.backends = backends
        self.affinity_timeout = affinity_timeout
        if not affinity_timeout:
            self._affinity.clear()

    def candidates(self, client: str) -> list[Backend]:
        """The backends to try, in order: the client's own (affinity), then the next in turn and the rest."""
        backends = self.backends
        if not backends:
            return []
        start = self._next % len(backends)
        self._next = start + 1
        order = list(backends[start:] + backends[:start])
        remembered = self._affinity.get(client)
        if remembered is not None:
            backend, expires = remembered
            if expires > self._clock() and backend in order:
                order.remove(backend)
                order.insert(0, backend)
            else:
                del self._affinity[client]
        return order

    def remember(self, client: str, backend: Backend) -> None:
        if self.affinity_timeout:
            self._affinity[client] = (backend, self._clock() + self.affinity_timeout)

    def forget(self, client: str) -> None:
        self._affinity.pop(client, None)


class UserspaceMode:
    """A ProxyMode (proxy/modes.py) forwarding in this process; see the module docstring."""

    name = NAME

    def __init__(self, options: ModeOptions, *, connect_timeout: float = 2.0, udp_idle_timeout: float = 30.0) -> None:
        self.connect_timeout = connect_timeout
        self.udp_idle_timeout = udp_idle_timeout
        self._balancers: dict[ServicePortName, Balancer] = {}
        self._listeners: dict[ListenAddress, tuple[ServicePortName, asyncio.AbstractServer | asyncio.BaseTransport]] = {}
        self._connections: set[asyncio.Task] = set()
        self.unreachable: dict[ListenAddress, str] = {}  # listen addresses that could not be opened, and why

    @property
    def listening(self) -> dict[ListenAddress, ServicePortName]:
        return {address: name for address, (name, _) in self._listeners.items()}

    async def sync(self, state: ProxyState, *, full: bool) -> None:
        wanted: dict[ListenAddress, ServicePortName] = {}
        for service in state.services:
            self._balancers.setdefault(service.name, Balancer()).update(service.backends, service.affinity_timeout)
            for address in listen_addresses(service, state.node_addresses):
                wanted[address] = service.name
        for address, (name, listener) in list(self._listeners.items()):
            if wanted.get(address) != name:
                _close_listener(listener)
                del self._listeners[address]
        for name in self._balancers.keys() - set(wanted.values()):
            del self._balancers[name]
        self.unreachable = {address: why for address, why in self.unreachable.items() if address in wanted}
        for address, name in sorted(wanted.items()):
            # An address that could not be opened is tried again on full syncs only: a ClusterIP
            # stays off this host, and a bind attempt per Service per sync would add up.
            if address not in self._listeners and (full or address not in self.unreachable):
                await self._open(address, name)

    async def _open(self, address: ListenAddress, name: ServicePortName) -> None:
        balancer = self._balancers[name]
        try:
            if address.protocol == "TCP":
                listener: asyncio.AbstractServer | asyncio.BaseTransport = await asyncio.start_server(
                    lambda reader, writer: self._accepted(reader, writer, balancer),
                    address.address, address.port, reuse_address=True)
            else:
                listener, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                    lambda: UdpRelay(balancer, idle_timeout=self.udp_idle_timeout),
                    local_addr=(address.address, address.port))
        except OSError as err:
            why = ("the address is not on this host (the userspace mode puts no ClusterIP on an interface: that "
                   "needs root); reach the Service through a NodePort" if err.errno == errno.EADDRNOTAVAIL
                   else str(err))
            if self.unreachable.get(address) != why:
                log.warning("userspace: %s (%s) is not served: %s", address, name, why)
            self.unreachable[address] = why
            return
        self.unreachable.pop(address, None)
        self._listeners[address] = (name, listener)
        log.info("userspace: forwarding %s for %s", address, name)

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, balancer: Balancer) -> None:
        task = asyncio.create_task(forward_tcp(reader, writer, balancer, connect_timeout=self.connect_timeout))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def cleanup(self) -> None:
        await self.close()

    async def close(self) -> None:
        for _, listener in self._listeners.values():
            _close_listener(listener)
        self._listeners.clear()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)


def listen_addresses(service: VirtualService, node_addresses: tuple[str, ...]) -> list[ListenAddress]:
    addresses = [ListenAddress(service.cluster_ip, service.port, service.protocol)]
    if service.node_port:
        for host in dict.fromkeys((*node_addresses, LOOPBACK)):
            addresses.append(ListenAddress(host, service.node_port, service.protocol))
    return addresses


def _close_listener(listener: asyncio.AbstractServer | asyncio.BaseTransport) -> None:
    listener.close()  # a server stops accepting; its open connections go on


# ------------------------------------------------------------ TCP


async def forward_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, balancer: Balancer, *,
                      connect_timeout: float) -> None:
    """Connect the client to the first backend that answers and copy both ways until both sides are done."""
    client = (writer.get_extra_info("peername") or ("",))[0]
    upstream = None
    for backend in balancer.candidates(client):
        try:
            upstream = await asyncio.wait_for(asyncio.open_connection(backend.ip, backend.port), connect_timeout)
        except (OSError, asyncio.TimeoutError) as err:
            log.info("userspace: backend %s:%d failed (%s); trying the next", backend.ip, backend.port,
                     err or "timeout")
            continue
        balancer.remember(client, backend)
        break
    if upstream is None:
        _reset(writer)
        return
    up_reader, up_writer = upstream
    try:
        await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
    finally:
        for side in (writer, up_writer):
            side.close()
        for side in (writer, up_writer):
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await side.wait_closed()


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until EOF, then pass the EOF on (half-close), so request/response protocols finish."""
    try:
        while data := await source.read(BUFFER):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except (ConnectionError, OSError):
        sink.transport.abort()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset: the client sees 'connection refused/reset' at once, not an empty answer."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# ------------------------------------------------------------ UDP


class UdpRelay(asyncio.DatagramProtocol):
    """One UDP listen address: a session (connected socket to one backend) per client address."""

    def __init__(self, balancer: Balancer, *, idle_timeout: float) -> None:
        self._balancer = balancer
        self._idle_timeout = idle_timeout
        self._sessions: dict[tuple, _UdpSession] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, client: tuple) -> None:
        session = self._sessions.get(client)
        if session is None:
            candidates = self._balancer.candidates(client[0])
            if not candidates:
                return
            session = _UdpSession(self, client, candidates[0])
            self._sessions[client] = session
            self._balancer.remember(client[0], candidates[0])
        session.send(data)

    def reply(self, client: tuple, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, client)

    def failed(self, client: tuple) -> None:
        self._balancer.forget(client[0])
        self.end(client)

    def end(self, client: tuple) -> None:
        session = self._sessions.pop(client, None)
        if session is not None:
            session.close()

    def connection_lost(self, exc: Exception | None) -> None:
        for client in list(self._sessions):
            self.end(client)


class _UdpSession(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpRelay, client: tuple, backend: Backend) -> None:
        self._relay = relay
        self._client = client
        self._pending: list[bytes] = []
        self._transport: asyncio.DatagramTransport | None = None
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(relay._idle_timeout, relay.end, client)
        self._opening = asyncio.ensure_future(loop.create_datagram_endpoint(
            lambda: self, remote_addr=(backend.ip, backend.port)))
        self._opening.add_done_callback(self._opened)

    def _opened(self, future: asyncio.Future) -> None:
        if future.cancelled() or future.exception() is not None:
            self._relay.end(self._client)
            return
        for data in self._pending:
            self.send(data)
        self._pending.clear()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def send(self, data: bytes) -> None:
        self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self._relay._idle_timeout, self._relay.end, self._client)
        if self._transport is None:
            self._pending.append(data)
        else:
            self._transport.sendto(data)

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self._relay.reply(self._client, data)

    def error_received(self, exc: Exception) -> None:
        self._relay.failed(self._client)  # ICMP unreachable: the next datagram tries the next backend

    def close(self) -> None:
        self._timer.cancel()
        self._opening.cancel()
        if self._transport is not None:
            self._transport.close()


def create_mode(options: ModeOptions) -> UserspaceMode:
    return UserspaceMode(options)
