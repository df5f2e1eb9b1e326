"""``sampan delete``: delete objects by name, by manifest, or by selector.

Prints kubectl's ``pod "web" deleted`` for each object as soon as the
server accepts the deletion (also when it only marked the object, as for a
pod its node must stop first), then, unless ``--wait=false``, waits until
every marked object is really gone. ``--force --grace-period=0`` removes a
pod at once, after kubectl's warning. ``--cascade`` picks what happens to the
objects' dependents (control/controllers/garbage_collector.py): background
(the default), foreground (the object waits for them, and so does this
command) or orphan (they stay). A missing object is
``Error from server (NotFound): pods "x" not found``; the others are still
deleted and the exit code is 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass

from google.protobuf.message import Message

from control.api import errors, kinds, manifest
from control.cli.connection import connect, namespace_of, server_of
from control.cli.durations import parse_duration
from control.cli.errors import CommandError, api_error_line, report
from control.cli.manifest_files import prepare_object, read_manifest_files
from control.cli.objects import kind_of, quoted_ref
from control.cli.targets import no_resources_message, parse_targets
from control.client import Client

IMMEDIATE_DELETION_WARNING = (
    "Warning: Immediate deletion does not wait for confirmation that the running resource has been terminated. "
    "The resource may continue to run on the cluster indefinitely.")
CASCADE_POLICIES = {"background": "Background", "orphan": "Orphan", "foreground": "Foreground"}
# kubectl's --cascade was once a boolean (Go's strconv.ParseBool spellings); still accepted, with a warning.
_CASCADE_BOOLEANS = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), "background"),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), "orphan"),
}


@dataclass(frozen=True)
class Doomed:
    """One object to delete."""

    kind: kinds.Kind
    name: str
    namespace: str


def grace_period(args: argparse.Namespace) -> int | None:
    """kubectl's rules: --now is 1s; 0 without --force becomes 1; --force alone means 0."""
    grace = 1 if args.now else args.grace_period
    if grace == 0 and not args.force:
        grace = 1
    if args.force and grace < 0:
        grace = 0
    return None if grace < 0 else grace


def cascade_policy(value: str) -> str:
    """The propagation policy --cascade asks for: Background, Foreground or Orphan."""
    if value in _CASCADE_BOOLEANS:
        replacement = _CASCADE_BOOLEANS[value]
        print(f"warning: --cascade={value} is deprecated (boolean value) and can be replaced with "
              f"--cascade={replacement}.", file=sys.stderr, flush=True)
        return CASCADE_POLICIES[replacement]
    policy = CASCADE_POLICIES.get(value.lower())
    if policy is None:
        raise CommandError(f'error: invalid cascade value ({value}). Must be "background", '
                           '"foreground", or "orphan".')
    return policy


async def run(args: argparse.Namespace) -> int:
    policy = cascade_policy(args.cascade)
    if args.filename and args.resources:
        raise CommandError("error: when paths are given with -f, resource arguments may not be given as well")
    if args.all and args.selector:
        raise CommandError("error: cannot set --all and --selector at the same time")
    timeout = parse_duration(args.timeout)
    grace = grace_period(args)
    if args.force and grace == 0:
        print(IMMEDIATE_DELETION_WARNING, file=sys.stderr, flush=True)

    failures: list[str] = []
    pending: list[Message] = []
    async with connect(args) as api:
        for doomed in await select(api, args=args):
            try:
                obj, gone = await api.delete(doomed.kind, doomed.name, namespace=doomed.namespace,
                                             grace_period_seconds=grace, force=args.force,
                                             propagation_policy=policy)
            except errors.NotFoundError as err:
                if not args.ignore_not_found:
                    failures.append(api_error_line(err, server=server_of(args)))
                continue
            print(f"{quoted_ref(doomed.kind, doomed.name)} deleted", flush=True)
            if not gone:
                pending.append(obj)
        if args.wait and pending:
            await wait_until_gone(api, pending, timeout=timeout)
    for line in failures:
        report(line)
    return 1 if failures else 0


async def select(api: Client, *, args: argparse.Namespace) -> list[Doomed]:
    """The objects the command line names, by manifest, by name, or by selector."""
    namespace = namespace_of(args)
    if args.filename:
        doomed = []
        for source in read_manifest_files(args.filename, recursive=args.recursive):
            for obj in source.objects():
                kind = kind_of(manifest.to_message(obj))
                placed = prepare_object(obj, kind=kind, namespace=namespace, explicit_namespace=bool(args.namespace))
                doomed.append(Doomed(kind, placed["metadata"]["name"], placed["metadata"].get("namespace", "")))
        return doomed
    targets = parse_targets(args.resources, command="delete")
    doomed = []
    for target in targets:
        scope = namespace if target.kind.namespaced else ""
        if target.names:
            if args.selector or args.field_selector or args.all:
                raise CommandError("error: names cannot be given with --all or a selector")
            doomed.extend(Doomed(target.kind, name, scope) for name in target.names)
            continue
        if not (args.all or args.selector or args.field_selector):
            raise CommandError("error: resource(s) were provided, but no name was specified")
        if args.all_namespaces:
            scope = ""
        objects, _ = await api.list(target.kind, namespace=scope, label_selector=args.selector,
                                    field_selector=args.field_selector)
        if not objects:
            report(no_resources_message([target], namespace=scope))
        doomed.extend(Doomed(target.kind, obj.metadata.name, obj.metadata.namespace) for obj in objects)
    return doomed


async def wait_until_gone(api: Client, objects: list[Message], *, timeout: float) -> None:
    """Return once every object is removed (watching from its deletion mark)."""
    waits = [_gone(api, obj) for obj in objects]
    try:
        await asyncio.wait_for(asyncio.gather(*waits), timeout=timeout or None)
    except asyncio.TimeoutError:
        first = objects[0]
        raise CommandError("error: timed out waiting for the condition on "
                           f"{kind_of(first).plural}/{first.metadata.name}") from None


async def _gone(api: Client, obj: Message) -> None:
    kind = kind_of(obj)
    selector = f"metadata.name={obj.metadata.name}"
    version = obj.metadata.resource_version
    while True:
        try:
            async for event in api.watch(kind, namespace=obj.metadata.namespace, field_selector=selector,
                                         resource_version=version):
                if event.type == "DELETED" and event.object.metadata.uid == obj.metadata.uid:
                    return
                version = event.object.metadata.resource_version or version
        except errors.ExpiredError:
            pass
        # Compacted or ended: is it still there?
        try:
            current = await api.get(kind, obj.metadata.name, namespace=obj.metadata.namespace)
        except errors.NotFoundError:
            return
        if current.metadata.uid != obj.metadata.uid:
            return
        version = current.metadata.resource_version

