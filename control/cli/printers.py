"""Tables of objects, with the columns kubectl prints for each kind.

One ``KindColumns`` per kind in ``COLUMNS``: its headers, those of ``-o
wide``, and a pure function from one object to its cells (NAME first, AGE
last, as in kubectl; kubectl's wide columns mostly follow AGE). ``table`` adds what the
command line asks for (NAMESPACE first with ``-A``, ``pod/`` before names
when several kinds are printed, LABELS last with ``--show-labels``) and
``render`` lines it up as kubectl's tabwriter does (3 spaces, minimum 6).

The pod columns port kubectl's printPod: READY counts ready running
containers, STATUS is the first of: an init container's trouble
(``Init:CrashLoopBackOff``, ``Init:1/2``), a container's waiting or
terminated reason (``ContainerCreating``, ``CrashLoopBackOff``,
``Completed``, ``Error``), the pod's reason or phase; ``Terminating`` while a
deletion is pending. RESTARTS adds "(5m ago)" once a container has restarted.

The workload kinds' cells (Deployment, ReplicaSet, DaemonSet, StatefulSet,
ControllerRevision, Job, CronJob, HorizontalPodAutoscaler) are in
workload_cells.py, those of Services, Endpoints and EndpointSlices in
service_cells.py, those of the RBAC kinds in rbac_cells.py; their columns
are registered here with the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Protocol, Sequence

from google.protobuf.message import Message

from control.api import kinds
from control.cli import durations, tabwriter
from control.cli import rbac_cells as rbac
from control.cli import service_cells as services
from control.cli import workload_cells as workloads
from control.cli.objects import resource_type
from control.cli.workload_cells import format_labels

NONE = "<none>"
TABLE_MIN_WIDTH = 6
TABLE_PADDING = 3
NODE_ROLE_PREFIX = "node-role.kubernetes.io/"
NODE_ROLE_LABEL = "kubernetes.io/role"
NODE_UNREACHABLE_REASON = "NodeLost"


class CellsFunction(Protocol):
    def __call__(self, obj: Message, *, now: datetime, wide: bool) -> list[str]: ...


@dataclass(frozen=True)
class KindColumns:
    """The columns of one kind: headers, headers with -o wide, and the cells of one object."""

    headers: tuple[str, ...]
    wide_headers: tuple[str, ...]  # empty: -o wide adds nothing
    cells: CellsFunction
    # Events have no NAME column, so nothing to prefix with the kind.
    has_name: bool = True


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]


# ---------------------------------------------------------------- pods


@dataclass(frozen=True)
class PodSummary:
    ready: int
    total: int
    status: str
    restarts: int
    last_restart: str  # finishedAt of the latest restart, "" when none


def _later(current: str, candidate: str) -> str:
    if not candidate:
        return current
    if not current:
        return candidate
    a, b = durations.parse_timestamp(current), durations.parse_timestamp(candidate)
    if a is None or b is None:
        return current or candidate
    return candidate if b > a else current


def _condition_true(conditions: Iterable[Message], condition_type: str) -> bool:
    return any(c.type == condition_type and c.status == "True" for c in conditions)


def pod_summary(pod: Message) -> PodSummary:
    """kubectl's READY, STATUS and RESTARTS logic for one pod."""
    spec, status = pod.spec, pod.status
    total = len(spec.containers)
    ready = 0
    restarts = 0
    last_restart = ""
    reason = status.reason or status.phase
    for condition in status.conditions:
        if condition.type == "PodScheduled" and condition.reason == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    for index, container in enumerate(status.init_container_statuses):
        restarts += container.restart_count
        if container.last_state.HasField("terminated"):
            last_restart = _later(last_restart, container.last_state.terminated.finished_at)
        state = container.state
        if state.HasField("terminated") and state.terminated.exit_code == 0:
            continue
        if state.HasField("terminated"):
            terminated = state.terminated
            if terminated.reason:
                reason = "Init:" + terminated.reason
            elif terminated.signal:
                reason = f"Init:Signal:{terminated.signal}"
            else:
                reason = f"Init:ExitCode:{terminated.exit_code}"
        elif state.HasField("waiting") and state.waiting.reason and state.waiting.reason != "PodInitializing":
            reason = "Init:" + state.waiting.reason
        else:
            reason = f"Init:{index}/{len(spec.init_containers)}"
        initializing = True
        break

    if not initializing or _condition_true(status.conditions, "Initialized"):
        # Init containers' restarts count only while the pod initializes.
        restarts = 0
        last_restart = ""
        has_running = False
        for container in reversed(status.container_statuses):
            restarts += container.restart_count
            if container.last_state.HasField("terminated"):
                last_restart = _later(last_restart, container.last_state.terminated.finished_at)
            state = container.state
            if state.HasField("waiting") and state.waiting.reason:
                reason = state.waiting.reason
            elif state.HasField("terminated") and state.terminated.reason:
                reason = state.terminated.reason
            elif state.HasField("terminated"):
                terminated = state.terminated
                reason = f"Signal:{terminated.signal}" if terminated.signal else f"ExitCode:{terminated.exit_code}"
            elif container.ready and state.HasField("running"):
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(status.conditions, "Ready") else "NotReady"

    deleting = pod.metadata.HasField("deletion_timestamp")
    if deleting and status.reason == NODE_UNREACHABLE_REASON:
        reason = "Unknown"
    elif deleting and status.phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return PodSummary(ready, total, reason or "Pending", restarts, last_restart)


