"""Escalation prevention without a server: when one held rule covers one
granted permission (wildcards, subresources, resourceNames, URLs), what a
missing permission looks like in the refusal, and ``EscalationCheck`` over
a policy index deciding Role, ClusterRole and binding writes (the writer's
own rules, the ``escalate`` and ``bind`` verbs, masters, GC-only updates)."""

from __future__ import annotations

import pytest

from control.api import errors, kinds
from control.auth.authorizer import MastersAuthorizer, Union
from control.auth.escalation import (
    EscalationCheck, Permission, covers, describe_missing, missing_permissions, permissions,
)
from control.auth.identity import CONTROL_PLANE_USER, SYSTEM_MASTERS, authenticated
from control.auth.rbac import RBACAuthorizer, Rule
from protos.api.v1 import core_pb2, rbac_pb2

RBAC = "rbac.authorization.k8s.io"
ALICE = authenticated("alice", ["dev"])


def _rule(verbs, groups=(), resources=(), names=(), urls=()) -> rbac_pb2.PolicyRule:
    return rbac_pb2.PolicyRule(verbs=list(verbs), api_groups=list(groups), resources=list(resources),
                               resource_names=list(names), non_resource_urls=list(urls))


def _held(*rules) -> list[Rule]:
    return [Rule.of(rule) for rule in rules]


COVER_CASES = [
    # (held rule, granted permission, covered)
    (_rule(["get"], [""], ["pods"]), Permission("", "pods", verb="get"), True),
    (_rule(["get"], [""], ["pods"]), Permission("", "pods", verb="list"), False),
    (_rule(["*"], [""], ["pods"]), Permission("", "pods", verb="delete"), True),
    # A granted wildcard is covered only by the same wildcard.
    (_rule(["get", "list"], [""], ["pods"]), Permission("", "pods", verb="*"), False),
    (_rule(["get"], ["apps"], ["*"]), Permission("apps", "*", verb="get"), True),
    (_rule(["get"], ["apps"], ["deployments"]), Permission("apps", "*", verb="get"), False),
    (_rule(["get"], ["*"], ["pods"]), Permission("", "pods", verb="get"), True),
    (_rule(["get"], [""], ["pods"]), Permission("*", "pods", verb="get"), False),
    # Subresources: named, or "*/sub" for any resource's.
    (_rule(["get"], [""], ["pods"]), Permission("", "pods/log", verb="get"), False),
    (_rule(["get"], [""], ["*"]), Permission("", "pods/log", verb="get"), True),
    (_rule(["update"], [""], ["*/status"]), Permission("", "pods/status", verb="update"), True),
    (_rule(["update"], [""], ["*/status"]), Permission("", "pods", verb="update"), False),
    # resourceNames: a held name covers that name only; no held name covers every name.
    (_rule(["get"], [""], ["secrets"]), Permission("", "secrets", "db", verb="get"), True),
    (_rule(["get"], [""], ["secrets"], ["db"]), Permission("", "secrets", "db", verb="get"), True),
    (_rule(["get"], [""], ["secrets"], ["db"]), Permission("", "secrets", "other", verb="get"), False),
    (_rule(["get"], [""], ["secrets"], ["db"]), Permission("", "secrets", verb="get"), False),
    # Non-resource URLs: exact, "*" or a prefix ending in "*"; never covered by resource rules.
    (_rule(["get"], urls=["/healthz"]), Permission(non_resource_url="/healthz", verb="get"), True),
    (_rule(["get"], urls=["/metrics/*"]), Permission(non_resource_url="/metrics/cadvisor", verb="get"), True),
    (_rule(["*"], urls=["*"]), Permission(non_resource_url="/anything", verb="post"), True),
    (_rule(["*"], ["*"], ["*"]), Permission(non_resource_url="/healthz", verb="get"), False),
    (_rule(["*"], urls=["*"]), Permission("", "pods", verb="get"), False),
]


@pytest.mark.parametrize("held,wanted,covered", COVER_CASES)
def test_a_held_rule_covers_exactly_the_permissions_it_includes(held, wanted, covered):
    assert covers(Rule.of(held), wanted) is covered


