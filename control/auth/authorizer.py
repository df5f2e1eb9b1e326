"""Authorization: may this user do this verb to this resource?

``Attributes`` describe one request as Kubernetes' authorizers see it (user,
verb, API group, resource and subresource, namespace, name). An
``Authorizer`` answers with a ``Decision``: allow, or no opinion with a reason.
``Union`` asks several in turn and the first allow wins, so authorizers only
add permissions (RBAC is purely additive, as in Kubernetes); a request nobody
allows is refused with ``forbidden()``, whose message names the verb, the
resource and the namespace in kubectl's words.

Implementations: ``MastersAuthorizer`` (system:masters may do anything),
``AlwaysAllow`` (a plain-text service), the node authorizer
(``node_authorizer.py``) and RBAC (``rbac.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from control.api import errors
from control.auth.identity import UserInfo

# The verbs RBAC rules speak of (plus "*").
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


@dataclass(frozen=True, slots=True)
class Attributes:
    """One request as an authorizer sees it. resource is the plural ("pods"),
    api_group "" for the core group ("apps", "batch", ...); namespace ""
    for cluster-scoped resources or all namespaces; name "" for lists and
    collections (and for a create, whose name the authorizers may still be told)."""

    user: UserInfo
    verb: str
    resource: str
    api_group: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    # A list's or watch's field selector ("metadata.name=x" narrows it to one object).
    field_selector: str = ""

    @property
    def resource_path(self) -> str:
        """"pods" or "pods/log", as RBAC rules name it."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""


ALLOW = Decision(True)
NO_OPINION = Decision(False)


class Authorizer(Protocol):
    async def authorize(self, attrs: Attributes) -> Decision:
        """Allow, or no opinion (with a reason to show the user). Must not raise
        for a request it does not understand: that is no opinion."""
        ...


class AlwaysAllow:
    async def authorize(self, attrs: Attributes) -> Decision:
        return ALLOW


class MastersAuthorizer:
    """Members of system:masters may do anything, whatever RBAC says."""

    async def authorize(self, attrs: Attributes) -> Decision:
        return ALLOW if attrs.user.is_master else NO_OPINION


class Union:
    """The first authorizer that allows wins; the reasons of the others are kept."""

    def __init__(self, authorizers: Sequence[Authorizer]) -> None:
        self.authorizers = list(authorizers)

    async def authorize(self, attrs: Attributes) -> Decision:
        reasons = []
        for authorizer in self.authorizers:
            decision = await authorizer.authorize(attrs)
            if decision.allowed:
                return decision
            if decision.reason:
                reasons.append(decision.reason)
        return Decision(False, "; ".join(reasons))


def forbidden_message(attrs: Attributes, reason: str = "") -> str:
    """kubectl's words: pods "web" is forbidden: User "alice" cannot get resource
    "pods" in API group "" in the namespace "default"[: reason]."""
    subject = f'{attrs.resource_path} "{attrs.name}"' if attrs.name else attrs.resource_path
    scope = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    message = (f'{subject} is forbidden: User "{attrs.user.name}" cannot {attrs.verb} resource '
               f'"{attrs.resource_path}" in API group "{attrs.api_group}" {scope}')
    return f"{message}: {reason}" if reason else message


def forbidden(attrs: Attributes, reason: str = "") -> errors.ForbiddenError:
    return errors.ForbiddenError(forbidden_message(attrs, reason))