def pod_cells(pod: Message, *, now: datetime, wide: bool) -> list[str]:
    summary = pod_summary(pod)
    restarts = str(summary.restarts)
    if summary.restarts and summary.last_restart:
        restarts += f" ({durations.age(summary.last_restart, at=now)} ago)"
    cells = [pod.metadata.name, f"{summary.ready}/{summary.total}", summary.status, restarts,
             durations.age(pod.metadata.creation_timestamp, at=now)]
    if wide:
        ip = pod.status.pod_ips[0].ip if pod.status.pod_ips else ""
        gates = NONE
        if pod.spec.readiness_gates:
            passed = sum(
                1 for gate in pod.spec.readiness_gates
                if next((c.status for c in pod.status.conditions if c.type == gate.condition_type), "") == "True")
            gates = f"{passed}/{len(pod.spec.readiness_gates)}"
        cells += [ip or NONE, pod.spec.node_name or NONE, pod.status.nominated_node_name or NONE, gates]
    return cells


# ---------------------------------------------------------------- nodes


def node_roles(node: Message) -> list[str]:
    roles: set[str] = set()
    for key, value in node.metadata.labels.items():
        if key.startswith(NODE_ROLE_PREFIX) and key != NODE_ROLE_PREFIX:
            roles.add(key.removeprefix(NODE_ROLE_PREFIX))
        elif key == NODE_ROLE_LABEL and value:
            roles.add(value)
    return sorted(roles)


def node_status(node: Message) -> str:
    """Ready, NotReady or Unknown, plus SchedulingDisabled when cordoned."""
    parts: list[str] = []
    for condition in node.status.conditions:
        if condition.type == "Ready":
            parts = ["Ready" if condition.status == "True" else "NotReady"]
    if not parts:
        parts = ["Unknown"]
    if node.spec.unschedulable:
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def _node_address(node: Message, address_type: str) -> str:
    return next((a.address for a in node.status.addresses if a.type == address_type), NONE)


def node_cells(node: Message, *, now: datetime, wide: bool) -> list[str]:
    info = node.status.node_info
    cells = [node.metadata.name, node_status(node), ",".join(node_roles(node)) or NONE,
             durations.age(node.metadata.creation_timestamp, at=now), info.kubelet_version]
    if wide:
        cells += [_node_address(node, "InternalIP"), _node_address(node, "ExternalIP"),
                  info.os_image or durations.UNKNOWN, info.kernel_version or durations.UNKNOWN,
                  info.container_runtime_version or durations.UNKNOWN]
    return cells


# ----------------------------------------------------------- other kinds


def namespace_cells(ns: Message, *, now: datetime, wide: bool) -> list[str]:
    return [ns.metadata.name, ns.status.phase, durations.age(ns.metadata.creation_timestamp, at=now)]


