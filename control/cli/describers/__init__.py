"""``kubectl describe``-style text for every kind.

``describe(obj, events=..., now=...)`` picks the kind's describer from
``DESCRIBERS`` (pods and nodes have their own, like kubectl's; namespaces,
config maps, secrets and the workload kinds too; anything else, such as a
ControllerRevision, gets the generic one). ``events`` is the object's events,
or None to leave the Events section out; ``pods`` are a node's
non-terminated pods for its resource summary, or the pods a workload
controls for its ``Pods Status``; ``replica_sets`` are a Deployment's
namespace's ReplicaSets, for its NewReplicaSet and OldReplicaSets;
``endpoints`` is a Service's Endpoints object, for the addresses behind
each port (``service``). None leaves what they would show out.

Modules: ``writer`` (indentation and alignment), ``sections`` (labels,
annotations, taints, tolerations, events), ``pod``, ``node``, ``generic``,
``pod_template`` (the Pod Template section and the parts workloads share),
``apps``, ``batch``, ``autoscaling``, ``rbac``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable, Sequence

from google.protobuf.message import Message

from control.cli.describers.apps import (
    describe_daemon_set, describe_deployment, describe_replica_set, describe_stateful_set,
)
from control.cli.describers.autoscaling import describe_horizontal_pod_autoscaler
from control.cli.describers.batch import describe_cron_job, describe_job
from control.cli.describers.generic import (
    describe_configmap,
    describe_generic,
    describe_namespace,
    describe_secret,
)
from control.cli.describers.node import describe_node
from control.cli.describers.pod import describe_pod
from control.cli.describers.rbac import describe_binding, describe_role
from control.cli.describers.service import describe_service
from control.cli.objects import kind_of

Describer = Callable[..., str]

DESCRIBERS: dict[str, Describer] = {
    "Pod": describe_pod,
    "Node": describe_node,
    "Namespace": describe_namespace,
    "ConfigMap": describe_configmap,
    "Secret": describe_secret,
    "Role": describe_role,
    "ClusterRole": describe_role,
    "RoleBinding": describe_binding,
    "ClusterRoleBinding": describe_binding,
}
# Describers that also read related objects: the pods a workload controls, a Deployment's ReplicaSets.
WORKLOAD_DESCRIBERS: dict[str, Describer] = {
    "Deployment": describe_deployment,
    "ReplicaSet": describe_replica_set,
    "DaemonSet": describe_daemon_set,
    "StatefulSet": describe_stateful_set,
    "Job": describe_job,
    "CronJob": describe_cron_job,
    "HorizontalPodAutoscaler": describe_horizontal_pod_autoscaler,
}


def describe(obj: Message, *, events: Sequence[Message] | None, now: datetime,
             pods: Sequence[Message] | None = None, replica_sets: Sequence[Message] | None = None,
             endpoints: Message | None = None) -> str:
    kind = kind_of(obj).kind
    if kind == "Node":
        return describe_node(obj, events=events, now=now, pods=pods)
    if kind == "Service":
        return describe_service(obj, events=events, now=now, endpoints=endpoints)
    if kind in WORKLOAD_DESCRIBERS:
        return WORKLOAD_DESCRIBERS[kind](obj, events=events, now=now, pods=pods, replica_sets=replica_sets)
    return DESCRIBERS.get(kind, describe_generic)(obj, events=events, now=now)
