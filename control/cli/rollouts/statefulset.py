"""Rollouts of StatefulSets: kubectl's StatefulSet status lines; history and undo through ControllerRevisions.

Status reads the StatefulSet's status alone: waiting for the spec update to
be observed, then for every replica to be ready; with a rollingUpdate
partition (which the API defaults to 0), done once the pods at or above the
partition are updated ("partitioned roll out complete"); without one, once
the update revision has become the current one. Only a RollingUpdate
StatefulSet has a rollout to follow.
"""

from __future__ import annotations

from control.cli.errors import CommandError
from control.cli.rollouts.base import RolloutKind, RolloutStatus
from control.cli.rollouts.controller_revisions import revision_history, undo_to_revision
from protos.api.v1 import apps_pb2


def statefulset_status(sts: apps_pb2.StatefulSet, revision: int) -> RolloutStatus:
    strategy = sts.spec.update_strategy
    if (strategy.type or "RollingUpdate") != "RollingUpdate":
        raise CommandError("error: rollout status is only available for RollingUpdate strategy type")
    status = sts.status
    if status.observed_generation == 0 or sts.metadata.generation > status.observed_generation:
        return RolloutStatus("Waiting for statefulset spec update to be observed...", False)
    replicas = sts.spec.replicas if sts.spec.HasField("replicas") else 1
    if status.ready_replicas < replicas:
        return RolloutStatus(f"Waiting for {replicas - status.ready_replicas} pods to be ready...", False)
    if strategy.HasField("rolling_update"):
        to_update = replicas - strategy.rolling_update.partition
        if status.updated_replicas < to_update:
            return RolloutStatus(f"Waiting for partitioned roll out to finish: {status.updated_replicas} out of "
                                 f"{to_update} new pods have been updated...", False)
        return RolloutStatus(f"partitioned roll out complete: {status.updated_replicas} new pods have been "
                             "updated...", True)
    if status.update_revision != status.current_revision:
        return RolloutStatus(f"waiting for statefulset rolling update to complete {status.updated_replicas} pods "
                             f"at revision {status.update_revision}...", False)
    return RolloutStatus(f"statefulset rolling update complete {status.current_replicas} pods at revision "
                         f"{status.current_revision}...", True)


STATEFULSET = RolloutKind(status=statefulset_status, history=revision_history, undo=undo_to_revision)
