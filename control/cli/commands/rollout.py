"""``sampan rollout status|history|undo|pause|resume|restart KIND/NAME``: a workload's rollouts.

What each kind does is its RolloutKind (control/cli/rollouts/); this module
is the verbs, with kubectl's output:

- ``status`` prints the rollout's progress each time it changes, following
  the object with a watch until the rollout is done (``--watch=false``: one
  look); a rollout past its progress deadline is an error (exit 1), and so
  is ``--timeout`` running out (``error: timed out waiting for the
  condition``).
- ``history`` lists ``REVISION  CHANGE-CAUSE``; ``--revision N`` describes
  that revision's pod template as ``describe`` does.
- ``undo [--to-revision N]`` goes back to revision N (default: the one
  before the current): ``deployment.apps/web rolled back``.
- ``pause``/``resume`` set or clear spec.paused; ``restart`` sets the pod
  template annotation ``kubectl.kubernetes.io/restartedAt`` to now, which
  rolls every pod out again.

Every write is compare-and-swap on the object as read; when someone else
wrote it meanwhile, the verb reads it again and retries.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Awaitable, Callable, TypeVar

from google.protobuf.message import Message

from control.api import errors, kinds
from control.api.deployments import RESTARTED_AT_ANNOTATION
from control.api.timestamps import format_time
from control.cli import tabwriter
from control.cli.connection import connect, namespace_of
from control.cli.describers.pod_template import pod_template_section
from control.cli.describers.writer import DescriptionWriter
from control.cli.durations import parse_duration
from control.cli.errors import CommandError
from control.cli.objects import resource_ref
from control.cli.rollouts import RolloutKind, rollout_kind
from control.cli.targets import parse_targets
from control.client import Client

T = TypeVar("T")
WRITE_ATTEMPTS = 5
# Pause before watching again when the server ended a watch stream cleanly.
REWATCH_DELAY = 0.2


def named_objects(arguments: list[str], *, verb: str) -> list[tuple[kinds.Kind, str]]:
    """(kind, name) for each object the arguments name (KIND/NAME ... or KIND NAME ...)."""
    found = []
    for target in parse_targets(arguments, command=f"rollout {verb}"):
        if not target.names:
            raise CommandError(f"error: rollout {verb} needs the object's name, e.g. "
                               f"{target.kind.singular}/NAME")
        found.extend((target.kind, name) for name in target.names)
    return found


def resource_string(kind: kinds.Kind) -> str:
    """kubectl's plural.group naming in errors: ``deployments.apps``."""
    return f"{kind.plural}.{kind.group}" if kind.group else kind.plural


async def run(args: argparse.Namespace) -> int:
    objects = named_objects(args.resources, verb=args.verb)
    namespace = namespace_of(args)
    async with connect(args) as api:
        if args.verb == "status":
            if len(objects) > 1:
                raise CommandError("error: rollout status is only supported on individual resources and resource "
                                   "collections are not supported yet")
            kind, name = objects[0]
            return await show_status(api, kind, name, namespace=namespace, watch=args.watch,
                                     timeout=parse_duration(args.timeout), revision=args.revision)
        for kind, name in objects:
            handler = rollout_kind(kind, verb=args.verb)
            scope = namespace if kind.namespaced else ""
            if args.verb == "history":
                await show_history(api, handler, kind, name, namespace=scope, revision=args.revision)
                continue
            change = _CHANGES[args.verb](api, handler, kind, args)
            result = await write_with_retry(api, kind, name, namespace=scope, change=change)
            print(f"{resource_ref(kind, name)} {result}", flush=True)
    return 0


# ------------------------------------------------------------------ status

