"""The host's resolvers, to which the cluster DNS forwards every name outside its zone.

``upstream_servers`` takes the ``nameserver`` lines of a resolv.conf (read
once, at start, as CoreDNS's ``forward . /etc/resolv.conf`` does) and drops
those that would be this server itself: with the server on port 53, the
address it listens on, or for a wildcard listen address any address of this
machine (loopback included). A loopback resolver on the host that is not
this server (systemd-resolved's 127.0.0.53, a local dnsmasq) stays: the
control service runs on the host and reaches it.

``Forwarder.forward`` sends the client's query, unchanged, to each upstream
in turn over the client's own transport (a truncated UDP answer is passed
back with its TC bit, so the client asks again over TCP and so do we), and
returns the first answer, or None when none answered in time. With no
upstream at all the server answers REFUSED (server.py).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Iterable, Sequence

import dns.asyncquery
import dns.exception
import dns.message

log = logging.getLogger(__name__)

RESOLV_CONF = "/etc/resolv.conf"
DEFAULT_TIMEOUT_SECONDS = 2.0
_WILDCARDS = ("0.0.0.0", "::", "")


def read_nameservers(path: str = RESOLV_CONF) -> list[str]:
    """The ``nameserver`` addresses of a resolv.conf, in order ([] when it cannot be read)."""
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except OSError as err:
        log.warning("cannot read %s: %s; no upstream resolvers", path, err)
        return []
    servers = []
    for line in lines:
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            servers.append(fields[1].split("%", 1)[0])  # fe80::1%eth0: the zone is not ours to use
    return servers


def upstream_servers(nameservers: Iterable[str], *, listen_host: str, listen_port: int,
                     local_addresses: Iterable[str] = ()) -> list[str]:
    """The nameservers to forward to: valid addresses, without this server itself (see the module docstring)."""
    local = set(local_addresses)
    chosen = []
    for server in nameservers:
        try:
            address = ipaddress.ip_address(server)
        except ValueError:
            log.warning("ignoring nameserver %r: not an IP address", server)
            continue
        if listen_port == 53:
            if server == listen_host or (listen_host in _WILDCARDS and (address.is_loopback or server in local)):
                log.info("not forwarding to nameserver %s: that is this server", server)
                continue
        if server not in chosen:
            chosen.append(server)
    return chosen


class Forwarder:
    """Sends queries for names outside the cluster to the upstream resolvers, first answer wins."""

    def __init__(self, servers: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.servers = tuple(servers)
        self.timeout = timeout

    async def forward(self, query: dns.message.Message, *, tcp: bool) -> dns.message.Message | None:
        for server in self.servers:
            try:
                if tcp:
                    return await dns.asyncquery.tcp(query, server, timeout=self.timeout)
                return await dns.asyncquery.udp(query, server, timeout=self.timeout)
            except (dns.exception.DNSException, OSError) as err:
                log.info("upstream %s did not answer %s: %s", server, query.question[0].name if query.question
                         else "?", err or type(err).__name__)
        return None
