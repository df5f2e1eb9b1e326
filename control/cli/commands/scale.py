"""``sampan scale KIND/NAME --replicas N [--current-replicas N]``: set a workload's spec.replicas.

Deployments, ReplicaSets and StatefulSets, named as ``KIND/NAME ...`` or
``KIND NAME ...``. ``--current-replicas`` is kubectl's precondition: the
object is scaled only if it has that many replicas now, else
``error: Expected replicas to be 3, was 2``. The write is compare-and-swap
on the object as read (re-read and retried after a conflict, the
precondition checked again), and prints ``deployment.apps/web scaled``.
"""

from __future__ import annotations

import argparse

from google.protobuf.message import Message

from control.api import errors, kinds
from control.cli.connection import connect, namespace_of
from control.cli.errors import CommandError
from control.cli.objects import resource_ref
from control.cli.targets import parse_targets
from control.client import Client

SCALABLE = ("Deployment", "ReplicaSet", "StatefulSet")
WRITE_ATTEMPTS = 5


async def run(args: argparse.Namespace) -> int:
    if args.replicas is None or args.replicas < 0:
        raise CommandError("error: The --replicas=COUNT flag is required, and COUNT must be greater than or equal "
                           "to 0")
    objects = []
    for target in parse_targets(args.resources, command="scale"):
        if target.kind.kind not in SCALABLE:
            supported = ", ".join(kinds.by_kind(name).plural for name in SCALABLE)
            raise CommandError(f"error: {target.kind.plural} cannot be scaled (scale works on {supported})")
        if not target.names:
            raise CommandError("error: resource(s) were provided, but no name was specified")
        objects.extend((target.kind, name) for name in target.names)
    namespace = namespace_of(args)
    async with connect(args) as api:
        for kind, name in objects:
            await scale(api, kind, name, namespace=namespace, replicas=args.replicas,
                        current=args.current_replicas)
            print(f"{resource_ref(kind, name)} scaled", flush=True)
    return 0


def replicas_of(obj: Message) -> int:
    """spec.replicas, 1 when unset (the API's default)."""
    spec = obj.spec  # type: ignore[attr-defined]
    return spec.replicas if spec.HasField("replicas") else 1


async def scale(api: Client, kind: kinds.Kind, name: str, *, namespace: str, replicas: int, current: int) -> None:
    """Set spec.replicas; current >= 0 is the precondition on the present count."""
    for attempt in range(WRITE_ATTEMPTS):
        obj = await api.get(kind, name, namespace=namespace)
        if current >= 0 and replicas_of(obj) != current:
            raise CommandError(f"error: Expected replicas to be {current}, was {replicas_of(obj)}")
        obj.spec.replicas = replicas  # type: ignore[attr-defined]
        try:
            await api.update(obj)
            return
        except errors.ConflictError:
            if attempt == WRITE_ATTEMPTS - 1:
                raise
