"""The arithmetic of a Deployment's rollout: how many replicas each ReplicaSet should have next.

Pure functions of the Deployment and its ReplicaSets as the caches show
them; the controller (control/controllers/deployment.py) applies what they
return. Each answers one of the questions Kubernetes' deployment controller
asks on a pass:

- ``fenceposts``: maxSurge and maxUnavailable as numbers of pods (a
  percentage of spec.replicas, surge rounded up, unavailable down; both zero
  would stall a rollout, so unavailable becomes 1).
- ``rolling_new_replicas``: how far the new ReplicaSet may grow now without
  more than replicas + maxSurge pods (counting every ReplicaSet's
  spec.replicas, so pods being created count before they exist).
- ``rolling_old_scale_down``: how far the old ReplicaSets may shrink now while
  keeping replicas - maxUnavailable available pods: first their unavailable
  pods (they serve nobody), then available ones, oldest ReplicaSet first.
- ``proportional_scale``: when spec.replicas changes in mid-rollout (or while
  paused), the change is spread over the ReplicaSets that have pods, in
  proportion to their sizes, using each ReplicaSet's max-replicas annotation
  (what the Deployment allowed when it was last scaled).
- ``is_scaling_event``: whether spec.replicas differs from what the active
  ReplicaSets were last scaled for (their desired-replicas annotation).

Replica counts are spec.replicas (what is asked for); availability is
status.availableReplicas, never counted above spec.replicas, so a ReplicaSet
just scaled down whose status still lists the pods it is removing is not
taken for more capacity than it keeps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from control.api.deployments import DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, scaled_value
from control.api.timestamps import parse_time
from protos.api.v1 import apps_pb2, meta_pb2

RECREATE = "Recreate"
ROLLING_UPDATE = "RollingUpdate"
DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"


def replicas_of(obj: apps_pb2.Deployment | apps_pb2.ReplicaSet) -> int:
    """spec.replicas (1 when unset, Kubernetes' default)."""
    return obj.spec.replicas if obj.spec.HasField("replicas") else 1


def is_recreate(deployment: apps_pb2.Deployment) -> bool:
    return deployment.spec.strategy.type == RECREATE


@dataclass(frozen=True)
class Fenceposts:
    max_surge: int
    max_unavailable: int


def _or_default(value: meta_pb2.IntOrString, default: str) -> meta_pb2.IntOrString:
    return value if value.WhichOneof("value") is not None else meta_pb2.IntOrString(str_value=default)


def fenceposts(deployment: apps_pb2.Deployment) -> Fenceposts:
    """maxSurge and maxUnavailable in pods; both 0 for Recreate."""
    if is_recreate(deployment):
        return Fenceposts(0, 0)
    replicas = replicas_of(deployment)
    rolling = deployment.spec.strategy.rolling_update
    surge = scaled_value(_or_default(rolling.max_surge, DEFAULT_MAX_SURGE), replicas, round_up=True)
    unavailable = scaled_value(_or_default(rolling.max_unavailable, DEFAULT_MAX_UNAVAILABLE), replicas,
                               round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return Fenceposts(max_surge=surge, max_unavailable=min(unavailable, replicas))


def total_replicas(replicasets: Sequence[apps_pb2.ReplicaSet]) -> int:
    return sum(replicas_of(rs) for rs in replicasets)


def available_replicas(rs: apps_pb2.ReplicaSet) -> int:
    """Available pods the ReplicaSet keeps: its status, never above spec.replicas."""
    return min(rs.status.available_replicas, replicas_of(rs))


def by_age(replicasets: Sequence[apps_pb2.ReplicaSet]) -> list[apps_pb2.ReplicaSet]:
    """Oldest first (by creation, then name)."""
    return sorted(replicasets, key=lambda rs: (parse_time(rs.metadata.creation_timestamp), rs.metadata.name))


def rolling_new_replicas(deployment: apps_pb2.Deployment, all_replicasets: Sequence[apps_pb2.ReplicaSet],
                         new_rs: apps_pb2.ReplicaSet | None) -> int:
    """spec.replicas the new ReplicaSet may have now.

    all_replicasets includes new_rs; new_rs None means the new ReplicaSet is
    about to be created (and all_replicasets are the old ones)."""
    desired = replicas_of(deployment)
    current_new = replicas_of(new_rs) if new_rs is not None else 0
    if current_new >= desired:
        return desired
    max_total = desired + fenceposts(deployment).max_surge
    current_total = total_replicas(all_replicasets)
    if current_total >= max_total:
        return current_new
    return current_new + min(max_total - current_total, desired - current_new)


def rolling_old_scale_down(deployment: apps_pb2.Deployment, new_rs: apps_pb2.ReplicaSet | None,
                           old_replicasets: Sequence[apps_pb2.ReplicaSet]) -> dict[str, int]:
    """New spec.replicas for the old ReplicaSets that may shrink now, by uid."""
    if total_replicas(old_replicasets) == 0:
        return {}
    all_replicasets = [*old_replicasets, *([new_rs] if new_rs is not None else [])]
    min_available = replicas_of(deployment) - fenceposts(deployment).max_unavailable
    new_unavailable = replicas_of(new_rs) - available_replicas(new_rs) if new_rs is not None else 0
    max_scale_down = total_replicas(all_replicasets) - min_available - new_unavailable
    if max_scale_down <= 0:
        return {}
    targets: dict[str, int] = {}
    oldest_first = by_age(old_replicasets)

    # Unavailable old pods first: removing them costs no availability.
    cleaned = 0
    for rs in oldest_first:
        if cleaned >= max_scale_down:
            break
        replicas = replicas_of(rs)
        unhealthy = replicas - available_replicas(rs)
        if replicas == 0 or unhealthy <= 0:
            continue
        step = min(max_scale_down - cleaned, unhealthy)
        targets[rs.metadata.uid] = replicas - step
        cleaned += step

    # Then available ones, down to min_available across every ReplicaSet.
    available = sum(available_replicas(rs) for rs in all_replicasets)
    if available <= min_available:
        return targets
    allowed = available - min_available
    scaled = 0
    for rs in oldest_first:
        if scaled >= allowed:
            break
        replicas = targets.get(rs.metadata.uid, replicas_of(rs))
        if replicas == 0:
            continue
        step = min(replicas, allowed - scaled)
        targets[rs.metadata.uid] = replicas - step
        scaled += step
    return targets


def _annotation_int(rs: apps_pb2.ReplicaSet, name: str) -> int | None:
    try:
        return int(rs.metadata.annotations[name])
    except (KeyError, ValueError):
        return None


def is_scaling_event(deployment: apps_pb2.Deployment, replicasets: Sequence[apps_pb2.ReplicaSet]) -> bool:
    """Whether spec.replicas changed since the active ReplicaSets were last scaled."""
    desired = replicas_of(deployment)
    for rs in replicasets:
        if replicas_of(rs) == 0:
            continue
        annotated = _annotation_int(rs, DESIRED_REPLICAS_ANNOTATION)
        if annotated is not None and annotated != desired:
            return True
    return False


def _round_half_away(value: float) -> int:
    return math.floor(value + 0.5) if value >= 0 else -math.floor(-value + 0.5)


def _fraction(rs: apps_pb2.ReplicaSet, deployment: apps_pb2.Deployment) -> int:
    """How many replicas rs gains (or loses) at the Deployment's new size, in proportion."""
    desired = replicas_of(deployment)
    if desired == 0:
        return -replicas_of(rs)
    max_now = desired + fenceposts(deployment).max_surge
    annotated = _annotation_int(rs, MAX_REPLICAS_ANNOTATION)
    if annotated is None:
        annotated = deployment.status.replicas
    if annotated <= 0:
        return 0
    return _round_half_away(replicas_of(rs) * max_now / annotated) - replicas_of(rs)


def active_or_latest(new_rs: apps_pb2.ReplicaSet | None,
                     old_replicasets: Sequence[apps_pb2.ReplicaSet]) -> apps_pb2.ReplicaSet | None:
    """The one ReplicaSet with pods; with none, the new one (else the newest old one); with several, None."""
    everything = [*old_replicasets, *([new_rs] if new_rs is not None else [])]
    active = [rs for rs in everything if replicas_of(rs) > 0]
    if len(active) == 1:
        return active[0]
    if active:
        return None
    if new_rs is not None:
        return new_rs
    return by_age(old_replicasets)[-1] if old_replicasets else None


def proportional_scale(deployment: apps_pb2.Deployment, new_rs: apps_pb2.ReplicaSet | None,
                       old_replicasets: Sequence[apps_pb2.ReplicaSet]) -> dict[str, int]:
    """New spec.replicas, by uid, for every ReplicaSet a change of spec.replicas resizes."""
    desired = replicas_of(deployment)
    only = active_or_latest(new_rs, old_replicasets)
    if only is not None:
        return {only.metadata.uid: desired}
    if new_rs is not None and saturated(deployment, new_rs):
        return {rs.metadata.uid: 0 for rs in old_replicasets if replicas_of(rs) > 0}
    if is_recreate(deployment):
        return {}
    everything = [*old_replicasets, *([new_rs] if new_rs is not None else [])]
    active = [rs for rs in everything if replicas_of(rs) > 0]
    to_add = desired + fenceposts(deployment).max_surge - total_replicas(active)
    if not active or to_add == 0:
        return {}
    # Biggest first; among equals, the newer grows first and the older shrinks first.
    newer_first = sorted(active, key=lambda rs: parse_time(rs.metadata.creation_timestamp), reverse=to_add > 0)
    ordered = sorted(newer_first, key=replicas_of, reverse=True)
    targets: dict[str, int] = {}
    added = 0
    for rs in ordered:
        step = 0
        if added != to_add:
            fraction = _fraction(rs, deployment)
            allowed = to_add - added
            step = min(fraction, allowed) if to_add > 0 else max(fraction, allowed)
        targets[rs.metadata.uid] = replicas_of(rs) + step
        added += step
    leftover = to_add - added
    if leftover:
        first = ordered[0].metadata.uid
        targets[first] = max(targets[first] + leftover, 0)
    return targets


def saturated(deployment: apps_pb2.Deployment, new_rs: apps_pb2.ReplicaSet) -> bool:
    """The new ReplicaSet alone runs every replica, all available."""
    desired = replicas_of(deployment)
    return (replicas_of(new_rs) == desired
            and _annotation_int(new_rs, DESIRED_REPLICAS_ANNOTATION) == desired
            and new_rs.status.available_replicas == desired)