async def show_status(api: Client, kind: kinds.Kind, name: str, *, namespace: str, watch: bool,
                      timeout: float, revision: int) -> int:
    handler = rollout_kind(kind, verb="status")
    scope = namespace if kind.namespaced else ""
    last = ""

    def report(obj: Message) -> bool:
        nonlocal last
        state = handler.status(obj, revision)
        if state.message != last:
            print(state.message, flush=True)
            last = state.message
        return state.done

    async def follow() -> None:
        obj = await api.get(kind, name, namespace=scope)
        if report(obj) or not watch:
            return
        version = obj.metadata.resource_version
        while True:
            try:
                async for event in api.watch(kind, namespace=scope, field_selector=f"metadata.name={name}",
                                             resource_version=version):
                    if event.type == "DELETED":
                        raise CommandError(f'error: {resource_string(kind)} "{name}" was deleted')
                    version = event.object.metadata.resource_version
                    if report(event.object):
                        return
            except errors.ExpiredError:
                obj = await api.get(kind, name, namespace=scope)
                version = obj.metadata.resource_version
                if report(obj):
                    return
                continue
            await asyncio.sleep(REWATCH_DELAY)

    try:
        await asyncio.wait_for(follow(), timeout if timeout > 0 else None)
    except TimeoutError:
        raise CommandError("error: timed out waiting for the condition") from None
    return 0


# ------------------------------------------------------------------ history

async def show_history(api: Client, handler: RolloutKind, kind: kinds.Kind, name: str, *, namespace: str,
                       revision: int) -> None:
    obj = await api.get(kind, name, namespace=namespace)
    revisions = await handler.history(api, obj)
    if revision > 0:
        chosen = next((r for r in revisions if r.number == revision), None)
        if chosen is None:
            raise CommandError(f"error: unable to find the specified revision {revision}")
        description = DescriptionWriter()
        pod_template_section(description, chosen.template)
        print(f"{resource_ref(kind, name)} with revision #{revision}\n{description.text()}", flush=True)
        return
    if not revisions:
        print("No rollout history found.", flush=True)
        return
    table = "REVISION\tCHANGE-CAUSE\n" + "".join(f"{r.number}\t{r.change_cause or '<none>'}\n" for r in revisions)
    print(f"{resource_ref(kind, name)}\n{tabwriter.align(table, minwidth=0, padding=2)}", flush=True)


# ------------------------------------------------------------------ writes

Change = Callable[[Message], Awaitable[str]]


async def write_with_retry(api: Client, kind: kinds.Kind, name: str, *, namespace: str, change: Change) -> str:
    """Read the object and apply change (which writes it with CAS); read again after a conflict."""
    for attempt in range(WRITE_ATTEMPTS):
        obj = await api.get(kind, name, namespace=namespace)
        try:
            return await change(obj)
        except errors.ConflictError:
            if attempt == WRITE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _copy(obj: Message) -> Message:
    copy = type(obj)()
    copy.CopyFrom(obj)
    return copy


def _undo(api: Client, handler: RolloutKind, kind: kinds.Kind, args: argparse.Namespace) -> Change:
    return lambda obj: handler.undo(api, obj, args.to_revision)


def _set_paused(paused: bool) -> Callable[[Client, RolloutKind, kinds.Kind, argparse.Namespace], Change]:
    def make(api: Client, handler: RolloutKind, kind: kinds.Kind, args: argparse.Namespace) -> Change:
        async def change(obj: Message) -> str:
            if not handler.pausable:
                raise CommandError(f'error: {resource_string(kind)} "{obj.metadata.name}" '
                                   f'{"pausing" if paused else "resuming"} is not supported')
            if obj.spec.paused == paused:  # type: ignore[attr-defined]
                state = "is already paused" if paused else "is not paused"
                raise CommandError(f'error: {resource_string(kind)} "{obj.metadata.name}" {state}')
            changed = _copy(obj)
            changed.spec.paused = paused  # type: ignore[attr-defined]
            await api.update(changed)
            return "paused" if paused else "resumed"
        return change
    return make


def _restart(api: Client, handler: RolloutKind, kind: kinds.Kind, args: argparse.Namespace) -> Change:
    async def change(obj: Message) -> str:
        refusal = handler.restart_refusal(obj)
        if refusal is not None:
            raise CommandError(f'error: {resource_string(kind)} "{obj.metadata.name}" {refusal}')
        changed = _copy(obj)
        template = changed.spec.template  # type: ignore[attr-defined]
        template.metadata.annotations[RESTARTED_AT_ANNOTATION] = format_time(time.time())
        await api.update(changed)
        return "restarted"
    return change


_CHANGES: dict[str, Callable[[Client, RolloutKind, kinds.Kind, argparse.Namespace], Change]] = {
    "undo": _undo,
    "pause": _set_paused(True),
    "resume": _set_paused(False),
    "restart": _restart,
}
