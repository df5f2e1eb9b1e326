"""The rollout arithmetic (control/controllers/deployment_rollout.py) and the status conditions
(control/controllers/deployment_status.py), as pure functions over hand-made objects.

Covers: maxSurge/maxUnavailable rounding (surge up, unavailable down, both
zero made 1 unavailable, defaults of 25%); how far the new ReplicaSet grows;
how far old ones shrink (unavailable pods first, oldest first, never below
the minimum available, never trusting a status above spec.replicas);
proportional scaling on Kubernetes' documented example; scaling events;
the Progressing condition's progress, timeout and completion.
"""

from __future__ import annotations

import pytest

from control.api.deployments import DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION
from control.api.timestamps import format_time
from control.controllers.deployment_rollout import (
    Fenceposts,
    fenceposts,
    is_scaling_event,
    proportional_scale,
    rolling_new_replicas,
    rolling_old_scale_down,
)
from control.controllers.deployment_status import PROGRESSING, get_condition, rollout_status
from protos.api.v1 import apps_pb2, meta_pb2

NOW = 1_700_000_000.0


def int_or_string(value: int | str | None) -> meta_pb2.IntOrString:
    if value is None:
        return meta_pb2.IntOrString()
    return meta_pb2.IntOrString(int_value=value) if isinstance(value, int) else meta_pb2.IntOrString(str_value=value)


def deployment(replicas: int, *, surge: int | str | None = None, unavailable: int | str | None = None,
               strategy: str = "RollingUpdate") -> apps_pb2.Deployment:
    d = apps_pb2.Deployment()
    d.metadata.name = "web"
    d.metadata.generation = 1
    d.spec.replicas = replicas
    d.spec.strategy.type = strategy
    d.spec.strategy.rolling_update.max_surge.CopyFrom(int_or_string(surge))
    d.spec.strategy.rolling_update.max_unavailable.CopyFrom(int_or_string(unavailable))
    return d


def replicaset(name: str, replicas: int, *, available: int | None = None, created: float = NOW,
               desired: int | None = None, max_replicas: int | None = None) -> apps_pb2.ReplicaSet:
    rs = apps_pb2.ReplicaSet()
    rs.metadata.name = rs.metadata.uid = name
    rs.metadata.creation_timestamp = format_time(created)
    rs.spec.replicas = replicas
    rs.status.replicas = replicas
    rs.status.available_replicas = replicas if available is None else available
    if desired is not None:
        rs.metadata.annotations[DESIRED_REPLICAS_ANNOTATION] = str(desired)
    if max_replicas is not None:
        rs.metadata.annotations[MAX_REPLICAS_ANNOTATION] = str(max_replicas)
    return rs


@pytest.mark.parametrize(("replicas", "surge", "unavailable", "expected"), [
    (10, "25%", "25%", Fenceposts(3, 2)),     # 2.5 -> surge 3, unavailable 2
    (3, None, None, Fenceposts(1, 0)),        # defaults 25%: 0.75 -> 1 and 0
    (4, 0, 0, Fenceposts(0, 1)),              # both zero would stall: 1 unavailable
    (1, "0%", "10%", Fenceposts(0, 1)),
    (5, 2, 7, Fenceposts(2, 5)),              # never more unavailable than replicas
])
def test_fenceposts_round_surge_up_and_unavailable_down(replicas, surge, unavailable, expected):
    assert fenceposts(deployment(replicas, surge=surge, unavailable=unavailable)) == expected


def test_recreate_has_no_surge_and_no_unavailability():
    assert fenceposts(deployment(3, surge=1, unavailable=1, strategy="Recreate")) == Fenceposts(0, 0)


def test_the_new_replicaset_grows_up_to_replicas_plus_surge():
    d = deployment(10, surge=3, unavailable=2)
    old = replicaset("old", 10)
    assert rolling_new_replicas(d, [old], None) == 3
    new = replicaset("new", 3, available=0)
    assert rolling_new_replicas(d, [old, new], new) == 3  # 13 pods asked for already
    old.spec.replicas = 8
    assert rolling_new_replicas(d, [old, new], new) == 5
    assert rolling_new_replicas(d, [replicaset("big", 12)], replicaset("big", 12)) == 10  # shrinks to replicas


def test_old_replicasets_shrink_keeping_the_minimum_available():
    d = deployment(10, surge=3, unavailable=2)
    old, new = replicaset("old", 10), replicaset("new", 3, available=0)
    assert rolling_old_scale_down(d, new, [old]) == {"old": 8}
    new.status.available_replicas = 3  # 13 available: 5 old ones may go
    assert rolling_old_scale_down(d, new, [old]) == {"old": 5}


