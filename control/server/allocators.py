"""Cluster IPs and node ports for Services: handed out from their ranges, never twice.

Every address or port a Service holds is one record in the store,
``/registry/allocations/clusterips/10.96.0.10`` or
``/registry/allocations/nodeports/30080``, whose value names the Service
holding it (namespace, name, uid) and when it was taken. Taking one is the
store's ``create`` of its key, which fails when the key exists, so two
requests, on one control replica or on several sharing the store, can never
both win the same address, and a restart forgets nothing. (Kubernetes' newer
allocator keeps one IPAddress object per address in the same way.)

The Store has no transaction over several keys, so a Service and its records
are written in an order that can leak an allocation but never double-book
one: records first, then the Service (``claim``); a Service write the store
refuses gives its records back; on delete the Service goes first, then its
records (``release``). A crash in between leaves a record that no Service
holds. ``repair`` (run at start and every few minutes, as Kubernetes' repair
controllers are) deletes such records once they are older than a grace
period (a younger one may belong to a create in flight on another replica;
a create stalled between its two writes for longer than that is the one
window left, as in Kubernetes), restores records missing for Services that
hold an address, and reports addresses two Services claim and addresses
outside the configured ranges.

Ranges: ``--service-cidr`` (default 10.96.0.0/12) without its network and
broadcast addresses, and ``--service-node-port-range`` (default
30000-32767). Picks without a request are random, from the upper part of a
range first: the lower part (a sixteenth of an IP range, between 16 and 256
addresses; a thirty-second of a port range, between 16 and 128 ports) is left
for explicit requests, such as the cluster DNS's 10.96.0.10, as Kubernetes
does. The first address (10.96.0.1), which Kubernetes gives the API's own
``kubernetes`` Service, is never picked at random but may be requested.

On update only the difference is allocated: what the new Service holds and
the stored one did not is taken before the write, what the stored one held
and the new one does not is released after it (a type change to
ExternalName frees the cluster IP; to ClusterIP, the node ports).
``keep_allocated_values`` (the Service strategy's update step) carries the
allocated values over when an update leaves them out, as ``kubectl apply``
of the original manifest does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable

from google.protobuf.message import Message

from control.api import errors, kinds
from control.api.manifest import FieldError
from control.store import KeyExistsError, KeyNotFoundError, KeyValue, RevisionConflictError, Store

log = logging.getLogger(__name__)

DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_NODE_PORT_RANGE = "30000-32767"
RECORD_PREFIX = "/registry/allocations/"
# A record no Service holds is released once it is this old (a younger one may be a create in flight).
DEFAULT_LEAK_GRACE_SECONDS = 60.0
# How often the repair pass runs after the one at start (Kubernetes: 3 minutes).
DEFAULT_REPAIR_INTERVAL_SECONDS = 180.0
# Random picks tried before the free values are listed.
_RANDOM_TRIES = 8
HEADLESS = "None"


def needs_cluster_ip(spec: Message) -> bool:
    return spec.type != "ExternalName" and spec.cluster_ip != HEADLESS


def needs_node_ports(spec: Message) -> bool:
    """NodePort Services, and LoadBalancers unless allocateLoadBalancerNodePorts is false."""
    if spec.type == "NodePort":
        return True
    return spec.type == "LoadBalancer" and (
        not spec.HasField("allocate_load_balancer_node_ports") or spec.allocate_load_balancer_node_ports)


def needs_health_check_node_port(spec: Message) -> bool:
    return spec.type == "LoadBalancer" and spec.external_traffic_policy == "Local"


def held_ips(service: Message) -> set[str]:
    """The cluster IPs a Service holds (none when headless or ExternalName)."""
    spec = service.spec
    return {ip for ip in (spec.cluster_ip, *spec.cluster_ips) if ip and ip != HEADLESS}


def held_ports(service: Message) -> set[int]:
    """The node ports a Service holds, its health check node port included."""
    ports = {port.node_port for port in service.spec.ports if port.node_port}
    if service.spec.health_check_node_port:
        ports.add(service.spec.health_check_node_port)
    return ports


# ------------------------------------------------------------------ ranges


class ValueRange:
    """The values one allocator hands out, indexed 0..size-1."""

    resource: str  # the record directory: "clusterips" or "nodeports"
    size: int
    # Indexes below this are picked at random only when the rest is full.
    static_size: int
    # Indexes never picked at random (still allocatable on request).
    reserved: frozenset[int] = frozenset()

    def index_of(self, value: str | int) -> int | None:
        """The value's index, or None when it is outside the range."""
        raise NotImplementedError

    def value_at(self, index: int) -> str | int:
        raise NotImplementedError

    def parse(self, text: str) -> str | int:
        """A value from its record key's last part."""
        raise NotImplementedError


