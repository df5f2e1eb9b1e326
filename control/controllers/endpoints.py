"""The endpoints controller: which pods stand behind each Service, as Endpoints and EndpointSlices.

For every Service with a selector (and a type other than ExternalName),
``reconcile_service`` writes, from the shared Service and Pod caches:

- one Endpoints object of the Service's name: the matching pods' addresses,
  ready ones under ``addresses`` and the others under
  ``notReadyAddresses`` (``publishNotReadyAddresses`` puts all under
  ``addresses``); pods being deleted are left out, as are pods without an IP
  and finished pods. Addresses that resolve the Service's ports to the same
  numbers share one subset (a named targetPort is looked up in each pod's
  container ports, so pods may differ; a pod without the named port is left
  out of that port). At most 1000 addresses, as in Kubernetes, with the
  ``endpoints.kubernetes.io/over-capacity: truncated`` annotation beyond.
- EndpointSlices (discovery.k8s.io/v1) labelled
  ``kubernetes.io/service-name``, owned by the Service, at most
  ``max_endpoints_per_slice`` (default 100) endpoints each, one group of
  slices per resolved port list. Here pods being deleted stay, with
  conditions ``terminating: true``, ``serving`` their readiness and
  ``ready: false``, so a proxy can drain them. Endpoints keep their slice
  while they last (a change rewrites the slices it touches, not all of
  them); new ones fill the slices with room first. A Service without any
  endpoint keeps one empty slice, as in Kubernetes.

Both carry the Service's labels plus the controller's managed-by label (and
``service.kubernetes.io/headless`` for a headless Service); an address gets
the pod's hostname when the pod's subdomain names the Service. Objects are
written only when what they hold changes. A Service without a selector is
left alone: its Endpoints are written by hand (or by another controller).
When a Service goes, the Endpoints and EndpointSlices this controller made
for it go too (an Endpoints without the managed-by label is someone else's
and stays).

Watch handlers only queue Service keys: a Service's change, a pod's change
(the Services in its namespace whose selector matched it before or after),
a change to an Endpoints or to a managed EndpointSlice (so one edited or
deleted by hand is put right).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Hashable, Iterable, Sequence

from google.protobuf.message import Message

from control.api import errors
from control.api.selectors import LabelSelector, Requirement
from control.client import Client
from control.controllers.informers import Informer, queue_key_of
from control.controllers.manager import ControllerContext
from control.controllers.pods import is_finished, is_ready, is_terminating, owner_reference
from control.controllers.queue import WorkQueue, run_workers
from control.recorder import EventRecorder
from protos.api.v1 import meta_pb2, services_pb2

log = logging.getLogger(__name__)

COMPONENT = "endpoint-controller"
MANAGED_BY_LABEL = "endpoints.kubernetes.io/managed-by"
MANAGED_BY = "endpoint-controller"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SLICE_MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_MANAGED_BY = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
OVER_CAPACITY_ANNOTATION = "endpoints.kubernetes.io/over-capacity"
MAX_ENDPOINTS_ADDRESSES = 1000
DEFAULT_MAX_ENDPOINTS_PER_SLICE = 100
# A pass that lost a write race looks again this soon (the cache catches up meanwhile).
CONFLICT_RETRY_SECONDS = 0.05


# ------------------------------------------------------------ what the pods say


@dataclass(frozen=True, order=True)
class ResolvedPort:
    """One Service port as a pod serves it: the number its targetPort resolves to there."""

    name: str
    port: int
    protocol: str
    app_protocol: str


@dataclass(frozen=True)
class PodEndpoint:
    """One pod behind a Service, with the ports it serves the Service's ports on."""

    ip: str
    ports: tuple[ResolvedPort, ...]
    ready: bool
    serving: bool
    terminating: bool
    hostname: str
    node_name: str
    pod_name: str
    pod_uid: str


def service_selector(service: Message) -> LabelSelector | None:
    """The Service's selector, or None when it has none (an empty selector selects nothing here)."""
    labels = service.spec.selector
    if not labels:
        return None
    return LabelSelector(tuple(Requirement(key, "In", (value,)) for key, value in sorted(labels.items())))


def resolve_target_port(pod: Message, service_port: Message) -> int | None:
    """The pod's port number for a Service port: the targetPort itself, or the container port it names."""
    target = service_port.target_port
    if target.WhichOneof("value") == "str_value":
        protocol = service_port.protocol or "TCP"
        for container in pod.spec.containers:
            for port in container.ports:
                if port.name == target.str_value and (port.protocol or "TCP") == protocol:
                    return port.container_port
        return None
    return target.int_value or service_port.port


