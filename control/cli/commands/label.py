"""``sampan label`` and ``sampan annotate``: set and remove labels or annotations.

``sampan label KIND NAME... KEY=VALUE... KEY-...`` (or ``KIND/NAME...``, or
a kind with ``-l SELECTOR`` or ``--all``): the objects come first, then the
changes. Both commands share this module; ``args.what`` says which map of
``metadata`` they change. As kubectl:

- a key that already has a value is refused without ``--overwrite``: for
  labels ``'app' already has a value (web), and --overwrite is false``, for
  annotations ``--overwrite is false but found the following declared
  annotation(s): 'app' already has a value (web)`` (an annotation set to the
  value it already has is no change, so no refusal);
- removing a key the object lacks prints ``label "x" not found.``;
- each object changed prints ``pod/web labeled`` (``unlabeled`` when labels
  only went away, ``not labeled`` when nothing changed) or ``pod/web
  annotated``;
- ``--list`` prints the labels (annotations) instead;
- ``--resource-version`` makes the change conditional on the object's
  version (one object only).

The change is a JSON merge patch of the keys concerned, so labels others
set meanwhile are kept. A failure on one object is reported and the others
are still changed; the exit code is then 1.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Sequence

from google.protobuf.message import Message

from control.api import errors, kinds
from control.api.names import label_value_errors, qualified_name_errors
from control.cli.connection import connect, namespace_of, server_of
from control.cli.errors import CommandError, api_error_line, report
from control.cli.objects import resource_ref
from control.cli.targets import no_resources_message, parse_targets
from control.client import Client


@dataclass(frozen=True)
class Changes:
    """The keys to set (with their values) and to remove."""

    set: dict[str, str]
    remove: tuple[str, ...]


def split_arguments(arguments: Sequence[str], *, what: str) -> tuple[list[str], list[str]]:
    """kubectl's GetResourcesAndPairs: the object arguments, then the KEY=VALUE / KEY- ones."""
    resources: list[str] = []
    pairs: list[str] = []
    for argument in arguments:
        is_pair = "=" in argument or argument.endswith("-")
        if is_pair:
            pairs.append(argument)
        elif pairs:
            raise CommandError(f"error: all resources must be specified before {what} changes: "
                               f"{' '.join(arguments)}")
        else:
            resources.append(argument)
    return resources, pairs


def parse_changes(pairs: Sequence[str], *, what: str) -> Changes:
    """KEY=VALUE and KEY- arguments, checked as the API would check the keys (and label values)."""
    to_set: dict[str, str] = {}
    remove: list[str] = []
    for pair in pairs:
        if "=" in pair:
            key, _, value = pair.partition("=")
            if not key or (what == "label" and "=" in value):  # an annotation's value is free text
                raise CommandError(f"error: invalid {what} spec: {pair}")
            problems = qualified_name_errors(key if what == "label" else key.lower())
            if what == "label":
                problems += label_value_errors(value)
            if problems:
                raise CommandError(f'error: invalid {what} spec: {pair}: {"; ".join(problems)}')
            to_set[key] = value
        elif pair.endswith("-") and len(pair) > 1:
            remove.append(pair[:-1])
        else:
            raise CommandError(f"error: unknown {what} spec: {pair}")
    if set(remove) & set(to_set):
        article = "an" if what[0] in "aeiou" else "a"
        raise CommandError(f"error: can not both modify and remove {article} {what} in the same command")
    return Changes(to_set, tuple(dict.fromkeys(remove)))


def overwrite_error(current: dict[str, str], changes: Changes, *, what: str) -> str | None:
    """The refusal to change existing keys without --overwrite, worded as kubectl words it; None if fine."""
    if what == "label":
        clashes = [f"'{key}' already has a value ({current[key]}), and --overwrite is false"
                   for key in changes.set if key in current]
        if not clashes:
            return None
        return "error: " + (clashes[0] if len(clashes) == 1 else f"[{', '.join(clashes)}]")
    clashes = [f"'{key}' already has a value ({current[key]})"
               for key, value in changes.set.items() if key in current and current[key] != value]
    if not clashes:
        return None
    return "error: --overwrite is false but found the following declared annotation(s): " + "; ".join(clashes)


