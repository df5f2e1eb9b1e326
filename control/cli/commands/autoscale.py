"""``sampan autoscale KIND/NAME --max N``: create a HorizontalPodAutoscaler, as ``kubectl autoscale`` does.

The target must exist and be a Deployment, ReplicaSet or StatefulSet (the
kinds the autoscaler can scale). The HPA, named after the target unless
``--name`` says otherwise, scales it between ``--min`` and ``--max``
replicas, aiming at ``--cpu-percent`` of the pods' CPU requests; what is
left out takes the server's defaults (minReplicas 1, CPU at 80%). Prints
``horizontalpodautoscaler.autoscaling/NAME autoscaled``, or with ``-o`` the
created object; ``--dry-run=client`` only prints it.
"""

from __future__ import annotations

import argparse

from control.api import kinds
from control.cli.connection import connect, namespace_of
from control.cli.errors import CommandError
from control.cli.objects import resource_ref
from control.cli.output import format_objects
from control.cli.targets import parse_targets
from protos.api.v1 import autoscaling_pb2

SCALABLE_KINDS = ("Deployment", "ReplicaSet", "StatefulSet")


async def run(args: argparse.Namespace) -> int:
    kind, name = scale_target(args.target)
    check_bounds(min_replicas=args.min, max_replicas=args.max)
    hpa = build_autoscaler(kind, name, namespace=namespace_of(args), hpa_name=args.name or name,
                           min_replicas=args.min, max_replicas=args.max, cpu_percent=args.cpu_percent)
    if args.dry_run == "client":
        print(autoscaled_text(hpa, output=args.output, dry_run=True), end="")
        return 0
    async with connect(args) as api:
        await api.get(kind.kind, name, namespace=hpa.metadata.namespace)  # NotFound names the target
        print(autoscaled_text(await api.create(hpa), output=args.output), end="", flush=True)
    return 0


def scale_target(arguments: list[str]) -> tuple[kinds.Kind, str]:
    """The one object the command line names (``deployment/web`` or ``deployment web``)."""
    targets = parse_targets(arguments, command="autoscale")
    if len(targets) != 1 or len(targets[0].names) != 1:
        raise CommandError("error: name exactly one object to autoscale: KIND/NAME or KIND NAME "
                           "(e.g. deployment/web)")
    kind, name = targets[0].kind, targets[0].names[0]
    if kind.kind not in SCALABLE_KINDS:
        raise CommandError(f"error: cannot autoscale a {kind.kind}: only Deployments, ReplicaSets and "
                           "StatefulSets can be autoscaled")
    return kind, name


def check_bounds(*, min_replicas: int, max_replicas: int) -> None:
    """kubectl's checks of --min and --max (unset is -1)."""
    if max_replicas < 1:
        raise CommandError(f"error: --max=MAXPODS is required and must be at least 1, max: {max_replicas}")
    if max_replicas < min_replicas:
        raise CommandError(f"error: --max=MAXPODS must be larger or equal to --min=MINPODS, "
                           f"max: {max_replicas}, min: {min_replicas}")


def build_autoscaler(kind: kinds.Kind, name: str, *, namespace: str, hpa_name: str, min_replicas: int,
                     max_replicas: int, cpu_percent: int) -> autoscaling_pb2.HorizontalPodAutoscaler:
    """The HPA for the target; a negative --min or --cpu-percent leaves that field to the server's default."""
    hpa = autoscaling_pb2.HorizontalPodAutoscaler(api_version="autoscaling/v2", kind="HorizontalPodAutoscaler")
    hpa.metadata.name = hpa_name
    hpa.metadata.namespace = namespace
    ref = hpa.spec.scale_target_ref
    ref.api_version, ref.kind, ref.name = kind.api_version, kind.kind, name
    if min_replicas >= 0:
        hpa.spec.min_replicas = min_replicas
    hpa.spec.max_replicas = max_replicas
    if cpu_percent >= 0:
        metric = hpa.spec.metrics.add(type="Resource")
        metric.resource.name = "cpu"
        metric.resource.target.type = "Utilization"
        metric.resource.target.average_utilization = cpu_percent
    return hpa


def autoscaled_text(hpa: autoscaling_pb2.HorizontalPodAutoscaler, *, output: str | None, dry_run: bool = False) -> str:
    if output:
        return format_objects([hpa], output=output, single=True)
    kind = kinds.by_kind("HorizontalPodAutoscaler")
    return f"{resource_ref(kind, hpa.metadata.name)} autoscaled{' (dry run)' if dry_run else ''}\n"
