"""Escalation prevention: nobody grants through RBAC what they do not hold themselves.

Being allowed to write Roles or bindings would otherwise be being allowed
everything: write a Role granting ``*`` on ``*`` and bind yourself to it. So,
as in Kubernetes, a write of an RBAC object passes only when

- a **Role or ClusterRole** grants nothing beyond what the writer already
  holds (in the Role's namespace; cluster-wide for a ClusterRole), or the
  writer holds the verb ``escalate`` on ``roles``/``clusterroles`` (of the
  rbac.authorization.k8s.io group, resourceNames may name the role);
- a **RoleBinding or ClusterRoleBinding** refers to a role whose every
  permission the writer holds (in the binding's namespace; cluster-wide for
  a ClusterRoleBinding), or the writer holds the verb ``bind`` on that role
  (``roles`` or ``clusterroles``, resourceNames may name it).

Members of system:masters and the control service's own client pass without
a look. An update that changes only what the garbage collector changes
(ownerReferences, finalizers) is let through too, so deleting a role is
never blocked by its own cleanup.

"Holds" means the writer's RBAC rules cover the permission: each granted
rule is broken into single permissions (one verb, group, resource and name,
or one verb and URL) and each must be covered by one rule of the writer's,
where a writer's ``*`` covers anything and a granted ``*`` only a held
``*``. The writer's rules come from the RBAC authorizer's index
(``PolicyIndex.rules_for``); the verbs ``escalate`` and ``bind`` are asked of
the whole authorizer chain, as any request would be. A refusal is
PERMISSION_DENIED in Kubernetes' words, listing what is missing, e.g.::

    roles.rbac.authorization.k8s.io "x" is forbidden: user "alice" (groups=["dev"
    "system:authenticated"]) is attempting to grant RBAC permissions not currently held:
    {APIGroups:[""], Resources:["secrets"], Verbs:["get"]}

``EscalationCheck.admit`` is the API gate's admission step (control/server/gate.py),
run on the object about to be stored, after defaulting and validation, so a patch
is judged by its result.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Protocol, Sequence

from google.protobuf.message import Message

from control.api import errors, kinds
from control.auth.authorizer import Attributes, Authorizer
from control.auth.identity import CONTROL_PLANE_USER, UserInfo
from control.auth.rbac import ALL, Rule

if TYPE_CHECKING:
    from control.server.resources import ResourceService

RBAC_GROUP = "rbac.authorization.k8s.io"
ROLE_KINDS = ("Role", "ClusterRole")
BINDING_KINDS = ("RoleBinding", "ClusterRoleBinding")


@dataclass(frozen=True, slots=True, order=True)
class Permission:
    """One thing a rule grants: a verb on one resource of one group (maybe one object), or on one URL."""

    api_group: str = ""
    resource: str = ""
    resource_name: str = ""
    non_resource_url: str = ""
    verb: str = ""


def permissions(rules: Iterable[Message | Rule]) -> list[Permission]:
    """Every single permission the rules grant, as written (wildcards stay wildcards)."""
    found: dict[Permission, None] = {}
    for rule in rules:
        verbs = sorted(rule.verbs)
        urls = sorted(getattr(rule, "non_resource_urls", ()))
        for url in urls:
            for verb in verbs:
                found[Permission(non_resource_url=url, verb=verb)] = None
        names = sorted(rule.resource_names) or [""]
        for group in sorted(rule.api_groups):
            for resource in sorted(rule.resources):
                for name in names:
                    for verb in verbs:
                        found[Permission(group, resource, name, verb=verb)] = None
    return list(found)


def _resource_covers(held: str, wanted: str) -> bool:
    if held == ALL or held == wanted:
        return True
    # "*/status" covers "pods/status": a subresource of any resource.
    if held.startswith("*/"):
        _, sep, sub = wanted.partition("/")
        return bool(sep) and held[2:] == sub
    return False


def _url_covers(held: str, wanted: str) -> bool:
    if held == ALL or held == wanted:
        return True
    return held.endswith("*") and wanted.startswith(held[:-1])


def covers(rule: Rule, wanted: Permission) -> bool:
    """Whether one held rule covers one permission."""
    if ALL not in rule.verbs and wanted.verb not in rule.verbs:
        return False
    if wanted.non_resource_url:
        return any(_url_covers(url, wanted.non_resource_url) for url in rule.non_resource_urls)
    if rule.non_resource:
        return False
    if ALL not in rule.api_groups and wanted.api_group not in rule.api_groups:
        return False
    if not any(_resource_covers(held, wanted.resource) for held in rule.resources):
        return False
    return not rule.resource_names or wanted.resource_name in rule.resource_names


def missing_permissions(held: Sequence[Rule], granted: Iterable[Message | Rule]) -> list[Permission]:
    """What the granted rules give that the held rules do not cover (empty: no escalation)."""
    return [wanted for wanted in permissions(granted) if not any(covers(rule, wanted) for rule in held)]


def _quoted(values: Iterable[str]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(f'"{value}"' for value in values) + "]"


def describe_missing(missing: Iterable[Permission]) -> list[str]:
    """One line per (group, resource, name) or URL, its verbs together, sorted:
    {APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}."""
    verbs: dict[tuple[str, str, str, str], list[str]] = defaultdict(list)
    for permission in missing:
        key = (permission.api_group, permission.resource, permission.resource_name, permission.non_resource_url)
        verbs[key].append(permission.verb)
    lines = []
    for (group, resource, name, url), its_verbs in verbs.items():
        if url:
            lines.append(f"{{NonResourceURLs:{_quoted([url])}, Verbs:{_quoted(sorted(its_verbs))}}}")
            continue
        parts = [f"APIGroups:{_quoted([group])}", f"Resources:{_quoted([resource])}"]
        if name:
            parts.append(f"ResourceNames:{_quoted([name])}")
        parts.append(f"Verbs:{_quoted(sorted(its_verbs))}")
        lines.append("{" + ", ".join(parts) + "}")
    return sorted(lines)


def escalation_message(kind: kinds.Kind, name: str, user: UserInfo, missing: Iterable[Permission]) -> str:
    return (f'{kind.plural}.{kind.group} "{name}" is forbidden: user "{user.name}" (groups={_quoted(user.groups)}) '
            "is attempting to grant RBAC permissions not currently held:\n" + "\n".join(describe_missing(missing)))


class HeldRules(Protocol):
    def rules_for(self, user: UserInfo, namespace: str = "") -> list[Rule]:
        """Every RBAC rule the user holds in namespace ("" for the cluster-wide ones)."""
        ...


class RoleRules(Protocol):
    async def __call__(self, *, kind: str, namespace: str, name: str) -> Sequence[Message]:
        """The rules of the Role (namespace given) or ClusterRole; errors.NotFoundError when it does not exist."""
        ...


class StoredRoleRules:
    """RoleRules read from the store (not the authorizer's index, which may lag a write)."""

    def __init__(self, resources: ResourceService) -> None:
        self.resources = resources

    async def __call__(self, *, kind: str, namespace: str, name: str) -> Sequence[Message]:
        role = await self.resources.get(kinds.by_kind(kind), namespace=namespace, name=name)
        return role.rules


def only_gc_fields_change(new: Message, old: Message) -> bool:
    """Whether new differs from old in nothing but ownerReferences and finalizers."""
    expected = type(old)()
    expected.CopyFrom(old)
    del expected.metadata.owner_references[:]
    expected.metadata.owner_references.extend(new.metadata.owner_references)
    del expected.metadata.finalizers[:]
    expected.metadata.finalizers.extend(new.metadata.finalizers)
    expected.metadata.ClearField("resource_version")
    if new.metadata.resource_version:
        expected.metadata.resource_version = new.metadata.resource_version
    return expected == new


class EscalationCheck:
    """The admission step that refuses RBAC writes granting more than the writer holds."""

    def __init__(self, *, held: HeldRules, authorizer: Authorizer, role_rules: RoleRules) -> None:
        self.held = held
        self.authorizer = authorizer
        self.role_rules = role_rules

    async def admit(self, user: UserInfo, kind: kinds.Kind, new: Message, old: Message | None) -> None:
        """Raise errors.ForbiddenError when writing new (old: what is stored, None on create) escalates."""
        if kind.kind not in ROLE_KINDS and kind.kind not in BINDING_KINDS:
            return
        if user.is_master or user.name == CONTROL_PLANE_USER:
            return
        if old is not None and only_gc_fields_change(new, old):
            return
        namespace = new.metadata.namespace if kind.namespaced else ""
        if kind.kind in ROLE_KINDS:
            if await self._allowed(user, "escalate", kind.plural, namespace=namespace, name=new.metadata.name):
                return
            granted: Sequence[Message] = new.rules
        else:
            ref = new.role_ref
            role_kind = kinds.by_kind(ref.kind) if ref.kind in ROLE_KINDS else None
            if role_kind is not None and await self._allowed(user, "bind", role_kind.plural, namespace=namespace,
                                                             name=ref.name):
                return
            granted = await self.role_rules(kind=ref.kind, namespace=namespace if ref.kind == "Role" else "",
                                            name=ref.name)
        missing = missing_permissions(self.held.rules_for(user, namespace), granted)
        if missing:
            raise errors.ForbiddenError(escalation_message(kind, new.metadata.name, user, missing))

    async def _allowed(self, user: UserInfo, verb: str, resource: str, *, namespace: str, name: str) -> bool:
        attrs = Attributes(user=user, verb=verb, resource=resource, api_group=RBAC_GROUP, namespace=namespace,
                           name=name)
        return (await self.authorizer.authorize(attrs)).allowed
