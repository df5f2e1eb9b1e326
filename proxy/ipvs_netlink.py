"""IPVS's generic netlink family, packed and parsed with ``struct``, many messages per write.

The IPVS mode may have to add 50,000 real servers in one sync. pyroute2's
message objects take about 250 µs each to build and encode, and its
blocking sockets wait for each message's answer: seconds for a large
table. IPVS's messages are small and fixed (a service key, a few
integers), so ``IPVSChannel`` packs them itself: pyroute2 only finds the
family's number (``GenericNetlinkSocket.bind``), and the messages go out
on a plain netlink socket in writes of up to ``WRITE_BYTES``, each asking
for an acknowledgement (NLM_F_ACK); after each write the acknowledgements
are read back, and every refusal is reported with what it refused.

Reading (``dump``) asks for a listing and parses each answer's attributes
into {attribute number: raw bytes}; the caller decodes the few it needs
(``u16``, ``u32``, ``port``, ``address``). The numbers are the kernel's
(include/uapi/linux/ip_vs.h).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass

# netlink
NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10  # acknowledgements without a copy of the request
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLA_F_NESTED = 0x8000
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_GENL = struct.Struct("=BBH")  # genlmsghdr: command, version, reserved
_ATTR = struct.Struct("=HH")  # nlattr: length, type

# IPVS (include/uapi/linux/ip_vs.h)
GENL_NAME, GENL_VERSION = "IPVS", 1
CMD_NEW_SERVICE, CMD_SET_SERVICE, CMD_DEL_SERVICE, CMD_GET_SERVICE = 1, 2, 3, 4
CMD_NEW_DEST, CMD_SET_DEST, CMD_DEL_DEST, CMD_GET_DEST = 5, 6, 7, 8
CMD_ATTR_SERVICE, CMD_ATTR_DEST = 1, 2
SVC_AF, SVC_PROTOCOL, SVC_ADDR, SVC_PORT, SVC_FWMARK = 1, 2, 3, 4, 5
SVC_SCHED_NAME, SVC_FLAGS, SVC_TIMEOUT, SVC_NETMASK = 6, 7, 8, 9
DEST_ADDR, DEST_PORT, DEST_FWD_METHOD, DEST_WEIGHT, DEST_U_THRESH, DEST_L_THRESH = 1, 2, 3, 4, 5, 6
DEST_ADDR_FAMILY = 11

# Each acknowledgement takes about 1 KiB of the socket's receive buffer (its skb, not its
# 36 bytes): a write of WRITE_BYTES (some 140 messages) must leave room for all of them.
WRITE_BYTES = 16 * 1024
RECEIVE_BUFFER = 1 << 20
SO_RCVBUFFORCE = 33  # as root: past net.core.rmem_max
READ_BYTES = 1 << 20


class NetlinkRefused(Exception):
    """The kernel refused one or more messages; ``errors`` holds what each refused message did, and why."""

    def __init__(self, errors: list[tuple[str, int]]) -> None:
        self.errors = errors
        shown = "; ".join(f"{what}: {os.strerror(code)}" for what, code in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(shown + more)


# ------------------------------------------------------------ attributes


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    length = _ATTR.size + len(payload)
    return _ATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def nested(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def u16(value: int) -> bytes:
    return struct.pack("=H", value)


def u32(value: int) -> bytes:
    return struct.pack("=I", value)


def port(value: int) -> bytes:
    return struct.pack("!H", value)


def address(text: str) -> bytes:
    return socket.inet_aton(text)


def parse_attrs(data: bytes, offset: int = 0, end: int | None = None) -> dict[int, bytes]:
    """{attribute type (flags cleared): payload} of the attributes in data[offset:end]."""
    end = len(data) if end is None else end
    found: dict[int, bytes] = {}
    while offset + _ATTR.size <= end:
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size:
            break
        found[kind & 0x3FFF] = data[offset + _ATTR.size:offset + length]
        offset += (length + 3) & ~3
    return found


def read_u16(payload: bytes) -> int:
    return struct.unpack_from("=H", payload)[0]


def read_u32(payload: bytes) -> int:
    return struct.unpack_from("=I", payload)[0]


def read_port(payload: bytes) -> int:
    return struct.unpack_from("!H", payload)[0]


def read_address(payload: bytes) -> str:
    return socket.inet_ntoa(payload[:4])  # the kernel sends a 16-byte union; IPv4 is its start


# ------------------------------------------------------------ the channel


@dataclass
class _Queued:
    data: bytes
    what: str


class IPVSChannel:
    """A netlink socket speaking IPVS: ``queue`` changes, ``flush`` them, ``dump`` listings. Blocking."""

    def __init__(self) -> None:
        self.family = ipvs_family()
        self._socket = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        self._socket.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except PermissionError:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self._socket.bind((0, 0))
        self._sequence = 0
        self._queued: list[_Queued] = []

    def close(self) -> None:
        self._socket.close()

    def _message(self, command: int, payload: bytes, flags: int) -> tuple[int, bytes]:
        self._sequence = (self._sequence + 1) & 0xFFFFFFFF
        body = _GENL.pack(command, GENL_VERSION, 0) + payload
        return self._sequence, _HEADER.pack(_HEADER.size + len(body), self.family, flags, self._sequence, 0) + body

    def queue(self, command: int, payload: bytes, *, what: str) -> None:
        """Add a change to the next ``flush``; ``what`` names it in errors."""
        _sequence, data = self._message(command, payload, NLM_F_REQUEST | NLM_F_ACK)
        self._queued.append(_Queued(data, what))

    def flush(self) -> None:
        """Send every queued change; raise NetlinkRefused listing those the kernel refused."""
        queued, self._queued = self._queued, []
        errors: list[tuple[str, int]] = []
        start = 0
        while start < len(queued):
            end, size = start, 0
            while end < len(queued) and (end == start or size + len(queued[end].data) <= WRITE_BYTES):
                size += len(queued[end].data)
                end += 1
            batch = queued[start:end]
            self._socket.send(b"".join(item.data for item in batch))
            first = _HEADER.unpack_from(batch[0].data)[3]
            for index, code in self._acknowledgements(first, len(batch)):
                if code:
                    errors.append((batch[index].what, code))
            start = end
        if errors:
            raise NetlinkRefused(errors)

    def _acknowledgements(self, first: int, count: int):
        """(index in the write, errno or 0) of the acknowledgements of ``count`` messages from sequence ``first``."""
        remaining = count
        while remaining:
            data = self._socket.recv(READ_BYTES)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _flags, sequence, _port = _HEADER.unpack_from(data, offset)
                index = (sequence - first) & 0xFFFFFFFF
                if kind == NLMSG_ERROR and index < count:
                    yield index, -struct.unpack_from("=i", data, offset + _HEADER.size)[0]
                    remaining -= 1
                offset += (length + 3) & ~3

    def dump(self, command: int, payload: bytes = b"") -> list[dict[int, bytes]]:
        """The answers to a listing request, each as its top-level attributes."""
        if self._queued:
            self.flush()  # a listing sees every change made before it
        sequence, data = self._message(command, payload, NLM_F_REQUEST | NLM_F_DUMP)
        self._socket.send(data)
        answers: list[dict[int, bytes]] = []
        while True:
            data = self._socket.recv(READ_BYTES)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _flags, answer_to, _port = _HEADER.unpack_from(data, offset)
                if answer_to == sequence:
                    if kind == NLMSG_DONE:
                        return answers
                    if kind == NLMSG_ERROR:
                        code = -struct.unpack_from("=i", data, offset + _HEADER.size)[0]
                        raise NetlinkRefused([(f"listing (IPVS command {command})", code or errno.EIO)])
                    start = offset + _HEADER.size + _GENL.size
                    answers.append(parse_attrs(data, start, offset + length))
                offset += (length + 3) & ~3


def ipvs_family() -> int:
    """The number the kernel gave IPVS's generic netlink family (pyroute2 asks); raises if it has none."""
    from pyroute2.netlink.generic import GenericNetlinkSocket
    from pyroute2.netlink.generic.ipvs import ipvsmsg

    resolver = GenericNetlinkSocket()
    try:
        resolver.bind(GENL_NAME, ipvsmsg)
        return resolver.prid
    finally:
        resolver.close()