def pod_endpoint(service: Message, pod: Message) -> PodEndpoint | None:
    """What the pod contributes to the Service, or None if it has no address to give (no IP, finished)."""
    if not pod.status.pod_ip or is_finished(pod):
        return None
    ports = []
    for service_port in service.spec.ports:
        number = resolve_target_port(pod, service_port)
        if number is not None:
            ports.append(ResolvedPort(service_port.name, number, service_port.protocol or "TCP",
                                      service_port.app_protocol))
    publish = service.spec.publish_not_ready_addresses
    ready = is_ready(pod)
    terminating = is_terminating(pod)
    spec = pod.spec
    hostname = spec.hostname if spec.hostname and spec.subdomain == service.metadata.name else ""
    return PodEndpoint(ip=pod.status.pod_ip, ports=tuple(sorted(ports)),
                       ready=publish or (ready and not terminating), serving=publish or ready,
                       terminating=terminating, hostname=hostname, node_name=spec.node_name,
                       pod_name=pod.metadata.name, pod_uid=pod.metadata.uid)


def _target_ref(namespace: str, endpoint: PodEndpoint) -> meta_pb2.ObjectReference:
    return meta_pb2.ObjectReference(kind="Pod", namespace=namespace, name=endpoint.pod_name, uid=endpoint.pod_uid)


def managed_labels(service: Message, managed_by: tuple[str, str]) -> dict[str, str]:
    labels = dict(service.metadata.labels)
    labels[managed_by[0]] = managed_by[1]
    if service.spec.cluster_ip == "None":
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    return labels


# ------------------------------------------------------------ Endpoints


def desired_subsets(service: Message,
                    endpoints: Iterable[PodEndpoint]) -> tuple[list[services_pb2.EndpointSubset], bool]:
    """The Endpoints' subsets (addresses grouped by the port list they serve) and whether it was truncated."""
    namespace = service.metadata.namespace
    groups: dict[tuple[ResolvedPort, ...], tuple[list, list]] = {}
    count = 0
    truncated = False
    for endpoint in sorted(endpoints, key=lambda e: (_ip_key(e.ip), e.pod_name)):
        if endpoint.terminating and not service.spec.publish_not_ready_addresses:
            continue
        if not endpoint.ports and service.spec.ports:
            continue  # serves none of the Service's ports (a named targetPort it lacks)
        if count >= MAX_ENDPOINTS_ADDRESSES:
            truncated = True
            break
        count += 1
        address = services_pb2.EndpointAddress(ip=endpoint.ip, target_ref=_target_ref(namespace, endpoint))
        if endpoint.hostname:
            address.hostname = endpoint.hostname
        if endpoint.node_name:
            address.node_name = endpoint.node_name
        ready, not_ready = groups.setdefault(endpoint.ports, ([], []))
        (ready if endpoint.ready else not_ready).append(address)
    subsets = []
    for ports in sorted(groups):
        ready, not_ready = groups[ports]
        subset = services_pb2.EndpointSubset(addresses=ready, not_ready_addresses=not_ready)
        for port in ports:
            endpoint_port = subset.ports.add(port=port.port, protocol=port.protocol)
            if port.name:
                endpoint_port.name = port.name
            if port.app_protocol:
                endpoint_port.app_protocol = port.app_protocol
        subsets.append(subset)
    return subsets, truncated


def _ip_key(ip: str) -> tuple:
    parts = ip.split(".")
    return tuple(int(p) for p in parts) if len(parts) == 4 and all(p.isdigit() for p in parts) else (ip,)


# ------------------------------------------------------------ EndpointSlices


def slice_endpoint(namespace: str, endpoint: PodEndpoint) -> services_pb2.Endpoint:
    entry = services_pb2.Endpoint(addresses=[endpoint.ip], target_ref=_target_ref(namespace, endpoint))
    entry.conditions.ready = endpoint.ready
    entry.conditions.serving = endpoint.serving
    entry.conditions.terminating = endpoint.terminating
    if endpoint.hostname:
        entry.hostname = endpoint.hostname
    if endpoint.node_name:
        entry.node_name = endpoint.node_name
    return entry


def slice_ports(ports: Sequence[ResolvedPort]) -> list[services_pb2.EndpointSlicePort]:
    result = []
    for port in ports:
        slice_port = services_pb2.EndpointSlicePort(name=port.name, protocol=port.protocol, port=port.port)
        if port.app_protocol:
            slice_port.app_protocol = port.app_protocol
        result.append(slice_port)
    return result


