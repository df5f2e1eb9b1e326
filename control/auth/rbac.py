"""RBAC: Roles and ClusterRoles say what may be done, bindings say who may do it.

Matching follows Kubernetes' RBAC authorizer, rule by rule (``rule_allows``):

- a verb matches itself or ``*``; an API group itself or ``*`` ("" is the core group);
- a resource matches ``*`` (everything, subresources included), itself
  ("pods" does not cover "pods/log": a subresource is named as "pods/log"),
  or ``*/SUB`` for subresource SUB of any resource. As in Kubernetes,
  ``pods/*`` is no wildcard: granting every present and future subresource
  by accident is what it avoids;
- a rule with resourceNames covers only requests about one of those objects,
  so never a create, list, watch or deletecollection, whose name is not the
  object's identity (Kubernetes: "you cannot restrict create or
  deletecollection by resource name"); rules for non-resource URLs allow
  nothing here, since the API serves no such URLs.

Subjects: a User subject matches the user's name, a Group one any of the
user's groups, a ServiceAccount one the user
``system:serviceaccount:NAMESPACE:NAME`` (a RoleBinding's own namespace when
the subject names none). A ClusterRoleBinding applies everywhere; a
RoleBinding only to requests in its namespace, whether it names a Role
there or a ClusterRole. Rules only add: nothing RBAC says can take away what
another authorizer allows.

``RBACAuthorizer`` answers from memory. ``PolicyIndex`` holds the compiled
rules of every role and the bindings by subject, so a decision looks only at
the bindings of the user's name and groups. The authorizer keeps the index
current by listing and then watching the four kinds through the in-process
ResourceService (``start``/``close``, with the service); a broken or expired
watch lists again and replaces what it had, so a missed deletion cannot
leave a permission behind. A change is seen when its watch event arrives
(milliseconds after the write), as in Kubernetes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from google.protobuf.message import Message

from control.api import kinds
from control.auth.authorizer import ALLOW, NO_OPINION, Attributes, Decision
from control.auth.identity import SERVICE_ACCOUNT_PREFIX, UserInfo

if TYPE_CHECKING:
    from control.server.resources import ResourceService

log = logging.getLogger(__name__)

ALL = "*"
# Verbs whose request names no existing object, so resourceNames rules never cover them.
NAMELESS_VERBS = frozenset({"create", "list", "watch", "deletecollection"})
RBAC_KINDS = ("ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding")
# Pause before listing again after a watch failed for another reason than expiry.
_RETRY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Rule:
    """One PolicyRule, compiled for matching."""

    verbs: frozenset[str]
    api_groups: frozenset[str]
    resources: frozenset[str]
    resource_names: frozenset[str] = frozenset()
    non_resource: bool = False
    # Kept for escalation checks (escalation.py), which compare whole rules.
    non_resource_urls: frozenset[str] = frozenset()

    @classmethod
    def of(cls, rule: Message) -> "Rule":
        return cls(frozenset(rule.verbs), frozenset(rule.api_groups), frozenset(rule.resources),
                   frozenset(rule.resource_names), non_resource=bool(rule.non_resource_urls),
                   non_resource_urls=frozenset(rule.non_resource_urls))


def resource_matches(rule_resources: Iterable[str], resource: str, subresource: str) -> bool:
    """Kubernetes' ResourceMatches: "*", the exact "resource[/sub]", or "*/sub"."""
    combined = f"{resource}/{subresource}" if subresource else resource
    for granted in rule_resources:
        if granted == ALL or granted == combined:
            return True
        if subresource and granted == f"*/{subresource}":
            return True
    return False


def rule_allows(rule: Rule, attrs: Attributes) -> bool:
    if rule.non_resource:
        return False
    if attrs.verb not in rule.verbs and ALL not in rule.verbs:
        return False
    if attrs.api_group not in rule.api_groups and ALL not in rule.api_groups:
        return False
    if not resource_matches(rule.resources, attrs.resource, attrs.subresource):
        return False
    if rule.resource_names:
        name = "" if attrs.verb in NAMELESS_VERBS else attrs.name
        return name in rule.resource_names
    return True


