"""The node authorizer: what a node's agent (and proxy) may do, and no more.

A node is the user ``system:node:NAME`` in ``system:nodes``. As Kubernetes'
Node authorizer and NodeRestriction admission do together, it may:

- read every Node, Pod, Service, Endpoints and EndpointSlice (its pods and
  its proxy need them), and write events;
- create, update (status included), patch and delete only its own Node, and
  its own Lease in ``kube-node-lease``;
- update or patch the status of, and delete, only the pods bound to it;
- get a Secret, ConfigMap, PersistentVolumeClaim or ServiceAccount only when
  a pod bound to it uses it (volumes, env, envFrom, imagePullSecrets, its
  service account); list or watch one only with a field selector naming that
  one object (``metadata.name=X``), which is how the agent follows them;
- request a token (``create serviceaccounts/token``) only for a service
  account one of its pods runs as (the bound pod itself is checked when the
  token is made, control/server/token_request.py).

Anything else gets no opinion (with a reason), so RBAC may still allow it;
requests from users that are not nodes get no opinion at once. Which pods are
bound where, and what they use, comes from ``NodeGraph`` (node_graph.py).
"""

from __future__ import annotations

from control.api import selectors
from control.auth.authorizer import ALLOW, NO_OPINION, Attributes, Decision
from control.auth.node_graph import CLAIMS, CONFIG_MAPS, GONE, SECRETS, SERVICE_ACCOUNTS, NodeGraph

LEASE_NAMESPACE = "kube-node-lease"
_READ = frozenset({"get", "list", "watch"})
_WRITE_OWN = frozenset({"create", "get", "update", "patch", "delete"})
_READ_ALL = frozenset({"nodes", "services", "endpoints", "endpointslices"})
_REFERENCED = frozenset({SECRETS, CONFIG_MAPS, CLAIMS, SERVICE_ACCOUNTS})


def _single_name(field_selector: str) -> str | None:
    """NAME when the selector is exactly ``metadata.name=NAME``, else None."""
    try:
        parsed = selectors.parse_field_selector(field_selector)
    except selectors.SelectorError:
        return None
    if len(parsed.requirements) != 1:
        return None
    requirement = parsed.requirements[0]
    if requirement.path != "metadata.name" or requirement.negated or not requirement.value:
        return None
    return requirement.value


class NodeAuthorizer:
    def __init__(self, graph: NodeGraph) -> None:
        self.graph = graph

    async def authorize(self, attrs: Attributes) -> Decision:
        node = attrs.user.node_name
        if node is None:
            return NO_OPINION
        resource, verb = attrs.resource, attrs.verb
        if resource in _READ_ALL and verb in _READ and not attrs.subresource:
            return ALLOW
        if resource == "nodes":
            return self._own_node(node, attrs)
        if resource == "leases":
            return self._own_lease(node, attrs)
        if resource == "pods":
            return await self._pods(node, attrs)
        if resource == "events" and verb in ("create", "update", "patch"):
            return ALLOW
        if resource in _REFERENCED:
            return await self._referenced(node, attrs)
        return Decision(False, f'node "{node}" has no need to {verb} {attrs.resource_path}')

    @staticmethod
    def _own_node(node: str, attrs: Attributes) -> Decision:
        if attrs.verb in _WRITE_OWN and attrs.subresource in ("", "status") and attrs.name == node:
            return ALLOW
        return Decision(False, f'node "{node}" may only modify its own Node object')

    @staticmethod
    def _own_lease(node: str, attrs: Attributes) -> Decision:
        if (attrs.verb in _WRITE_OWN and attrs.namespace == LEASE_NAMESPACE and attrs.name == node
                and not attrs.subresource):
            return ALLOW
        return Decision(False, f'node "{node}" may only use its own Lease "{LEASE_NAMESPACE}/{node}"')

    async def _pods(self, node: str, attrs: Attributes) -> Decision:
        verb, sub = attrs.verb, attrs.subresource
        if verb in _READ and not sub:
            return ALLOW
        writes_status = sub == "status" and verb in ("update", "patch")
        deletes = not sub and verb == "delete"
        if (writes_status or deletes) and attrs.name:
            bound_to = await self.graph.pod_node(attrs.namespace, attrs.name)
            if bound_to == node or (deletes and bound_to == GONE):
                # A pod already gone: its last delete (the agent confirming) is answered NotFound.
                return ALLOW
            return Decision(False, f'pod "{attrs.namespace}/{attrs.name}" is not bound to node "{node}"')
        return Decision(False, f'node "{node}" may only write the status of, and delete, the pods bound to it')

    async def _referenced(self, node: str, attrs: Attributes) -> Decision:
        resource, verb = attrs.resource, attrs.verb
        if resource == SERVICE_ACCOUNTS and attrs.subresource == "token":
            if verb == "create" and attrs.name and await self.graph.node_uses(
                    node, resource, attrs.namespace, attrs.name):
                return ALLOW
            return Decision(False, f'no pod bound to node "{node}" runs as service account '
                                   f'"{attrs.namespace}/{attrs.name}"')
        if attrs.subresource:
            return Decision(False, f'node "{node}" has no need to {verb} {attrs.resource_path}')
        if verb == "get":
            name = attrs.name
        elif verb in ("list", "watch") and attrs.namespace:
            name = _single_name(attrs.field_selector)
            if name is None:
                return Decision(False, f'node "{node}" may {verb} {resource} only one at a time, '
                                       'with the field selector metadata.name=NAME')
        else:
            return Decision(False, f'node "{node}" may only read {resource} that its pods use')
        if name and await self.graph.node_uses(node, resource, attrs.namespace, name):
            return ALLOW
        return Decision(False, f'no relationship found between node "{node}" and {resource} '
                               f'"{attrs.namespace}/{name}"')