def _ports_key(slice_: Message) -> tuple[ResolvedPort, ...]:
    return tuple(sorted(ResolvedPort(p.name, p.port, p.protocol or "TCP", p.app_protocol) for p in slice_.ports))


def _endpoint_key(entry: Message) -> tuple[str, str]:
    return entry.addresses[0] if entry.addresses else "", entry.target_ref.uid


@dataclass
class SlicePlan:
    """The slice writes that bring a Service's slices to the desired state."""

    create: list[services_pb2.EndpointSlice]
    update: list[services_pb2.EndpointSlice]
    delete: list[services_pb2.EndpointSlice]


def plan_slices(service: Message, endpoints: Iterable[PodEndpoint], existing: Sequence[Message], *,
                max_per_slice: int) -> SlicePlan:
    """Keep each endpoint in the slice that holds it; fill slices with room; new slices for the rest.

    Pure: from the Service, its pods' endpoints and its current slices to
    the slices to create, update (only those whose content changes) and
    delete.
    """
    namespace = service.metadata.namespace
    wanted: dict[tuple[ResolvedPort, ...], dict[tuple[str, str], services_pb2.Endpoint]] = {}
    for endpoint in endpoints:
        if endpoint.ports or not service.spec.ports:
            entry = slice_endpoint(namespace, endpoint)
            wanted.setdefault(endpoint.ports, {})[_endpoint_key(entry)] = entry
    labels = managed_labels(service, (SLICE_MANAGED_BY_LABEL, SLICE_MANAGED_BY))
    labels[SERVICE_NAME_LABEL] = service.metadata.name
    plan = SlicePlan([], [], [])
    spare: list[Message] = []
    kept: list[Message] = []
    by_ports: dict[tuple[ResolvedPort, ...], list[Message]] = {}
    for slice_ in sorted(existing, key=lambda s: s.metadata.name):
        by_ports.setdefault(_ports_key(slice_), []).append(slice_)
    for ports, slices in by_ports.items():
        entries = wanted.get(ports, {})
        for slice_ in slices:
            new = _fresh_slice(slice_, labels)
            new.ports.extend(slice_ports(ports))
            for entry in slice_.endpoints:
                key = _endpoint_key(entry)
                if key in entries and len(new.endpoints) < max_per_slice:
                    new.endpoints.append(entries.pop(key))
            (kept if new.endpoints else spare).append(new)
            if new.endpoints:
                _update_if_changed(plan, slice_, new)
    for ports, entries in sorted(wanted.items()):
        rest = sorted(entries.values(), key=lambda e: (_ip_key(e.addresses[0]), e.target_ref.name))
        for new in kept:
            if _ports_key(new) != ports:
                continue
            room = max_per_slice - len(new.endpoints)
            if room > 0 and rest:
                new.endpoints.extend(rest[:room])
                rest = rest[room:]
                _replace_update(plan, new)
        while rest:
            chunk, rest = rest[:max_per_slice], rest[max_per_slice:]
            if spare:
                old = spare.pop(0)
                new = _fresh_slice(old, labels)
                new.ports.extend(slice_ports(ports))
                new.endpoints.extend(chunk)
                _replace_update(plan, new)
                kept.append(new)
            else:
                new = _new_slice(service, labels)
                new.ports.extend(slice_ports(ports))
                new.endpoints.extend(chunk)
                plan.create.append(new)
                kept.append(new)
    if not kept and not plan.create:
        # No endpoints at all: one empty slice stays, as Kubernetes keeps a placeholder.
        if spare:
            old = spare.pop(0)
            new = _fresh_slice(old, labels)
            _update_if_changed(plan, existing_by_name(existing, old.metadata.name), new)
        else:
            plan.create.append(_new_slice(service, labels))
    plan.delete.extend(spare)
    for new in plan.update:
        new.endpoints.sort(key=lambda e: (_ip_key(e.addresses[0]), e.target_ref.name))
    for new in plan.create:
        new.endpoints.sort(key=lambda e: (_ip_key(e.addresses[0]), e.target_ref.name))
    return plan


def existing_by_name(existing: Sequence[Message], name: str) -> Message:
    return next(slice_ for slice_ in existing if slice_.metadata.name == name)


