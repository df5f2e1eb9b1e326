"""Simulated ("hollow") nodes: many Nodes served by one process, without containers.

Like Kubernetes' kubemark hollow nodes and KWOK: a way to load the control
plane (the scheduler, the API, its watches) with a large cluster on one
machine. ``SimulatedNodes`` serves ``count`` nodes with the agent's own
pieces (agent.node), and no container runtime:

- registration: ``register_node`` for each node (Ready; capacity and
  allocatable cpu, memory and pods as configured; labels, taints, a pod CIDR
  and an InternalIP of its own), a few nodes at a time;
- heartbeats: ``NodeLease`` renews each node's Lease every ``lease_interval``
  seconds and the node's status is rewritten every ``status_interval``
  seconds (kubelet's five-minute status report). One task paces each of
  the two: node i's turn comes i/count of an interval after node 0's, so
  the writes are spread evenly, never a burst every interval;
- pods: one watch of bound pods (field selector ``spec.nodeName!=``) serves
  every node. A pod bound to one of them is "started" at once: its status
  is what the real agent would report for running containers
  (agent.pods.status.compute_pod_status, given a made-up sandbox and
  containers): Running, Ready, containers running, init containers
  completed, a pod IP from the node's CIDR. A pod marked for deletion is
  finished the way the real agent finishes one once its containers have
  stopped: deleted with grace period 0 and its uid as precondition;
- writes: the watch handler only records the pod's key; ``writers`` tasks
  take keys from one queue (a key waits in it at most once and is never
  handled by two writers at once) and act on the newest copy of the pod,
  so a burst of bindings becomes up to ``writers`` concurrent status writes
  on the one channel instead of one write after another. A write that
  conflicts or fails is retried after a back-off.

Nothing here busy-waits: the pacing tasks sleep until the next node's turn,
the writers until a key arrives.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import platform
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Hashable, Mapping

from agent.node import (
    MEMORY_PRESSURE_BYTES, MachineFacts, NodeIdentity, NodeLease, node_status, register_node,
)
from agent.pods.status import ContainerProbeResults, PodRuntimeState, compute_pod_status, is_sidecar
from agent.runtime import base
from control.api import errors
from control.api.names import dns1123_subdomain_errors
from control.api.quantity import bytes_value, cpu_millis
from control.client import Client
from control.reflector import Reflector
from protos.api.v1 import core_pb2

log = logging.getLogger(__name__)

RUNTIME_NAME = "simulated"
RUNTIME_VERSION = "simulated://v0.1.0"
# Every simulated node carries this label (sampan get nodes -l sampan.io/simulated=true).
SIMULATED_LABEL = "sampan.io/simulated"
# InternalIPs come from 100.64.0.0/10 (shared address space), pod CIDRs from 10.128.0.0/9.
NODE_IP_BASE = ipaddress.IPv4Address("100.64.0.1")
POD_NETWORK = ipaddress.IPv4Network("10.128.0.0/9")
DISK_BYTES = 100 * 1024 ** 3
REGISTER_CONCURRENCY = 16
HEARTBEAT_CONCURRENCY = 16
RETRY_INITIAL = 0.2
RETRY_MAX = 10.0
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


@dataclass(frozen=True)
class SimulatedNodesConfig:
    count: int
    pods_per_node: int = 110
    name_prefix: str = "hollow-"
    cpu: str = "4"
    memory: str = "16Gi"
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[core_pb2.Taint, ...] = ()
    lease_interval: float = 10.0
    status_interval: float = 300.0
    writers: int = 16

    def check(self) -> None:
        """ValueError naming the flag when a setting cannot work."""
        if self.count < 1:
            raise ValueError(f"--count: must be at least 1, not {self.count}")
        if self.pods_per_node < 1:
            raise ValueError(f"--pods-per-node: must be at least 1, not {self.pods_per_node}")
        for flag, text, parse in (("--cpu", self.cpu, cpu_millis), ("--memory", self.memory, bytes_value)):
            try:
                if parse(text) <= 0:
                    raise ValueError("must be positive")
            except ValueError as err:
                raise ValueError(f"{flag}: {text!r} is not a usable quantity: {err}") from None
        problems = dns1123_subdomain_errors(node_name(self.name_prefix, self.count - 1))
        if problems:
            raise ValueError(f"--name-prefix: {self.name_prefix!r} does not make valid node names: {problems[0]}")
        if self.writers < 1:
            raise ValueError(f"writers: must be at least 1, not {self.writers}")
        if cidr_for(self.count - 1, self.pods_per_node) is None:
            raise ValueError(f"--count/--pods-per-node: {self.count} nodes of {self.pods_per_node} pods do not fit"
                             f" the simulated pod network {POD_NETWORK}")


def parse_taints(text: str) -> tuple[core_pb2.Taint, ...]:
    """``key=value:Effect,key:Effect`` (kubelet's --register-with-taints) as Taints."""
    taints = []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        spec, sep, effect = part.rpartition(":")
        key, _, value = spec.partition("=")
        if not sep or not key or effect not in TAINT_EFFECTS:
            raise ValueError(f"--taints: expected KEY[=VALUE]:EFFECT with EFFECT one of {', '.join(TAINT_EFFECTS)},"
                             f" got {part!r}")
        taints.append(core_pb2.Taint(key=key, value=value, effect=effect))
    return tuple(taints)


def node_name(prefix: str, index: int) -> str:
    return f"{prefix}{index}"


def cidr_for(index: int, pods_per_node: int) -> ipaddress.IPv4Network | None:
    """Node index's pod CIDR: the smallest block (at least a /24) holding
    pods_per_node addresses besides the network, gateway and broadcast ones."""
    prefix = 24
    while prefix > POD_NETWORK.prefixlen and 2 ** (32 - prefix) - 3 < pods_per_node:
        prefix -= 1
    size = 2 ** (32 - prefix)
    if (index + 1) * size > POD_NETWORK.num_addresses:
        return None
    return ipaddress.IPv4Network((int(POD_NETWORK.network_address) + index * size, prefix))


class PodAddresses:
    """One node's pod IPs: handed out from its CIDR (network +2 onwards), given back when a pod goes."""

    def __init__(self, network: ipaddress.IPv4Network) -> None:
        self.network = network
        self._next = int(network.network_address) + 2
        self._last = int(network.broadcast_address) - 1
        self._free: deque[int] = deque()
        self._by_uid: dict[str, int] = {}

    def allocate(self, uid: str) -> str:
        """The pod's address ("" when the CIDR is used up)."""
        if uid not in self._by_uid:
            if self._free:
                self._by_uid[uid] = self._free.popleft()
            elif self._next <= self._last:
                self._by_uid[uid] = self._next
                self._next += 1
            else:
                return ""
        return str(ipaddress.IPv4Address(self._by_uid[uid]))

    def adopt(self, uid: str, address: str) -> None:
        """Record an address a pod already reports (after a restart of the simulator)."""
        try:
            value = int(ipaddress.IPv4Address(address))
        except ValueError:
            return
        if ipaddress.IPv4Address(value) in self.network:
            self._by_uid[uid] = value
            if value >= self._next:
                self._next = value + 1

    def release(self, uid: str) -> None:
        value = self._by_uid.pop(uid, None)
        if value is not None:
            self._free.append(value)


@dataclass
class SimulatedNode:
    identity: NodeIdentity
    facts: MachineFacts
    lease: NodeLease
    addresses: PodAddresses

    @property
    def name(self) -> str:
        return self.identity.name


def simulated_facts(name: str, index: int, config: SimulatedNodesConfig) -> MachineFacts:
    """What the node reports as its machine: the configured size, a made-up address and ids."""
    memory = bytes_value(config.memory)
    return MachineFacts(
        hostname=name, internal_ip=str(NODE_IP_BASE + index), cpus=max(1, -(-cpu_millis(config.cpu) // 1000)),
        # The agent reports allocatable memory as the total less its eviction threshold.
        memory_total_bytes=memory + MEMORY_PRESSURE_BYTES, memory_available_bytes=memory,
        disk_total_bytes=DISK_BYTES, disk_free_bytes=DISK_BYTES, pids_max=4194304, pids_in_use=0,
        kernel_version=platform.release(), os_image="Sampan simulated node", architecture="amd64",
        machine_id=uuid.uuid5(uuid.NAMESPACE_DNS, name).hex, boot_id=uuid.uuid4().hex)


def simulated_pod_status(pod: core_pb2.Pod, *, host_ip: str, pod_ip: str, now: float) -> core_pb2.PodStatus:
    """The status the agent would write for pod with every container started
    at now (init containers completed), every probe passing."""
    uid = pod.metadata.uid
    sandbox = base.SandboxStatus(id=f"sandbox-{uid}", pod_uid=uid, pod_name=pod.metadata.name,
                                 namespace=pod.metadata.namespace, attempt=0, ready=True, ip=pod_ip, created_at=now)
    containers = []
    for kind, specs in (("init", pod.spec.init_containers), ("app", pod.spec.containers)):
        for spec in specs:
            running = kind == "app" or is_sidecar(spec)
            containers.append(base.ContainerStatus(
                id=f"{uid}-{kind}-{spec.name}", sandbox_id=sandbox.id, name=spec.name, attempt=0, image=spec.image,
                image_ref="", state=base.RUNNING if running else base.EXITED, created_at=now, started_at=now,
                finished_at=0.0 if running else now, exit_code=0, reason="" if running else "Completed"))
    probes = {c.id: ContainerProbeResults(ready=True, started=True) for c in containers}
    state = PodRuntimeState(host_ip=host_ip, runtime_name=RUNTIME_NAME, sandbox=sandbox, containers=tuple(containers))
    return compute_pod_status(pod, state, probes, now)


def _looks_started(pod: core_pb2.Pod) -> bool:
    """Whether pod already has the status this simulator writes (it ran before a restart)."""
    return (pod.status.phase == "Running" and bool(pod.status.pod_ip)
            and any(c.container_id.startswith(f"{RUNTIME_NAME}://") for c in pod.status.container_statuses))


class KeyQueue:
    """Keys to act on: each waits at most once, and is never handed to two
    workers at once (added again while being handled, it is queued again
    when its worker is done)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Hashable] = asyncio.Queue()
        self._waiting: set[Hashable] = set()
        self._active: set[Hashable] = set()
        self._again: set[Hashable] = set()

    def add(self, key: Hashable) -> None:
        if key in self._active:
            self._again.add(key)
        elif key not in self._waiting:
            self._waiting.add(key)
            self._queue.put_nowait(key)

    async def get(self) -> Hashable:
        key = await self._queue.get()
        self._waiting.discard(key)
        self._active.add(key)
        return key

    def done(self, key: Hashable) -> None:
        self._active.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.add(key)

    def __len__(self) -> int:
        return len(self._waiting) + len(self._active)


class _ThrottledLog:
    """One warning per period for a kind of failure that may hit every node at once."""

    def __init__(self, period: float = 10.0) -> None:
        self.period = period
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -self.period) < self.period:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        more = self._suppressed.pop(kind, 0)
        self._last[kind] = now
        log.warning(message + (f" (and {more} more like it)" if more else ""), *args)


class SimulatedNodes:
    """count simulated nodes on one client; ``start`` registers them, ``run`` serves them."""

    def __init__(self, api: Client, config: SimulatedNodesConfig) -> None:
        config.check()
        self.api = api
        self.config = config
        resources = {"cpu": config.cpu, "memory": config.memory, "pods": str(config.pods_per_node)}
        self.nodes: dict[str, SimulatedNode] = {}
        for index in range(config.count):
            name = node_name(config.name_prefix, index)
            network = cidr_for(index, config.pods_per_node)
            assert network is not None  # config.check
            identity = NodeIdentity(
                name=name, labels={SIMULATED_LABEL: "true", **config.labels}, pod_cidr=str(network),
                runtime_version=RUNTIME_VERSION, resources=resources, register_with_taints=config.taints)
            self.nodes[name] = SimulatedNode(identity, simulated_facts(name, index, config),
                                             NodeLease(api, name, interval=config.lease_interval),
                                             PodAddresses(network))
        self.pods: Reflector[core_pb2.Pod] = Reflector(api, "Pod", field_selector="spec.nodeName!=",
                                                       on_change=self._pod_changed)
        self.queue = KeyQueue()
        self._started: set[str] = set()  # uids whose Running status is written
        self._retry_delays: dict[Hashable, float] = {}
        self._busy: set[tuple[str, str]] = set()  # (what, node) heartbeats in flight
        self._heartbeat_slots = asyncio.Semaphore(HEARTBEAT_CONCURRENCY)
        self._log = _ThrottledLog()
        self.status_writes = 0
        self.deletions = 0

    # ------------------------------------------------------------ registration

    async def start(self) -> None:
        """Register every node and create its Lease (retrying while the control service is unreachable)."""
        slots = asyncio.Semaphore(REGISTER_CONCURRENCY)

        async def register(node: SimulatedNode) -> None:
            async with slots:
                delay = RETRY_INITIAL
                while True:
                    try:
                        await register_node(self.api, node.identity, node.facts)
                        await node.lease.renew()
                        return
                    except errors.APIError as err:
                        self._log.warning("register", "registering node %s failed, retrying: %s", node.name, err)
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, RETRY_MAX)

        await asyncio.gather(*(register(node) for node in self.nodes.values()))
        log.info("registered %d simulated nodes (%s0 .. %s%d)", len(self.nodes), self.config.name_prefix,
                 self.config.name_prefix, len(self.nodes) - 1)

    # ------------------------------------------------------------------- run

    async def run(self) -> None:
        """Serve the nodes until cancelled (call ``start`` first)."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.pods.run(), name="pods reflector")
            group.create_task(self._paced(self.config.lease_interval, "lease", self._renew_lease), name="leases")
            group.create_task(self._paced(self.config.status_interval, "status", self._report_status),
                              name="node statuses")
            for number in range(self.config.writers):
                group.create_task(self._writer(), name=f"pod writer {number}")

    async def _paced(self, interval: float, what: str, action: Callable[[SimulatedNode], Awaitable[None]]) -> None:
        """action(node) for every node once per interval, node i at i/count of the interval."""
        loop = asyncio.get_running_loop()
        nodes = list(self.nodes.values())
        step = interval / len(nodes)
        begin = loop.time() + step
        round_ = 0
        while True:
            for index, node in enumerate(nodes):
                delay = begin + round_ * interval + index * step - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                key = (what, node.name)
                if key not in self._busy:  # the previous one is still under way: skip this turn
                    self._busy.add(key)
                    asyncio.create_task(self._heartbeat(key, action, node))
            round_ += 1

    async def _heartbeat(self, key: tuple[str, str], action: Callable[[SimulatedNode], Awaitable[None]],
                         node: SimulatedNode) -> None:
        try:
            async with self._heartbeat_slots:
                await action(node)
        except errors.APIError as err:
            self._log.warning(key[0], "%s of node %s failed (will retry): %s", key[0], node.name, err)
        finally:
            self._busy.discard(key)

    async def _renew_lease(self, node: SimulatedNode) -> None:
        await node.lease.renew()

    async def _report_status(self, node: SimulatedNode) -> None:
        try:
            current = await self.api.get("Node", node.name)
        except errors.NotFoundError:
            await register_node(self.api, node.identity, node.facts)  # deleted: register again, as kubelet does
            return
        current.status.CopyFrom(node_status(node.identity, node.facts, previous=current.status))
        try:
            await self.api.update_status(current)
        except errors.ConflictError:
            pass  # someone else wrote it meanwhile; the next turn comes soon enough

    # ------------------------------------------------------------------ pods

    def _pod_changed(self, old: core_pb2.Pod | None, new: core_pb2.Pod | None) -> None:
        pod = new if new is not None else old
        assert pod is not None
        node = self.nodes.get(pod.spec.node_name)
        if node is None:
            return
        if new is None:
            node.addresses.release(pod.metadata.uid)
            self._started.discard(pod.metadata.uid)
            return
        if old is not None and old.metadata.uid != new.metadata.uid:
            node.addresses.release(old.metadata.uid)
            self._started.discard(old.metadata.uid)
        if pod.metadata.HasField("deletion_timestamp") or pod.metadata.uid not in self._started:
            self.queue.add((pod.metadata.namespace, pod.metadata.name))

    async def _writer(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self._act(key)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - one pod's failure must not stop the writer
                delay = self._retry_delays.get(key, RETRY_INITIAL)
                self._retry_delays[key] = min(delay * 2, RETRY_MAX)
                self._log.warning("pods", "pod %s/%s: %s; retrying in %.1fs", *key, err, delay)
                asyncio.get_running_loop().call_later(delay, self.queue.add, key)
            else:
                self._retry_delays.pop(key, None)
            finally:
                self.queue.done(key)

    async def _act(self, key: tuple[str, str]) -> None:
        """Bring the pod at key where a running agent would: deleted, or Running."""
        pod = self.pods.get(key)
        if pod is None:
            return
        node = self.nodes.get(pod.spec.node_name)
        if node is None:
            return
        uid = pod.metadata.uid
        if pod.metadata.HasField("deletion_timestamp"):
            try:
                await self.api.delete("Pod", pod.metadata.name, namespace=pod.metadata.namespace,
                                      grace_period_seconds=0, uid=uid)
                self.deletions += 1
            except (errors.NotFoundError, errors.ConflictError):
                pass  # already gone, or the name now belongs to another pod
            return
        if uid in self._started or pod.status.phase in ("Succeeded", "Failed"):
            return
        if _looks_started(pod):
            node.addresses.adopt(uid, pod.status.pod_ip)
            self._started.add(uid)
            return
        update = core_pb2.Pod()
        update.metadata.name = pod.metadata.name
        update.metadata.namespace = pod.metadata.namespace
        update.metadata.resource_version = pod.metadata.resource_version
        pod_ip = pod.status.pod_ip or node.addresses.allocate(uid)
        update.status.CopyFrom(simulated_pod_status(pod, host_ip=node.facts.internal_ip, pod_ip=pod_ip,
                                                    now=time.time()))
        try:
            await self.api.update_status(update)
        except errors.NotFoundError:
            return
        except errors.ConflictError:
            # A newer copy is on its way through the watch, which queues the key again.
            return
        self._started.add(uid)
        self.status_writes += 1

    def pending(self) -> int:
        """Pods waiting for (or in the middle of) a write."""
        return len(self.queue)


async def serve(api: Client, config: SimulatedNodesConfig, *, ready: Callable[[], None] | None = None) -> None:
    """Register, then serve the nodes until cancelled."""
    nodes = SimulatedNodes(api, config)
    await nodes.start()
    if ready is not None:
        ready()
    await nodes.run()

