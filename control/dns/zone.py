"""The cluster domain's records, read from the Service and EndpointSlice caches.

``ClusterZone.lookup(name, rdtype)`` answers one question the way
Kubernetes' DNS specification lays the names out (for the domain
``cluster.local``):

- ``SERVICE.NAMESPACE.svc.cluster.local``: A (AAAA) with the Service's
  cluster IPs; for a headless Service (clusterIP None) the addresses of its
  ready endpoints instead, from every EndpointSlice labelled
  ``kubernetes.io/service-name`` (so a selector-less Service with slices
  written by hand resolves too); for an ExternalName Service a CNAME to its
  external name.
- ``HOSTNAME.SERVICE.NAMESPACE.svc.cluster.local``: one ready endpoint of a
  headless Service, by the hostname its pod set (a StatefulSet's ``web-0``)
  or, for an endpoint without one, by its address with dashes
  (``10-244-1-5``).
- ``_PORT._PROTO.SERVICE.NAMESPACE.svc.cluster.local``: SRV for a named
  port: the Service's own name and port, or for a headless Service one
  record per ready endpoint (its name above and the port it serves on), with
  the targets' addresses in the additional section.
- PTR for a cluster IP or a headless endpoint's address, in ``in-addr.arpa``
  and ``ip6.arpa``; other reverse names are not the zone's (they go upstream).

A name in the domain that holds nothing is NXDOMAIN; a name that exists
(including the names between, such as ``svc.cluster.local`` and a namespace
with Services) but has no record of the asked type gets an empty NOERROR
answer, so a resolver asking AAAA and A in parallel keeps the A. Negative
answers carry the zone's SOA (its minimum is the record TTL) for negative
caching. A headless Service with no ready endpoint still exists: its name
answers empty, not NXDOMAIN. ``lookup`` returns None for names outside the
zone: those are forwarded.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from typing import Iterable, Protocol

import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset
from google.protobuf.message import Message

from control.api.selectors import LabelSelector, Requirement

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
HEADLESS = "None"
DEFAULT_TTL = 5
_REVERSE_ZONES = (dns.name.from_text("in-addr.arpa."), dns.name.from_text("ip6.arpa."))


class ObjectCache(Protocol):
    """What the zone reads: a shared informer's copy of one kind (control/controllers/informers.py)."""

    def get(self, namespace: str, name: str) -> Message | None: ...

    def list(self, namespace: str | None = None, *, selector: LabelSelector | None = None) -> list[Message]: ...


@dataclass(frozen=True)
class Answer:
    """The zone's answer to one question: rcode and the sections' record sets."""

    rcode: int = dns.rcode.NOERROR
    answer: tuple[dns.rrset.RRset, ...] = ()
    additional: tuple[dns.rrset.RRset, ...] = ()
    authority: tuple[dns.rrset.RRset, ...] = ()


@dataclass(frozen=True)
class EndpointRecord:
    """One ready address behind a headless Service, with its DNS label and the ports it serves."""

    ip: str
    label: str  # its hostname, else its address with dashes
    ports: tuple[tuple[str, str, int], ...] = field(default=())  # (name, protocol, port)


def dashed(ip: str) -> str:
    """An address as one DNS label: 10.244.1.5 -> 10-244-1-5 (IPv6: colons become dashes)."""
    return ip.replace(".", "-").replace(":", "-")


def _is_ready(endpoint: Message) -> bool:
    # An unset ready condition means ready (discovery.k8s.io/v1).
    return not endpoint.conditions.HasField("ready") or endpoint.conditions.ready


def _rdtype_of(ip: str) -> int:
    return dns.rdatatype.AAAA if ":" in ip else dns.rdatatype.A


