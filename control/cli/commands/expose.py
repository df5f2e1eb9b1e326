"""``sampan expose KIND/NAME --port P``: a Service in front of an object's pods, as ``kubectl expose``.

The object may be a Deployment or ReplicaSet (the Service selects what
their selector selects; a selector with matchExpressions cannot be written
as a Service's and is refused), a Pod (its labels) or a Service (its
selector). The Service is named after the object unless ``--name`` says
otherwise and carries the object's labels.

Ports: ``--port`` (with ``--target-port``, a number or a container port's
name, defaulting to the port itself on the server, and ``--protocol``); or,
without ``--port``, the container ports of the pods the object makes, each
one a Service port (named ``port-1``, ``port-2``... when there are several),
as kubectl introspects them. ``--type`` (ClusterIP, NodePort, LoadBalancer)
and ``--cluster-ip`` (``None`` for a headless Service) go as given; the
server allocates the rest and validates all. Prints ``service/NAME
exposed``, or with ``-o`` the created Service; ``--dry-run=client`` only
prints it.
"""

from __future__ import annotations

import argparse

from google.protobuf.message import Message

from control.api import kinds
from control.api.selectors import SelectorError, parse_label_selector
from control.cli.connection import connect, namespace_of
from control.cli.errors import CommandError
from control.cli.objects import resource_ref
from control.cli.output import format_objects
from control.cli.targets import parse_targets
from protos.api.v1 import services_pb2

EXPOSABLE_KINDS = ("Deployment", "ReplicaSet", "Pod", "Service")


async def run(args: argparse.Namespace) -> int:
    kind, name = expose_target(args.target)
    namespace = namespace_of(args)
    async with connect(args) as api:
        target = await api.get(kind.kind, name, namespace=namespace)
        service = build_service(target, name=args.name or name, port=args.port, target_port=args.target_port,
                                protocol=args.protocol, type_=args.type, cluster_ip=args.cluster_ip,
                                selector=args.selector)
        if args.dry_run == "client":
            print(exposed_text(service, output=args.output, dry_run=True), end="")
            return 0
        print(exposed_text(await api.create(service), output=args.output), end="", flush=True)
    return 0


def expose_target(arguments: list[str]) -> tuple[kinds.Kind, str]:
    """The one object the command line names (``deployment/web`` or ``deployment web``)."""
    targets = parse_targets(arguments, command="expose")
    if len(targets) != 1 or len(targets[0].names) != 1:
        raise CommandError("error: name exactly one object to expose: KIND/NAME or KIND NAME (e.g. deployment/web)")
    kind, name = targets[0].kind, targets[0].names[0]
    if kind.kind not in EXPOSABLE_KINDS:
        raise CommandError(f"error: cannot expose a {kind.kind}: only Deployments, ReplicaSets, Pods and "
                           "Services can be exposed")
    return kind, name


def target_selector(obj: Message) -> dict[str, str]:
    """The labels a Service must select to reach the object's pods."""
    kind = kinds.by_type_url(kinds.TYPE_URL_PREFIX + obj.DESCRIPTOR.full_name).kind
    if kind == "Pod":
        return dict(obj.metadata.labels)
    if kind == "Service":
        return dict(obj.spec.selector)
    selector = obj.spec.selector
    if selector.match_expressions:
        raise CommandError(f"error: cannot expose {kind.lower()}/{obj.metadata.name}: its selector has "
                           "matchExpressions, which a Service's selector (labels only) cannot express")
    return dict(selector.match_labels)


def target_ports(obj: Message) -> list[tuple[int, str]]:
    """(port, protocol) of every container port of the object's pods (a Service's: its ports)."""
    kind = kinds.by_type_url(kinds.TYPE_URL_PREFIX + obj.DESCRIPTOR.full_name).kind
    if kind == "Service":
        return [(port.port, port.protocol or "TCP") for port in obj.spec.ports]
    pod_spec = obj.spec if kind == "Pod" else obj.spec.template.spec
    return [(port.container_port, port.protocol or "TCP")
            for container in pod_spec.containers for port in container.ports]


def build_service(obj: Message, *, name: str, port: int | None, target_port: str = "", protocol: str = "",
                  type_: str = "", cluster_ip: str = "", selector: str = "") -> services_pb2.Service:
    """The Service exposing obj (see the module docstring); CommandError names what is missing."""
    service = services_pb2.Service(api_version="v1", kind="Service")
    service.metadata.name = name
    service.metadata.namespace = obj.metadata.namespace
    service.metadata.labels.update(obj.metadata.labels)
    labels = _selector_labels(selector) if selector else target_selector(obj)
    if not labels:
        raise CommandError(f"error: couldn't retrieve selectors via --selector flag or introspection: "
                           f"{obj.metadata.name} has no labels to select its pods by")
    service.spec.selector.update(labels)
    if port is not None:
        ports = [(port, protocol or "TCP")]
    else:
        ports = [(number, protocol or found) for number, found in target_ports(obj)]
        if not ports:
            raise CommandError("error: couldn't find port via --port flag or introspection")
    for i, (number, port_protocol) in enumerate(ports):
        service_port = service.spec.ports.add(port=number, protocol=port_protocol)
        if len(ports) > 1:
            service_port.name = f"port-{i + 1}"
        if target_port:
            if target_port.isdigit():
                service_port.target_port.int_value = int(target_port)
            else:
                service_port.target_port.str_value = target_port
    if type_:
        service.spec.type = type_
    if cluster_ip:
        service.spec.cluster_ip = cluster_ip
    return service


def _selector_labels(text: str) -> dict[str, str]:
    """--selector: equality terms only (key=value,...), as a Service selector holds."""
    try:
        parsed = parse_label_selector(text)
    except SelectorError as err:
        raise CommandError(f"error: {err}") from None
    labels = {}
    for requirement in parsed.requirements:
        if requirement.operator != "In" or len(requirement.values) != 1:
            raise CommandError(f"error: --selector {text!r}: a Service selects by key=value terms only")
        labels[requirement.key] = requirement.values[0]
    return labels


def exposed_text(service: services_pb2.Service, *, output: str | None, dry_run: bool = False) -> str:
    if output:
        return format_objects([service], output=output, single=True)
    return f"{resource_ref(kinds.by_kind('Service'), service.metadata.name)} exposed{' (dry run)' if dry_run else ''}\n"
