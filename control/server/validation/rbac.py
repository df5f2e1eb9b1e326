"""RBAC rules: Role, ClusterRole, RoleBinding and ClusterRoleBinding, in Kubernetes' words.

A rule needs verbs; a resource rule needs API groups and resources; a
Role's rules (namespaced) may not name non-resource URLs, and no rule mixes
both. A binding refers to a role in the rbac.authorization.k8s.io group: a
RoleBinding to a Role or a ClusterRole, a ClusterRoleBinding to a
ClusterRole only, and the reference never changes once stored (Kubernetes:
delete and create again). Subjects are Users and Groups (API group
rbac.authorization.k8s.io, which defaulting fills in) or ServiceAccounts
(no group; a ClusterRoleBinding's need a namespace). Names are path
segments (``system:node-proxier``), checked with the metadata rules.
"""

from __future__ import annotations

from google.protobuf.message import Message

from control.api.manifest import FieldError
from control.api.names import dns1123_subdomain_errors, path_segment_name_errors
from control.server.validation.field_errors import invalid, one_of, required

RBAC_GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ("ServiceAccount", "User", "Group")


def policy_rule_errors(rule: Message, *, namespaced: bool, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if not rule.verbs:
        errors.append(required(f"{path}.verbs", "verbs must contain at least one value"))
    if rule.non_resource_urls:
        urls_path = f"{path}.nonResourceURLs"
        if namespaced:
            errors.append(FieldError(urls_path, "Invalid value", "namespaced rules cannot apply to non-resource URLs"))
        if rule.api_groups or rule.resources or rule.resource_names:
            errors.append(FieldError(urls_path, "Invalid value",
                                     "rules cannot apply to both regular resources and non-resource URLs"))
        return errors
    if not rule.api_groups:
        errors.append(required(f"{path}.apiGroups", "resource rules must supply at least one api group"))
    if not rule.resources:
        errors.append(required(f"{path}.resources", "resource rules must supply at least one resource"))
    return errors


def _rules_errors(role: Message, *, namespaced: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    for index, rule in enumerate(role.rules):
        errors += policy_rule_errors(rule, namespaced=namespaced, path=f"rules[{index}]")
    return errors


def validate_role(role: Message, old: Message | None) -> list[FieldError]:
    return _rules_errors(role, namespaced=True)


def validate_cluster_role(role: Message, old: Message | None) -> list[FieldError]:
    return _rules_errors(role, namespaced=False)


def subject_errors(subject: Message, *, namespaced: bool, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if not subject.name:
        errors.append(required(f"{path}.name"))
    if subject.kind == "ServiceAccount":
        if subject.name:
            errors += invalid(f"{path}.name", subject.name, dns1123_subdomain_errors(subject.name))
        if subject.api_group:
            errors += one_of(f"{path}.apiGroup", subject.api_group, [""])
        if not namespaced and not subject.namespace:
            errors.append(required(f"{path}.namespace"))
    elif subject.kind in ("User", "Group"):
        errors += one_of(f"{path}.apiGroup", subject.api_group, [RBAC_GROUP])
    else:
        errors += one_of(f"{path}.kind", subject.kind, SUBJECT_KINDS)
    return errors


def _binding_errors(binding: Message, old: Message | None, *, namespaced: bool) -> list[FieldError]:
    ref = binding.role_ref
    errors = one_of("roleRef.apiGroup", ref.api_group, [RBAC_GROUP])
    errors += one_of("roleRef.kind", ref.kind, ["Role", "ClusterRole"] if namespaced else ["ClusterRole"])
    if not ref.name:
        errors.append(required("roleRef.name"))
    else:
        errors += invalid("roleRef.name", ref.name, path_segment_name_errors(ref.name))
    for index, subject in enumerate(binding.subjects):
        errors += subject_errors(subject, namespaced=namespaced, path=f"subjects[{index}]")
    if old is not None and (ref.api_group, ref.kind, ref.name) != (
            old.role_ref.api_group, old.role_ref.kind, old.role_ref.name):
        errors.append(FieldError("roleRef", "Invalid value", "cannot change roleRef"))
    return errors


def validate_role_binding(binding: Message, old: Message | None) -> list[FieldError]:
    return _binding_errors(binding, old, namespaced=True)


def validate_cluster_role_binding(binding: Message, old: Message | None) -> list[FieldError]:
    return _binding_errors(binding, old, namespaced=False)