def test_a_granted_rule_is_covered_piece_by_piece_by_several_held_rules():
    held = _held(_rule(["get"], [""], ["pods"]), _rule(["list"], ["", "apps"], ["pods", "deployments"]))
    assert missing_permissions(held, [_rule(["get", "list"], [""], ["pods"])]) == []
    assert missing_permissions(held, [_rule(["get", "list"], ["apps"], ["deployments"])]) == [
        Permission("apps", "deployments", verb="get")]


def test_missing_permissions_are_described_in_kubernetes_words_verbs_together():
    granted = [_rule(["get", "list"], [""], ["secrets"]), _rule(["get"], ["apps"], ["deployments"], ["web"]),
               _rule(["get"], urls=["/healthz"])]
    assert describe_missing(permissions(granted)) == [
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}',
        '{APIGroups:["apps"], Resources:["deployments"], ResourceNames:["web"], Verbs:["get"]}',
        '{NonResourceURLs:["/healthz"], Verbs:["get"]}',
    ]


# ------------------------------------------------------------ the admission step


def _role(kind: str, name: str, *rules, namespace: str = ""):
    role = getattr(rbac_pb2, kind)()
    role.metadata.name, role.metadata.namespace = name, namespace
    role.rules.extend(rules)
    return role


def _binding(kind: str, name: str, role_kind: str, role_name: str, user: str, *, namespace: str = ""):
    binding = getattr(rbac_pb2, kind)()
    binding.metadata.name, binding.metadata.namespace = name, namespace
    binding.role_ref.api_group, binding.role_ref.kind, binding.role_ref.name = RBAC, role_kind, role_name
    binding.subjects.add(kind="User", api_group=RBAC, name=user)
    return binding


class Policy:
    """A PolicyIndex, an authorizer over it, and the EscalationCheck using both; roles are read from it too."""

    def __init__(self) -> None:
        self.rbac = RBACAuthorizer(resources=None)  # type: ignore[arg-type]  # its index is all a decision reads
        self.index = self.rbac.index
        self.check = EscalationCheck(held=self.index, authorizer=Union([MastersAuthorizer(), self.rbac]),
                                     role_rules=self._role_rules)

    async def _role_rules(self, *, kind: str, namespace: str, name: str):
        rules = (self.index.roles.get((namespace, name)) if kind == "Role"
                 else self.index.cluster_roles.get(name))
        if rules is None:
            raise errors.NotFoundError(f'{kind.lower()}s "{name}" not found')
        return [rbac_pb2.PolicyRule(verbs=r.verbs, api_groups=r.api_groups, resources=r.resources,
                                    resource_names=r.resource_names, non_resource_urls=r.non_resource_urls)
                for r in rules]

    def put(self, obj) -> None:
        self.index.put(type(obj).DESCRIPTOR.name, obj)

    async def admit(self, obj, old=None, user=ALICE) -> None:
        await self.check.admit(user, kinds.by_kind(type(obj).DESCRIPTOR.name), obj, old)


@pytest.fixture
def policy() -> Policy:
    policy = Policy()
    policy.put(_role("ClusterRole", "pod-reader", _rule(["get", "list"], [""], ["pods"])))
    policy.put(_role("ClusterRole", "secret-reader", _rule(["get"], [""], ["secrets"])))
    policy.put(_binding("RoleBinding", "alice-pods", "ClusterRole", "pod-reader", "alice", namespace="team-a"))
    return policy


async def test_a_role_within_what_the_writer_holds_there_is_admitted(policy):
    await policy.admit(_role("Role", "r", _rule(["get"], [""], ["pods"]), namespace="team-a"))


async def test_a_role_granting_more_is_refused_with_what_is_missing(policy):
    with pytest.raises(errors.ForbiddenError) as refused:
        await policy.admit(_role("Role", "r", _rule(["get"], [""], ["pods", "secrets"]), namespace="team-a"))
    assert refused.value.message == (
        'roles.rbac.authorization.k8s.io "r" is forbidden: user "alice" (groups=["dev" "system:authenticated"]) '
        'is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}')


