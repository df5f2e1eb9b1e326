"""RBAC matching without a server: one rule against one request (Kubernetes'
RuleAllows, as a table), then the index of roles and bindings (who a binding
names, where it applies, what changes when objects change), then the default
policy."""

from __future__ import annotations

import pytest

from control.auth.authorizer import Attributes
from control.auth.bootstrap_policy import default_cluster_role_bindings, default_cluster_roles
from control.auth.identity import PROXIES_GROUP, authenticated, service_account_user
from control.auth.rbac import PolicyIndex, Rule, rule_allows
from protos.api.v1 import rbac_pb2

ALICE = authenticated("alice", ["dev"])


def _rule(verbs, groups, resources, names=()) -> Rule:
    return Rule.of(rbac_pb2.PolicyRule(verbs=verbs, api_groups=groups, resources=resources,
                                       resource_names=list(names)))


def _attrs(verb, resource, *, group="", sub="", namespace="default", name="", user=ALICE) -> Attributes:
    return Attributes(user=user, verb=verb, resource=resource, api_group=group, subresource=sub,
                      namespace=namespace, name=name)


RULE_CASES = [
    # (rule, request, allowed)
    (_rule(["get"], [""], ["pods"]), _attrs("get", "pods", name="web"), True),
    (_rule(["get"], [""], ["pods"]), _attrs("list", "pods"), False),
    (_rule(["*"], [""], ["pods"]), _attrs("deletecollection", "pods"), True),
    (_rule(["get"], [""], ["pods"]), _attrs("get", "deployments", group="apps"), False),
    (_rule(["get"], ["apps"], ["deployments"]), _attrs("get", "deployments", group="apps"), True),
    (_rule(["get"], ["*"], ["deployments"]), _attrs("get", "deployments", group="apps"), True),
    (_rule(["get"], ["apps"], ["deployments"]), _attrs("get", "deployments", group=""), False),
    # Subresources are named; the resource alone does not cover them.
    (_rule(["get"], [""], ["pods"]), _attrs("get", "pods", sub="log", name="web"), False),
    (_rule(["get"], [""], ["pods/log"]), _attrs("get", "pods", sub="log", name="web"), True),
    (_rule(["get"], [""], ["pods/log"]), _attrs("get", "pods", name="web"), False),
    (_rule(["create"], [""], ["pods/exec"]), _attrs("create", "pods", sub="exec", name="web"), True),
    (_rule(["*"], ["*"], ["*"]), _attrs("create", "pods", sub="exec", name="web"), True),
    (_rule(["update"], ["*"], ["*/status"]), _attrs("update", "pods", sub="status", name="web"), True),
    (_rule(["update"], ["*"], ["*/status"]), _attrs("update", "deployments", group="apps", sub="status"), True),
    (_rule(["update"], ["*"], ["*/status"]), _attrs("update", "pods", name="web"), False),
    # As in Kubernetes, "pods/*" is not a wildcard.
    (_rule(["get"], [""], ["pods/*"]), _attrs("get", "pods", sub="log", name="web"), False),
    # resourceNames: only requests about one of those objects.
    (_rule(["get", "update"], [""], ["configmaps"], ["settings"]), _attrs("get", "configmaps", name="settings"), True),
    (_rule(["get"], [""], ["configmaps"], ["settings"]), _attrs("get", "configmaps", name="other"), False),
    (_rule(["list"], [""], ["configmaps"], ["settings"]), _attrs("list", "configmaps"), False),
    (_rule(["create"], [""], ["configmaps"], ["settings"]), _attrs("create", "configmaps", name="settings"), False),
    (_rule(["*"], [""], ["configmaps"], ["settings"]), _attrs("delete", "configmaps", name="settings"), True),
    (_rule(["watch"], [""], ["configmaps"], ["settings"]), _attrs("watch", "configmaps", name="settings"), False),
]


