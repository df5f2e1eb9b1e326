"""Which objects a command names: kubectl's ``KIND[,KIND] [NAME...]`` and ``KIND/NAME`` forms.

``get pods``, ``get pods web db``, ``get pods,configmaps``, ``get pod/web
cm/settings``. Kinds resolve as kubectl resolves them (Kind, plural,
singular or short name: ``po``, ``pods``, ``Pod``); an unknown one is
``error: the server doesn't have a resource type "podz"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from control.api import kinds
from control.cli.errors import CommandError


@dataclass(frozen=True)
class Target:
    kind: kinds.Kind
    names: tuple[str, ...] = ()  # empty: every object of the kind (within selectors)


def parse_targets(arguments: Sequence[str], *, command: str) -> list[Target]:
    """The kinds and names given on the command line, kinds in the order given."""
    if not arguments:
        raise CommandError(
            f"error: you must specify the type of resource to {command}. "
            "Use \"sampan api-resources\" for a complete list of supported resources.")
    if any("/" in argument for argument in arguments):
        return _slash_targets(arguments)
    kind_names = [name for name in arguments[0].split(",") if name]
    if not kind_names:
        raise CommandError(f'error: the server doesn\'t have a resource type "{arguments[0]}"')
    resolved: list[kinds.Kind] = []
    for name in kind_names:
        kind = kinds.resolve(name)
        if kind not in resolved:
            resolved.append(kind)
    names = tuple(dict.fromkeys(arguments[1:]))
    return [Target(kind, names) for kind in resolved]


def _slash_targets(arguments: Sequence[str]) -> list[Target]:
    grouped: dict[str, tuple[kinds.Kind, list[str]]] = {}
    for argument in arguments:
        kind_name, slash, name = argument.partition("/")
        if not slash or not kind_name or not name or "/" in name:
            raise CommandError(
                "error: there is no need to specify a resource type as a separate argument when passing "
                f"arguments in resource/name form (e.g. 'sampan get resource/<resource_name>' instead of "
                f"'sampan get resource resource/<resource_name>'): {argument!r}")
        kind = kinds.resolve(kind_name)
        grouped.setdefault(kind.kind, (kind, []))[1].append(name)
    return [Target(kind, tuple(dict.fromkeys(names))) for kind, names in grouped.values()]


def several_kinds(targets: Sequence[Target]) -> bool:
    """Whether output must say which kind each row is (pod/web), as kubectl does."""
    return len({target.kind.kind for target in targets}) > 1


def no_resources_message(targets: Sequence[Target], *, namespace: str) -> str:
    """kubectl's note (on stderr) for an empty answer."""
    if namespace and any(target.kind.namespaced for target in targets):
        return f"No resources found in {namespace} namespace."
    return "No resources found"


def pod_name(argument: str) -> str:
    """The pod named by ``NAME`` or ``KIND/NAME`` (KIND one of Pod's names: pod/web, po/web)."""
    kind_name, slash, name = argument.rpartition("/")
    if not slash:
        return argument
    kind = kinds.resolve(kind_name)
    if kind.kind != "Pod" or not name:
        raise CommandError(f"error: {argument}: only a pod's containers have logs and run commands")
    return name