def configmap_cells(cm: Message, *, now: datetime, wide: bool) -> list[str]:
    return [cm.metadata.name, str(len(cm.data) + len(cm.binary_data)),
            durations.age(cm.metadata.creation_timestamp, at=now)]


def secret_cells(secret: Message, *, now: datetime, wide: bool) -> list[str]:
    return [secret.metadata.name, secret.type, str(len(secret.data)),
            durations.age(secret.metadata.creation_timestamp, at=now)]


def service_account_cells(account: Message, *, now: datetime, wide: bool) -> list[str]:
    return [account.metadata.name, str(len(account.secrets)),
            durations.age(account.metadata.creation_timestamp, at=now)]


def lease_cells(lease: Message, *, now: datetime, wide: bool) -> list[str]:
    return [lease.metadata.name, lease.spec.holder_identity,
            durations.age(lease.metadata.creation_timestamp, at=now)]


def event_object(event: Message) -> str:
    involved = event.involved_object
    kind = involved.kind.lower()
    return f"{kind}/{involved.name}" if involved.name else kind


def event_source(event: Message) -> str:
    """kubectl's formatEventSource: component, then ", host" when known."""
    component = event.source.component or event.reporting_component
    host = event.source.host or event.reporting_instance
    return f"{component}, {host}" if host else component


def event_cells(event: Message, *, now: datetime, wide: bool) -> list[str]:
    first_seen = durations.age(event.first_timestamp or event.event_time, at=now)
    last_seen = durations.age(event.last_timestamp, at=now) if event.last_timestamp else first_seen
    message = event.message.strip()
    if not wide:
        return [last_seen, event.type, event.reason, event_object(event), message]
    return [last_seen, event.type, event.reason, event_object(event), event.involved_object.field_path,
            event_source(event), message, first_seen, str(event.count or 1), event.metadata.name]


def generic_cells(obj: Message, *, now: datetime, wide: bool) -> list[str]:
    return [obj.metadata.name, durations.age(obj.metadata.creation_timestamp, at=now)]


COLUMNS: dict[str, KindColumns] = {
    "Pod": KindColumns(("NAME", "READY", "STATUS", "RESTARTS", "AGE"),
                       ("NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE",
                        "READINESS GATES"), pod_cells),
    "Node": KindColumns(("NAME", "STATUS", "ROLES", "AGE", "VERSION"),
                        ("NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE",
                         "KERNEL-VERSION", "CONTAINER-RUNTIME"), node_cells),
    "Namespace": KindColumns(("NAME", "STATUS", "AGE"), (), namespace_cells),
    "ConfigMap": KindColumns(("NAME", "DATA", "AGE"), (), configmap_cells),
    "Secret": KindColumns(("NAME", "TYPE", "DATA", "AGE"), (), secret_cells),
    "ServiceAccount": KindColumns(("NAME", "SECRETS", "AGE"), (), service_account_cells),
    "Event": KindColumns(("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"),
                         ("LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE", "MESSAGE", "FIRST SEEN",
                          "COUNT", "NAME"),
                         event_cells, has_name=False),
    "Lease": KindColumns(("NAME", "HOLDER", "AGE"), (), lease_cells),
    "Deployment": KindColumns(("NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"),
                              ("NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"),
                              workloads.deployment_cells),
    "ReplicaSet": KindColumns(("NAME", "DESIRED", "CURRENT", "READY", "AGE"),
                              ("NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"),
                              workloads.replica_set_cells),
    "DaemonSet": KindColumns(("NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR",
                              "AGE"),
                             ("NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR",
                              "AGE", "CONTAINERS", "IMAGES", "SELECTOR"),
                             workloads.daemon_set_cells),
    "StatefulSet": KindColumns(("NAME", "READY", "AGE"), ("NAME", "READY", "AGE", "CONTAINERS", "IMAGES"),
                               workloads.stateful_set_cells),
    "ControllerRevision": KindColumns(("NAME", "CONTROLLER", "REVISION", "AGE"), (),
                                      workloads.controller_revision_cells),
    "Job": KindColumns(("NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"),
                       ("NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"),
                       workloads.job_cells),
    "CronJob": KindColumns(("NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"),
                           ("NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE",
                            "CONTAINERS", "IMAGES", "SELECTOR"),
                           workloads.cron_job_cells),
    "HorizontalPodAutoscaler": KindColumns(("NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"),
                                           (), workloads.hpa_cells),
    "Service": KindColumns(("NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"),
                           ("NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"),
                           services.service_cells),
    "Endpoints": KindColumns(("NAME", "ENDPOINTS", "AGE"), (), services.endpoints_cells),
    "EndpointSlice": KindColumns(("NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"), (),
                                 services.endpoint_slice_cells),
}
_BINDING_WIDE = ("NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS")
COLUMNS.update({
    "Role": KindColumns(("NAME", "CREATED AT"), (), rbac.role_cells),
    "ClusterRole": KindColumns(("NAME", "CREATED AT"), (), rbac.role_cells),
    "RoleBinding": KindColumns(("NAME", "ROLE", "AGE"), _BINDING_WIDE, rbac.binding_cells),
    "ClusterRoleBinding": KindColumns(("NAME", "ROLE", "AGE"), _BINDING_WIDE, rbac.binding_cells),
})