@pytest.mark.parametrize("rule,attrs,allowed", RULE_CASES)
def test_a_rule_allows_exactly_what_kubernetes_rbac_would(rule, attrs, allowed):
    assert rule_allows(rule, attrs) is allowed


def test_a_non_resource_rule_allows_no_resource_request():
    rule = Rule.of(rbac_pb2.PolicyRule(verbs=["*"], non_resource_urls=["*"]))
    assert not rule_allows(rule, _attrs("get", "pods"))


# ------------------------------------------------------------------ the index


def _role(kind, name, rules, namespace=""):
    role = getattr(rbac_pb2, kind)()
    role.metadata.name, role.metadata.namespace = name, namespace
    for verbs, groups, resources in rules:
        role.rules.add(verbs=verbs, api_groups=groups, resources=resources)
    return role


def _binding(kind, name, role_kind, role_name, subjects, namespace=""):
    binding = getattr(rbac_pb2, kind)()
    binding.metadata.name, binding.metadata.namespace = name, namespace
    binding.role_ref.api_group, binding.role_ref.kind, binding.role_ref.name = (
        "rbac.authorization.k8s.io", role_kind, role_name)
    for subject_kind, subject_name, *subject_namespace in subjects:
        binding.subjects.add(kind=subject_kind, name=subject_name, namespace="".join(subject_namespace))
    return binding


@pytest.fixture
def index() -> PolicyIndex:
    index = PolicyIndex()
    index.put("Role", _role("Role", "pod-reader", [(["get", "list"], [""], ["pods"])], "team-a"))
    index.put("ClusterRole", _role("ClusterRole", "secret-reader", [(["get"], [""], ["secrets"])]))
    index.put("ClusterRole", _role("ClusterRole", "node-reader", [(["list"], [""], ["nodes"])]))
    return index


def test_a_role_binding_applies_in_its_namespace_only(index):
    index.put("RoleBinding", _binding("RoleBinding", "read", "Role", "pod-reader", [("User", "alice")], "team-a"))
    assert index.allows(_attrs("list", "pods", namespace="team-a"))
    assert not index.allows(_attrs("list", "pods", namespace="team-b"))
    assert not index.allows(_attrs("list", "pods", namespace=""))  # every namespace is not one of them
    assert not index.allows(_attrs("delete", "pods", namespace="team-a", name="web"))
    assert not index.allows(_attrs("list", "pods", namespace="team-a", user=authenticated("bob")))


def test_a_role_binding_may_name_a_cluster_role_whose_rules_then_apply_in_its_namespace(index):
    index.put("RoleBinding", _binding("RoleBinding", "secrets", "ClusterRole", "secret-reader",
                                      [("User", "alice")], "team-a"))
    assert index.allows(_attrs("get", "secrets", namespace="team-a", name="s"))
    assert not index.allows(_attrs("get", "secrets", namespace="team-b", name="s"))


def test_a_cluster_role_binding_applies_everywhere(index):
    index.put("ClusterRoleBinding", _binding("ClusterRoleBinding", "nodes", "ClusterRole", "node-reader",
                                             [("Group", "dev")]))
    assert index.allows(_attrs("list", "nodes", namespace=""))
    assert not index.allows(_attrs("list", "nodes", user=authenticated("bob", ["ops"]), namespace=""))


def test_a_role_binding_to_a_role_of_another_namespace_grants_nothing(index):
    index.put("RoleBinding", _binding("RoleBinding", "read", "Role", "pod-reader", [("User", "alice")], "team-b"))
    assert not index.allows(_attrs("list", "pods", namespace="team-b"))


def test_service_account_subjects_match_the_account_user_and_default_to_the_binding_namespace(index):
    index.put("RoleBinding", _binding("RoleBinding", "read", "Role", "pod-reader",
                                      [("ServiceAccount", "builder")], "team-a"))
    assert index.allows(_attrs("list", "pods", namespace="team-a", user=service_account_user("team-a", "builder")))
    assert not index.allows(_attrs("list", "pods", namespace="team-a", user=service_account_user("team-b", "builder")))
    index.put("ClusterRoleBinding", _binding("ClusterRoleBinding", "nodes", "ClusterRole", "node-reader",
                                             [("ServiceAccount", "watcher", "monitoring")]))
    assert index.allows(_attrs("list", "nodes", namespace="", user=service_account_user("monitoring", "watcher")))


