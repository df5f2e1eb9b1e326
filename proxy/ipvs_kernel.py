"""What the IPVS proxy mode (proxy/ipvs.py) reads and writes in the kernel, and the real implementation.

``VirtualKey``, ``VirtualServer`` and ``RealServer`` are IPVS's own
entries as plain frozen values. ``IPVSKernel`` is the seam: every kernel
call the mode makes (IPVS virtual and real servers, the dummy interface
and its addresses, the host's addresses, the nftables table, sysctls), so
the mode's logic can be tested against a fake where the kernel has no
IPVS. ``NetlinkKernel`` is the real one: IPVS through its generic netlink
family (proxy/ipvs_netlink.py: one message per change, sent many to a
write when ``commit`` is called, no subprocess per rule), the interface
through rtnetlink with pyroute2, nftables through one ``nft -f -`` per
transaction. Its calls block, and pyroute2's must not be made from a
running event loop: the mode calls them from a worker thread.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import subprocess
from pathlib import Path
from typing import Callable, NamedTuple, Protocol, TypeVar

from proxy import ipvs_netlink as nl
from proxy.ipvs_netlink import IPVSChannel

T = TypeVar("T")

INTERFACE = "sampan-ipvs0"
TABLE = "sampan-ipvs"
TABLE_REF = f"ip {TABLE}"
DEFAULT_SCHEDULER = "rr"
FORWARD_MASQUERADE = 0  # IP_VS_CONN_F_MASQ
PERSISTENT = 0x1  # IP_VS_SVC_F_PERSISTENT
HOST_MASK = "255.255.255.255"  # persistence per client address
PROTOCOL_NUMBERS = {"TCP": socket.IPPROTO_TCP, "UDP": socket.IPPROTO_UDP, "SCTP": 132}
PROTOCOL_NAMES = {number: name for name, number in PROTOCOL_NUMBERS.items()}
NFT_TIMEOUT = 60.0


class IPVSError(Exception):
    """The kernel refused a change; the message says which and why."""


# ------------------------------------------------------------ values
# Named tuples rather than dataclasses: a sync makes one per real server of
# every Service, and tuples are built, hashed and compared in C.


class VirtualKey(NamedTuple):
    """What identifies an IPVS virtual server: protocol, address, port."""

    protocol: str  # "TCP", "UDP" or "SCTP"
    address: str
    port: int

    def __str__(self) -> str:
        return f"{self.protocol} {self.address}:{self.port}"


class RealServer(NamedTuple):
    """One real server of a virtual server; (address, port) identify it."""

    address: str
    port: int
    weight: int = 1
    forward: int = FORWARD_MASQUERADE

    @property
    def endpoint(self) -> tuple[str, int]:
        return (self.address, self.port)

    def __str__(self) -> str:
        return f"{self.address}:{self.port}"


class VirtualServer(NamedTuple):
    key: VirtualKey
    scheduler: str = DEFAULT_SCHEDULER
    persistence: int = 0  # seconds of ClientIP persistence; 0: none
    real_servers: frozenset[RealServer] = frozenset()

    def same_settings(self, other: VirtualServer) -> bool:
        return self.scheduler == other.scheduler and self.persistence == other.persistence


# ------------------------------------------------------------ the kernel seam


class IPVSKernel(Protocol):
    """Everything the IPVS mode reads and writes in the kernel.

    ``NetlinkKernel`` is the real one. Methods block; the mode calls them
    from its one worker thread, never two at once. Each raises IPVSError
    (or OSError) when the kernel refuses; changes to virtual and real
    servers may wait for ``commit``, which reports their refusals.
    """

    def ensure_interface(self) -> None:
        """Create sampan-ipvs0 (a dummy interface) if it is missing, and set it up."""

    def delete_interface(self) -> None:
        """Remove sampan-ipvs0 and its addresses, if it exists."""

    def interface_addresses(self) -> set[str]:
        """The IPv4 addresses on sampan-ipvs0 (none when it does not exist)."""

    def add_interface_address(self, address: str) -> None: ...

    def delete_interface_address(self, address: str) -> None: ...

    def local_addresses(self) -> set[str]:
        """This host's IPv4 addresses outside sampan-ipvs0 and loopback."""

    def virtual_servers(self) -> dict[VirtualKey, VirtualServer]:
        """Every IPv4 virtual server the kernel has, with its real servers (Sampan's or not)."""

    def add_virtual_server(self, server: VirtualServer) -> None:
        """Add the virtual server (its real servers are added separately)."""

    def update_virtual_server(self, server: VirtualServer) -> None: ...

    def delete_virtual_server(self, key: VirtualKey) -> None: ...

    def add_real_server(self, key: VirtualKey, real: RealServer) -> None: ...

    def update_real_server(self, key: VirtualKey, real: RealServer) -> None: ...

    def delete_real_server(self, key: VirtualKey, real: RealServer) -> None: ...

    def commit(self) -> None:
        """Make the virtual and real server changes asked for since the last commit
        (an implementation may queue them); raise IPVSError naming those refused."""

    def apply_nftables(self, script: str) -> None:
        """Run ``nft -f -`` with ``script``: one atomic transaction."""

    def delete_nftables_table(self) -> None:
        """Delete the table ip sampan-ipvs if it exists."""

    def set_sysctl(self, name: str, value: str) -> None: ...

    def close(self) -> None: ...


