"""A Deployment's status and conditions, computed from its ReplicaSets (pure functions).

Counts add up the ReplicaSets' own status: replicas, readyReplicas and
availableReplicas over all of them, updatedReplicas from the new one,
unavailableReplicas what the ReplicaSets ask for minus what is available.

Two conditions, with Kubernetes' reasons and messages:

- Available: True (MinimumReplicasAvailable) while at least
  replicas - maxUnavailable pods are available, else False
  (MinimumReplicasUnavailable).
- Progressing, only with a progressDeadlineSeconds: True with
  NewReplicaSetCreated or FoundNewReplicaSet when a rollout starts,
  ReplicaSetUpdated each time it makes progress (more updated, ready or
  available pods, fewer old ones; its lastUpdateTime is the time of the last
  progress), NewReplicaSetAvailable once complete; False with
  ProgressDeadlineExceeded when no progress was made for
  progressDeadlineSeconds; Unknown with DeploymentPaused / DeploymentResumed
  when paused or resumed (a paused Deployment never times out).

A condition keeps its lastTransitionTime while its status stays the same.
"""

from __future__ import annotations

from typing import Sequence

from control.api.timestamps import format_time, parse_time
from control.controllers.deployment_rollout import fenceposts, replicas_of, total_replicas
from protos.api.v1 import apps_pb2

AVAILABLE = "Available"
PROGRESSING = "Progressing"
MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
MINIMUM_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"


def get_condition(status: apps_pb2.DeploymentStatus, type_: str) -> apps_pb2.WorkloadCondition | None:
    return next((c for c in status.conditions if c.type == type_), None)


def new_condition(type_: str, status: str, reason: str, message: str, *, now: float) -> apps_pb2.WorkloadCondition:
    stamp = format_time(now)
    return apps_pb2.WorkloadCondition(type=type_, status=status, reason=reason, message=message,
                                      last_update_time=stamp, last_transition_time=stamp)


def remove_condition(status: apps_pb2.DeploymentStatus, type_: str) -> None:
    kept = [c for c in status.conditions if c.type != type_]
    del status.conditions[:]
    status.conditions.extend(kept)


def set_condition(status: apps_pb2.DeploymentStatus, condition: apps_pb2.WorkloadCondition) -> None:
    """Put condition in status; a condition of the same status and reason is left as it is."""
    current = get_condition(status, condition.type)
    if current is not None and current.status == condition.status and current.reason == condition.reason:
        return
    if current is not None and current.status == condition.status:
        condition.last_transition_time = current.last_transition_time
    remove_condition(status, condition.type)
    status.conditions.append(condition)


def progress_deadline(deployment: apps_pb2.Deployment) -> int | None:
    spec = deployment.spec
    return spec.progress_deadline_seconds if spec.HasField("progress_deadline_seconds") else None


def calculate_status(deployment: apps_pb2.Deployment, all_replicasets: Sequence[apps_pb2.ReplicaSet],
                     new_rs: apps_pb2.ReplicaSet | None, *, now: float) -> apps_pb2.DeploymentStatus:
    """Counts from the ReplicaSets, the Available condition, the other conditions carried over."""
    available = sum(rs.status.available_replicas for rs in all_replicasets)
    status = apps_pb2.DeploymentStatus(
        observed_generation=deployment.metadata.generation,
        replicas=sum(rs.status.replicas for rs in all_replicasets),
        updated_replicas=new_rs.status.replicas if new_rs is not None else 0,
        ready_replicas=sum(rs.status.ready_replicas for rs in all_replicasets),
        available_replicas=available,
        unavailable_replicas=max(total_replicas(all_replicasets) - available, 0),
    )
    if deployment.status.HasField("collision_count"):
        status.collision_count = deployment.status.collision_count
    status.conditions.extend(deployment.status.conditions)
    if available >= replicas_of(deployment) - fenceposts(deployment).max_unavailable:
        set_condition(status, new_condition(AVAILABLE, "True", MINIMUM_REPLICAS_AVAILABLE,
                                            "Deployment has minimum availability.", now=now))
    else:
        set_condition(status, new_condition(AVAILABLE, "False", MINIMUM_REPLICAS_UNAVAILABLE,
                                            "Deployment does not have minimum availability.", now=now))
    return status