# A subject as bindings are indexed: ("User", name) or ("Group", name); service
# accounts become the user name they authenticate as.
SubjectKey = tuple[str, str]


def subject_key(subject: Message, *, binding_namespace: str) -> SubjectKey | None:
    if subject.kind == "ServiceAccount":
        namespace = subject.namespace or binding_namespace
        return ("User", f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{subject.name}")
    if subject.kind in ("User", "Group"):
        return (subject.kind, subject.name)
    return None


def user_keys(user: UserInfo) -> list[SubjectKey]:
    return [("User", user.name), *(("Group", group) for group in user.groups)]


@dataclass(frozen=True, slots=True)
class Binding:
    role_kind: str  # Role or ClusterRole
    role_name: str
    subjects: frozenset[SubjectKey]

    @classmethod
    def of(cls, binding: Message) -> "Binding":
        namespace = binding.metadata.namespace
        keys = (subject_key(s, binding_namespace=namespace) for s in binding.subjects)
        return cls(binding.role_ref.kind, binding.role_ref.name, frozenset(k for k in keys if k is not None))


class PolicyIndex:
    """Every role's rules and every binding, indexed by subject. Not thread-safe; one event loop owns it."""

    def __init__(self) -> None:
        self.cluster_roles: dict[str, tuple[Rule, ...]] = {}
        self.roles: dict[tuple[str, str], tuple[Rule, ...]] = {}
        self.cluster_bindings: dict[str, Binding] = {}
        self.bindings: dict[tuple[str, str], Binding] = {}
        # subject -> names of the ClusterRoleBindings naming it; (namespace, subject) -> RoleBinding names.
        self._cluster_by_subject: dict[SubjectKey, set[str]] = defaultdict(set)
        self._namespaced_by_subject: dict[tuple[str, SubjectKey], set[str]] = defaultdict(set)

    # ---------------------------------------------------------- changes

    def put(self, kind: str, obj: Message) -> None:
        namespace, name = obj.metadata.namespace, obj.metadata.name
        if kind == "ClusterRole":
            self.cluster_roles[name] = tuple(Rule.of(r) for r in obj.rules)
        elif kind == "Role":
            self.roles[(namespace, name)] = tuple(Rule.of(r) for r in obj.rules)
        elif kind == "ClusterRoleBinding":
            self.remove(kind, namespace, name)
            binding = self.cluster_bindings[name] = Binding.of(obj)
            for key in binding.subjects:
                self._cluster_by_subject[key].add(name)
        elif kind == "RoleBinding":
            self.remove(kind, namespace, name)
            binding = self.bindings[(namespace, name)] = Binding.of(obj)
            for key in binding.subjects:
                self._namespaced_by_subject[(namespace, key)].add(name)

    def remove(self, kind: str, namespace: str, name: str) -> None:
        if kind == "ClusterRole":
            self.cluster_roles.pop(name, None)
        elif kind == "Role":
            self.roles.pop((namespace, name), None)
        elif kind == "ClusterRoleBinding":
            old = self.cluster_bindings.pop(name, None)
            for key in old.subjects if old else ():
                _discard(self._cluster_by_subject, key, name)
        elif kind == "RoleBinding":
            old = self.bindings.pop((namespace, name), None)
            for key in old.subjects if old else ():
                _discard(self._namespaced_by_subject, (namespace, key), name)

    def replace(self, kind: str, objects: Iterable[Message]) -> None:
        """Forget every object of kind, then put these (after a relist)."""
        if kind == "ClusterRole":
            self.cluster_roles.clear()
        elif kind == "Role":
            self.roles.clear()
        elif kind == "ClusterRoleBinding":
            self.cluster_bindings.clear()
            self._cluster_by_subject.clear()
        elif kind == "RoleBinding":
            self.bindings.clear()
            self._namespaced_by_subject.clear()
        for obj in objects:
            self.put(kind, obj)

    # ---------------------------------------------------------- queries

    def allows(self, attrs: Attributes) -> bool:
        keys = user_keys(attrs.user)
        for key in keys:
            for name in self._cluster_by_subject.get(key, ()):
                binding = self.cluster_bindings[name]
                if binding.role_kind == "ClusterRole" and self._any_allows(
                        self.cluster_roles.get(binding.role_name, ()), attrs):
                    return True
        if not attrs.namespace:
            return False
        for key in keys:
            for name in self._namespaced_by_subject.get((attrs.namespace, key), ()):
                binding = self.bindings[(attrs.namespace, name)]
                if binding.role_kind == "Role":
                    rules = self.roles.get((attrs.namespace, binding.role_name), ())
                else:
                    rules = self.cluster_roles.get(binding.role_name, ())
                if self._any_allows(rules, attrs):
                    return True
        return False

    def rules_for(self, user: UserInfo, namespace: str = "") -> list[Rule]:
        """Every rule the user holds in namespace: its ClusterRoleBindings' everywhere, plus
        (namespace given) its RoleBindings' there. "" asks for the cluster-wide rules only."""
        keys = user_keys(user)
        rules: list[Rule] = []
        for key in keys:
            for name in self._cluster_by_subject.get(key, ()):
                binding = self.cluster_bindings[name]
                if binding.role_kind == "ClusterRole":
                    rules.extend(self.cluster_roles.get(binding.role_name, ()))
        if namespace:
            for key in keys:
                for name in self._namespaced_by_subject.get((namespace, key), ()):
                    binding = self.bindings[(namespace, name)]
                    if binding.role_kind == "Role":
                        rules.extend(self.roles.get((namespace, binding.role_name), ()))
                    else:
                        rules.extend(self.cluster_roles.get(binding.role_name, ()))
        return rules

    @staticmethod
    def _any_allows(rules: Iterable[Rule], attrs: Attributes) -> bool:
        return any(rule_allows(rule, attrs) for rule in rules)


def _discard(index: dict, key: object, name: str) -> None:
    names = index.get(key)
    if names is not None:
        names.discard(name)
        if not names:
            del index[key]


class RBACAuthorizer:
    """The Authorizer for RBAC, over a PolicyIndex kept current from the API's own ResourceService."""

    def __init__(self, resources: ResourceService) -> None:
        self.resources = resources
        self.index = PolicyIndex()
        self._tasks: list[asyncio.Task] = []

    async def authorize(self, attrs: Attributes) -> Decision:
        return ALLOW if self.index.allows(attrs) else NO_OPINION

    async def start(self) -> None:
        """List the four kinds (so the first request already sees them), then follow their changes."""
        for kind_name in RBAC_KINDS:
            kind = kinds.by_kind(kind_name)
            revision = await self._relist(kind)
            self._tasks.append(asyncio.create_task(self._follow(kind, revision), name=f"rbac-watch-{kind_name}"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _relist(self, kind: kinds.Kind) -> int:
        items, revision = await self.resources.list(kind)
        self.index.replace(kind.kind, items)
        return revision

    async def _follow(self, kind: kinds.Kind, revision: int) -> None:
        while True:
            try:
                events = self.resources.watch(kind, resource_version=str(revision))
                try:
                    async for event_type, obj in events:
                        if event_type == "DELETED":
                            self.index.remove(kind.kind, obj.metadata.namespace, obj.metadata.name)
                        else:
                            self.index.put(kind.kind, obj)
                finally:
                    await events.aclose()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - any failure: list again, never stop following
                log.info("RBAC watch of %s ended (%s); listing again", kind.plural, err)
            # The stream ended or failed: start over from a fresh list.
            while True:
                await asyncio.sleep(_RETRY_SECONDS)
                try:
                    revision = await self._relist(kind)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001
                    log.exception("RBAC list of %s failed; trying again", kind.plural)
