"""A pod's status, computed from what the runtime and the probes report.

``compute_pod_status`` is a pure function: given the pod (whose ``status`` is
the last status the agent wrote, so transition times and the start time carry
over), the pod's runtime state, the probe results and the current time, it
returns the PodStatus kubelet would report. The manager calls it after every
sync and writes the result only when it differs.

Conventions, from kubelet (pkg/kubelet/kubelet_pods.go):
- each container name has at most two instances worth reporting: the current
  one (highest attempt) and the previous one (its ``lastState``); the current
  instance's attempt is the restart count, so the count survives an agent
  restart;
- a container the agent has not (re)started yet is ``waiting`` with the reason
  the agent gave (CrashLoopBackOff, ErrImagePull, ...) or a default one;
- the phase follows kubelet's ``getPhase``; Succeeded and Failed are final.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from control.api.timestamps import format_time
from agent.runtime import base
from protos.api.v1 import core_pb2

PENDING, RUNNING, SUCCEEDED, FAILED = "Pending", "Running", "Succeeded", "Failed"
TERMINAL_PHASES = (SUCCEEDED, FAILED)
# Conditions the agent owns; others (readiness gates, DisruptionTarget) are kept as found.
OWN_CONDITIONS = ("Initialized", "Ready", "ContainersReady", "PodScheduled")


@dataclass(frozen=True)
class Waiting:
    """Why the agent has not started a container (yet)."""

    reason: str
    message: str = ""


@dataclass(frozen=True)
class ContainerProbeResults:
    """Probe outcomes for one container instance; consulted only for the probes it has."""

    ready: bool = False
    started: bool = False


@dataclass(frozen=True)
class PodRuntimeState:
    """What the agent knows of one pod's runtime side."""

    host_ip: str
    runtime_name: str = ""
    sandbox: base.SandboxStatus | None = None  # the current sandbox
    containers: tuple[base.ContainerStatus, ...] = ()  # every instance of the pod's containers
    waiting: Mapping[str, Waiting] = field(default_factory=dict)  # by container name


def instances_of(containers: Iterable[base.ContainerStatus], name: str) -> list[base.ContainerStatus]:
    """A container name's instances, oldest first (by attempt, then creation)."""
    return sorted((c for c in containers if c.name == name), key=lambda c: (c.attempt, c.created_at))


def is_sidecar(container: core_pb2.Container) -> bool:
    """An init container with restartPolicy Always keeps running beside the app (Kubernetes 1.29)."""
    return container.restart_policy == "Always"


def _terminated(instance: base.ContainerStatus, container_id: str) -> core_pb2.ContainerStateTerminated:
    reason = instance.reason or ("Completed" if instance.exit_code == 0 else "Error")
    state = core_pb2.ContainerStateTerminated(exit_code=instance.exit_code, reason=reason, container_id=container_id)
    if instance.message:
        state.message = instance.message
    if instance.started_at:
        state.started_at = format_time(instance.started_at)
    if instance.finished_at:
        state.finished_at = format_time(instance.finished_at)
    return state


def _container_status(
    container: core_pb2.Container,
    state: PodRuntimeState,
    probe_results: Mapping[str, ContainerProbeResults],
    *,
    default_waiting: str,
    is_init: bool,
) -> core_pb2.ContainerStatus:
    found = instances_of(state.containers, container.name)
    current = found[-1] if found else None
    previous = found[-2] if len(found) > 1 else None
    status = core_pb2.ContainerStatus(
        name=container.name, image=container.image, ready=False, started=False,
        restart_count=current.attempt if current else 0)
    if current is None:
        waiting = state.waiting.get(container.name) or Waiting(default_waiting)
        status.state.waiting.reason = waiting.reason
        if waiting.message:
            status.state.waiting.message = waiting.message
        return status
    container_id = f"{state.runtime_name}://{current.id}" if state.runtime_name else current.id
    status.container_id = container_id
    if current.image_ref:
        status.image_id = current.image_ref
    if previous is not None and previous.state == base.EXITED:
        previous_id = f"{state.runtime_name}://{previous.id}" if state.runtime_name else previous.id
        status.last_state.terminated.CopyFrom(_terminated(previous, previous_id))
    if current.state == base.RUNNING:
        status.state.running.started_at = format_time(current.started_at or current.created_at)
        results = probe_results.get(current.id, ContainerProbeResults())
        started = results.started if container.HasField("startup_probe") else True
        ready = results.ready if container.HasField("readiness_probe") else True
        status.started = started
        status.ready = started and ready
    elif current.state == base.EXITED:
        waiting = state.waiting.get(container.name)
        if waiting is not None:
            # Exited and due to restart: kubelet shows why it waits, the exit as lastState.
            status.state.waiting.reason = waiting.reason
            if waiting.message:
                status.state.waiting.message = waiting.message
            status.last_state.Clear()
            status.last_state.terminated.CopyFrom(_terminated(current, container_id))
        else:
            status.state.terminated.CopyFrom(_terminated(current, container_id))
            status.ready = is_init and current.exit_code == 0
    else:  # created, not started yet (or unknown)
        status.state.waiting.reason = "ContainerCreating"
    return status


def _initialization(
    spec: core_pb2.PodSpec, statuses: Mapping[str, core_pb2.ContainerStatus]
) -> tuple[list[str], int]:
    """Names of init containers not done, and how many failed (kubelet's getPhase)."""
    pending: list[str] = []
    failed = 0
    for container in spec.init_containers:
        status = statuses[container.name]
        if is_sidecar(container):
            if not status.started:
                pending.append(container.name)
            continue
        if status.state.HasField("terminated"):
            if status.state.terminated.exit_code != 0:
                failed += 1
                pending.append(container.name)
        elif status.state.HasField("waiting") and status.last_state.HasField("terminated"):
            if status.last_state.terminated.exit_code != 0:
                failed += 1
            pending.append(container.name)
        else:
            pending.append(container.name)
    return pending, failed


