"""What a node's proxy must make true: the virtual services and their backends.

``desired_state`` turns the API's view (Services, EndpointSlices and this
proxy's own Node) into a ``ProxyState``: plain frozen values that every proxy
mode programs in its own way (nftables rules, IPVS virtual servers, userspace
listeners). It is pure: the same objects give the same state, so the core can
recompute it whole on every sync and a mode can compare two states.

One ``VirtualService`` per Service port:

- its ClusterIP, port and protocol (TCP or UDP; SCTP ports and Services
  without an IPv4 cluster IP, headless or ExternalName Services are left out);
- its NodePort, for NodePort and LoadBalancer Services (0 otherwise);
- its backends: the addresses of the endpoints marked ready in the
  Service's EndpointSlices (label ``kubernetes.io/service-name``), with the
  number the slice gives for the port of the same name and protocol (an
  unset ``ready`` counts as ready, as in discovery/v1); not-ready and
  terminating endpoints get no traffic;
- ClientIP session affinity and its timeout (default 10800 s);
- ``externalTrafficPolicy: Local``: NodePort traffic goes only to the
  backends on this node and keeps the client's address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable

from google.protobuf.message import Message

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_TIMEOUT = 10800  # seconds, Kubernetes' default for ClientIP affinity
PROTOCOLS = ("TCP", "UDP")
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")
NODE_ADDRESS_TYPES = ("InternalIP", "ExternalIP")


@dataclass(frozen=True, order=True)
class ServicePortName:
    """One port of one Service: namespace/name:port (the port's name, or its number when unnamed)."""

    namespace: str
    name: str
    port: str
    protocol: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port}/{self.protocol.lower()}"


@dataclass(frozen=True, order=True)
class Backend:
    """One ready endpoint of a Service port: where its connections go."""

    ip: str
    port: int
    node_name: str = ""


@dataclass(frozen=True)
class VirtualService:
    """One Service port as the node must serve it."""

    name: ServicePortName
    cluster_ip: str
    port: int
    protocol: str  # "TCP" or "UDP"
    node_port: int = 0
    backends: tuple[Backend, ...] = ()
    affinity_timeout: int = 0  # seconds of ClientIP affinity; 0: none
    local_external_traffic: bool = False  # externalTrafficPolicy: Local

    def local_backends(self, node_name: str) -> tuple[Backend, ...]:
        return tuple(backend for backend in self.backends if backend.node_name == node_name)


@dataclass(frozen=True)
class ProxyState:
    """Everything one node's proxy programs; services sorted by name."""

    node_name: str
    node_addresses: tuple[str, ...] = ()
    services: tuple[VirtualService, ...] = ()

    @property
    def endpoint_count(self) -> int:
        return sum(len(service.backends) for service in self.services)


def desired_state(*, node_name: str, node: Message | None, services: Iterable[Message],
                  slices: Iterable[Message]) -> ProxyState:
    """The ProxyState for this node from the API objects (see the module docstring)."""
    slices_by_service: dict[tuple[str, str], list[Message]] = {}
    for slice_ in slices:
        name = slice_.metadata.labels.get(SERVICE_NAME_LABEL)
        if name and (slice_.address_type or "IPv4") == "IPv4":
            slices_by_service.setdefault((slice_.metadata.namespace, name), []).append(slice_)
    virtual: list[VirtualService] = []
    for service in services:
        key = (service.metadata.namespace, service.metadata.name)
        virtual.extend(virtual_services(service, slices_by_service.get(key, ())))
    virtual.sort(key=lambda v: v.name)
    return ProxyState(node_name=node_name, node_addresses=node_addresses(node), services=tuple(virtual))


def node_addresses(node: Message | None) -> tuple[str, ...]:
    """The Node's IPv4 InternalIP and ExternalIP addresses, in the order it lists them."""
    if node is None:
        return ()
    found: list[str] = []
    for address in node.status.addresses:
        if address.type in NODE_ADDRESS_TYPES and _is_ipv4(address.address) and address.address not in found:
            found.append(address.address)
    return tuple(found)


def virtual_services(service: Message, slices: Iterable[Message]) -> list[VirtualService]:
    """The Service's ports as VirtualServices (none for the kinds of Service a proxy does not serve)."""
    spec = service.spec
    if spec.type == "ExternalName" or not _is_ipv4(spec.cluster_ip):
        return []  # headless ("None"), not yet allocated, or not IPv4
    affinity = 0
    if spec.session_affinity == "ClientIP":
        affinity = spec.session_affinity_config.client_ip.timeout_seconds or DEFAULT_AFFINITY_TIMEOUT
    node_ports = spec.type in NODE_PORT_TYPES
    slices = list(slices)
    result = []
    for port in spec.ports:
        protocol = port.protocol or "TCP"
        if protocol not in PROTOCOLS or not port.port:
            continue
        name = ServicePortName(service.metadata.namespace, service.metadata.name,
                               port.name or str(port.port), protocol)
        result.append(VirtualService(
            name=name, cluster_ip=spec.cluster_ip, port=port.port, protocol=protocol,
            node_port=port.node_port if node_ports else 0,
            backends=ready_backends(slices, port_name=port.name, protocol=protocol),
            affinity_timeout=affinity,
            local_external_traffic=node_ports and spec.external_traffic_policy == "Local"))
    return result


def ready_backends(slices: Iterable[Message], *, port_name: str, protocol: str) -> tuple[Backend, ...]:
    """The ready endpoints of the slices, with the number each slice gives the named port."""
    found: set[Backend] = set()
    for slice_ in slices:
        number = next((p.port for p in slice_.ports
                       if p.name == port_name and (p.protocol or "TCP") == protocol and p.port), 0)
        if not number:
            continue
        for endpoint in slice_.endpoints:
            conditions = endpoint.conditions
            ready = conditions.ready if conditions.HasField("ready") else True
            if not ready:
                continue
            for address in endpoint.addresses:
                if _is_ipv4(address):
                    found.add(Backend(address, number, endpoint.node_name))
    return tuple(sorted(found))


def _is_ipv4(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
    except ValueError:
        return False
