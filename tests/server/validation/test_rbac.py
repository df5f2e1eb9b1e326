"""Role, ClusterRole, RoleBinding and ClusterRoleBinding rules
(control/server/validation/rbac.py), in Kubernetes' words."""

from __future__ import annotations

from typing import Any

from tests.server.validation.support import errors_of

RBAC = "rbac.authorization.k8s.io/v1"


def a_role(*rules: dict[str, Any], kind: str = "Role", name: str = "pod-reader") -> dict[str, Any]:
    metadata = {"name": name, "namespace": "default"} if kind == "Role" else {"name": name}
    return {"apiVersion": RBAC, "kind": kind, "metadata": metadata, "rules": list(rules)}


def a_binding(*subjects: dict[str, Any], kind: str = "RoleBinding", role_kind: str = "Role",
              role: str = "pod-reader") -> dict[str, Any]:
    metadata = {"name": "read", "namespace": "default"} if kind == "RoleBinding" else {"name": "read"}
    return {"apiVersion": RBAC, "kind": kind, "metadata": metadata,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": list(subjects) or [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]}


def test_a_valid_role_and_cluster_role_pass() -> None:
    rule = {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}
    assert errors_of(a_role(rule)) == []
    assert errors_of(a_role(rule, {"nonResourceURLs": ["/healthz"], "verbs": ["get"]},
                            kind="ClusterRole", name="system:health")) == []


def test_a_rule_needs_verbs_groups_and_resources() -> None:
    assert errors_of(a_role({})) == [
        "rules[0].verbs: Required value: verbs must contain at least one value",
        "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
        "rules[0].resources: Required value: resource rules must supply at least one resource",
    ]


def test_a_role_may_not_name_non_resource_urls_and_no_rule_mixes_both() -> None:
    assert errors_of(a_role({"nonResourceURLs": ["/healthz"], "verbs": ["get"]})) == [
        "rules[0].nonResourceURLs: Invalid value: namespaced rules cannot apply to non-resource URLs"]
    mixed = {"nonResourceURLs": ["/healthz"], "resources": ["pods"], "verbs": ["get"]}
    assert errors_of(a_role(mixed, kind="ClusterRole")) == [
        "rules[0].nonResourceURLs: Invalid value: rules cannot apply to both regular resources and "
        "non-resource URLs"]


def test_rbac_names_are_path_segments() -> None:
    assert errors_of(a_role(kind="ClusterRole", name="system:node-proxier")) == []
    assert errors_of(a_role(kind="ClusterRole", name="a/b")) == [
        "metadata.name: Invalid value: \"a/b\": may not contain '/'"]
    assert errors_of(a_role(kind="ClusterRole", name="..")) == ["metadata.name: Invalid value: \"..\": may not be '..'"]


def test_a_role_binding_may_name_a_role_or_a_cluster_role() -> None:
    assert errors_of(a_binding()) == []
    assert errors_of(a_binding(role_kind="ClusterRole", role="view")) == []
    assert errors_of(a_binding(role_kind="Secret")) == [
        'roleRef.kind: Unsupported value: "Secret": supported values: "Role", "ClusterRole"']


def test_a_cluster_role_binding_names_only_a_cluster_role() -> None:
    assert errors_of(a_binding(kind="ClusterRoleBinding", role_kind="ClusterRole", role="view")) == []
    assert errors_of(a_binding(kind="ClusterRoleBinding", role_kind="Role")) == [
        'roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"']


def test_the_role_reference_needs_the_rbac_group_and_a_name() -> None:
    binding = a_binding()
    binding["roleRef"] = {"kind": "Role"}
    assert errors_of(binding) == [
        'roleRef.apiGroup: Unsupported value: "": supported values: "rbac.authorization.k8s.io"',
        "roleRef.name: Required value",
    ]


def test_the_role_reference_is_immutable() -> None:
    changed = a_binding(role_kind="ClusterRole", role="edit")
    assert errors_of(changed, old=a_binding()) == ["roleRef: Invalid value: cannot change roleRef"]


def test_subjects_are_checked_by_kind() -> None:
    assert errors_of(a_binding({"kind": "Robot", "name": "r2"})) == [
        'subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"']
    assert errors_of(a_binding({"kind": "User"}), defaulted=True) == ["subjects[0].name: Required value"]
    assert errors_of(a_binding({"kind": "ServiceAccount", "name": "builder", "apiGroup": "x"})) == [
        'subjects[0].apiGroup: Unsupported value: "x": supported values: ""']


def test_user_and_group_subjects_get_the_rbac_group_by_default() -> None:
    assert errors_of(a_binding({"kind": "Group", "name": "dev"}), defaulted=True) == []
    assert errors_of(a_binding({"kind": "Group", "name": "dev"})) == [
        'subjects[0].apiGroup: Unsupported value: "": supported values: "rbac.authorization.k8s.io"']


def test_a_cluster_role_binding_service_account_needs_a_namespace() -> None:
    subject = {"kind": "ServiceAccount", "name": "builder"}
    assert errors_of(a_binding(subject)) == []
    assert errors_of(a_binding(subject, kind="ClusterRoleBinding", role_kind="ClusterRole")) == [
        "subjects[0].namespace: Required value"]