def test_unavailable_old_pods_go_first_and_the_oldest_replicaset_first():
    d = deployment(4, surge=1, unavailable=0)
    older = replicaset("older", 2, available=1, created=NOW - 100)
    newer = replicaset("newer", 2, available=2, created=NOW - 50)
    new = replicaset("new", 1, available=0)
    # 5 asked for and 4 must stay available: while the new pod is unavailable, nothing may go.
    assert rolling_old_scale_down(d, new, [newer, older]) == {}
    # Once it is available, one pod may go: the unavailable one, not an available one.
    new.status.available_replicas = 1
    assert rolling_old_scale_down(d, new, [newer, older]) == {"older": 1}
    # All available, two may go: the oldest ReplicaSet's first.
    d = deployment(4, surge=2, unavailable=0)
    older.status.available_replicas = 2
    new.spec.replicas = new.status.available_replicas = 2
    assert rolling_old_scale_down(d, new, [newer, older]) == {"older": 0}


def test_a_status_above_spec_replicas_is_not_counted_as_capacity():
    d = deployment(3, surge=1, unavailable=0)
    # Scaled from 3 to 2 a moment ago; its status still lists 3 available pods.
    old = replicaset("old", 2, available=3)
    new = replicaset("new", 2, available=2)
    # Really 2 + 2 = 4 available: one more old pod may go, not two.
    assert rolling_old_scale_down(d, new, [old]) == {"old": 1}


def test_proportional_scaling_matches_kubernetes_documented_example():
    # 10 replicas, maxSurge 3: a stuck rollout holds 8 old and 5 new; scaled to 15, 3 go to the old and 2 to the new.
    d = deployment(15, surge=3, unavailable=2)
    old = replicaset("old", 8, created=NOW - 100, desired=10, max_replicas=13)
    new = replicaset("new", 5, available=0, desired=10, max_replicas=13)
    assert is_scaling_event(d, [old, new])
    assert proportional_scale(d, new, [old]) == {"old": 11, "new": 7}


def test_proportional_scaling_down_and_with_one_active_replicaset():
    d = deployment(5, surge=3, unavailable=2)
    old = replicaset("old", 8, created=NOW - 100, desired=10, max_replicas=13)
    new = replicaset("new", 5, available=0, desired=10, max_replicas=13)
    targets = proportional_scale(d, new, [old])
    assert sum(targets.values()) == 5 + 3 and targets["old"] < 8 and targets["new"] < 5
    lone = replicaset("lone", 4, desired=4)
    assert proportional_scale(deployment(6), lone, [replicaset("empty", 0, created=NOW - 100)]) == {"lone": 6}
    assert proportional_scale(deployment(6), None, []) == {}  # paused before its first ReplicaSet


def test_a_scaling_event_is_a_replica_count_the_active_replicasets_were_not_scaled_for():
    d = deployment(3)
    assert not is_scaling_event(d, [replicaset("a", 3, desired=3), replicaset("b", 0, desired=7)])
    assert is_scaling_event(deployment(4), [replicaset("a", 3, desired=3)])
    assert not is_scaling_event(d, [replicaset("adopted", 3)])  # never annotated


def _progressing(d: apps_pb2.Deployment, reason: str, *, at: float) -> None:
    d.status.conditions.add(type=PROGRESSING, status="True", reason=reason, last_update_time=format_time(at),
                            last_transition_time=format_time(at))


def test_progressing_records_progress_then_times_out_then_completes():
    d = deployment(2, surge=1, unavailable=0)
    d.spec.progress_deadline_seconds = 30
    d.status.observed_generation = 1
    old, new = replicaset("old", 2), replicaset("new", 1, available=0)
    _progressing(d, "NewReplicaSetCreated", at=NOW - 100)

    status = rollout_status(d, [old, new], new, now=NOW)  # new pods appeared: progress
    progressing = get_condition(status, PROGRESSING)
    assert (progressing.reason, progressing.last_update_time) == ("ReplicaSetUpdated", format_time(NOW))
    assert progressing.last_transition_time == format_time(NOW - 100)

    d.status.CopyFrom(status)
    status = rollout_status(d, [old, new], new, now=NOW + 31)  # nothing moved for 31 s
    progressing = get_condition(status, PROGRESSING)
    assert (progressing.status, progressing.reason) == ("False", "ProgressDeadlineExceeded")

    d.status.CopyFrom(status)
    old.spec.replicas = old.status.replicas = old.status.available_replicas = 0
    new.spec.replicas = new.status.replicas = new.status.available_replicas = 2
    status = rollout_status(d, [old, new], new, now=NOW + 40)
    progressing = get_condition(status, PROGRESSING)
    assert (progressing.status, progressing.reason, progressing.message) == (
        "True", "NewReplicaSetAvailable", 'ReplicaSet "new" has successfully progressed.')
