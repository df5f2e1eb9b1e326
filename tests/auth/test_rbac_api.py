"""RBAC through a running control service with mutual TLS: users named by their
client certificates, Roles and bindings made through the API, the default
policy created at start, refusals that name the verb, resource and namespace
(PERMISSION_DENIED), access reviews, and ``sampan auth can-i`` / ``get`` as
processes."""

from __future__ import annotations

import asyncio
import os
import sys

import grpc
import pytest

from control.api import errors, kinds
from control.auth import pki
from control.auth.bootstrap_policy import AUTOUPDATE_ANNOTATION, ensure_bootstrap_policy
from control.client import Client, ClientCredentials
from control.client_config import write_config
from control.service import ControlService
from protos.api.v1 import core_pb2, rbac_pb2

RBAC_GROUP = "rbac.authorization.k8s.io"


def _connect(svc: ControlService, credentials: ClientCredentials) -> Client:
    return Client.connect(f"127.0.0.1:{svc.port}", credentials=credentials, timeout=10)


@pytest.fixture
async def admin(secure):
    pair = secure.pki.load("admin")
    async with _connect(secure, ClientCredentials(ca=secure.pki.ca_pem, cert=pair.cert_pem, key=pair.key_pem)) as api:
        for name in ("team-a", "team-b"):
            ns = core_pb2.Namespace(api_version="v1", kind="Namespace")
            ns.metadata.name = name
            await api.create(ns)
        yield api


@pytest.fixture
async def alice(secure):
    pair = pki.issue(secure.pki.ca, common_name="alice", organizations=["dev"])
    async with _connect(secure, ClientCredentials(ca=secure.pki.ca_pem, cert=pair.cert_pem, key=pair.key_pem)) as api:
        yield api


def _role(namespace: str, name: str, *rules: tuple[list[str], list[str], list[str]]) -> rbac_pb2.Role:
    role = rbac_pb2.Role(api_version=f"{RBAC_GROUP}/v1", kind="Role")
    role.metadata.name, role.metadata.namespace = name, namespace
    for verbs, groups, resources in rules:
        role.rules.add(verbs=verbs, api_groups=groups, resources=resources)
    return role


def _binding(namespace: str, name: str, role_kind: str, role: str, user: str) -> rbac_pb2.RoleBinding:
    binding = rbac_pb2.RoleBinding(api_version=f"{RBAC_GROUP}/v1", kind="RoleBinding")
    binding.metadata.name, binding.metadata.namespace = name, namespace
    binding.role_ref.api_group, binding.role_ref.kind, binding.role_ref.name = RBAC_GROUP, role_kind, role
    binding.subjects.add(kind="User", name=user)
    return binding


async def _until(api: Client, allowed: bool, **attributes: str) -> None:
    """Wait for the authorizer's watch to see a change the test just made (an access review answers from it)."""
    for _ in range(200):
        review = await api.access_review(**attributes)
        if review.status.allowed is allowed:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"access never became {allowed} for {attributes}")


