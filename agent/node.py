"""The agent's Node: registration, the heartbeat Lease, and node status.

Three small pieces, as in kubelet:

- ``register_node`` creates the Node object (or adopts an existing one of the
  same name, keeping what others wrote: taints, cordoning);
- ``NodeLease`` renews a Lease named after the node in ``kube-node-lease``
  every ``interval`` seconds: that is the heartbeat the node lifecycle
  controller watches;
- ``NodeStatusReporter`` rewrites the node's status (capacity, allocatable,
  conditions Ready/MemoryPressure/DiskPressure/PIDPressure, addresses, system
  info) every ``interval`` seconds, keeping each condition's
  lastTransitionTime while its status holds.

Machine facts come from ``MachineFacts.read`` (/proc, os.uname, statvfs), a
pure snapshot so the node object can be computed and tested without a machine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping

from control.api import errors
from control.api.metrics_endpoints import AGENT_METRICS
from control.client import Client
from protos.api.v1 import core_pb2

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
MAX_PODS = 110
# Kubernetes' default hard eviction thresholds, used for the pressure conditions.
MEMORY_PRESSURE_BYTES = 100 * 1024 * 1024
DISK_PRESSURE_FRACTION = 0.10
VERSION = "v0.1.0"


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class MachineFacts:
    hostname: str
    internal_ip: str
    cpus: int
    memory_total_bytes: int
    memory_available_bytes: int
    disk_total_bytes: int
    disk_free_bytes: int
    pids_max: int
    pids_in_use: int
    kernel_version: str
    os_image: str
    architecture: str
    machine_id: str
    boot_id: str

    @classmethod
    def read(cls, *, data_dir: str, node_ip: str = "") -> "MachineFacts":
        meminfo = _read_meminfo()
        disk = shutil.disk_usage(data_dir if os.path.exists(data_dir) else "/")
        return cls(
            hostname=socket.gethostname(),
            internal_ip=node_ip or detect_internal_ip(),
            cpus=os.cpu_count() or 1,
            memory_total_bytes=meminfo.get("MemTotal", 0),
            memory_available_bytes=meminfo.get("MemAvailable", 0),
            disk_total_bytes=disk.total,
            disk_free_bytes=disk.free,
            pids_max=_read_int("/proc/sys/kernel/pid_max", 32768),
            pids_in_use=sum(1 for entry in os.listdir("/proc") if entry.isdigit()),
            kernel_version=platform.release(),
            os_image=_os_image(),
            architecture={"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
            machine_id=_read_text("/etc/machine-id"),
            boot_id=_read_text("/proc/sys/kernel/random/boot_id"),
        )


def detect_internal_ip() -> str:
    """The first global IPv4 address of this machine (127.0.0.1 if none)."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                             capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return "127.0.0.1"
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            return parts[parts.index("inet") + 1].split("/")[0]
    return "127.0.0.1"


