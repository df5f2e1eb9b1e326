"""The default RBAC policy, created when the control service starts.

Like Kubernetes' bootstrap policy, only smaller. ClusterRoles:

- ``cluster-admin``: every verb on every resource of every group; bound to
  the group ``system:masters`` by the ClusterRoleBinding ``cluster-admin``
  (masters are allowed by MastersAuthorizer anyway; the binding says so in
  the policy, as Kubernetes' does).
- ``admin``, ``edit``, ``view``: the user-facing roles, meant for
  RoleBindings in a namespace. ``view`` reads the workload, service and
  config kinds but not Secrets; ``edit`` writes them too, reads Secrets and
  may exec into pods; ``admin`` adds Roles and RoleBindings.
- ``system:sampan-proxy`` (Kubernetes' system:node-proxier): what
  ``sampan proxy`` reads (Services, Endpoints, EndpointSlices, Nodes) and
  its Events; bound to the group ``system:proxies`` (identity.PROXIES_GROUP)
  by the ClusterRoleBinding of the same name.
- ``system:sampan-control``: the control service's own client is a master;
  the ClusterRoleBinding ``system:sampan-control`` also grants it
  cluster-admin, so the policy names every identity the cluster relies on.

Discovery is open to any authenticated caller and a review of one's own
access (``sampan auth can-i``) needs no permission, so no role is needed for
them. Nodes are the node authorizer's (node_authorizer.py); service accounts
get nothing by default, as in Kubernetes.

``ensure_bootstrap_policy`` creates what is missing and, as Kubernetes'
reconciliation does, adds missing rules and subjects back to the defaults
that exist, unless they are annotated
``rbac.authorization.kubernetes.io/autoupdate: "false"``. What an operator
added is kept.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Sequence

from google.protobuf.message import Message

from control.api import errors, kinds
from control.auth.identity import CONTROL_PLANE_USER, PROXIES_GROUP, SYSTEM_MASTERS
from protos.api.v1 import rbac_pb2

if TYPE_CHECKING:
    from control.server.resources import ResourceService

log = logging.getLogger(__name__)

RBAC_API_VERSION = "rbac.authorization.k8s.io/v1"
RBAC_GROUP = "rbac.authorization.k8s.io"
AUTOUPDATE_ANNOTATION = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAP_LABEL = "kubernetes.io/bootstrapping"

READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")

# group -> resources, for the view role (never Secrets).
_VIEWABLE = {
    "": ("configmaps", "endpoints", "events", "pods", "pods/log", "pods/status", "serviceaccounts",
         "services", "services/status", "namespaces", "namespaces/status"),
    "apps": ("controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/status",
             "replicasets", "replicasets/status", "statefulsets", "statefulsets/status"),
    "autoscaling": ("horizontalpodautoscalers", "horizontalpodautoscalers/status"),
    "batch": ("cronjobs", "cronjobs/status", "jobs", "jobs/status"),
    "discovery.k8s.io": ("endpointslices",),
}
# group -> resources the edit role writes.
_EDITABLE = {
    "": ("configmaps", "events", "pods", "secrets", "serviceaccounts", "services", "endpoints"),
    "apps": ("daemonsets", "deployments", "replicasets", "statefulsets"),
    "autoscaling": ("horizontalpodautoscalers",),
    "batch": ("cronjobs", "jobs"),
    "discovery.k8s.io": ("endpointslices",),
}


def rule(verbs: Sequence[str], groups: Sequence[str], resources: Sequence[str]) -> rbac_pb2.PolicyRule:
    return rbac_pb2.PolicyRule(verbs=list(verbs), api_groups=list(groups), resources=list(resources))


def _labelled(obj: Message, name: str) -> Message:
    obj.api_version = RBAC_API_VERSION
    obj.kind = type(obj).DESCRIPTOR.name
    obj.metadata.name = name
    obj.metadata.labels[BOOTSTRAP_LABEL] = "rbac-defaults"
    obj.metadata.annotations[AUTOUPDATE_ANNOTATION] = "true"
    return obj


def cluster_role(name: str, rules: Sequence[rbac_pb2.PolicyRule]) -> rbac_pb2.ClusterRole:
    role = _labelled(rbac_pb2.ClusterRole(), name)
    role.rules.extend(rules)
    return role


def cluster_role_binding(name: str, role: str, *, groups: Sequence[str] = (),
                         users: Sequence[str] = ()) -> rbac_pb2.ClusterRoleBinding:
    binding = _labelled(rbac_pb2.ClusterRoleBinding(), name)
    binding.role_ref.api_group, binding.role_ref.kind, binding.role_ref.name = RBAC_GROUP, "ClusterRole", role
    for kind, names in (("Group", groups), ("User", users)):
        for subject in names:
            binding.subjects.add(kind=kind, api_group=RBAC_GROUP, name=subject)
    return binding


def _view_rules() -> list[rbac_pb2.PolicyRule]:
    return [rule(READ, [group], resources) for group, resources in _VIEWABLE.items()]


def _edit_rules() -> list[rbac_pb2.PolicyRule]:
    rules = _view_rules()
    rules += [rule(WRITE, [group], resources) for group, resources in _EDITABLE.items()]
    rules += [
        rule(READ, [""], ["secrets"]),
        rule(["create", "get"], [""], ["pods/exec"]),
        rule(WRITE, ["apps"], ["deployments/scale", "replicasets/scale", "statefulsets/scale"]),
    ]
    return rules


def default_cluster_roles() -> list[rbac_pb2.ClusterRole]:
    return [
        cluster_role("cluster-admin", [rule(["*"], ["*"], ["*"]),
                                       rbac_pb2.PolicyRule(verbs=["*"], non_resource_urls=["*"])]),
        cluster_role("admin", [*_edit_rules(), rule([*READ, *WRITE], [RBAC_GROUP], ["roles", "rolebindings"])]),
        cluster_role("edit", _edit_rules()),
        cluster_role("view", _view_rules()),
        cluster_role("system:sampan-proxy", [
            rule(["list", "watch"], [""], ["services", "endpoints"]),
            rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]),
            rule(READ, [""], ["nodes"]),
            rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
        ]),
    ]


def default_cluster_role_bindings() -> list[rbac_pb2.ClusterRoleBinding]:
    return [
        cluster_role_binding("cluster-admin", "cluster-admin", groups=[SYSTEM_MASTERS]),
        cluster_role_binding("system:sampan-proxy", "system:sampan-proxy", groups=[PROXIES_GROUP]),
        cluster_role_binding("system:sampan-control", "cluster-admin", users=[CONTROL_PLANE_USER]),
    ]


def _reconciled(current: Message, default: Message) -> Message | None:
    """current with what default has and it lacks (rules or subjects), or None when nothing is missing
    or the object asks not to be updated."""
    if current.metadata.annotations.get(AUTOUPDATE_ANNOTATION) == "false":
        return None
    field = "rules" if "rules" in current.DESCRIPTOR.fields_by_name else "subjects"
    missing = [item for item in getattr(default, field) if item not in getattr(current, field)]
    if not missing:
        return None
    updated = type(current)()
    updated.CopyFrom(current)
    getattr(updated, field).extend(missing)
    return updated


async def ensure_bootstrap_policy(resources: ResourceService) -> None:
    """Create the default ClusterRoles and ClusterRoleBindings, or complete them (idempotent)."""
    for default in [*default_cluster_roles(), *default_cluster_role_bindings()]:
        kind = kinds.by_kind(type(default).DESCRIPTOR.name)
        try:
            await resources.create(default)
            continue
        except errors.AlreadyExistsError:
            pass
        try:
            current = await resources.get(kind, namespace="", name=default.metadata.name)
            updated = _reconciled(current, default)
            if updated is not None:
                await resources.update(updated)
                log.info("added missing defaults back to %s %s", kind.kind, default.metadata.name)
        except errors.APIError as err:
            # Another replica may be doing the same at the same moment; it will have written the same.
            log.warning("cannot reconcile %s %s: %s", kind.kind, default.metadata.name, err)