class NetlinkKernel:
    """IPVSKernel on the real kernel: IPVS through ``IPVSChannel`` (proxy/ipvs_netlink.py),
    the interface through pyroute2's IPRoute (rtnetlink)."""

    def __init__(self, *, nft: tuple[str, ...] = ("nft",)) -> None:
        from pyroute2 import IPRoute

        self._nft = nft
        self._ip = IPRoute()
        self._channel: IPVSChannel | None = None  # opened at first use: the interface and table need no IPVS

    @property
    def _ipvs(self) -> IPVSChannel:
        if self._channel is None:
            from pyroute2 import NetlinkError

            try:
                self._channel = IPVSChannel()
            except NetlinkError as err:
                raise IPVSError(f"the kernel has no IPVS: {os.strerror(err.code)}") from None
        return self._channel

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._ip.close()

    # -- the dummy interface

    def _index(self) -> int | None:
        found = self._ip.link_lookup(ifname=INTERFACE)
        return found[0] if found else None

    def ensure_interface(self) -> None:
        if self._index() is None:
            self._ip.link("add", ifname=INTERFACE, kind="dummy")
        self._ip.link("set", index=self._index(), state="up")

    def delete_interface(self) -> None:
        index = self._index()
        if index is not None:
            self._ip.link("del", index=index)

    def interface_addresses(self) -> set[str]:
        index = self._index()
        if index is None:
            return set()
        return {msg.get("IFA_ADDRESS") for msg in self._ip.get_addr(index=index, family=socket.AF_INET)}

    def add_interface_address(self, address: str) -> None:
        self._ip.addr("add", index=self._index(), address=address, prefixlen=32)

    def delete_interface_address(self, address: str) -> None:
        self._ip.addr("del", index=self._index(), address=address, prefixlen=32)

    def local_addresses(self) -> set[str]:
        skip = self._index()
        return {msg.get("IFA_ADDRESS") for msg in self._ip.get_addr(family=socket.AF_INET)
                if msg["index"] != skip and not ipaddress.ip_address(msg.get("IFA_ADDRESS")).is_loopback}

    # -- IPVS: changes are queued and sent together by commit()

    def virtual_servers(self) -> dict[VirtualKey, VirtualServer]:
        found: dict[VirtualKey, VirtualServer] = {}
        for answer in self._checked(lambda: self._ipvs.dump(nl.CMD_GET_SERVICE)):
            attrs = nl.parse_attrs(answer[nl.CMD_ATTR_SERVICE])
            protocol = PROTOCOL_NAMES.get(nl.read_u16(attrs[nl.SVC_PROTOCOL])) if nl.SVC_PROTOCOL in attrs else None
            if nl.read_u16(attrs[nl.SVC_AF]) != socket.AF_INET or nl.SVC_FWMARK in attrs or not protocol:
                continue  # firewall-mark and IPv6 services are never Sampan's
            key = VirtualKey(protocol, nl.read_address(attrs[nl.SVC_ADDR]), nl.read_port(attrs[nl.SVC_PORT]))
            flags = nl.read_u32(attrs[nl.SVC_FLAGS])  # struct ip_vs_flags starts with the flags
            reals = []
            for dest_answer in self._checked(
                    lambda: self._ipvs.dump(nl.CMD_GET_DEST, nl.nested(nl.CMD_ATTR_SERVICE, *service_key_attrs(key)))):
                dest = nl.parse_attrs(dest_answer[nl.CMD_ATTR_DEST])
                reals.append(RealServer(nl.read_address(dest[nl.DEST_ADDR]), nl.read_port(dest[nl.DEST_PORT]),
                                        nl.read_u32(dest[nl.DEST_WEIGHT]), nl.read_u32(dest[nl.DEST_FWD_METHOD])))
            found[key] = VirtualServer(
                key, attrs[nl.SVC_SCHED_NAME].rstrip(b"\0").decode(),
                nl.read_u32(attrs[nl.SVC_TIMEOUT]) if flags & PERSISTENT else 0, frozenset(reals))
        return found

    def add_virtual_server(self, server: VirtualServer) -> None:
        self._ipvs.queue(nl.CMD_NEW_SERVICE, service_attrs(server), what=f"adding virtual server {server.key}")

    def update_virtual_server(self, server: VirtualServer) -> None:
        self._ipvs.queue(nl.CMD_SET_SERVICE, service_attrs(server), what=f"changing virtual server {server.key}")

    def delete_virtual_server(self, key: VirtualKey) -> None:
        self._ipvs.queue(nl.CMD_DEL_SERVICE, nl.nested(nl.CMD_ATTR_SERVICE, *service_key_attrs(key)),
                         what=f"deleting virtual server {key}")

    def add_real_server(self, key: VirtualKey, real: RealServer) -> None:
        self._ipvs.queue(nl.CMD_NEW_DEST, dest_attrs(key, real), what=f"adding real server {real} to {key}")

    def update_real_server(self, key: VirtualKey, real: RealServer) -> None:
        self._ipvs.queue(nl.CMD_SET_DEST, dest_attrs(key, real), what=f"changing real server {real} of {key}")

    def delete_real_server(self, key: VirtualKey, real: RealServer) -> None:
        self._ipvs.queue(nl.CMD_DEL_DEST, dest_attrs(key, real, full=False),
                         what=f"deleting real server {real} of {key}")

    def commit(self) -> None:
        if self._channel is not None:
            self._checked(self._channel.flush)

    # -- nftables and sysctls

    def apply_nftables(self, script: str) -> None:
        result = subprocess.run([*self._nft, "-f", "-"], input=script, capture_output=True, text=True,
                                timeout=NFT_TIMEOUT)
        if result.returncode != 0:
            raise IPVSError(f"nft -f refused the {TABLE_REF} transaction: {result.stderr.strip()}")

    def delete_nftables_table(self) -> None:
        self.apply_nftables(f"table {TABLE_REF}\ndelete table {TABLE_REF}\n")

    def set_sysctl(self, name: str, value: str) -> None:
        Path("/proc/sys", name).write_text(value)

    def _checked(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except nl.NetlinkRefused as err:
            raise IPVSError(str(err)) from None
        except OSError as err:
            # The socket lost track (e.g. answers dropped): the next call opens a new one.
            if self._channel is not None:
                self._channel.close()
                self._channel = None
            raise IPVSError(f"IPVS netlink socket: {err}") from None


def service_key_attrs(key: VirtualKey) -> tuple[bytes, ...]:
    return (nl.attr(nl.SVC_AF, nl.u16(socket.AF_INET)),
            nl.attr(nl.SVC_PROTOCOL, nl.u16(PROTOCOL_NUMBERS[key.protocol])),
            nl.attr(nl.SVC_ADDR, nl.address(key.address)), nl.attr(nl.SVC_PORT, nl.port(key.port)))


def service_attrs(server: VirtualServer) -> bytes:
    """The full service attribute: its key and every setting (the kernel wants them all)."""
    flags = struct.pack("=II", PERSISTENT if server.persistence else 0, PERSISTENT)  # struct ip_vs_flags
    return nl.nested(nl.CMD_ATTR_SERVICE, *service_key_attrs(server.key),
                     nl.attr(nl.SVC_SCHED_NAME, server.scheduler.encode() + b"\0"),
                     nl.attr(nl.SVC_FLAGS, flags),
                     nl.attr(nl.SVC_TIMEOUT, nl.u32(server.persistence)),
                     nl.attr(nl.SVC_NETMASK, nl.address(HOST_MASK)))


def dest_attrs(key: VirtualKey, real: RealServer, *, full: bool = True) -> bytes:
    fields = [nl.attr(nl.DEST_ADDR, nl.address(real.address)), nl.attr(nl.DEST_PORT, nl.port(real.port))]
    if full:
        fields += [nl.attr(nl.DEST_ADDR_FAMILY, nl.u16(socket.AF_INET)),
                   nl.attr(nl.DEST_FWD_METHOD, nl.u32(real.forward)), nl.attr(nl.DEST_WEIGHT, nl.u32(real.weight)),
                   nl.attr(nl.DEST_U_THRESH, nl.u32(0)), nl.attr(nl.DEST_L_THRESH, nl.u32(0))]
    return nl.nested(nl.CMD_ATTR_SERVICE, *service_key_attrs(key)) + nl.nested(nl.CMD_ATTR_DEST, *fields)

