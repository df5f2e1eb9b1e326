"""Identities: who a request comes from, as Kubernetes names them.

A user is a name and groups. Certificates carry them as CN and O; tokens map
to them. Nodes are ``system:node:NAME`` in ``system:nodes``; service accounts
``system:serviceaccount:NAMESPACE:NAME`` in ``system:serviceaccounts`` and
``system:serviceaccounts:NAMESPACE``; members of ``system:masters`` may do
anything (no RBAC rule can take that away, as in Kubernetes).
"""

from __future__ import annotations

from dataclasses import dataclass

SYSTEM_MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
NODES_GROUP = "system:nodes"
NODE_PREFIX = "system:node:"
SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
BOOTSTRAPPERS_GROUP = "system:bootstrappers"
# Service proxies (``sampan proxy``): RBAC's default policy lets this group read Services,
# Endpoints, EndpointSlices and Nodes (the ClusterRole system:sampan-proxy).
PROXIES_GROUP = "system:proxies"
BOOTSTRAP_PREFIX = "system:bootstrap:"
# The control service's own loopback client (scheduler, controllers, DNS).
CONTROL_PLANE_USER = "system:sampan-control"
# Who a plain-text (--insecure-plaintext) service takes every caller to be.
PLAINTEXT_USER = "system:plaintext-admin"


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()

    def in_group(self, group: str) -> bool:
        return group in self.groups

    @property
    def is_master(self) -> bool:
        return SYSTEM_MASTERS in self.groups

    @property
    def node_name(self) -> str | None:
        """NAME for a node's identity (system:node:NAME in system:nodes), else None."""
        if self.name.startswith(NODE_PREFIX) and NODES_GROUP in self.groups:
            return self.name[len(NODE_PREFIX):] or None
        return None

    @property
    def service_account(self) -> tuple[str, str] | None:
        """(namespace, name) for a service account's identity, else None."""
        if not self.name.startswith(SERVICE_ACCOUNT_PREFIX):
            return None
        namespace, sep, name = self.name[len(SERVICE_ACCOUNT_PREFIX):].partition(":")
        return (namespace, name) if sep and namespace and name else None


def authenticated(name: str, groups: tuple[str, ...] | list[str] = ()) -> UserInfo:
    """A UserInfo for a proven identity: its groups plus system:authenticated."""
    groups = tuple(dict.fromkeys([*groups, AUTHENTICATED]))
    return UserInfo(name, groups)


def node_user(node: str) -> UserInfo:
    return authenticated(NODE_PREFIX + node, (NODES_GROUP,))


def service_account_user(namespace: str, name: str) -> UserInfo:
    return authenticated(f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}",
                         (SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{namespace}"))


PLAINTEXT_ADMIN = UserInfo(PLAINTEXT_USER, (SYSTEM_MASTERS, AUTHENTICATED))