def _fresh_slice(old: Message, labels: dict[str, str]) -> services_pb2.EndpointSlice:
    """old's identity (name, uid, owner, resourceVersion for the update), with labels and nothing else."""
    new = services_pb2.EndpointSlice(api_version="discovery.k8s.io/v1", kind="EndpointSlice", address_type="IPv4")
    new.metadata.CopyFrom(old.metadata)
    new.metadata.labels.clear()
    new.metadata.labels.update(labels)
    return new


def _new_slice(service: Message, labels: dict[str, str]) -> services_pb2.EndpointSlice:
    new = services_pb2.EndpointSlice(api_version="discovery.k8s.io/v1", kind="EndpointSlice", address_type="IPv4")
    new.metadata.generate_name = f"{service.metadata.name}-"
    new.metadata.namespace = service.metadata.namespace
    new.metadata.labels.update(labels)
    new.metadata.owner_references.append(owner_reference(service))
    return new


def _same_content(a: Message, b: Message) -> bool:
    def content(s: Message) -> tuple:
        endpoints = sorted((e.SerializeToString(deterministic=True) for e in s.endpoints))
        return (dict(s.metadata.labels), s.address_type, tuple(endpoints),
                tuple(p.SerializeToString(deterministic=True) for p in s.ports))
    return content(a) == content(b)


def _update_if_changed(plan: SlicePlan, old: Message, new: services_pb2.EndpointSlice) -> None:
    if not _same_content(old, new):
        _replace_update(plan, new)


def _replace_update(plan: SlicePlan, new: services_pb2.EndpointSlice) -> None:
    if not any(item is new for item in plan.update):
        plan.update.append(new)


# ------------------------------------------------------------ the controller


