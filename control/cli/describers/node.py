"""``describe node``: kubectl's node description.

Name, Roles, Labels, Annotations, CreationTimestamp, Taints, Unschedulable,
the Conditions table, Addresses, Capacity, Allocatable, System Info, and,
when the caller listed them, the node's non-terminated pods with what they
request and limit, and the totals against what the node can allocate.
"""

from __future__ import annotations

from datetime import datetime
from typing import Mapping, Sequence

from google.protobuf.message import Message

from control.api import quantity
from control.cli import durations
from control.cli.describers import sections
from control.cli.describers.writer import DescriptionWriter
from control.cli.printers import node_roles

ALLOCATED_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def describe_node(node: Message, *, events: Sequence[Message] | None, now: datetime,
                  pods: Sequence[Message] | None = None) -> str:
    w = DescriptionWriter()
    meta, spec, status = node.metadata, node.spec, node.status
    w.line(0, f"Name:\t{meta.name}")
    w.line(0, f"Roles:\t{','.join(node_roles(node)) or sections.NONE}")
    sections.labels_multiline(w, meta.labels)
    sections.annotations_multiline(w, meta.annotations)
    w.line(0, f"CreationTimestamp:\t{durations.rfc1123z(meta.creation_timestamp)}")
    sections.taints_multiline(w, spec.taints)
    w.line(0, f"Unschedulable:\t{str(spec.unschedulable).lower()}")
    if status.conditions:
        w.line(0, "Conditions:")
        w.line(1, "Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage")
        w.line(1, "----\t------\t-----------------\t------------------\t------\t-------")
        for c in status.conditions:
            w.line(1, f"{c.type} \t{c.status} \t{durations.rfc1123z(c.last_heartbeat_time)} \t"
                      f"{durations.rfc1123z(c.last_transition_time)} \t{c.reason} \t{c.message}")
    w.line(0, "Addresses:")
    for address in status.addresses:
        w.line(1, f"{address.type}:\t{address.address}")
    for title, resources in (("Capacity", status.capacity), ("Allocatable", status.allocatable)):
        if resources:
            w.line(0, f"{title}:")
            for name in sorted(resources):
                w.line(1, f"{name}:\t{resources[name]}")
    info = status.node_info
    w.line(0, "System Info:")
    for label, value in (
        ("Machine ID", info.machine_id), ("System UUID", info.system_uuid), ("Boot ID", info.boot_id),
        ("Kernel Version", info.kernel_version), ("OS Image", info.os_image),
        ("Operating System", info.operating_system), ("Architecture", info.architecture),
        ("Container Runtime Version", info.container_runtime_version),
        ("Kubelet Version", info.kubelet_version), ("Kube-Proxy Version", info.kube_proxy_version),
    ):
        w.line(1, f"{label}:\t{value}")
    if spec.pod_cidr:
        w.line(0, f"PodCIDR:\t{spec.pod_cidr}")
    if spec.pod_cidrs:
        w.line(0, f"PodCIDRs:\t{','.join(spec.pod_cidrs)}")
    if spec.provider_id:
        w.line(0, f"ProviderID:\t{spec.provider_id}")
    if pods is not None:
        _node_pods(w, node, pods=pods, now=now)
    if events is not None:
        sections.events_section(w, events, now=now)
    return w.text()


def pod_requests_and_limits(pod: Message) -> tuple[dict[str, int], dict[str, int]]:
    """A pod's effective requests and limits, in milli-units (Kubernetes' PodRequestsAndLimits).

    The sum over containers, at least the largest init container's, plus overhead.
    """
    totals: list[dict[str, int]] = []
    for field in ("requests", "limits"):
        total: dict[str, int] = {}
        for container in pod.spec.containers:
            for name, value in getattr(container.resources, field).items():
                total[name] = total.get(name, 0) + _millis(value)
        for container in pod.spec.init_containers:
            for name, value in getattr(container.resources, field).items():
                total[name] = max(total.get(name, 0), _millis(value))
        for name, value in pod.spec.overhead.items():
            if name in total:
                total[name] += _millis(value)
        totals.append(total)
    return totals[0], totals[1]


def _millis(text: str) -> int:
    try:
        return quantity.cpu_millis(text)
    except ValueError:
        return 0


def format_millis(name: str, millis: int) -> str:
    """A resource amount as a quantity: cpu in cores or "m", others in bytes or units."""
    if name == "cpu":
        return quantity.format_cpu_millis(millis)
    whole = -(-millis // 1000)
    text = quantity.format_bytes(whole)
    return text if not text.isdigit() or whole == 0 else quantity.format_decimal(whole)


def _percent(millis: int, *, of: Mapping[str, str], name: str) -> int:
    capacity = _millis(of.get(name, "0"))
    return int(millis / capacity * 100) if capacity else 0


def _node_pods(w: DescriptionWriter, node: Message, *, pods: Sequence[Message], now: datetime) -> None:
    allocatable = node.status.allocatable or node.status.capacity
    w.line(0, f"Non-terminated Pods:\t({len(pods)} in total)")
    w.line(1, "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge")
    w.line(1, "---------\t----\t\t------------\t----------\t---------------\t-------------\t---")
    requested: dict[str, int] = {}
    limited: dict[str, int] = {}
    for pod in pods:
        requests, limits = pod_requests_and_limits(pod)
        for name, value in requests.items():
            requested[name] = requested.get(name, 0) + value
        for name, value in limits.items():
            limited[name] = limited.get(name, 0) + value
        cells = [pod.metadata.namespace, pod.metadata.name, ""]
        for name in ("cpu", "memory"):
            for amounts in (requests, limits):
                amount = amounts.get(name, 0)
                cells.append(f"{format_millis(name, amount)} ({_percent(amount, of=allocatable, name=name)}%)")
        cells.append(durations.age(pod.metadata.creation_timestamp, at=now))
        w.line(1, "\t".join(cells))
    w.line(0, "Allocated resources:")
    w.line(0, "  (Total limits may be over 100 percent, i.e., overcommitted.)")
    w.line(1, "Resource\tRequests\tLimits")
    w.line(1, "--------\t--------\t------")
    extended = sorted((set(requested) | set(limited)) - set(ALLOCATED_RESOURCES))
    for name in (*ALLOCATED_RESOURCES, *extended):
        request, limit = requested.get(name, 0), limited.get(name, 0)
        w.line(1, f"{name}\t{format_millis(name, request)} ({_percent(request, of=allocatable, name=name)}%)\t"
                  f"{format_millis(name, limit)} ({_percent(limit, of=allocatable, name=name)}%)")
