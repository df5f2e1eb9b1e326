"""The DNS server: one address, UDP and TCP, answering from the zone or forwarding.

``DNSServer.answer(wire, tcp=...)`` is the whole protocol, transport aside:

- a message that does not parse gets FORMERR (a header too short to carry
  an id gets nothing); an opcode other than QUERY gets NOTIMP; a query with
  other than one question, FORMERR; a class other than IN, REFUSED;
- a name the zone holds gets the zone's answer, authoritative (AA);
- any other name goes to the upstream resolvers (RA is set when there are
  some): their answer as they gave it (with RA), or SERVFAIL when none
  answered; with no upstream at all, REFUSED.

A UDP answer larger than the client can take (512 bytes, or its EDNS
payload size) is cut to what fits and marked truncated (TC), so the client
asks again over TCP, where messages carry their two-byte length and a
connection may ask many questions (it is closed after ``idle_timeout``
seconds without one).

``start(host, port)`` binds UDP first and TCP on the same port (port 0: a
free one, the same for both), so one address serves both transports.
"""

from __future__ import annotations

import asyncio
import logging
import struct

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass

from control.dns.upstream import Forwarder
from control.dns.zone import ClusterZone

log = logging.getLogger(__name__)

UDP_DEFAULT_PAYLOAD = 512
TCP_MAX_MESSAGE = 65535
DEFAULT_IDLE_TIMEOUT_SECONDS = 10.0


class DNSServer:
    """Answers DNS queries for one cluster zone; see the module docstring."""

    def __init__(self, zone: ClusterZone, forwarder: Forwarder, *,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT_SECONDS) -> None:
        self.zone = zone
        self.forwarder = forwarder
        self.idle_timeout = idle_timeout
        self.host = ""
        self.port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._pending: set[asyncio.Task] = set()

    # ------------------------------------------------------------ the protocol

    async def answer(self, wire: bytes, *, tcp: bool) -> bytes | None:
        """The answer to one query message, or None when there is nothing to answer (no usable header)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.message.ShortHeader:
            return None
        except dns.exception.DNSException:
            return _format_error(wire)
        response = await self._respond(query, tcp=tcp)
        limit = TCP_MAX_MESSAGE if tcp else max(UDP_DEFAULT_PAYLOAD, query.payload if query.edns >= 0 else 0)
        return response.to_wire(max_size=limit, prefer_truncation=True)

    async def _respond(self, query: dns.message.Message, *, tcp: bool) -> dns.message.Message:
        recursion = bool(self.forwarder.servers)
        response = dns.message.make_response(query, recursion_available=recursion)
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        if question.rdclass != dns.rdataclass.IN:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        found = self.zone.lookup(question.name, question.rdtype)
        if found is not None:
            response.flags |= dns.flags.AA
            response.set_rcode(found.rcode)
            response.answer.extend(found.answer)
            response.authority.extend(found.authority)
            response.additional.extend(found.additional)
            return response
        if not recursion:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        upstream = await self.forwarder.forward(query, tcp=tcp)
        if upstream is None:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        upstream.flags |= dns.flags.RA  # recursion is what this server offered, whoever answered
        return upstream

    # ------------------------------------------------------------ transports

    async def start(self, host: str, port: int) -> int:
        """Serve on host:port over UDP and TCP; returns the port (a free one for 0)."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _UDPProtocol(self), local_addr=(host, port))
        try:
            bound_port = transport.get_extra_info("sockname")[1]
            self._tcp = await asyncio.start_server(self._serve_connection, host, bound_port)
        except BaseException:
            transport.close()
            raise
        self._udp = transport
        self.host, self.port = host, bound_port
        log.info("cluster DNS for %s serving on %s:%d (UDP and TCP); upstream: %s", self.zone.origin, host,
                 bound_port, ", ".join(self.forwarder.servers) or "none (REFUSED outside the cluster domain)")
        return bound_port

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
            self._tcp = None
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)

    def _track(self, task: asyncio.Task) -> None:
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _reply_udp(self, wire: bytes, peer: tuple) -> None:
        try:
            reply = await self.answer(wire, tcp=False)
        except Exception:
            log.exception("answering a UDP query from %s failed", peer)
            return
        if reply is not None and self._udp is not None:
            self._udp.sendto(reply, peer)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._track(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while True:
                try:
                    header = await asyncio.wait_for(reader.readexactly(2), self.idle_timeout)
                    (length,) = struct.unpack("!H", header)
                    wire = await asyncio.wait_for(reader.readexactly(length), self.idle_timeout)
                except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
                    return
                reply = await self.answer(wire, tcp=True)
                if reply is None:
                    return
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except ConnectionError:
            return
        except Exception:
            log.exception("answering a TCP query failed")
        finally:
            writer.close()


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer) -> None:
        self._server = server

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self._server._track(asyncio.ensure_future(self._server._reply_udp(data, addr)))

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)


def _format_error(wire: bytes) -> bytes | None:
    """FORMERR for a message that does not parse, echoing its id."""
    if len(wire) < 2:
        return None
    response = dns.message.Message(id=struct.unpack("!H", wire[:2])[0])
    response.flags = dns.flags.QR
    response.set_rcode(dns.rcode.FORMERR)
    return response.to_wire()