def outcome(before: dict[str, str], after: dict[str, str], *, what: str, overwrite: bool) -> str:
    """kubectl's word for what happened to one object."""
    if what != "label":
        return "annotated"
    if before == after:
        return "not labeled"
    if not overwrite and _size(after) < _size(before):
        return "unlabeled"
    return "labeled"


def _size(labels: dict[str, str]) -> int:
    return sum(len(key) + len(value) for key, value in labels.items())


async def select(api: Client, args: argparse.Namespace, resources: list[str]) -> list[tuple[kinds.Kind, Message]]:
    """The objects named, or selected by -l / --all, with their current state."""
    namespace = namespace_of(args)
    found: list[tuple[kinds.Kind, Message]] = []
    for target in parse_targets(resources, command=args.command):
        scope = namespace if target.kind.namespaced else ""
        if target.names:
            if args.selector or args.all:
                raise CommandError("error: names cannot be given with --all or a selector")
            for name in target.names:
                found.append((target.kind, await api.get(target.kind, name, namespace=scope)))
            continue
        if not (args.all or args.selector):
            raise CommandError("error: resource(s) were provided, but no name was specified")
        if args.all_namespaces:
            scope = ""
        objects, _ = await api.list(target.kind, namespace=scope, label_selector=args.selector)
        if not objects:
            report(no_resources_message([target], namespace=scope))
        found.extend((target.kind, obj) for obj in objects)
    return found


async def change(api: Client, kind: kinds.Kind, obj: Message, changes: Changes, args: argparse.Namespace) -> str:
    """Apply the changes to one object; the line to print (a CommandError when refused)."""
    what = args.what
    field = "labels" if what == "label" else "annotations"
    before = dict(getattr(obj.metadata, field))
    if not args.overwrite:
        refusal = overwrite_error(before, changes, what=what)
        if refusal:
            raise CommandError(refusal)
    for key in changes.remove:
        if key not in before:
            print(f'{what} "{key}" not found.', flush=True)
    after = {**before, **changes.set}
    for key in changes.remove:
        after.pop(key, None)
    metadata: dict = {field: {**changes.set, **{key: None for key in changes.remove if key in before}}}
    if args.resource_version:
        metadata["resourceVersion"] = args.resource_version
    if after != before or args.resource_version:
        await api.patch(kind, obj.metadata.name, {"metadata": metadata}, namespace=obj.metadata.namespace)
    return f"{resource_ref(kind, obj.metadata.name)} {outcome(before, after, what=what, overwrite=args.overwrite)}"


def listing(kind: kinds.Kind, obj: Message, *, what: str, several: bool) -> list[str]:
    values = getattr(obj.metadata, "labels" if what == "label" else "annotations")
    lines = [f"{'  ' if several else ''}{key}={values[key]}" for key in sorted(values)]
    if several:
        lines.insert(0, f"Listing {what}s for {kind.kind}.{kind.group}/{obj.metadata.name}:")
    return lines


async def run(args: argparse.Namespace) -> int:
    what = args.what
    if args.all and args.selector:
        raise CommandError("error: cannot set --all and --selector at the same time")
    resources, pairs = split_arguments(args.arguments, what=what)
    if not resources:
        raise CommandError("error: one or more resources must be specified as <resource> <name> or "
                           "<resource>/<name>")
    changes = parse_changes(pairs, what=what)
    if not changes.set and not changes.remove and not args.list:
        raise CommandError(f"error: at least one {what} update is required")
    failures: list[str] = []
    async with connect(args) as api:
        try:
            objects = await select(api, args, resources)
        except errors.NotFoundError as err:
            raise CommandError(api_error_line(err, server=server_of(args))) from None
        if args.resource_version and len(objects) != 1:
            raise CommandError("error: --resource-version may only be used with a single resource")
        for kind, obj in objects:
            if args.list:
                for line in listing(kind, obj, what=what, several=len(objects) > 1):
                    print(line, flush=True)
                continue
            try:
                print(await change(api, kind, obj, changes, args), flush=True)
            except CommandError as err:
                failures.append(str(err))
            except errors.APIError as err:
                failures.append(api_error_line(err, server=server_of(args)))
    for line in failures:
        report(line)
    return 1 if failures else 0
