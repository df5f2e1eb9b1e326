"""``sampan get``: objects as tables, YAML, JSON or names; ``-w`` follows changes.

As kubectl: one table per kind (a blank line between, names prefixed with
the kind when several kinds are shown), ``No resources found in NS
namespace.`` on stderr for an empty answer, a missing named object reported
on stderr while the others still print. Unlike kubectl, a namespace that does
not exist is an error rather than an empty list.

``-w`` lists, prints, then watches from the list's resourceVersion so no
change falls between the two; each event prints one row (kubectl aligns each
row on its own, and so do we). When the watch's starting point has been
compacted away it lists again and prints what changed meanwhile. It runs
until interrupted (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Sequence

from google.protobuf.message import Message

from control.api import errors, kinds
from control.cli import durations, printers
from control.cli.connection import connect, namespace_of, server_of
from control.cli.errors import CommandError, api_error_line, report
from control.cli.output import dump, format_objects, object_dict
from control.cli.targets import Target, no_resources_message, parse_targets, several_kinds
from control.client import Client

# Pause before watching again when the server ended a watch stream cleanly.
REWATCH_DELAY = 0.2


def write(text: str) -> None:
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()


async def run(args: argparse.Namespace) -> int:
    targets = parse_targets(args.resources, command="get")
    if (args.selector or args.field_selector) and any(target.names for target in targets):
        raise CommandError("error: name cannot be provided when a selector is specified")
    namespace = "" if args.all_namespaces else namespace_of(args)
    async with connect(args) as api:
        if namespace and any(target.kind.namespaced for target in targets):
            # kubectl would print "No resources found"; a typo deserves an error.
            try:
                await api.get(kinds.by_kind("Namespace"), namespace)
            except errors.ForbiddenError:
                pass  # may read in the namespace without reading the Namespace: the request itself decides
        if args.watch or args.watch_only:
            return await watch(api, targets, args=args, namespace=namespace)
        return await show(api, targets, args=args, namespace=namespace)


async def fetch(api: Client, target: Target, *, args: argparse.Namespace, namespace: str,
                failures: list[str]) -> list[Message]:
    """The target's objects: each named one (a missing one noted in failures), else a list."""
    scope = namespace if target.kind.namespaced else ""
    if not target.names:
        objects, _ = await api.list(target.kind, namespace=scope, label_selector=args.selector,
                                    field_selector=args.field_selector)
        return objects
    found = []
    for name in target.names:
        try:
            found.append(await api.get(target.kind, name, namespace=scope))
        except errors.NotFoundError as err:
            if not args.ignore_not_found:
                failures.append(api_error_line(err, server=server_of(args)))
    return found


async def show(api: Client, targets: Sequence[Target], *, args: argparse.Namespace, namespace: str) -> int:
    failures: list[str] = []
    sections = [(target.kind, await fetch(api, target, args=args, namespace=namespace, failures=failures))
                for target in targets]
    everything = [obj for _, objects in sections for obj in objects]
    named = any(target.names for target in targets)
    if args.output in ("yaml", "json"):
        if everything or not named:
            single = len(targets) == 1 and len(targets[0].names) == 1
            write(format_objects(everything, output=args.output, single=single))
    elif args.output == "name":
        write(format_objects(everything, output="name", single=False))
    else:
        now = durations.now()
        tables = [
            printers.render(
                printers.table(kind, objects, now=now, wide=args.output == "wide",
                               all_namespaces=args.all_namespaces, with_kind=several_kinds(targets),
                               show_labels=args.show_labels),
                with_headers=not args.no_headers)
            for kind, objects in sections if objects
        ]
        write("\n".join(tables))
    if not everything and not named and args.output not in ("yaml", "json"):
        report(no_resources_message(targets, namespace=namespace))
    for line in failures:
        report(line)
    return 1 if failures else 0


class WatchPrinter:
    """Prints objects as a watch delivers them: the table header once, then rows."""

    def __init__(self, kind: kinds.Kind, args: argparse.Namespace) -> None:
        self.kind = kind
        self.args = args
        self.header_printed = args.no_headers

    def show(self, objects: Sequence[Message]) -> None:
        if not objects:
            return
        output = self.args.output
        if output in ("yaml", "json"):
            for obj in objects:
                write(dump(object_dict(obj), output=output) + ("---\n" if output == "yaml" else ""))
        elif output == "name":
            write(format_objects(objects, output="name", single=False))
        else:
            table = printers.table(self.kind, objects, now=durations.now(), wide=output == "wide",
                                   all_namespaces=self.args.all_namespaces, show_labels=self.args.show_labels)
            write(printers.render(table, with_headers=not self.header_printed))
            self.header_printed = True


def _key(obj: Message) -> tuple[str, str]:
    return obj.metadata.namespace, obj.metadata.name


async def watch(api: Client, targets: Sequence[Target], *, args: argparse.Namespace, namespace: str) -> int:
    if len(targets) != 1 or len(targets[0].names) > 1:
        count = sum(max(1, len(target.names)) for target in targets)
        raise CommandError("error: watch is only supported on individual resources and resource "
                           f"collections, but {count} resources were found")
    target = targets[0]
    scope = namespace if target.kind.namespaced else ""
    field_selector = args.field_selector
    if target.names:
        field_selector = ",".join(filter(None, (field_selector, f"metadata.name={target.names[0]}")))
    selectors = dict(namespace=scope, label_selector=args.selector, field_selector=field_selector)
    printer = WatchPrinter(target.kind, args)

    objects, version = await api.list(target.kind, **selectors)
    known = {_key(obj): obj for obj in objects}
    if not args.watch_only:
        printer.show(objects)
    while True:
        try:
            async for event in api.watch(target.kind, resource_version=version, **selectors):
                printer.show([event.object])
                version = event.object.metadata.resource_version or version
                if event.type == "DELETED":
                    known.pop(_key(event.object), None)
                else:
                    known[_key(event.object)] = event.object
            await asyncio.sleep(REWATCH_DELAY)
        except errors.ExpiredError:
            objects, version = await api.list(target.kind, **selectors)
            fresh = {_key(obj): obj for obj in objects}
            changed = [obj for key, obj in fresh.items()
                       if key not in known or known[key].metadata.resource_version != obj.metadata.resource_version]
            gone = [obj for key, obj in known.items() if key not in fresh]
            printer.show(changed + gone)
            known = fresh
