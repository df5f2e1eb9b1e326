"""The node authorizer: a node reads what its own pods need and writes only its
own Node, Lease and pods' status; anything else gets no opinion (with a reason)."""

from __future__ import annotations

import pytest

from control.api import manifest
from control.auth.authorizer import Attributes, Decision, MastersAuthorizer, Union, forbidden_message
from control.auth.identity import node_user, service_account_user
from control.auth.node_authorizer import NodeAuthorizer
from control.auth.node_graph import NodeGraph, pod_references

NODE_A, NODE_B = node_user("node-a"), node_user("node-b")


def _pod(name: str, node: str, namespace: str = "shop", **spec):
    return manifest.to_message({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "uid": f"{name}-uid"},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}], **spec}})


WEB = _pod("web", "node-a", serviceAccountName="builder",
           volumes=[{"name": "certs", "secret": {"secretName": "tls"}},
                    {"name": "conf", "projected": {"sources": [{"configMap": {"name": "settings"}}]}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
           imagePullSecrets=[{"name": "registry"}])
ENV = _pod("env", "node-a", containers=[{"name": "app", "image": "busybox",
                                          "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db",
                                                                                              "key": "password"}}}],
                                          "envFrom": [{"configMapRef": {"name": "flags"}}]}])
OTHER = _pod("other", "node-b", volumes=[{"name": "s", "secret": {"secretName": "theirs"}}])


@pytest.fixture
def authorizer() -> NodeAuthorizer:
    graph = NodeGraph()
    for pod in (WEB, ENV, OTHER):
        graph.set_pod(pod)
    return NodeAuthorizer(graph)


def attrs(user, verb: str, resource: str, *, namespace: str = "", name: str = "", subresource: str = "",
          field_selector: str = "", api_group: str = "") -> Attributes:
    return Attributes(user=user, verb=verb, resource=resource, api_group=api_group, subresource=subresource,
                      namespace=namespace, name=name, field_selector=field_selector)


ALLOWED = [
    attrs(NODE_A, "get", "nodes", name="node-b"),
    attrs(NODE_A, "watch", "nodes"),
    attrs(NODE_A, "create", "nodes", name="node-a"),
    attrs(NODE_A, "update", "nodes", name="node-a"),
    attrs(NODE_A, "update", "nodes", name="node-a", subresource="status"),
    attrs(NODE_A, "patch", "nodes", name="node-a", subresource="status"),
    attrs(NODE_A, "get", "leases", namespace="kube-node-lease", name="node-a", api_group="coordination.k8s.io"),
    attrs(NODE_A, "update", "leases", namespace="kube-node-lease", name="node-a", api_group="coordination.k8s.io"),
    attrs(NODE_A, "list", "pods"),
    attrs(NODE_A, "watch", "pods", field_selector="spec.nodeName=node-a"),
    attrs(NODE_A, "update", "pods", namespace="shop", name="web", subresource="status"),
    attrs(NODE_A, "delete", "pods", namespace="shop", name="web"),
    attrs(NODE_A, "create", "events", namespace="shop"),
    attrs(NODE_A, "patch", "events", namespace="shop", name="web.123"),
    attrs(NODE_A, "list", "services"),
    attrs(NODE_A, "watch", "endpointslices", api_group="discovery.k8s.io"),
    attrs(NODE_A, "get", "secrets", namespace="shop", name="tls"),
    attrs(NODE_A, "get", "secrets", namespace="shop", name="registry"),
    attrs(NODE_A, "get", "secrets", namespace="shop", name="db"),
    attrs(NODE_A, "get", "configmaps", namespace="shop", name="settings"),
    attrs(NODE_A, "get", "configmaps", namespace="shop", name="flags"),
    attrs(NODE_A, "get", "persistentvolumeclaims", namespace="shop", name="data"),
    attrs(NODE_A, "get", "serviceaccounts", namespace="shop", name="builder"),
    attrs(NODE_A, "get", "serviceaccounts", namespace="shop", name="default"),
    attrs(NODE_A, "watch", "secrets", namespace="shop", field_selector="metadata.name=tls"),
    attrs(NODE_A, "list", "configmaps", namespace="shop", field_selector="metadata.name=settings"),
    attrs(NODE_A, "create", "serviceaccounts", namespace="shop", name="builder", subresource="token"),
]

