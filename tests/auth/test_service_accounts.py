"""ServiceAccounts on a running control service: a default one in every
namespace, TokenRequest (``create serviceaccounts/token``) bound to a pod, the
gate accepting such a token (and refusing an expired one UNAUTHENTICATED),
and, over mutual TLS, a node limited to what its own pods need."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from control.api import errors, manifest
from control.auth.authorizer import AlwaysAllow
from control.auth.tokens import API_AUDIENCE, ServiceAccountTokenAuthenticator, TokenSigner
from control.server.gate import RequestGate
from control.server.token_request import StoredObjects
from tests.support.secure_control import user_client
from tests.agent.pods.support import eventually


def _pod(name: str, *, node: str = "", namespace: str = "default", **spec):
    body = {"containers": [{"name": "app", "image": "busybox"}], **spec}
    if node:
        body["nodeName"] = node
    return manifest.to_message({"apiVersion": "v1", "kind": "Pod",
                                "metadata": {"name": name, "namespace": namespace}, "spec": body})


def _object(kind: str, name: str, namespace: str = "default", **fields):
    return manifest.to_message({"apiVersion": "v1", "kind": kind,
                                "metadata": {"name": name, "namespace": namespace}, **fields})


class Context:
    """What the gate reads of a gRPC call: no peer certificate, the metadata."""

    def __init__(self, token: str) -> None:
        self.metadata = (("authorization", f"Bearer {token}"),)

    def auth_context(self) -> dict:
        return {}

    def invocation_metadata(self):
        return self.metadata


async def test_every_namespace_gets_a_default_service_account_again_after_its_deletion(api):
    assert (await api.get("ServiceAccount", "default", namespace="default")).metadata.uid
    await api.create(manifest.to_message({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}))
    first = await eventually(lambda: api.get("ServiceAccount", "default", namespace="shop"),
                             lambda account: bool(account.metadata.uid), what="the default account of shop")
    await api.delete("ServiceAccount", "default", namespace="shop")
    again = await eventually(lambda: api.get("ServiceAccount", "default", namespace="shop"),
                             lambda account: account.metadata.uid != first.metadata.uid,
                             what="the default account of shop, recreated")
    assert again.metadata.name == "default"


async def test_pods_run_as_the_default_service_account_unless_they_name_one(api):
    created = await api.create(_pod("plain"))
    assert created.spec.service_account_name == "default"


async def test_a_token_request_gives_a_pod_bound_token_for_the_api_audience(api):
    pod = await api.create(_pod("web"))
    answer = await api.create_token("default", namespace="default", bound_pod=(pod.metadata.name, pod.metadata.uid))
    assert answer.status.token.count(".") == 2 and answer.status.expiration_timestamp
    assert list(answer.spec.audiences) == [API_AUDIENCE] and answer.spec.expiration_seconds == 3600


async def test_token_requests_are_checked(api):
    pod = await api.create(_pod("web"))
    with pytest.raises(errors.InvalidError, match="spec.expirationSeconds: Invalid value: 60: may not specify a "
                                                  "duration less than 10 minutes"):
        await api.create_token("default", namespace="default", expiration_seconds=60)
    with pytest.raises(errors.NotFoundError, match='serviceaccounts "ghost" not found'):
        await api.create_token("ghost", namespace="default")
    await api.create(_object("ServiceAccount", "builder"))
    with pytest.raises(errors.BadRequestError, match='runs as service account "default", not "builder"'):
        await api.create_token("builder", namespace="default", bound_pod=("web", pod.metadata.uid))
    with pytest.raises(errors.ConflictError, match="does not match the UID in record"):
        await api.create_token("default", namespace="default", bound_pod=("web", "another-uid"))


async def test_the_gate_lets_a_pod_bound_token_through_and_refuses_an_expired_one(api, service):
    pod = await api.create(_pod("web"))
    account = await api.get("ServiceAccount", "default", namespace="default")
    signer = TokenSigner.ephemeral()
    gate = RequestGate(authenticator=ServiceAccountTokenAuthenticator(signer, StoredObjects(service._resources)),
                       authorizer=AlwaysAllow())
    good, _ = signer.issue(namespace="default", service_account="default", service_account_uid=account.metadata.uid,
                           audiences=[API_AUDIENCE], expiration_seconds=3600,
                           pod=_bound(pod))
    info = await gate.begin(Context(good), "get")
    assert info.user.name == "system:serviceaccount:default:default"

    past = TokenSigner(signer._key, clock=lambda: time.time() - 7200)
    expired, _ = past.issue(namespace="default", service_account="default", service_account_uid=account.metadata.uid,
                            audiences=[API_AUDIENCE], expiration_seconds=3600, pod=_bound(pod))
    with pytest.raises(errors.UnauthorizedError) as refused:
        await gate.begin(Context(expired), "get")
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED and "expired" in refused.value.message

    await api.delete("Pod", "web", namespace="default")  # unbound: goes at once, and its tokens with it
    with pytest.raises(errors.UnauthorizedError, match='pod "default/web" no longer exists'):
        await gate.begin(Context(good), "get")


def _bound(pod):
    from control.auth.tokens import BoundPod

    return BoundPod(pod.metadata.name, pod.metadata.uid)


# ------------------------------------------------------------ over mutual TLS, as a node


def _node(name: str):
    return manifest.to_message({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})


async def test_a_node_reads_only_what_its_pods_use_and_writes_only_its_own_node(secure, tmp_path):
    assert (tmp_path / "pki" / "sa.key").exists()
    admin = user_client(secure, "sampan-admin", ("system:masters",))
    node_a = user_client(secure, "system:node:node-a", ("system:nodes",))
    try:
        await node_a.create(_node("node-a"))
        await admin.create(_node("node-b"))
        await admin.create(_object("Secret", "mounted", stringData={"k": "v"}))
        await admin.create(_object("Secret", "unused", stringData={"k": "v"}))
        await admin.create(_pod("web", node="node-a", volumes=[{"name": "s", "secret": {"secretName": "mounted"}}]))
        await admin.create(_pod("elsewhere", node="node-b"))

        node_b = await node_a.get("Node", "node-b")
        with pytest.raises(errors.ForbiddenError) as refused:
            await node_a.update_status(node_b)
        assert 'User "system:node:node-a" cannot update resource "nodes/status"' in refused.value.message
        assert refused.value.message.endswith('node "node-a" may only modify its own Node object')
        await node_a.update_status(await node_a.get("Node", "node-a"))

        assert (await node_a.get("Secret", "mounted", namespace="default")).data["k"] == b"v"
        with pytest.raises(errors.ForbiddenError, match='cannot get resource "secrets" in API group "" in the '
                                                        'namespace "default"'):
            await node_a.get("Secret", "unused", namespace="default")
        with pytest.raises(errors.ForbiddenError, match="only one at a time"):
            await node_a.list("Secret", namespace="default")
        items, _ = await node_a.list("Secret", namespace="default", field_selector="metadata.name=mounted")
        assert [item.metadata.name for item in items] == ["mounted"]

        web = await node_a.get("Pod", "web", namespace="default")
        await node_a.create_token("default", namespace="default", bound_pod=("web", web.metadata.uid))
        elsewhere = await node_a.get("Pod", "elsewhere", namespace="default")
        with pytest.raises(errors.ForbiddenError, match="only request tokens bound to pods bound to it"):
            await node_a.create_token("default", namespace="default",
                                      bound_pod=("elsewhere", elsewhere.metadata.uid))
        with pytest.raises(errors.ForbiddenError, match='pod "default/elsewhere" is not bound to node "node-a"'):
            await node_a.update_status(elsewhere)
    finally:
        await asyncio.gather(admin.close(), node_a.close())