def is_complete(deployment: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus) -> bool:
    """Every replica updated and available, and the latest spec observed."""
    desired = replicas_of(deployment)
    return (status.updated_replicas == desired and status.replicas == desired
            and status.available_replicas == desired
            and status.observed_generation >= deployment.metadata.generation)


def made_progress(deployment: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus) -> bool:
    """Whether status shows progress over the Deployment's last written status."""
    old = deployment.status
    return (status.updated_replicas > old.updated_replicas
            or status.replicas - status.updated_replicas < old.replicas - old.updated_replicas
            or status.ready_replicas > old.ready_replicas
            or status.available_replicas > old.available_replicas)


def timed_out(deployment: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus, *, now: float) -> bool:
    deadline = progress_deadline(deployment)
    condition = get_condition(status, PROGRESSING)
    if deadline is None or condition is None or condition.reason == NEW_RS_AVAILABLE:
        return False
    if condition.reason == TIMED_OUT:
        return True
    return parse_time(condition.last_update_time) + deadline < now


def _subject(deployment: apps_pb2.Deployment, new_rs: apps_pb2.ReplicaSet | None) -> str:
    if new_rs is not None:
        return f'ReplicaSet "{new_rs.metadata.name}"'
    return f'Deployment "{deployment.metadata.name}"'


def rollout_status(deployment: apps_pb2.Deployment, all_replicasets: Sequence[apps_pb2.ReplicaSet],
                   new_rs: apps_pb2.ReplicaSet | None, *, now: float) -> apps_pb2.DeploymentStatus:
    """calculate_status plus the Progressing condition of a rollout in progress."""
    status = calculate_status(deployment, all_replicasets, new_rs, now=now)
    if progress_deadline(deployment) is None:
        remove_condition(status, PROGRESSING)
        return status
    current = get_condition(status, PROGRESSING)
    finished_before = (status.replicas == status.updated_replicas and current is not None
                       and current.reason == NEW_RS_AVAILABLE)
    if finished_before:
        return status
    subject = _subject(deployment, new_rs)
    if is_complete(deployment, status):
        set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE,
                                            f"{subject} has successfully progressed.", now=now))
    elif made_progress(deployment, status):
        condition = new_condition(PROGRESSING, "True", RS_UPDATED, f"{subject} is progressing.", now=now)
        if current is not None:
            if current.status == "True":
                condition.last_transition_time = current.last_transition_time
            remove_condition(status, PROGRESSING)
        status.conditions.append(condition)
    elif timed_out(deployment, status, now=now):
        set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT,
                                            f"{subject} has timed out progressing.", now=now))
    return status


def recheck_progress_in(deployment: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus, *,
                        now: float) -> float | None:
    """Seconds until a rollout without progress would pass its deadline (None: nothing to watch for)."""
    deadline = progress_deadline(deployment)
    condition = get_condition(status, PROGRESSING)
    if deadline is None or condition is None or condition.reason in (TIMED_OUT, NEW_RS_AVAILABLE, PAUSED):
        return None
    if is_complete(deployment, status):
        return None
    return max(parse_time(condition.last_update_time) + deadline - now, 0.0) + 1.0


def paused_condition(deployment: apps_pb2.Deployment, *, now: float) -> apps_pb2.DeploymentStatus | None:
    """The status with Progressing set to DeploymentPaused/Resumed, if pausing or resuming changes it."""
    if progress_deadline(deployment) is None:
        return None
    current = get_condition(deployment.status, PROGRESSING)
    if current is not None and current.reason == TIMED_OUT:
        return None  # a reported lack of progress is not overwritten
    shows_paused = current is not None and current.reason == PAUSED
    if deployment.spec.paused and not shows_paused:
        condition = new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused", now=now)
    elif not deployment.spec.paused and shows_paused:
        condition = new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed", now=now)
    else:
        return None
    status = apps_pb2.DeploymentStatus()
    status.CopyFrom(deployment.status)
    set_condition(status, condition)
    return status