@dataclass(frozen=True)
class NodeIdentity:
    """What the agent was told about its node at start."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    pod_cidr: str = ""
    runtime_version: str = ""
    runtime_isolated: bool = True
    agent_port: int = 0
    # Capacity and allocatable to report instead of the machine's (simulated nodes).
    resources: Mapping[str, str] = field(default_factory=dict)
    # Taints the Node is created with (kubelet's --register-with-taints); later ones are others' to set.
    register_with_taints: tuple[core_pb2.Taint, ...] = ()
    # Where the agent serves /metrics (HOST:PORT, the sampan.io/agent-metrics annotation); "": nowhere.
    metrics_address: str = ""


def desired_node(identity: NodeIdentity, facts: MachineFacts) -> core_pb2.Node:
    """The Node object this agent registers (metadata and spec only)."""
    node = core_pb2.Node(api_version="v1", kind="Node")
    node.metadata.name = identity.name
    node.metadata.labels.update({
        "kubernetes.io/hostname": identity.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": facts.architecture,
        **identity.labels,
    })
    if not identity.runtime_isolated:
        node.metadata.annotations["sampan.io/runtime-isolation"] = (
            "none: containers run as plain processes on this machine (process runtime)")
    if identity.metrics_address:
        node.metadata.annotations[AGENT_METRICS] = identity.metrics_address
    if identity.pod_cidr:
        node.spec.pod_cidr = identity.pod_cidr
        node.spec.pod_cidrs.append(identity.pod_cidr)
    node.spec.taints.extend(identity.register_with_taints)
    return node


def node_status(
    identity: NodeIdentity, facts: MachineFacts, *, previous: core_pb2.NodeStatus | None = None,
    runtime_ready: bool = True, now: str | None = None,
) -> core_pb2.NodeStatus:
    """The node's status from machine facts, keeping transition times of
    conditions whose status did not change."""
    now = now or now_rfc3339()
    status = core_pb2.NodeStatus()
    memory_ki = facts.memory_total_bytes // 1024
    capacity = {
        "cpu": str(facts.cpus),
        "memory": f"{memory_ki}Ki",
        "pods": str(MAX_PODS),
        "ephemeral-storage": f"{facts.disk_total_bytes // 1024}Ki",
    }
    status.capacity.update(capacity)
    status.allocatable.update({
        **capacity,
        "memory": f"{max(0, memory_ki - MEMORY_PRESSURE_BYTES // 1024)}Ki",
    })
    status.capacity.update(identity.resources)
    status.allocatable.update(identity.resources)
    memory_pressure = facts.memory_available_bytes < MEMORY_PRESSURE_BYTES
    disk_pressure = facts.disk_total_bytes > 0 and facts.disk_free_bytes / facts.disk_total_bytes < DISK_PRESSURE_FRACTION
    pid_pressure = facts.pids_in_use > 0.9 * facts.pids_max
    conditions = [
        ("MemoryPressure", memory_pressure, "KubeletHasInsufficientMemory", "KubeletHasSufficientMemory",
         "agent has insufficient memory available", "agent has sufficient memory available"),
        ("DiskPressure", disk_pressure, "KubeletHasDiskPressure", "KubeletHasNoDiskPressure",
         "agent has disk pressure", "agent has no disk pressure"),
        ("PIDPressure", pid_pressure, "KubeletHasInsufficientPID", "KubeletHasSufficientPID",
         "agent has insufficient PID available", "agent has sufficient PID available"),
        ("Ready", runtime_ready, "KubeletReady", "KubeletNotReady",
         "agent is posting ready status", "container runtime is not ready"),
    ]
    old = {c.type: c for c in previous.conditions} if previous is not None else {}
    for ctype, value, true_reason, false_reason, true_message, false_message in conditions:
        condition = status.conditions.add(type=ctype, status="True" if value else "False")
        condition.reason = true_reason if value else false_reason
        condition.message = true_message if value else false_message
        condition.last_heartbeat_time = now
        before = old.get(ctype)
        if before is not None and before.status == condition.status and before.last_transition_time:
            condition.last_transition_time = before.last_transition_time
        else:
            condition.last_transition_time = now
    status.addresses.add(type="InternalIP", address=facts.internal_ip)
    status.addresses.add(type="Hostname", address=facts.hostname)
    if identity.agent_port:
        status.daemon_endpoints.kubelet_endpoint.port = identity.agent_port
    info = status.node_info
    info.machine_id = facts.machine_id
    info.boot_id = facts.boot_id
    info.kernel_version = facts.kernel_version
    info.os_image = facts.os_image
    info.container_runtime_version = identity.runtime_version
    info.kubelet_version = VERSION
    info.kube_proxy_version = VERSION
    info.operating_system = "linux"
    info.architecture = facts.architecture
    return status


async def register_node(api: Client, identity: NodeIdentity, facts: MachineFacts) -> core_pb2.Node:
    """Create the Node, or adopt the existing one: labels and podCIDR are ours;
    taints and unschedulable belong to whoever set them."""
    wanted = desired_node(identity, facts)
    while True:
        try:
            node = await api.create(wanted)
            log.info("registered node %s", identity.name)
            break
        except errors.AlreadyExistsError:
            pass
        node = await api.get("Node", identity.name)
        node.metadata.labels.update(wanted.metadata.labels)
        node.metadata.annotations.update(wanted.metadata.annotations)
        if not identity.metrics_address:
            node.metadata.annotations.pop(AGENT_METRICS, None)  # an earlier agent's, serving no more
        if wanted.spec.pod_cidr:
            node.spec.pod_cidr = wanted.spec.pod_cidr
            del node.spec.pod_cidrs[:]
            node.spec.pod_cidrs.extend(wanted.spec.pod_cidrs)
        try:
            node = await api.update(node)
            log.info("adopted existing node %s", identity.name)
            break
        except errors.ConflictError:
            continue
    node.status.CopyFrom(node_status(identity, facts, previous=node.status))
    return await api.update_status(node)


class NodeLease:
    """Renews the node's Lease: the heartbeat that says the agent is alive.

    As kubelet does, a renewal updates the Lease as this agent last wrote it,
    one request; only the first renewal, and one after a failed write, reads
    it (or creates it) first."""

    def __init__(self, api: Client, node_name: str, *, interval: float = 10.0, duration: int = 40) -> None:
        self.api = api
        self.node_name = node_name
        self.interval = interval
        self.duration = duration
        self.renewals = 0
        self._latest: core_pb2.Lease | None = None

    async def renew(self) -> None:
        if self._latest is not None:
            lease = self._latest
            self._latest = None  # until this write succeeds
            lease.spec.renew_time = now_micro()
            self._latest = await self.api.update(lease)
            self.renewals += 1
            return
        try:
            lease = await self.api.get("Lease", self.node_name, namespace=LEASE_NAMESPACE)
        except errors.NotFoundError:
            lease = core_pb2.Lease(api_version="coordination.k8s.io/v1", kind="Lease")
            lease.metadata.name = self.node_name
            lease.metadata.namespace = LEASE_NAMESPACE
            lease.spec.holder_identity = self.node_name
            lease.spec.lease_duration_seconds = self.duration
            lease.spec.acquire_time = lease.spec.renew_time = now_micro()
            self._latest = await self.api.create(lease)
        else:
            lease.spec.holder_identity = self.node_name
            lease.spec.lease_duration_seconds = self.duration
            lease.spec.renew_time = now_micro()
            self._latest = await self.api.update(lease)
        self.renewals += 1

    async def run(self) -> None:
        while True:
            try:
                await self.renew()
            except errors.APIError as err:
                log.warning("lease renewal failed (will retry): %s", err)
            await asyncio.sleep(self.interval)


class NodeStatusReporter:
    """Rewrites the node's status every interval seconds."""

    def __init__(
        self, api: Client, identity: NodeIdentity, *, data_dir: str, node_ip: str = "", interval: float = 10.0
    ) -> None:
        self.api = api
        self.identity = identity
        self.data_dir = data_dir
        self.node_ip = node_ip
        self.interval = interval

    async def report(self) -> None:
        facts = await asyncio.to_thread(MachineFacts.read, data_dir=self.data_dir, node_ip=self.node_ip)
        for _ in range(5):
            node = await self.api.get("Node", self.identity.name)
            node.status.CopyFrom(node_status(self.identity, facts, previous=node.status))
            try:
                await self.api.update_status(node)
                return
            except errors.ConflictError:
                continue

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.report()
            except errors.NotFoundError:
                # Someone deleted our Node: register it again, as kubelet does.
                facts = await asyncio.to_thread(MachineFacts.read, data_dir=self.data_dir, node_ip=self.node_ip)
                try:
                    await register_node(self.api, self.identity, facts)
                except errors.APIError as err:
                    log.warning("re-registering node failed: %s", err)
            except errors.APIError as err:
                log.warning("node status update failed (will retry): %s", err)


def _read_meminfo() -> dict[str, int]:
    values = {}
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    values[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    except OSError:
        pass
    return values


def _read_int(path: str, default: int) -> int:
    try:
        return int(_read_text(path) or default)
    except ValueError:
        return default


def _read_text(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _os_image() -> str:
    try:
        with open("/etc/os-release") as release:
            for line in release:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"
