"""The ``kube-system/kube-dns`` Service, pointed at the running cluster DNS server.

Pods are told to ask the well-known cluster IP (10.96.0.10, the tenth address
of the default service range, as kubeadm chooses it) on port 53. That
address is a Service like any other: ``kube-dns`` in ``kube-system``, ports
``dns`` (53/UDP) and ``dns-tcp`` (53/TCP), created here when it does not
exist. It has no selector, since the server is no pod: its Endpoints and one
EndpointSlice (``kube-dns-sampan``, managed-by ``cluster-dns.sampan.io``,
owned by the Service) are written here with the server's address and real
port, and the proxies forward ClusterIP:53 to them as they would to pods.

``KubeDNSRegistration.sync`` is level-triggered: it reads the Service,
Endpoints and EndpointSlice from the shared caches and writes only what
differs, so a hand edit or a deletion is put right at once (the caches'
handlers wake ``run``), and a new leader's first pass moves the endpoints to
its own server. A kube-dns Service that already exists is left as it is
(someone may have tuned it); one whose cluster IP differs from the one pods
are given is reported in the log.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from google.protobuf.message import Message

from control.api import errors
from control.client import Client
from control.controllers.informers import Informer
from control.controllers.pods import owner_reference
from protos.api.v1 import services_pb2

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"
SERVICE_NAME = "kube-dns"
SLICE_NAME = "kube-dns-sampan"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SLICE_MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "cluster-dns.sampan.io"
SERVICE_LABELS = {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "SampanDNS"}
PORTS = (("dns", "UDP"), ("dns-tcp", "TCP"))
# How soon a failed write is tried again, and how often the objects are looked at without a change.
RETRY_SECONDS = 1.0
RESYNC_SECONDS = 60.0


@dataclass(frozen=True)
class ServerAddress:
    """Where the DNS server answers: what the kube-dns endpoints name."""

    ip: str
    port: int


def kube_dns_service(cluster_ip: str, target_port: int) -> services_pb2.Service:
    service = services_pb2.Service(api_version="v1", kind="Service")
    service.metadata.name, service.metadata.namespace = SERVICE_NAME, NAMESPACE
    service.metadata.labels.update(SERVICE_LABELS)
    service.spec.type = "ClusterIP"
    service.spec.cluster_ip = cluster_ip
    for name, protocol in PORTS:
        port = service.spec.ports.add(name=name, protocol=protocol, port=53)
        port.target_port.int_value = target_port
    return service


def kube_dns_subsets(address: ServerAddress) -> list[services_pb2.EndpointSubset]:
    subset = services_pb2.EndpointSubset()
    subset.addresses.add(ip=address.ip)
    for name, protocol in PORTS:
        subset.ports.add(name=name, port=address.port, protocol=protocol)
    return [subset]


def kube_dns_slice_content(address: ServerAddress) -> services_pb2.EndpointSlice:
    """The slice's endpoints and ports (identity and labels are added by the caller)."""
    slice_ = services_pb2.EndpointSlice(api_version="discovery.k8s.io/v1", kind="EndpointSlice",
                                        address_type="IPv6" if ":" in address.ip else "IPv4")
    endpoint = slice_.endpoints.add(addresses=[address.ip])
    endpoint.conditions.ready = endpoint.conditions.serving = True
    endpoint.conditions.terminating = False
    for name, protocol in PORTS:
        slice_.ports.add(name=name, protocol=protocol, port=address.port)
    return slice_


def _is_ours(obj: Message | None) -> bool:
    return obj is not None and obj.metadata.namespace == NAMESPACE and obj.metadata.name in (SERVICE_NAME, SLICE_NAME)