class ClusterZone:
    """The records of one cluster domain; see the module docstring."""

    def __init__(self, *, domain: str, services: ObjectCache, slices: ObjectCache, ttl: int = DEFAULT_TTL) -> None:
        self.origin = dns.name.from_text(domain.strip(".") + ".")
        self.ttl = ttl
        self._services = services
        self._slices = slices
        # Serial: seconds at start, as a zone that is regenerated rather than edited.
        self._soa = dns.rrset.from_text(
            self.origin, ttl, "IN", "SOA",
            f"ns.dns.{self.origin} hostmaster.{self.origin} {int(time.time()) & 0xFFFFFFFF} 7200 1800 86400 {ttl}")

    # ------------------------------------------------------------ reads of the caches

    def service(self, namespace: str, name: str) -> Message | None:
        return self._services.get(namespace, name)

    def ready_endpoints(self, namespace: str, service_name: str) -> list[EndpointRecord]:
        """The ready addresses of every slice of the Service, one record per address (sorted)."""
        selector = LabelSelector((Requirement(SERVICE_NAME_LABEL, "In", (service_name,)),))
        found: dict[str, EndpointRecord] = {}
        for slice_ in self._slices.list(namespace, selector=selector):
            ports = tuple((port.name, port.protocol or "TCP", port.port) for port in slice_.ports if port.port)
            for endpoint in slice_.endpoints:
                if not _is_ready(endpoint):
                    continue
                for ip in endpoint.addresses:
                    known = found.get(ip)
                    merged = tuple(sorted({*(known.ports if known else ()), *ports}))
                    found[ip] = EndpointRecord(ip=ip, label=endpoint.hostname or dashed(ip), ports=merged)
        return sorted(found.values(), key=lambda record: _address_key(record.ip))

    # ------------------------------------------------------------ answers

    def lookup(self, qname: dns.name.Name, rdtype: int) -> Answer | None:
        """The answer for (qname, rdtype), or None when the name is not the zone's to answer."""
        if any(qname.is_subdomain(zone) for zone in _REVERSE_ZONES):
            return self._reverse(qname, rdtype)
        if not qname.is_subdomain(self.origin):
            return None
        labels = [label.decode("ascii", "replace").lower() for label in qname.relativize(self.origin).labels]
        if not labels:
            if rdtype in (dns.rdatatype.SOA, dns.rdatatype.ANY):
                return Answer(answer=(self._soa,))
            return self._no_data()
        if labels[-1] != "svc":
            return self._nxdomain()
        path = labels[:-1]
        if not path:
            return self._no_data()  # svc.DOMAIN
        namespace = path[-1]
        if len(path) == 1:
            return self._no_data() if self._services.list(namespace) else self._nxdomain()
        service = self.service(namespace, path[-2])
        if service is None:
            return self._nxdomain()
        rest = path[:-2]
        if not rest:
            return self._service_answer(qname, rdtype, service)
        if len(rest) == 1:
            if rest[0].startswith("_"):
                protocol = rest[0][1:].upper()
                exists = any(port.name and (port.protocol or "TCP") == protocol for port in service.spec.ports)
                return self._no_data() if exists else self._nxdomain()
            return self._endpoint_answer(qname, rdtype, service, rest[0])
        if len(rest) == 2 and rest[0].startswith("_") and rest[1].startswith("_"):
            return self._srv_answer(qname, rdtype, service, port_name=rest[0][1:], protocol=rest[1][1:].upper())
        return self._nxdomain()

    def _service_answer(self, qname: dns.name.Name, rdtype: int, service: Message) -> Answer:
        spec = service.spec
        if spec.type == "ExternalName":
            target = dns.name.from_text(spec.external_name.strip(".") + ".")
            return Answer(answer=(dns.rrset.from_text(qname, self.ttl, "IN", "CNAME", target.to_text()),))
        if spec.cluster_ip == HEADLESS:
            ips = [record.ip for record in self.ready_endpoints(service.metadata.namespace, service.metadata.name)]
        else:
            ips = list(spec.cluster_ips) or ([spec.cluster_ip] if spec.cluster_ip else [])
        return self._addresses(qname, rdtype, ips)

    def _endpoint_answer(self, qname: dns.name.Name, rdtype: int, service: Message, label: str) -> Answer:
        if service.spec.cluster_ip != HEADLESS:
            return self._nxdomain()  # per-pod names exist only under headless Services
        ips = [record.ip for record in self.ready_endpoints(service.metadata.namespace, service.metadata.name)
               if record.label == label]
        if not ips:
            return self._nxdomain()
        return self._addresses(qname, rdtype, ips)

    def _srv_answer(self, qname: dns.name.Name, rdtype: int, service: Message, *, port_name: str,
                    protocol: str) -> Answer:
        port = next((p for p in service.spec.ports if p.name and p.name.lower() == port_name
                     and (p.protocol or "TCP") == protocol), None)
        if port is None or service.spec.type == "ExternalName":
            return self._nxdomain()
        if rdtype not in (dns.rdatatype.SRV, dns.rdatatype.ANY):
            return self._no_data()
        namespace, name = service.metadata.namespace, service.metadata.name
        service_fqdn = dns.name.from_text(f"{name}.{namespace}.svc", origin=self.origin)
        if service.spec.cluster_ip != HEADLESS:
            srv = dns.rrset.from_text(qname, self.ttl, "IN", "SRV", f"0 100 {port.port} {service_fqdn}")
            extra = self._addresses(service_fqdn, dns.rdatatype.ANY,
                                    list(service.spec.cluster_ips) or [service.spec.cluster_ip]).answer
            return Answer(answer=(srv,), additional=extra)
        targets = []
        for record in self.ready_endpoints(namespace, name):
            served = next((number for port_name_, proto, number in record.ports
                           if port_name_ == port.name and proto == protocol), None)
            if served is not None:
                targets.append((record, served))
        if not targets:
            return self._no_data()
        weight = max(1, 100 // len(targets))
        srv = dns.rrset.from_text_list(qname, self.ttl, "IN", "SRV", [
            f"0 {weight} {served} {record.label}.{service_fqdn}" for record, served in targets])
        extra = tuple(rrset for record, _ in targets for rrset in self._addresses(
            dns.name.from_text(record.label, origin=service_fqdn), dns.rdatatype.ANY, [record.ip]).answer)
        return Answer(answer=(srv,), additional=extra)

    def _reverse(self, qname: dns.name.Name, rdtype: int) -> Answer | None:
        try:
            ip = dns.reversename.to_address(qname)
        except Exception:  # a partial reverse name (a network, not one address): not ours
            return None
        target = self._name_of_address(ip)
        if target is None:
            return None
        if rdtype not in (dns.rdatatype.PTR, dns.rdatatype.ANY):
            return self._no_data()
        return Answer(answer=(dns.rrset.from_text(qname, self.ttl, "IN", "PTR", target.to_text()),))

    def _name_of_address(self, ip: str) -> dns.name.Name | None:
        """The Service (cluster IP) or headless endpoint that has this address, if any."""
        for service in self._services.list():
            namespace, name = service.metadata.namespace, service.metadata.name
            service_fqdn = dns.name.from_text(f"{name}.{namespace}.svc", origin=self.origin)
            if service.spec.cluster_ip == HEADLESS:
                for record in self.ready_endpoints(namespace, name):
                    if record.ip == ip:
                        return dns.name.from_text(record.label, origin=service_fqdn)
            elif ip in (*service.spec.cluster_ips, service.spec.cluster_ip):
                return service_fqdn
        return None

    # ------------------------------------------------------------ building answers

    def _addresses(self, qname: dns.name.Name, rdtype: int, ips: Iterable[str]) -> Answer:
        """A and AAAA records for the addresses that match the asked type (ANY: both)."""
        by_type: dict[int, list[str]] = {}
        for ip in ips:
            if ip and ip != HEADLESS:
                by_type.setdefault(_rdtype_of(ip), []).append(ip)
        wanted = (dns.rdatatype.A, dns.rdatatype.AAAA) if rdtype == dns.rdatatype.ANY else (rdtype,)
        rrsets = tuple(dns.rrset.from_text_list(qname, self.ttl, "IN", dns.rdatatype.to_text(kind),
                                                sorted(set(by_type[kind]), key=_address_key))
                       for kind in wanted if by_type.get(kind))
        return Answer(answer=rrsets) if rrsets else self._no_data()

    def _no_data(self) -> Answer:
        return Answer(authority=(self._soa,))

    def _nxdomain(self) -> Answer:
        return Answer(rcode=dns.rcode.NXDOMAIN, authority=(self._soa,))


def _address_key(ip: str) -> tuple:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return (2, ip)
    return (address.version, int(address))