def _phase(pod: core_pb2.Pod, app: list[core_pb2.ContainerStatus], pending_init: list[str], failed_init: int) -> str:
    if pod.status.phase in TERMINAL_PHASES:
        return pod.status.phase
    restart_policy = pod.spec.restart_policy or "Always"
    if failed_init and restart_policy == "Never":
        return FAILED
    if pending_init:
        return PENDING
    running = waiting = stopped = succeeded = 0
    for status in app:
        if status.state.HasField("running"):
            running += 1
        elif status.state.HasField("terminated"):
            stopped += 1
            succeeded += status.state.terminated.exit_code == 0
        elif status.last_state.HasField("terminated"):
            stopped += 1
        else:
            waiting += 1
    if waiting:
        return PENDING
    if running:
        return RUNNING
    if stopped:
        if restart_policy == "Always":
            return RUNNING
        if stopped == succeeded:
            return SUCCEEDED
        if restart_policy == "Never":
            return FAILED
        return RUNNING
    return PENDING


def _condition(type_: str, ok: bool, reason: str = "", message: str = "") -> core_pb2.PodCondition:
    condition = core_pb2.PodCondition(type=type_, status="True" if ok else "False")
    if not ok and reason:
        condition.reason = reason
    if not ok and message:
        condition.message = message
    return condition


def _conditions(
    pod: core_pb2.Pod, phase: str, pending_init: list[str], unready: list[str], now: float
) -> list[core_pb2.PodCondition]:
    old = {c.type: c for c in pod.status.conditions}
    terminal = phase in TERMINAL_PHASES
    initialized = _condition("Initialized", not pending_init, "ContainersNotInitialized",
                             f"containers with incomplete status: [{' '.join(pending_init)}]")
    if terminal:
        containers_ready = _condition("ContainersReady", False, "PodCompleted")
    else:
        containers_ready = _condition("ContainersReady", not unready, "ContainersNotReady",
                                      f"containers with unready status: [{' '.join(unready)}]")
    gates_unready = [g.condition_type for g in pod.spec.readiness_gates
                     if old.get(g.condition_type) is None or old[g.condition_type].status != "True"]
    ready = core_pb2.PodCondition()
    ready.CopyFrom(containers_ready)
    ready.type = "Ready"
    if containers_ready.status == "True" and gates_unready:
        ready = _condition("Ready", False, "ReadinessGatesNotReady",
                           f"the status of pod readiness gate(s) {', '.join(gates_unready)} is not True")
    scheduled = old.get("PodScheduled") or _condition("PodScheduled", True)
    result = []
    for condition in (initialized, ready, containers_ready):
        previous = old.get(condition.type)
        if previous is not None and previous.status == condition.status and previous.last_transition_time:
            condition.last_transition_time = previous.last_transition_time
        else:
            condition.last_transition_time = format_time(now)
        result.append(condition)
    fresh_scheduled = core_pb2.PodCondition()
    fresh_scheduled.CopyFrom(scheduled)
    if not fresh_scheduled.last_transition_time:
        fresh_scheduled.last_transition_time = format_time(now)
    result.append(fresh_scheduled)
    result.extend(c for c in pod.status.conditions if c.type not in OWN_CONDITIONS)
    return result


def compute_pod_status(
    pod: core_pb2.Pod,
    runtime_state: PodRuntimeState,
    probe_results: Mapping[str, ContainerProbeResults],
    now: float,
) -> core_pb2.PodStatus:
    """The pod's status as kubelet would write it (see the module docstring).

    ``probe_results`` is keyed by runtime container id; ``now`` is epoch seconds.
    """
    spec, old = pod.spec, pod.status
    init_statuses = {
        c.name: _container_status(c, runtime_state, probe_results, default_waiting="PodInitializing", is_init=True)
        for c in spec.init_containers
    }
    pending_init, failed_init = _initialization(spec, init_statuses)
    app_default = "PodInitializing" if pending_init else "ContainerCreating"
    app_statuses = [
        _container_status(c, runtime_state, probe_results, default_waiting=app_default, is_init=False)
        for c in spec.containers
    ]
    phase = _phase(pod, app_statuses, pending_init, failed_init)
    unready = [s.name for s in app_statuses if not s.ready]
    unready += [c.name for c in spec.init_containers if is_sidecar(c) and not init_statuses[c.name].ready]

    status = core_pb2.PodStatus(phase=phase)
    status.conditions.extend(_conditions(pod, phase, pending_init, unready, now))
    for name in ("qos_class", "nominated_node_name", "reason", "message"):
        if old.HasField(name):
            setattr(status, name, getattr(old, name))
    if runtime_state.host_ip:
        status.host_ip = runtime_state.host_ip
        status.host_ips.add(ip=runtime_state.host_ip)
    pod_ip = runtime_state.host_ip if spec.host_network else ""
    if not pod_ip and runtime_state.sandbox is not None:
        pod_ip = runtime_state.sandbox.ip
    pod_ip = pod_ip or old.pod_ip
    if pod_ip:
        status.pod_ip = pod_ip
        status.pod_ips.add(ip=pod_ip)
    status.start_time = old.start_time or format_time(now)
    status.init_container_statuses.extend(init_statuses[c.name] for c in spec.init_containers)
    status.container_statuses.extend(app_statuses)
    return status
