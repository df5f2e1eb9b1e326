"""Escalation prevention through a running control service with mutual TLS:
users who may write Roles and RoleBindings in a namespace still cannot grant
what they do not hold (PERMISSION_DENIED, in Kubernetes' words), may grant
what they do hold, are judged on a patch's result, and may bind a role they
do not hold when the ``bind`` verb names it."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from control.api import errors
from control.client import Client
from tests.support.secure_control import user_client
from protos.api.v1 import core_pb2, rbac_pb2

RBAC = "rbac.authorization.k8s.io"
WRITE_RBAC = (["create", "update", "patch", "get", "list"], [RBAC], ["roles", "rolebindings"])
NOT_HELD = "is attempting to grant RBAC permissions not currently held:\n"


def _role(name: str, *rules, namespace: str = "team-a") -> rbac_pb2.Role:
    role = rbac_pb2.Role(api_version=f"{RBAC}/v1", kind="Role")
    role.metadata.name, role.metadata.namespace = name, namespace
    for verbs, groups, resources, *names in rules:
        role.rules.add(verbs=verbs, api_groups=groups, resources=resources, resource_names=[*names])
    return role


def _binding(name: str, role_kind: str, role: str, user: str, namespace: str = "team-a") -> rbac_pb2.RoleBinding:
    binding = rbac_pb2.RoleBinding(api_version=f"{RBAC}/v1", kind="RoleBinding")
    binding.metadata.name, binding.metadata.namespace = name, namespace
    binding.role_ref.api_group, binding.role_ref.kind, binding.role_ref.name = RBAC, role_kind, role
    binding.subjects.add(kind="User", name=user)
    return binding


async def _until_allowed(api: Client, **attributes: str) -> None:
    """Wait for the RBAC index (fed by a watch) to see the bindings the test just made."""
    for _ in range(250):
        if (await api.access_review(**attributes)).status.allowed:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never allowed: {attributes}")


@pytest.fixture
async def team(secure):
    """alice: edit in team-a; bob: view in team-a; both may write Roles and RoleBindings there."""
    admin = user_client(secure, "sampan-admin", ["system:masters"])
    alice, bob = user_client(secure, "alice", ["dev"]), user_client(secure, "bob", ["dev"])
    namespace = core_pb2.Namespace(api_version="v1", kind="Namespace")
    namespace.metadata.name = "team-a"
    await admin.create(namespace)
    await admin.create(_role("rbac-writer", WRITE_RBAC))
    for user, role in (("alice", "edit"), ("bob", "view")):
        await admin.create(_binding(f"{user}-{role}", "ClusterRole", role, user))
        await admin.create(_binding(f"{user}-writes-rbac", "Role", "rbac-writer", user))
    for api in (alice, bob):
        await _until_allowed(api, verb="create", resource="rolebindings", group=RBAC, namespace="team-a")
    await _until_allowed(alice, verb="get", resource="secrets", namespace="team-a")
    await _until_allowed(bob, verb="list", resource="pods", namespace="team-a")
    try:
        yield admin, alice, bob
    finally:
        await asyncio.gather(admin.close(), alice.close(), bob.close())


async def test_an_editor_cannot_bind_cluster_admin_in_her_namespace(team):
    _, alice, _ = team
    with pytest.raises(errors.ForbiddenError) as refused:
        await alice.create(_binding("alice-is-admin", "ClusterRole", "cluster-admin", "alice"))
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    message = refused.value.message
    assert message.startswith('rolebindings.rbac.authorization.k8s.io "alice-is-admin" is forbidden: user "alice" '
                              '(groups=["dev" "system:authenticated"]) ' + NOT_HELD)
    assert '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}' in message.splitlines()


async def test_a_viewer_cannot_create_a_role_granting_secrets(team):
    admin, _, bob = team
    with pytest.raises(errors.ForbiddenError) as refused:
        await bob.create(_role("secret-peek", (["get"], [""], ["secrets"])))
    assert refused.value.message == (
        'roles.rbac.authorization.k8s.io "secret-peek" is forbidden: user "bob" '
        '(groups=["dev" "system:authenticated"]) ' + NOT_HELD + '{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}')
    with pytest.raises(errors.NotFoundError):
        await admin.get("Role", "secret-peek", namespace="team-a")


async def test_a_role_within_what_one_holds_can_be_created_and_bound_but_not_patched_beyond_it(team):
    admin, alice, bob = team
    created = await bob.create(_role("pod-reader", (["get", "list"], [""], ["pods"])))
    assert created.metadata.uid
    await bob.create(_binding("carol-reads-pods", "Role", "pod-reader", "carol"))
    # alice holds edit, which reads secrets: she may grant that.
    await alice.create(_role("secret-reader", (["get"], [""], ["secrets"])))

    patch = json.dumps({"rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods", "secrets"]}]})
    with pytest.raises(errors.ForbiddenError, match=r'roles.rbac.authorization.k8s.io "pod-reader" is forbidden'):
        await bob.patch("Role", "pod-reader", patch.encode(), namespace="team-a")
    stored = await admin.get("Role", "pod-reader", namespace="team-a")
    assert [list(rule.resources) for rule in stored.rules] == [["pods"]]


async def test_the_bind_verb_lets_one_bind_the_role_it_names_and_only_that_one(team):
    admin, _, bob = team
    with pytest.raises(errors.ForbiddenError):
        await bob.create(_binding("carol-edits", "ClusterRole", "edit", "carol"))
    await admin.create(_role("edit-binder", (["bind"], [RBAC], ["clusterroles"], "edit")))
    await admin.create(_binding("bob-binds-edit", "Role", "edit-binder", "bob"))
    await _until_allowed(bob, verb="bind", resource="clusterroles", group=RBAC, namespace="team-a", name="edit")

    bound = await bob.create(_binding("carol-edits", "ClusterRole", "edit", "carol"))
    assert bound.role_ref.name == "edit"
    with pytest.raises(errors.ForbiddenError, match='rolebindings.rbac.authorization.k8s.io "carol-admin"'):
        await bob.create(_binding("carol-admin", "ClusterRole", "admin", "carol"))