class IPRange(ValueRange):
    """The cluster IPs of a service CIDR, without its network and broadcast addresses."""

    resource = "clusterips"

    def __init__(self, cidr: str) -> None:
        try:
            network = ipaddress.ip_network(cidr, strict=True)
        except ValueError as err:
            raise ValueError(f"--service-cidr: Invalid value: {cidr!r}: {err}") from None
        if network.version != 4:
            raise ValueError(f"--service-cidr: Invalid value: {cidr!r}: only IPv4 service ranges are supported")
        if network.num_addresses < 8:
            raise ValueError(f"--service-cidr: Invalid value: {cidr!r}: the range must hold at least 8 addresses")
        self.network = network
        self.cidr = str(network)
        self.size = network.num_addresses - 2
        self.static_size = min(max(16, self.size // 16), 256)
        self.reserved = frozenset({0})
        self._first = int(network.network_address) + 1

    def index_of(self, value: str | int) -> int | None:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return None
        index = int(address) - self._first
        return index if address.version == 4 and 0 <= index < self.size else None

    def value_at(self, index: int) -> str:
        return str(ipaddress.IPv4Address(self._first + index))

    def parse(self, text: str) -> str:
        return text

    def __str__(self) -> str:
        return self.cidr


class PortRange(ValueRange):
    """The node ports from first to last, inclusive."""

    resource = "nodeports"

    def __init__(self, text: str) -> None:
        first, sep, last = text.partition("-")
        try:
            self.first, self.last = int(first), int(last if sep else first)
        except ValueError:
            raise ValueError(f"--service-node-port-range: Invalid value: {text!r}: expected FIRST-LAST") from None
        if not 1 <= self.first <= self.last <= 65535 or self.last - self.first < 15:
            raise ValueError(f"--service-node-port-range: Invalid value: {text!r}: "
                             "must be at least 16 ports within 1-65535")
        self.size = self.last - self.first + 1
        self.static_size = min(max(16, self.size // 32), 128)

    def index_of(self, value: str | int) -> int | None:
        if not isinstance(value, int) or not self.first <= value <= self.last:
            return None
        return value - self.first

    def value_at(self, index: int) -> int:
        return self.first + index

    def parse(self, text: str) -> int:
        return int(text)

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


# ------------------------------------------------------------------ records


@dataclass(frozen=True)
class Holder:
    """The Service an allocation record names."""

    namespace: str
    name: str
    uid: str

    @classmethod
    def of(cls, service: Message) -> "Holder":
        meta = service.metadata
        return cls(meta.namespace, meta.name, meta.uid)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Record:
    value: str | int
    holder: Holder
    since: float  # when it was taken, epoch seconds
    kv: KeyValue


class AlreadyAllocated(Exception):
    pass


class OutOfRange(Exception):
    pass


class RangeFull(Exception):
    pass


class RangeAllocator:
    """One range's records in the store: take a value (given or free), give it back, list them."""

    def __init__(self, store: Store, values: ValueRange, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.values = values
        self.clock = clock
        self.prefix = f"{RECORD_PREFIX}{values.resource}/"

    def _key(self, value: str | int) -> str:
        return f"{self.prefix}{value}"

    def _encode(self, holder: Holder) -> bytes:
        return json.dumps({"namespace": holder.namespace, "name": holder.name, "uid": holder.uid,
                           "since": self.clock()}, sort_keys=True).encode()

    def _decode(self, kv: KeyValue) -> Record:
        body = json.loads(kv.value)
        holder = Holder(body.get("namespace", ""), body.get("name", ""), body.get("uid", ""))
        return Record(self.values.parse(kv.key.removeprefix(self.prefix)), holder, float(body.get("since", 0)), kv)

    async def allocate(self, value: str | int, holder: Holder) -> None:
        """Take value for holder. Raises OutOfRange or AlreadyAllocated."""
        if self.values.index_of(value) is None:
            raise OutOfRange(value)
        try:
            await self.store.create(self._key(value), self._encode(holder))
        except KeyExistsError:
            raise AlreadyAllocated(value) from None

    async def allocate_next(self, holder: Holder) -> str | int:
        """Take a free value for holder: random picks first, then the free values listed. Raises RangeFull."""
        values = self.values
        dynamic = range(values.static_size, values.size)
        for _ in range(_RANDOM_TRIES if len(dynamic) else 0):
            index = random.choice(dynamic)
            if index in values.reserved:
                continue
            try:
                await self.allocate(values.value_at(index), holder)
                return values.value_at(index)
            except AlreadyAllocated:
                continue
        taken = {record.value for record in await self.records()}
        for band in (dynamic, range(0, values.static_size)):
            if not len(band):
                continue
            start = random.randrange(len(band))
            for step in range(len(band)):
                index = band[(start + step) % len(band)]
                value = values.value_at(index)
                if index in values.reserved or value in taken:
                    continue
                try:
                    await self.allocate(value, holder)
                    return value
                except AlreadyAllocated:
                    continue  # taken since the list
        raise RangeFull()

    async def release(self, value: str | int, *, uid: str) -> bool:
        """Give value back if its record names uid (a record another Service holds is left alone)."""
        kv = await self.store.get(self._key(value))
        if kv is None or self._decode(kv).holder.uid != uid:
            return False
        with contextlib.suppress(KeyNotFoundError, RevisionConflictError):
            await self.store.delete(kv.key, expected_revision=kv.mod_revision)
            return True
        return False

    async def records(self) -> list[Record]:
        kvs, _ = await self.store.list(self.prefix)
        return [self._decode(kv) for kv in kvs]

    async def restore(self, value: str | int, holder: Holder, *, replacing: Record | None) -> bool:
        """Write holder's record for value (repair), over ``replacing`` if given; False if that lost a race."""
        try:
            if replacing is None:
                await self.store.create(self._key(value), self._encode(holder))
            else:
                await self.store.update(self._key(value), self._encode(holder),
                                        expected_revision=replacing.kv.mod_revision)
        except (KeyExistsError, KeyNotFoundError, RevisionConflictError):
            return False
        return True

    async def discard(self, record: Record) -> bool:
        """Delete a leaked record unless it changed since it was read."""
        try:
            await self.store.delete(record.kv.key, expected_revision=record.kv.mod_revision)
        except (KeyNotFoundError, RevisionConflictError):
            return False
        return True


# ------------------------------------------------------------------ Services


@dataclass
class Taken:
    """What one claim took, to give back if the Service write fails."""

    ips: list[str] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)


@dataclass
class RepairReport:
    """What one repair pass found and did, per range: ``"clusterips 10.96.0.10: ..."`` lines."""

    restored: list[str] = field(default_factory=list)  # records written for Services that held the value
    released: list[str] = field(default_factory=list)  # leaked records deleted
    shared: list[str] = field(default_factory=list)  # values two or more Services claim
    out_of_range: list[str] = field(default_factory=list)  # values Services hold outside the ranges


# Called by repair for each problem found on a Service: (service, reason, message).
ProblemReporter = Callable[[Message, str, str], Awaitable[None]]


def _invalid(service: Message, problems: list[FieldError]) -> errors.InvalidError:
    listed = ", ".join(str(p) for p in problems)
    body = listed if len(problems) == 1 else f"[{listed}]"
    return errors.InvalidError(f'Service "{service.metadata.name}" is invalid: {body}')


def _ip_problem(ip: str, reason: str) -> FieldError:
    return FieldError("spec.clusterIPs", "Invalid value", f'["{ip}"]: failed to allocate IP {ip}: {reason}')


class ServiceAllocations:
    """Cluster IPs and node ports of every Service, kept in one store; see the module docstring."""

    def __init__(self, store: Store, *, service_cidr: str = DEFAULT_SERVICE_CIDR,
                 node_port_range: str = DEFAULT_NODE_PORT_RANGE, clock: Callable[[], float] = time.time,
                 leak_grace: float = DEFAULT_LEAK_GRACE_SECONDS) -> None:
        self.store = store
        self.clock = clock
        self.leak_grace = leak_grace
        self.ip_range = IPRange(service_cidr)
        self.port_range = PortRange(node_port_range)
        self.ips = RangeAllocator(store, self.ip_range, clock=clock)
        self.ports = RangeAllocator(store, self.port_range, clock=clock)

    # ------------------------------------------------------------ writes

    @contextlib.asynccontextmanager
    async def claim(self, kind: kinds.Kind, service: Message, *, old: Message | None = None) -> AsyncIterator[None]:
        """Around the write of ``service`` (new, or replacing ``old``): allocate what it lacks, in place.

        Entering takes the cluster IP and node ports ``service`` needs and
        ``old`` did not hold (raising InvalidError for a value that is taken
        or out of range, InternalError for a full range); a write the store
        refused (its compare-and-swap failed) gives them back; after a
        successful write, what ``old`` held and ``service`` no longer does
        is released. Any other failure (cancelled, store unreachable) may
        have written the Service after all, so what was taken stays: at
        worst a leak, which repair releases. Other kinds pass through
        untouched.
        """
        if kind.kind != "Service":
            yield
            return
        taken = await self._allocate(service, old)
        try:
            yield
        except (KeyExistsError, KeyNotFoundError, RevisionConflictError):
            await self._give_back(taken, uid=service.metadata.uid)
            raise
        if old is not None:
            uid = old.metadata.uid
            for ip in held_ips(old) - held_ips(service):
                await self.ips.release(ip, uid=uid)
            for port in held_ports(old) - held_ports(service):
                await self.ports.release(port, uid=uid)

    async def release(self, kind: kinds.Kind, service: Message) -> None:
        """Give back everything a deleted Service held."""
        if kind.kind != "Service":
            return
        uid = service.metadata.uid
        for ip in held_ips(service):
            await self.ips.release(ip, uid=uid)
        for port in held_ports(service):
            await self.ports.release(port, uid=uid)

    async def _allocate(self, service: Message, old: Message | None) -> Taken:
        spec, holder = service.spec, Holder.of(service)
        had_ips = held_ips(old) if old is not None else set()
        had_ports = held_ports(old) if old is not None else set()
        taken = Taken()
        problems: list[FieldError] = []
        try:
            if needs_cluster_ip(spec):
                problems += self._family_problems(spec)
                if not problems:
                    problems += await self._allocate_ip(service, holder, had_ips, taken)
            if needs_node_ports(spec):
                by_port: dict[int, int] = {}
                for i, port in enumerate(spec.ports):
                    if not port.node_port and port.port in by_port:
                        # One node port serves one port number's TCP and UDP alike.
                        port.node_port = by_port[port.port]
                    problems += await self._allocate_port(port, "node_port", f"spec.ports[{i}].nodePort",
                                                          holder, had_ports, taken)
                    if port.node_port:
                        by_port.setdefault(port.port, port.node_port)
            if needs_health_check_node_port(spec):
                problems += await self._allocate_port(spec, "health_check_node_port", "spec.healthCheckNodePort",
                                                      holder, had_ports, taken)
        except BaseException:
            await self._give_back(taken, uid=holder.uid)
            raise
        if problems:
            await self._give_back(taken, uid=holder.uid)
            raise _invalid(service, problems)
        return taken

    def _family_problems(self, spec: Message) -> list[FieldError]:
        """This cluster's range is single-stack IPv4: what asks for more is refused."""
        problems = []
        if spec.ip_family_policy == "RequireDualStack":
            problems.append(FieldError("spec.ipFamilyPolicy", "Invalid value",
                                       "this cluster is not configured for dual-stack services",
                                       spec.ip_family_policy))
        for i, family in enumerate(spec.ip_families):
            if family != "IPv4":
                problems.append(FieldError(f"spec.ipFamilies[{i}]", "Invalid value", "not configured on this cluster",
                                           family))
        return problems

    async def _allocate_ip(self, service: Message, holder: Holder, had: set[str], taken: Taken) -> list[FieldError]:
        spec = service.spec
        wanted = spec.cluster_ip or (spec.cluster_ips[0] if spec.cluster_ips else "")
        if wanted:
            if wanted in had:
                return []
            try:
                await self.ips.allocate(wanted, holder)
            except OutOfRange:
                return [_ip_problem(wanted, f"the provided IP ({wanted}) is not in the valid range. "
                                            f"The range of valid IPs is {self.ip_range}")]
            except AlreadyAllocated:
                return [_ip_problem(wanted, "provided IP is already allocated")]
        else:
            try:
                wanted = str(await self.ips.allocate_next(holder))
            except RangeFull:
                raise errors.InternalError(
                    "Internal error occurred: failed to allocate a serviceIP: range is full") from None
        taken.ips.append(wanted)
        spec.cluster_ip = wanted
        del spec.cluster_ips[:]
        spec.cluster_ips.append(wanted)
        return []

    async def _allocate_port(self, message: Message, field_name: str, path: str, holder: Holder, had: set[int],
                             taken: Taken) -> list[FieldError]:
        wanted = getattr(message, field_name)
        if wanted:
            if wanted in had or wanted in taken.ports:
                # Held already, or taken a moment ago for another protocol on the same port.
                return []
            try:
                await self.ports.allocate(wanted, holder)
            except OutOfRange:
                return [FieldError(path, "Invalid value", "provided port is not in the valid range. "
                                   f"The range of valid ports is {self.port_range}", wanted)]
            except AlreadyAllocated:
                return [FieldError(path, "Invalid value", "provided port is already allocated", wanted)]
        else:
            try:
                wanted = int(await self.ports.allocate_next(holder))
            except RangeFull:
                raise errors.InternalError(
                    "Internal error occurred: failed to allocate a nodePort: range is full") from None
            setattr(message, field_name, wanted)
        taken.ports.append(wanted)
        return []

    async def _give_back(self, taken: Taken, *, uid: str) -> None:
        for ip in taken.ips:
            await self.ips.release(ip, uid=uid)
        for port in taken.ports:
            await self.ports.release(port, uid=uid)

    # ------------------------------------------------------------ repair

    async def stored_services(self) -> list[Message]:
        kind = kinds.by_kind("Service")
        kvs, _ = await self.store.list(kind.storage_prefix())
        return [kind.message.FromString(kv.value) for kv in kvs]

    async def repair(self, *, report: ProblemReporter | None = None) -> RepairReport:
        """Make the records match the stored Services; see the module docstring."""
        services = await self.stored_services()
        result = RepairReport()
        for allocator, held, what in ((self.ips, held_ips, "ClusterIP"), (self.ports, held_ports, "Port")):
            await self._repair_range(allocator, services, held, what, result, report)
        for line in (*result.restored, *result.released, *result.shared, *result.out_of_range):
            log.warning("allocation repair: %s", line)
        return result

    async def _repair_range(self, allocator: RangeAllocator, services: list[Message],
                            held: Callable[[Message], set], what: str, result: RepairReport,
                            report: ProblemReporter | None) -> None:
        resource = allocator.values.resource
        claimants: dict[str | int, list[Message]] = {}
        for service in services:
            for value in held(service):
                claimants.setdefault(value, []).append(service)
        records = {record.value: record for record in await allocator.records()}
        now = self.clock()

        async def problem(service: Message, reason: str, message: str) -> None:
            if report is not None:
                await report(service, reason, message)

        for value, holders in sorted(claimants.items(), key=lambda item: str(item[0])):
            holders.sort(key=lambda svc: (svc.metadata.creation_timestamp, svc.metadata.namespace,
                                          svc.metadata.name))
            if allocator.values.index_of(value) is None:
                result.out_of_range.append(f"{resource} {value}: held by {Holder.of(holders[0])}, "
                                           f"outside the range {allocator.values}")
                await problem(holders[0], f"{what}OutOfRange",
                              f"{what} {value} is not within the configured range {allocator.values}")
            if len(holders) > 1:
                names = ", ".join(str(Holder.of(svc)) for svc in holders)
                result.shared.append(f"{resource} {value}: claimed by {names}")
                for svc in holders[1:]:
                    await problem(svc, f"{what}AlreadyAllocated",
                                  f"{what} {value} was assigned to multiple services; please recreate service")
            record = records.get(value)
            uids = {svc.metadata.uid for svc in holders}
            if record is not None and record.holder.uid in uids:
                continue
            if record is not None and now - record.since < self.leak_grace:
                continue  # someone else's, just taken: leave it to the next pass
            owner = holders[0]
            if await allocator.restore(value, Holder.of(owner), replacing=record):
                result.restored.append(f"{resource} {value}: record restored for {Holder.of(owner)}")
                await problem(owner, f"{what}NotAllocated",
                              f"{what} {value} is not allocated; repairing")
        for value, record in records.items():
            if value in claimants or now - record.since < self.leak_grace:
                continue
            if await allocator.discard(record):
                result.released.append(f"{resource} {value}: leaked by {record.holder}, released")

    async def run_repairs(self, *, interval: float, report: ProblemReporter | None = None) -> None:
        """Repair every interval until cancelled (the pass at start is the caller's)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.repair(report=report)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("allocation repair failed; trying again in %.0f s", interval)


# ------------------------------------------------------------------ updates


def keep_allocated_values(service: Message, old: Message) -> None:
    """The Service strategy's update step: carry allocated values over, drop those the new type has no use for.

    An update that leaves out the cluster IP (or a node port, matched by
    port name) keeps the stored one, as long as the type still needs it; a
    type change clears the values the new type does not use when they are
    the stored ones unchanged (to ExternalName: cluster IPs and IP
    families; to ClusterIP: node ports, the health check node port and the
    external traffic policy).
    """
    spec, was = service.spec, old.spec
    if needs_cluster_ip(spec) and needs_cluster_ip(was) and not spec.cluster_ip and not spec.cluster_ips:
        spec.cluster_ip = was.cluster_ip
        spec.cluster_ips.extend(was.cluster_ips)
    if spec.type == "ExternalName" and was.type != "ExternalName":
        if spec.cluster_ip == was.cluster_ip and list(spec.cluster_ips) == list(was.cluster_ips):
            spec.ClearField("cluster_ip")
            spec.ClearField("cluster_ips")
        if list(spec.ip_families) == list(was.ip_families):
            spec.ClearField("ip_families")
        if spec.ip_family_policy == was.ip_family_policy:
            spec.ClearField("ip_family_policy")
    if needs_node_ports(spec) and needs_node_ports(was):
        in_use = {port.node_port for port in spec.ports if port.node_port}
        by_name = {port.name: port.node_port for port in was.ports if port.node_port}
        for port in spec.ports:
            if not port.node_port and by_name.get(port.name, 0) not in (0, *in_use):
                port.node_port = by_name[port.name]
                in_use.add(port.node_port)
    elif not needs_node_ports(spec) and needs_node_ports(was):
        kept = {(port.name, port.node_port) for port in was.ports}
        for port in spec.ports:
            if (port.name, port.node_port) in kept:
                port.ClearField("node_port")
    if needs_health_check_node_port(spec) and needs_health_check_node_port(was):
        if not spec.health_check_node_port:
            spec.health_check_node_port = was.health_check_node_port
    elif spec.health_check_node_port == was.health_check_node_port:
        spec.ClearField("health_check_node_port")
    if not _externally_reachable(spec) and _externally_reachable(was) \
            and spec.external_traffic_policy == was.external_traffic_policy:
        spec.ClearField("external_traffic_policy")


def _externally_reachable(spec: Message) -> bool:
    return spec.type in ("NodePort", "LoadBalancer") or (spec.type == "ClusterIP" and bool(spec.external_ips))
