"""Rollouts of Deployments, read from and rolled back through their ReplicaSets, as kubectl does.

- status: kubectl's DeploymentStatusViewer, from the Deployment's status
  alone: waiting for the spec update to be observed, for new replicas to
  be updated, for old ones to terminate, for updated ones to be available;
  done when all are; an error once the Progressing condition says
  ProgressDeadlineExceeded.
- history: one revision per ReplicaSet the Deployment controls, numbered by
  its ``deployment.kubernetes.io/revision`` annotation, its CHANGE-CAUSE
  the ReplicaSet's ``kubernetes.io/change-cause`` (copied there from the
  Deployment by the controller when the revision rolled out).
- undo: there is no server-side rollback: the chosen ReplicaSet's template,
  without its pod-template-hash label, is written back into the
  Deployment, with the ReplicaSet's annotations (change-cause among them),
  and the controller rolls that out like any change, reusing the
  ReplicaSet, which then gets the next revision number.
"""

from __future__ import annotations

from control.api.deployments import (
    CHANGE_CAUSE_ANNOTATION,
    UNCOPIED_ANNOTATIONS,
    equal_ignoring_hash,
    revision_of,
    template_without_hash,
)
from control.cli.errors import CommandError
from control.cli.rollouts.base import Revision, RolloutKind, RolloutStatus
from control.client import Client
from protos.api.v1 import apps_pb2

PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"


def deployment_status(deployment: apps_pb2.Deployment, revision: int) -> RolloutStatus:
    name = deployment.metadata.name
    if revision > 0:
        current = revision_of(deployment)
        if current != revision:
            raise CommandError(f"error: desired revision ({revision}) is different from the running revision "
                               f"({current})")
    status = deployment.status
    if deployment.metadata.generation > status.observed_generation:
        return RolloutStatus("Waiting for deployment spec update to be observed...", False)
    if any(c.type == "Progressing" and c.reason == PROGRESS_DEADLINE_EXCEEDED for c in status.conditions):
        raise CommandError(f'error: deployment "{name}" exceeded its progress deadline')
    replicas = deployment.spec.replicas if deployment.spec.HasField("replicas") else 1
    waiting = f'Waiting for deployment "{name}" rollout to finish: '
    if status.updated_replicas < replicas:
        return RolloutStatus(f"{waiting}{status.updated_replicas} out of {replicas} new replicas have been "
                             "updated...", False)
    if status.replicas > status.updated_replicas:
        return RolloutStatus(f"{waiting}{status.replicas - status.updated_replicas} old replicas are pending "
                             "termination...", False)
    if status.available_replicas < status.updated_replicas:
        return RolloutStatus(f"{waiting}{status.available_replicas} of {status.updated_replicas} updated replicas "
                             "are available...", False)
    return RolloutStatus(f'deployment "{name}" successfully rolled out', True)


async def _replicasets(api: Client, deployment: apps_pb2.Deployment) -> list[apps_pb2.ReplicaSet]:
    """The ReplicaSets the Deployment controls."""
    items, _ = await api.list("ReplicaSet", namespace=deployment.metadata.namespace)
    return [rs for rs in items
            if any(ref.controller and ref.uid == deployment.metadata.uid for ref in rs.metadata.owner_references)]


async def deployment_history(api: Client, deployment: apps_pb2.Deployment) -> list[Revision]:
    revisions = []
    for rs in await _replicasets(api, deployment):
        number = revision_of(rs)
        if number > 0:
            revisions.append(Revision(number, rs.metadata.annotations.get(CHANGE_CAUSE_ANNOTATION, ""),
                                      rs.spec.template))
    return sorted(revisions, key=lambda revision: revision.number)


async def _replicaset_for(api: Client, deployment: apps_pb2.Deployment, to_revision: int) -> apps_pb2.ReplicaSet:
    numbered = sorted(((revision_of(rs), rs) for rs in await _replicasets(api, deployment) if revision_of(rs) > 0),
                      key=lambda pair: pair[0])
    if to_revision > 0:
        for number, rs in numbered:
            if number == to_revision:
                return rs
        raise CommandError(f"error: unable to find specified revision {to_revision} in history")
    if len(numbered) < 2:
        raise CommandError(f'error: no rollout history found for deployment "{deployment.metadata.name}"')
    return numbered[-2][1]


async def undo_deployment(api: Client, deployment: apps_pb2.Deployment, to_revision: int) -> str:
    if to_revision < 0:
        raise CommandError(f"error: unable to find specified revision {to_revision} in history")
    rs = await _replicaset_for(api, deployment, to_revision)
    name = deployment.metadata.name
    if deployment.spec.paused:
        raise CommandError(f"error: you cannot rollback a paused deployment; resume it first with "
                           f"'sampan rollout resume deployment/{name}' and try again")
    if equal_ignoring_hash(rs.spec.template, deployment.spec.template):
        return f"skipped rollback (current template already matches revision {to_revision or revision_of(rs)})"
    changed = apps_pb2.Deployment()
    changed.CopyFrom(deployment)
    changed.spec.template.CopyFrom(template_without_hash(rs.spec.template))
    annotations = {key: value for key, value in deployment.metadata.annotations.items()
                   if key in UNCOPIED_ANNOTATIONS}
    annotations.update({key: value for key, value in rs.metadata.annotations.items()
                        if key not in UNCOPIED_ANNOTATIONS})
    changed.metadata.annotations.clear()
    changed.metadata.annotations.update(annotations)
    await api.update(changed)  # CAS on the resourceVersion read
    return "rolled back"


def deployment_restart_refusal(deployment: apps_pb2.Deployment) -> str | None:
    if deployment.spec.paused:
        return "can't restart paused deployment (run rollout resume first)"
    return None


DEPLOYMENT = RolloutKind(status=deployment_status, history=deployment_history, undo=undo_deployment,
                         pausable=True, restart_refusal=deployment_restart_refusal)
