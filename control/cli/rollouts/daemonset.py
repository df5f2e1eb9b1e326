"""Rollouts of DaemonSets: kubectl's DaemonSet status lines; history and undo through ControllerRevisions.

Status reads the DaemonSet's status alone: waiting for the spec update to be
observed, for every node's pod to be updated, then for them to be
available. Only a RollingUpdate DaemonSet has a rollout to follow.
"""

from __future__ import annotations

from control.cli.errors import CommandError
from control.cli.rollouts.base import RolloutKind, RolloutStatus
from control.cli.rollouts.controller_revisions import revision_history, undo_to_revision
from protos.api.v1 import apps_pb2


def daemonset_status(ds: apps_pb2.DaemonSet, revision: int) -> RolloutStatus:
    if (ds.spec.update_strategy.type or "RollingUpdate") != "RollingUpdate":
        raise CommandError("error: rollout status is only available for RollingUpdate strategy type")
    status, name = ds.status, ds.metadata.name
    if ds.metadata.generation > status.observed_generation:
        return RolloutStatus("Waiting for daemon set spec update to be observed...", False)
    waiting = f'Waiting for daemon set "{name}" rollout to finish: '
    if status.updated_number_scheduled < status.desired_number_scheduled:
        return RolloutStatus(f"{waiting}{status.updated_number_scheduled} out of {status.desired_number_scheduled} "
                             "new pods have been updated...", False)
    if status.number_available < status.desired_number_scheduled:
        return RolloutStatus(f"{waiting}{status.number_available} of {status.desired_number_scheduled} updated "
                             "pods are available...", False)
    return RolloutStatus(f'daemon set "{name}" successfully rolled out', True)


DAEMONSET = RolloutKind(status=daemonset_status, history=revision_history, undo=undo_to_revision)