async def test_what_is_held_in_one_namespace_cannot_be_granted_in_another_nor_cluster_wide(policy):
    with pytest.raises(errors.ForbiddenError, match='roles.rbac.authorization.k8s.io "r" is forbidden'):
        await policy.admit(_role("Role", "r", _rule(["get"], [""], ["pods"]), namespace="team-b"))
    with pytest.raises(errors.ForbiddenError, match='clusterroles.rbac.authorization.k8s.io "c" is forbidden'):
        await policy.admit(_role("ClusterRole", "c", _rule(["get"], [""], ["pods"])))


async def test_the_escalate_verb_lets_a_role_grant_more_only_where_and_for_what_it_names(policy):
    policy.put(_role("ClusterRole", "escalator", _rule(["escalate"], [RBAC], ["roles"], ["r"])))
    policy.put(_binding("RoleBinding", "alice-escalates", "ClusterRole", "escalator", "alice", namespace="team-a"))
    await policy.admit(_role("Role", "r", _rule(["*"], ["*"], ["*"]), namespace="team-a"))
    with pytest.raises(errors.ForbiddenError):
        await policy.admit(_role("Role", "other", _rule(["*"], ["*"], ["*"]), namespace="team-a"))
    with pytest.raises(errors.ForbiddenError):
        await policy.admit(_role("Role", "r", _rule(["*"], ["*"], ["*"]), namespace="team-b"))


async def test_a_binding_needs_every_permission_of_its_role_or_the_bind_verb_on_it(policy):
    await policy.admit(_binding("RoleBinding", "b", "ClusterRole", "pod-reader", "bob", namespace="team-a"))
    with pytest.raises(errors.ForbiddenError) as refused:
        await policy.admit(_binding("RoleBinding", "b", "ClusterRole", "secret-reader", "bob", namespace="team-a"))
    assert refused.value.message.startswith('rolebindings.rbac.authorization.k8s.io "b" is forbidden: user "alice"')
    assert refused.value.message.endswith('{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}')

    policy.put(_role("ClusterRole", "binder", _rule(["bind"], [RBAC], ["clusterroles"], ["secret-reader"])))
    policy.put(_binding("RoleBinding", "alice-binds", "ClusterRole", "binder", "alice", namespace="team-a"))
    await policy.admit(_binding("RoleBinding", "b", "ClusterRole", "secret-reader", "bob", namespace="team-a"))
    with pytest.raises(errors.ForbiddenError):  # bind in team-a only
        await policy.admit(_binding("RoleBinding", "b", "ClusterRole", "secret-reader", "bob", namespace="team-b"))
    with pytest.raises(errors.ForbiddenError):  # cluster-wide: the RoleBinding's grant does not reach
        await policy.admit(_binding("ClusterRoleBinding", "b", "ClusterRole", "secret-reader", "bob"))


async def test_a_binding_to_a_missing_role_is_not_found_unless_bind_allows_it(policy):
    with pytest.raises(errors.NotFoundError, match='roles "ghost" not found'):
        await policy.admit(_binding("RoleBinding", "b", "Role", "ghost", "bob", namespace="team-a"))


async def test_masters_and_the_control_service_pass_and_other_kinds_are_not_looked_at(policy):
    everything = _role("ClusterRole", "all", _rule(["*"], ["*"], ["*"]))
    await policy.admit(everything, user=authenticated("root", [SYSTEM_MASTERS]))
    await policy.admit(everything, user=authenticated(CONTROL_PLANE_USER))
    config_map = core_pb2.ConfigMap()
    config_map.metadata.name, config_map.metadata.namespace = "settings", "team-b"
    await policy.admit(config_map)  # not RBAC: the authorizer alone decided
    with pytest.raises(errors.ForbiddenError):
        await policy.admit(everything)


async def test_an_update_touching_only_owner_references_and_finalizers_is_admitted(policy):
    old = _role("Role", "r", _rule(["get"], [""], ["secrets"]), namespace="team-a")
    new = rbac_pb2.Role()
    new.CopyFrom(old)
    new.metadata.finalizers.append("example.com/cleanup")
    new.metadata.owner_references.add(kind="ConfigMap", name="owner", uid="u1", api_version="v1")
    await policy.admit(new, old)
    new.metadata.labels["changed"] = "yes"
    with pytest.raises(errors.ForbiddenError):
        await policy.admit(new, old)