def test_removing_a_binding_or_its_role_takes_the_permission_away(index):
    index.put("RoleBinding", _binding("RoleBinding", "read", "Role", "pod-reader", [("User", "alice")], "team-a"))
    index.remove("Role", "team-a", "pod-reader")
    assert not index.allows(_attrs("list", "pods", namespace="team-a"))
    index.put("Role", _role("Role", "pod-reader", [(["list"], [""], ["pods"])], "team-a"))
    assert index.allows(_attrs("list", "pods", namespace="team-a"))
    index.remove("RoleBinding", "team-a", "read")
    assert not index.allows(_attrs("list", "pods", namespace="team-a"))


def test_changing_a_binding_subjects_replaces_the_old_ones(index):
    index.put("RoleBinding", _binding("RoleBinding", "read", "Role", "pod-reader", [("User", "alice")], "team-a"))
    index.put("RoleBinding", _binding("RoleBinding", "read", "Role", "pod-reader", [("User", "bob")], "team-a"))
    assert not index.allows(_attrs("list", "pods", namespace="team-a"))
    assert index.allows(_attrs("list", "pods", namespace="team-a", user=authenticated("bob")))


def test_replace_after_a_relist_forgets_what_is_gone(index):
    index.put("ClusterRoleBinding", _binding("ClusterRoleBinding", "nodes", "ClusterRole", "node-reader",
                                             [("User", "alice")]))
    index.replace("ClusterRoleBinding", [])
    assert not index.allows(_attrs("list", "nodes", namespace=""))


# ------------------------------------------------------------ default policy


def _default_index() -> PolicyIndex:
    index = PolicyIndex()
    for role in default_cluster_roles():
        index.put("ClusterRole", role)
    for binding in default_cluster_role_bindings():
        index.put("ClusterRoleBinding", binding)
    return index


def test_the_default_policy_lets_proxies_read_services_and_nothing_else():
    index = _default_index()
    proxy = authenticated("system:proxy:node-1", [PROXIES_GROUP])
    assert index.allows(_attrs("watch", "endpointslices", group="discovery.k8s.io", namespace="", user=proxy))
    assert index.allows(_attrs("list", "services", namespace="", user=proxy))
    assert index.allows(_attrs("get", "nodes", namespace="", name="node-1", user=proxy))
    assert not index.allows(_attrs("list", "secrets", namespace="", user=proxy))
    assert not index.allows(_attrs("delete", "services", namespace="default", name="web", user=proxy))


def test_view_edit_and_admin_build_on_each_other_and_view_never_reads_secrets():
    index = _default_index()
    for role, user in (("view", "viewer"), ("edit", "editor"), ("admin", "boss")):
        index.put("RoleBinding", _binding("RoleBinding", role, "ClusterRole", role, [("User", user)], "team-a"))

    def allowed(user, verb, resource, **kw):
        return index.allows(_attrs(verb, resource, namespace="team-a", user=authenticated(user), **kw))

    assert allowed("viewer", "list", "deployments", group="apps")
    assert allowed("viewer", "get", "pods", sub="log", name="web")
    assert not allowed("viewer", "get", "secrets", name="s")
    assert not allowed("viewer", "create", "pods", name="web")
    assert allowed("editor", "create", "deployments", group="apps", name="web")
    assert allowed("editor", "get", "secrets", name="s")
    assert allowed("editor", "create", "pods", sub="exec", name="web")
    assert not allowed("editor", "create", "rolebindings", group="rbac.authorization.k8s.io", name="b")
    assert allowed("boss", "create", "rolebindings", group="rbac.authorization.k8s.io", name="b")
    assert not allowed("boss", "list", "nodes")