class KubeDNSRegistration:
    """Keeps kube-dns pointed at one server address; see the module docstring."""

    def __init__(self, api: Client, *, services: Informer, endpoints: Informer, slices: Informer,
                 cluster_ip: str, address: ServerAddress) -> None:
        self.api = api
        self.services = services
        self.endpoints = endpoints
        self.slices = slices
        self.cluster_ip = cluster_ip
        self.address = address
        self._wake = asyncio.Event()
        self._warned_ip = ""
        for informer in (services, endpoints, slices):
            informer.add_handler(self._changed)

    def _changed(self, old: Message | None, new: Message | None) -> None:
        if _is_ours(old) or _is_ours(new):
            self._wake.set()

    async def run(self) -> None:
        """Sync at once, then whenever kube-dns's objects change (and every RESYNC_SECONDS), until cancelled."""
        while True:
            self._wake.clear()
            try:
                await self.sync()
                timeout = RESYNC_SECONDS
            except errors.APIError as err:
                log.warning("kube-dns registration: %s; trying again in %.0fs", err, RETRY_SECONDS)
                timeout = RETRY_SECONDS
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def sync(self) -> None:
        service = await self._ensure_service()
        await self._ensure_endpoints()
        await self._ensure_slice(service)

    async def _ensure_service(self) -> Message:
        service = self.services.get(NAMESPACE, SERVICE_NAME)
        if service is None:
            try:
                service = await self.api.create(kube_dns_service(self.cluster_ip, self.address.port))
                log.info("created Service %s/%s with cluster IP %s", NAMESPACE, SERVICE_NAME, self.cluster_ip)
            except errors.AlreadyExistsError:
                service = await self.api.get("Service", SERVICE_NAME, namespace=NAMESPACE)
            self.services.assume(service)
        if service.spec.cluster_ip != self.cluster_ip and self._warned_ip != service.spec.cluster_ip:
            self._warned_ip = service.spec.cluster_ip
            log.warning("Service %s/%s has cluster IP %s, not %s: pods told to use %s will not reach this DNS",
                        NAMESPACE, SERVICE_NAME, service.spec.cluster_ip, self.cluster_ip, self.cluster_ip)
        return service

    async def _ensure_endpoints(self) -> None:
        current = self.endpoints.get(NAMESPACE, SERVICE_NAME)
        desired = services_pb2.Endpoints(api_version="v1", kind="Endpoints", subsets=kube_dns_subsets(self.address))
        if current is not None:
            if list(current.subsets) == list(desired.subsets) and dict(current.metadata.labels) == SERVICE_LABELS:
                return
            desired.metadata.CopyFrom(current.metadata)
            desired.metadata.labels.clear()
        else:
            desired.metadata.name, desired.metadata.namespace = SERVICE_NAME, NAMESPACE
        desired.metadata.labels.update(SERVICE_LABELS)
        written = await (self.api.update(desired) if current is not None else self.api.create(desired))
        self.endpoints.assume(written)
        log.info("kube-dns endpoints: %s:%d", self.address.ip, self.address.port)

    async def _ensure_slice(self, service: Message) -> None:
        current = self.slices.get(NAMESPACE, SLICE_NAME)
        desired = kube_dns_slice_content(self.address)
        labels = {**SERVICE_LABELS, SERVICE_NAME_LABEL: SERVICE_NAME, SLICE_MANAGED_BY_LABEL: MANAGED_BY}
        owner = owner_reference(service)
        if current is not None:
            same = (list(current.endpoints) == list(desired.endpoints) and list(current.ports) == list(desired.ports)
                    and current.address_type == desired.address_type and dict(current.metadata.labels) == labels
                    and list(current.metadata.owner_references) == [owner])
            if same:
                return
            desired.metadata.CopyFrom(current.metadata)
            desired.metadata.labels.clear()
            del desired.metadata.owner_references[:]
        else:
            desired.metadata.name, desired.metadata.namespace = SLICE_NAME, NAMESPACE
        desired.metadata.labels.update(labels)
        desired.metadata.owner_references.append(owner)
        written = await (self.api.update(desired) if current is not None else self.api.create(desired))
        self.slices.assume(written)