def _config_map(namespace: str, name: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap", data={"k": "v"})
    cm.metadata.name, cm.metadata.namespace = name, namespace
    return cm


async def test_the_default_policy_exists_after_start(admin):
    roles, _ = await admin.list("ClusterRole")
    names = {role.metadata.name for role in roles}
    assert {"cluster-admin", "admin", "edit", "view", "system:sampan-proxy"} <= names
    binding = await admin.get("ClusterRoleBinding", "cluster-admin")
    assert [(s.kind, s.name) for s in binding.subjects] == [("Group", "system:masters")]


async def test_the_default_policy_is_completed_at_start_unless_told_not_to(secure, admin):
    view = await admin.get("ClusterRole", "view")
    complete = list(view.rules)
    del view.rules[0]
    view = await admin.update(view)
    await ensure_bootstrap_policy(secure._resources)
    assert list((await admin.get("ClusterRole", "view")).rules) == [*complete[1:], complete[0]]

    edit = await admin.get("ClusterRole", "edit")
    del edit.rules[:]
    edit.rules.add(verbs=["get"], api_groups=[""], resources=["pods"])
    edit.metadata.annotations[AUTOUPDATE_ANNOTATION] = "false"
    edit = await admin.update(edit)
    await ensure_bootstrap_policy(secure._resources)
    assert len((await admin.get("ClusterRole", "edit")).rules) == 1


async def test_a_user_with_only_a_namespaced_role_cannot_touch_another_namespace(admin, alice):
    with pytest.raises(errors.ForbiddenError):
        await alice.list("Pod", namespace="team-a")
    await admin.create(_role("team-a", "worker", (["get", "list", "watch"], [""], ["pods"]),
                             (["create", "get"], [""], ["configmaps"])))
    await admin.create(_binding("team-a", "alice-works", "Role", "worker", "alice"))
    await _until(alice, True, verb="list", resource="pods", namespace="team-a")

    await alice.list("Pod", namespace="team-a")
    created = await alice.create(_config_map("team-a", "settings"))
    assert created.metadata.uid

    with pytest.raises(errors.ForbiddenError) as listed:
        await alice.list("Pod", namespace="team-b")
    assert listed.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert listed.value.message == ('pods is forbidden: User "alice" cannot list resource "pods" in API group "" '
                                    'in the namespace "team-b"')
    with pytest.raises(errors.ForbiddenError) as made:
        await alice.create(_config_map("team-b", "settings"))
    assert 'cannot create resource "configmaps" in API group "" in the namespace "team-b"' in made.value.message
    with pytest.raises(errors.ForbiddenError) as everywhere:
        await alice.list("Pod")
    assert 'cannot list resource "pods" in API group "" at the cluster scope' in everywhere.value.message
    with pytest.raises(errors.ForbiddenError):
        await alice.delete("ConfigMap", "settings", namespace="team-a")


async def test_a_role_binding_to_a_default_cluster_role_grants_it_in_that_namespace_until_deleted(admin, alice):
    await admin.create(_binding("team-b", "alice-views", "ClusterRole", "view", "alice"))
    await _until(alice, True, verb="list", resource="deployments", group="apps", namespace="team-b")
    await alice.list("Deployment", namespace="team-b")
    with pytest.raises(errors.ForbiddenError):
        await alice.list("Secret", namespace="team-b")
    await admin.delete("RoleBinding", "alice-views", namespace="team-b")
    await _until(alice, False, verb="list", resource="deployments", group="apps", namespace="team-b")
    with pytest.raises(errors.ForbiddenError):
        await alice.list("Deployment", namespace="team-b")


async def test_the_role_reference_of_a_binding_cannot_change(admin):
    created = await admin.create(_binding("team-a", "b", "Role", "worker", "alice"))
    created.role_ref.kind, created.role_ref.name = "ClusterRole", "admin"
    with pytest.raises(errors.InvalidError) as raised:
        await admin.update(created)
    assert raised.value.message == 'RoleBinding "b" is invalid: roleRef: Invalid value: cannot change roleRef'


async def test_anyone_may_review_their_own_access_but_only_the_allowed_may_review_others(admin, alice):
    mine = await alice.access_review(verb="get", resource="secrets", namespace="team-a")
    assert mine.kind == "SelfSubjectAccessReview" and not mine.status.allowed
    with pytest.raises(errors.ForbiddenError) as raised:
        await alice.access_review(verb="get", resource="secrets", namespace="team-a", user="bob")
    assert 'cannot create resource "subjectaccessreviews" in API group "authorization.k8s.io"' in raised.value.message
    await admin.create(_binding("team-a", "alice-edits", "ClusterRole", "edit", "alice"))
    await _until(admin, True, verb="get", resource="secrets", namespace="team-a", user="alice",
                 groups=["system:authenticated"])
    other = await admin.access_review(verb="get", resource="secrets", namespace="team-b", user="alice")
    assert other.kind == "SubjectAccessReview" and not other.status.allowed
    with pytest.raises(errors.InvalidError):
        await admin.access_review(verb="", resource="pods")


async def _sampan(svc: ControlService, config, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "control.cli.main", "--server", f"127.0.0.1:{svc.port}", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "SAMPAN_CONFIG": str(config)})
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, stdout.decode(), stderr.decode()


async def test_sampan_auth_can_i_answers_yes_or_no_with_its_exit_code(secure, admin, tmp_path):
    server = f"127.0.0.1:{secure.port}"
    pair = pki.issue(secure.pki.ca, common_name="alice", organizations=["dev"])
    alice_config = write_config(server, path=tmp_path / "alice.yaml", user="alice", ca=secure.pki.ca_pem,
                                cert=pair.cert_pem, key=pair.key_pem)
    own = secure.pki.load("admin")
    admin_config = write_config(server, path=tmp_path / "admin.yaml", ca=secure.pki.ca_pem,
                                cert=own.cert_pem, key=own.key_pem)
    await admin.create(_binding("team-a", "alice-views", "ClusterRole", "view", "alice"))
    await _until(admin, True, verb="list", resource="pods", namespace="team-a", user="alice",
                 groups=["system:authenticated"])

    assert await _sampan(secure, alice_config, "auth", "can-i", "list", "pods", "-n", "team-a") == (0, "yes\n", "")
    assert await _sampan(secure, alice_config, "auth", "can-i", "list", "pods", "-n", "team-b") == (1, "no\n", "")
    assert (await _sampan(secure, alice_config, "auth", "can-i", "get", "pods/web", "-n", "team-a"))[0] == 0
    assert (await _sampan(secure, alice_config, "auth", "can-i", "get", "pods", "web", "--subresource", "log",
                          "-n", "team-a"))[0] == 0
    assert (await _sampan(secure, alice_config, "auth", "can-i", "create", "pods/web", "--subresource", "exec",
                          "-n", "team-a"))[0] == 1
    assert await _sampan(secure, admin_config, "auth", "can-i", "delete", "nodes") == (0, "yes\n", "")
    assert await _sampan(secure, admin_config, "auth", "can-i", "watch", "deploy", "-n", "team-a",
                         "--as", "alice") == (0, "yes\n", "")
    assert await _sampan(secure, admin_config, "auth", "can-i", "create", "deploy", "-n", "team-a",
                         "--as", "alice") == (1, "no\n", "")
    code, _, stderr = await _sampan(secure, alice_config, "auth", "can-i", "get", "pods", "--as", "bob")
    assert code == 1 and "subjectaccessreviews" in stderr

    code, out, _ = await _sampan(secure, admin_config, "get", "rolebindings", "-n", "team-a", "-o", "wide")
    assert code == 0
    assert out.splitlines()[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert out.splitlines()[1].split()[:2] == ["alice-views", "ClusterRole/view"]
    code, out, _ = await _sampan(secure, admin_config, "describe", "clusterrole", "system:sampan-proxy")
    assert code == 0 and "endpointslices.discovery.k8s.io" in out and "[list watch]" in out


def test_every_rbac_kind_is_served_in_its_group():
    for name in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"):
        assert kinds.by_kind(name).api_version == f"{RBAC_GROUP}/v1"