class EndpointsController:
    """Reconciles Services' Endpoints and EndpointSlices from shared caches; see the module docstring."""

    def __init__(self, ctx: ControllerContext, *, recorder: EventRecorder,
                 max_endpoints_per_slice: int = DEFAULT_MAX_ENDPOINTS_PER_SLICE) -> None:
        self.api: Client = ctx.api
        self.recorder = recorder
        self.max_per_slice = max_endpoints_per_slice
        self.services: Informer = ctx.informers.get("Service")
        self.pods: Informer = ctx.informers.get("Pod")
        self.endpoints: Informer = ctx.informers.get("Endpoints")
        self.slices: Informer = ctx.informers.get("EndpointSlice")
        self.queue = WorkQueue()
        self.services.add_handler(queue_key_of(self.queue.add))
        self.endpoints.add_handler(queue_key_of(self.queue.add))
        self.pods.add_handler(self._pod_changed)
        self.slices.add_handler(self._slice_changed)

    # ------------------------------------------------------------ watch handlers

    def _pod_changed(self, old: Message | None, new: Message | None) -> None:
        pod = new if new is not None else old
        assert pod is not None
        for service in self.services.list(pod.metadata.namespace):
            selector = service_selector(service)
            if selector is None:
                continue
            if any(p is not None and selector.matches(p.metadata.labels) for p in (old, new)):
                self.queue.add((service.metadata.namespace, service.metadata.name))

    def _slice_changed(self, old: Message | None, new: Message | None) -> None:
        for slice_ in (old, new):
            if slice_ is not None and slice_.metadata.labels.get(SLICE_MANAGED_BY_LABEL) == SLICE_MANAGED_BY:
                name = slice_.metadata.labels.get(SERVICE_NAME_LABEL)
                if name:
                    self.queue.add((slice_.metadata.namespace, name))

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: Hashable) -> float | None:
        """One pass for one key; a write that lost a race is retried soon, without a traceback."""
        try:
            return await self.reconcile_service(key)
        except (errors.ConflictError, errors.AlreadyExistsError) as err:
            log.info("endpoints %s/%s: %s; looking again", *key, err)  # type: ignore[misc]
            return CONFLICT_RETRY_SECONDS

    async def reconcile_service(self, key: Hashable) -> float | None:
        namespace, name = key  # type: ignore[misc]
        service = self.services.get(namespace, name)
        if service is None or service.metadata.HasField("deletion_timestamp"):
            await self._forget_service(namespace, name, service)
            return None
        selector = service_selector(service)
        if selector is None or service.spec.type == "ExternalName":
            return None  # Endpoints written by hand, or none at all
        endpoints = [endpoint for pod in self.pods.list(namespace, selector=selector)
                     if (endpoint := pod_endpoint(service, pod)) is not None]
        try:
            await self._write_endpoints(service, endpoints)
            await self._write_slices(service, endpoints)
        except errors.PreconditionError as err:
            # The namespace is being deleted: nothing new may be written in it.
            log.info("endpoints %s/%s: %s", namespace, name, err)
        return None

    async def _write_endpoints(self, service: Message, endpoints: list[PodEndpoint]) -> None:
        meta = service.metadata
        subsets, truncated = desired_subsets(service, endpoints)
        current = self.endpoints.get(meta.namespace, meta.name)
        desired = services_pb2.Endpoints(api_version="v1", kind="Endpoints", subsets=subsets)
        if current is not None:
            desired.metadata.CopyFrom(current.metadata)
            desired.metadata.labels.clear()
        else:
            desired.metadata.name, desired.metadata.namespace = meta.name, meta.namespace
        desired.metadata.labels.update(managed_labels(service, (MANAGED_BY_LABEL, MANAGED_BY)))
        if truncated:
            desired.metadata.annotations[OVER_CAPACITY_ANNOTATION] = "truncated"
        else:
            desired.metadata.annotations.pop(OVER_CAPACITY_ANNOTATION, None)
        if current is not None and current == desired:
            return
        try:
            if current is None:
                written = await self.api.create(desired)
            else:
                written = await self.api.update(desired)
        except errors.APIError as err:
            if not isinstance(err, (errors.ConflictError, errors.AlreadyExistsError, errors.PreconditionError)):
                self.recorder.warning(service, "FailedToUpdateEndpoint",
                                      f"Failed to update endpoint {meta.namespace}/{meta.name}: {err}")
            raise
        self.endpoints.assume(written)

    async def _write_slices(self, service: Message, endpoints: list[PodEndpoint]) -> None:
        managed = self._managed_slices(service.metadata.namespace, service.metadata.name)
        owned = [slice_ for slice_ in managed if _owned_by(slice_, service)]
        for slice_ in managed:
            if not _owned_by(slice_, service):
                await self._delete_slice(slice_)  # a former Service's of the same name
        plan = plan_slices(service, endpoints, owned, max_per_slice=self.max_per_slice)
        for slice_ in plan.create:
            self.slices.assume(await self.api.create(slice_))
        for slice_ in plan.update:
            self.slices.assume(await self.api.update(slice_))
        for slice_ in plan.delete:
            await self._delete_slice(slice_)

    def _managed_slices(self, namespace: str, name: str) -> list[Message]:
        return [slice_ for slice_ in self.slices.list(namespace)
                if slice_.metadata.labels.get(SERVICE_NAME_LABEL) == name
                and slice_.metadata.labels.get(SLICE_MANAGED_BY_LABEL) == SLICE_MANAGED_BY]

    async def _delete_slice(self, slice_: Message) -> None:
        try:
            await self.api.delete("EndpointSlice", slice_.metadata.name, namespace=slice_.metadata.namespace,
                                  uid=slice_.metadata.uid)
        except errors.NotFoundError:
            pass
        self.slices.assume_deleted(slice_)

    async def _forget_service(self, namespace: str, name: str, service: Message | None) -> None:
        """The Service is gone (or going): delete the Endpoints and slices made for it."""
        current = self.endpoints.get(namespace, name)
        if current is not None and current.metadata.labels.get(MANAGED_BY_LABEL) == MANAGED_BY:
            try:
                await self.api.delete("Endpoints", name, namespace=namespace, uid=current.metadata.uid)
            except errors.NotFoundError:
                pass
            self.endpoints.assume_deleted(current)
        for slice_ in self._managed_slices(namespace, name):
            if service is None or _owned_by(slice_, service):
                await self._delete_slice(slice_)


def _owned_by(slice_: Message, service: Message) -> bool:
    return any(ref.uid == service.metadata.uid for ref in slice_.metadata.owner_references)


async def run_endpoints_controller(ctx: ControllerContext) -> None:
    """Run the endpoints controller until cancelled."""
    recorder = EventRecorder(ctx.api, component=COMPONENT)
    controller = EndpointsController(ctx, recorder=recorder,
                                     max_endpoints_per_slice=ctx.options.max_endpoints_per_slice)
    await ctx.informers.wait_synced(["Service", "Pod", "Endpoints", "EndpointSlice"])
    recording = asyncio.create_task(recorder.run())
    try:
        await run_workers(controller.queue, controller.reconcile, workers=ctx.options.workers)
    finally:
        recording.cancel()
        controller.queue.close()
        await asyncio.gather(recording, return_exceptions=True)
