"""Running the cluster DNS: its settings and ``run_cluster_dns``.

The leading control replica runs it next to the controllers, on the same
shared informers (the endpoints controller already watches Services,
Endpoints and EndpointSlices, so DNS costs no extra watch): it waits for
those caches to be filled (an empty cache would answer NXDOMAIN for every
Service), binds its address, and keeps ``kube-system/kube-dns`` pointed at
it (registration.py) until leadership ends. Only the leader runs it, so the
kube-dns endpoints always name exactly one live server and no replica has to
find out which others are alive; the price is that names do not resolve
while leadership moves (up to the lease duration), as the controllers pause
then too.

The address pods reach: ``listen`` is where the server binds (default
127.0.0.1:10053, enough for the host itself); the kube-dns endpoints name
``advertise_address`` or else the listen address, or for a wildcard listen
address this machine's first global IPv4 address. A pod's query to
10.96.0.10:53 is rewritten by its node's proxy to that address and port,
so for pods the server must listen on an address they can route to: the
node's own address (``--cluster-dns-listen NODE_IP:53``, or
``0.0.0.0:53``): a packet from a pod's bridge to the node's address is
delivered locally, and the answer goes back through the same connection
tracking entry. A loopback address is not reachable from pods (the kernel
drops packets from another interface to 127.0.0.0/8), which the log says.
A port that cannot be bound (taken, or 53 without root) is logged and tried
again every ``bind_retry`` seconds, and any other failure restarts the
server a second later: the controllers beside it are never held up or ended.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import subprocess
from dataclasses import dataclass

from control.client import Client
from control.controllers.informers import Informers
from control.dns.registration import KubeDNSRegistration, ServerAddress
from control.dns.server import DNSServer
from control.dns.upstream import RESOLV_CONF, Forwarder, read_nameservers, upstream_servers
from control.dns.zone import DEFAULT_TTL, ClusterZone

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:10053"
DEFAULT_DOMAIN = "cluster.local"
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
_WILDCARDS = ("0.0.0.0", "::")
# The shared caches the DNS reads (Service, EndpointSlice) and its registration keeps (all three).
CACHED_KINDS = ["Service", "EndpointSlice", "Endpoints"]


def cluster_dns_ip(service_cidr: str = DEFAULT_SERVICE_CIDR) -> str:
    """The DNS Service's cluster IP: the tenth address of the service range (10.96.0.10 by default)."""
    network = ipaddress.ip_network(service_cidr, strict=False)
    return str(network.network_address + 10)


@dataclass(frozen=True)
class ClusterDNSConfig:
    listen: str = DEFAULT_LISTEN
    domain: str = DEFAULT_DOMAIN
    # The address kube-dns's endpoints name ("": see the module docstring).
    advertise_address: str = ""
    cluster_ip: str = cluster_dns_ip()
    resolv_conf: str = RESOLV_CONF
    ttl: int = DEFAULT_TTL
    upstream_timeout: float = 2.0
    bind_retry: float = 5.0

    def __post_init__(self) -> None:
        split_listen(self.listen)
        labels = self.domain.strip(".").split(".")
        if not self.domain.strip(".") or any(not label or len(label) > 63 for label in labels):
            raise ValueError(f"--cluster-domain: Invalid value: {self.domain!r}: must be a DNS domain name")
        for flag, value in (("--cluster-dns-advertise-address", self.advertise_address),
                            ("cluster IP", self.cluster_ip)):
            if value:
                try:
                    ipaddress.ip_address(value)
                except ValueError:
                    raise ValueError(f"{flag}: Invalid value: {value!r}: must be a valid IP address") from None


def split_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 in brackets) as (host, port); a ValueError names the flag."""
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        number = -1
    if not sep or not 0 <= number <= 65535:
        raise ValueError(f"--cluster-dns-listen: Invalid value: {listen!r}: must be IP:PORT")
    return host, number


def machine_addresses() -> list[str]:
    """This machine's addresses (every interface, both families), global ones first."""
    try:
        out = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.splitlines():
        parts = line.split()
        for family in ("inet", "inet6"):
            if family in parts:
                found.append((0 if "global" in parts else 1, parts[parts.index(family) + 1].split("/")[0]))
    return [address for _, address in sorted(found, key=lambda item: item[0])]


def advertised_ip(config: ClusterDNSConfig, host: str, local_addresses: list[str]) -> str:
    """The address kube-dns's endpoints name (see the module docstring)."""
    if config.advertise_address:
        return config.advertise_address
    if host not in _WILDCARDS:
        return host
    for address in local_addresses:
        if ":" not in address and not ipaddress.ip_address(address).is_loopback:
            return address
    return "127.0.0.1"


async def run_cluster_dns(api: Client, informers: Informers, config: ClusterDNSConfig) -> None:
    """Serve the cluster DNS and keep kube-dns pointed at it, until cancelled.

    A failure is logged and the server started again a second later: it runs
    beside the scheduler and the controllers and must never end them."""
    for kind in CACHED_KINDS:
        informers.get(kind)  # asked for before the first await, so they start with the controllers'
    while True:
        try:
            await _serve(api, informers, config)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("cluster DNS failed; starting it again in 1 s")
            await asyncio.sleep(1.0)


async def _serve(api: Client, informers: Informers, config: ClusterDNSConfig) -> None:
    services, slices, endpoints = (informers.get(kind) for kind in CACHED_KINDS)
    host, port = split_listen(config.listen)
    zone = ClusterZone(domain=config.domain, services=services, slices=slices, ttl=config.ttl)
    local = await asyncio.to_thread(machine_addresses) if host in _WILDCARDS else []
    upstream = upstream_servers(read_nameservers(config.resolv_conf), listen_host=host, listen_port=port,
                                local_addresses=local)
    server = DNSServer(zone, Forwarder(upstream, timeout=config.upstream_timeout))
    await informers.wait_synced(CACHED_KINDS)
    while True:
        try:
            await server.start(host, port)
            break
        except OSError as err:
            log.error("cluster DNS cannot listen on %s: %s; trying again in %.0fs", config.listen, err,
                      config.bind_retry)
            await asyncio.sleep(config.bind_retry)
    try:
        address = ServerAddress(advertised_ip(config, host, local), server.port)
        if ipaddress.ip_address(address.ip).is_loopback:
            log.warning("kube-dns endpoints name %s, which pods cannot reach: give --cluster-dns-listen "
                        "(or --cluster-dns-advertise-address) the node's address for pods to resolve names",
                        address.ip)
        registration = KubeDNSRegistration(api, services=services, endpoints=endpoints, slices=slices,
                                           cluster_ip=config.cluster_ip, address=address)
        await registration.run()
    finally:
        await server.close()