def certificate_request_cells(csr: Message, *, now: datetime, wide: bool) -> list[str]:
    """kubectl's CSR columns: NAME, AGE, SIGNERNAME, REQUESTOR, REQUESTEDDURATION, CONDITION."""
    from control.api.certificates import state

    duration = (durations.human_duration(csr.spec.expiration_seconds)
                if csr.spec.HasField("expiration_seconds") else "<none>")
    return [csr.metadata.name, durations.age(csr.metadata.creation_timestamp, at=now), csr.spec.signer_name,
            csr.spec.username, duration, state(csr)]


COLUMNS["CertificateSigningRequest"] = KindColumns(
    ("NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"), (), certificate_request_cells)

GENERIC_COLUMNS = KindColumns(("NAME", "AGE"), (), generic_cells)


def columns_for(kind: kinds.Kind) -> KindColumns:
    return COLUMNS.get(kind.kind, GENERIC_COLUMNS)


def headers(kind: kinds.Kind, *, wide: bool = False, all_namespaces: bool = False,
            show_labels: bool = False) -> list[str]:
    columns = columns_for(kind)
    names = list(columns.wide_headers if wide and columns.wide_headers else columns.headers)
    if all_namespaces and kind.namespaced:
        names.insert(0, "NAMESPACE")
    if show_labels:
        names.append("LABELS")
    return names


def row(kind: kinds.Kind, obj: Message, *, now: datetime, wide: bool = False, all_namespaces: bool = False,
        with_kind: bool = False, show_labels: bool = False) -> list[str]:
    """One object's cells, in the order ``headers`` names them."""
    columns = columns_for(kind)
    cells = columns.cells(obj, now=now, wide=wide)
    if with_kind and columns.has_name:
        cells[0] = f"{resource_type(kind)}/{cells[0]}"
    if all_namespaces and kind.namespaced:
        cells.insert(0, obj.metadata.namespace)
    if show_labels:
        cells.append(format_labels(obj.metadata.labels))
    return cells


def table(kind: kinds.Kind, objects: Sequence[Message], *, now: datetime, wide: bool = False,
          all_namespaces: bool = False, with_kind: bool = False, show_labels: bool = False) -> Table:
    options = dict(wide=wide, all_namespaces=all_namespaces, show_labels=show_labels)
    return Table(headers(kind, **options),
                 [row(kind, obj, now=now, with_kind=with_kind, **options) for obj in objects])


def render(table: Table, *, with_headers: bool = True) -> str:
    """The table as kubectl prints it, ending with a newline (empty for no lines)."""
    lines = ([table.headers] if with_headers else []) + table.rows
    if not lines:
        return ""
    text = "".join("\t".join(cell.replace("\t", " ").replace("\n", " ") for cell in line) + "\n"
                   for line in lines)
    return tabwriter.align(text, minwidth=TABLE_MIN_WIDTH, padding=TABLE_PADDING)