REFUSED = [
    attrs(NODE_A, "update", "nodes", name="node-b"),
    attrs(NODE_A, "update", "nodes", name="node-b", subresource="status"),
    attrs(NODE_A, "delete", "nodes", name="node-b"),
    attrs(NODE_A, "update", "leases", namespace="kube-node-lease", name="node-b", api_group="coordination.k8s.io"),
    attrs(NODE_A, "update", "pods", namespace="shop", name="other", subresource="status"),
    attrs(NODE_A, "delete", "pods", namespace="shop", name="other"),
    attrs(NODE_A, "create", "pods", namespace="shop", name="sneaky"),
    attrs(NODE_A, "update", "pods", namespace="shop", name="web"),
    attrs(NODE_A, "get", "pods", namespace="shop", name="web", subresource="exec"),
    attrs(NODE_A, "get", "secrets", namespace="shop", name="theirs"),
    attrs(NODE_A, "get", "secrets", namespace="other-ns", name="tls"),
    attrs(NODE_A, "list", "secrets", namespace="shop"),
    attrs(NODE_A, "list", "secrets"),
    attrs(NODE_A, "watch", "secrets", namespace="shop", field_selector="metadata.name=theirs"),
    attrs(NODE_A, "watch", "secrets", namespace="shop", field_selector="metadata.name=tls,type=x"),
    attrs(NODE_A, "watch", "secrets", namespace="shop", field_selector="metadata.name!=tls"),
    attrs(NODE_A, "update", "secrets", namespace="shop", name="tls"),
    attrs(NODE_A, "create", "serviceaccounts", namespace="shop", name="deployer", subresource="token"),
    attrs(NODE_A, "delete", "namespaces", name="shop"),
    attrs(NODE_A, "create", "deployments", namespace="shop", api_group="apps"),
]


@pytest.mark.parametrize("request_attrs", ALLOWED, ids=lambda a: f"{a.verb}-{a.resource_path}-{a.name or a.field_selector}")
async def test_a_node_may(authorizer, request_attrs):
    assert (await authorizer.authorize(request_attrs)).allowed


@pytest.mark.parametrize("request_attrs", REFUSED, ids=lambda a: f"{a.verb}-{a.resource_path}-{a.name or a.field_selector}")
async def test_a_node_may_not(authorizer, request_attrs):
    decision = await authorizer.authorize(request_attrs)
    assert not decision.allowed and decision.reason


async def test_agent_a_cannot_update_node_b_and_the_error_says_why(authorizer):
    request = attrs(NODE_A, "update", "nodes", name="node-b")
    decision = await Union([MastersAuthorizer(), authorizer]).authorize(request)
    assert not decision.allowed
    assert forbidden_message(request, decision.reason) == (
        'nodes "node-b" is forbidden: User "system:node:node-a" cannot update resource "nodes" in API group "" '
        'at the cluster scope: node "node-a" may only modify its own Node object')


async def test_users_that_are_not_nodes_get_no_opinion(authorizer):
    assert await authorizer.authorize(attrs(service_account_user("shop", "builder"), "get", "secrets",
                                            namespace="shop", name="tls")) == Decision(False)


async def test_a_pod_leaving_the_node_takes_its_secrets_with_it(authorizer):
    request = attrs(NODE_A, "get", "secrets", namespace="shop", name="tls")
    authorizer.graph.remove_pod("shop", "web")
    assert not (await authorizer.authorize(request)).allowed


async def test_a_secret_used_by_two_pods_stays_readable_while_one_remains(authorizer):
    authorizer.graph.set_pod(_pod("web-2", "node-a", volumes=[{"name": "certs", "secret": {"secretName": "tls"}}]))
    authorizer.graph.remove_pod("shop", "web")
    assert (await authorizer.authorize(attrs(NODE_A, "get", "secrets", namespace="shop", name="tls"))).allowed


def test_pod_references_name_everything_the_node_reads():
    assert pod_references(WEB) == {("secrets", "tls"), ("secrets", "registry"), ("configmaps", "settings"),
                                   ("persistentvolumeclaims", "data"), ("serviceaccounts", "builder")}


class _NoPods:
    """Stands in for the store: every pod is gone."""

    async def get(self, kind, *, namespace: str, name: str):
        from control.api import errors
        raise errors.NotFoundError(f'pods "{name}" not found')


async def test_a_node_may_delete_a_pod_already_gone_so_its_confirmation_is_answered_not_found():
    authorizer = NodeAuthorizer(NodeGraph(resources=_NoPods()))
    gone = await authorizer.authorize(attrs(NODE_A, "delete", "pods", namespace="shop", name="finished"))
    assert gone.allowed
    status = await authorizer.authorize(attrs(NODE_A, "update", "pods", namespace="shop", name="finished",
                                              subresource="status"))
    assert not status.allowed
