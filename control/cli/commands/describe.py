"""``sampan describe``: a readable account of objects, with their events.

Fetches each named object (or lists the kind, with -l), then its events (the
kind Event in the object's namespace, selected by
``involvedObject.name=NAME,involvedObject.kind=KIND``; every namespace for a
cluster-scoped object) and, for a node, the pods running on it; for a
ReplicaSet, DaemonSet or StatefulSet, the pods it controls; for a Deployment,
the ReplicaSets it controls; for a Service, its Endpoints. The text
comes from control.cli.describers; descriptions are separated as kubectl
separates them. As with kubectl, failing to list events only leaves them out.
"""

from __future__ import annotations

import argparse
import sys

from google.protobuf.message import Message

from control.api import errors, kinds, selectors
from control.cli import durations
from control.cli.connection import connect, namespace_of, server_of
from control.cli.describers import describe
from control.cli.errors import api_error_line, report
from control.cli.objects import kind_of
from control.cli.targets import no_resources_message, parse_targets
from control.client import Client

# kubectl prints two blank lines between descriptions.
SEPARATOR = "\n\n"


async def run(args: argparse.Namespace) -> int:
    targets = parse_targets(args.resources, command="describe")
    namespace = "" if args.all_namespaces else namespace_of(args)
    failures: list[str] = []
    printed = False
    async with connect(args) as api:
        if namespace and any(target.kind.namespaced for target in targets):
            try:
                await api.get(kinds.by_kind("Namespace"), namespace)
            except errors.ForbiddenError:
                pass  # may read in the namespace without reading the Namespace: the request itself decides
        for target in targets:
            scope = namespace if target.kind.namespaced else ""
            objects: list[Message] = []
            if target.names:
                for name in target.names:
                    try:
                        objects.append(await api.get(target.kind, name, namespace=scope))
                    except errors.NotFoundError as err:
                        failures.append(api_error_line(err, server=server_of(args)))
            else:
                objects, _ = await api.list(target.kind, namespace=scope, label_selector=args.selector)
                if not objects:
                    report(no_resources_message([target], namespace=namespace))
            for obj in objects:
                text = describe(obj, events=await object_events(api, obj) if args.show_events else None,
                                now=durations.now(), pods=await related_pods(api, obj),
                                replica_sets=await controlled(api, obj, "ReplicaSet")
                                if kind_of(obj).kind == "Deployment" else None,
                                endpoints=await service_endpoints(api, obj))
                sys.stdout.write((SEPARATOR if printed else "") + text)
                sys.stdout.flush()
                printed = True
    for line in failures:
        report(line)
    return 1 if failures else 0


async def object_events(api: Client, obj: Message) -> list[Message]:
    kind = kind_of(obj)
    selector = f"involvedObject.name={obj.metadata.name},involvedObject.kind={kind.kind}"
    try:
        events, _ = await api.list(kinds.by_kind("Event"), namespace=obj.metadata.namespace,
                                   field_selector=selector)
    except errors.UnavailableError:
        raise
    except errors.APIError:
        return []
    return events


async def related_pods(api: Client, obj: Message) -> list[Message] | None:
    """A node's pods, or the pods a workload controls; None for other kinds (or when they cannot be listed)."""
    if kind_of(obj).kind in ("ReplicaSet", "DaemonSet", "StatefulSet"):
        return await controlled(api, obj, "Pod")
    return await node_pods(api, obj)


async def controlled(api: Client, owner: Message, kind: str) -> list[Message] | None:
    """The objects of ``kind`` that ``owner``'s selector matches and that name it their controller."""
    selector = str(selectors.from_label_selector_message(owner.spec.selector))
    try:
        found, _ = await api.list(kinds.by_kind(kind), namespace=owner.metadata.namespace, label_selector=selector)
    except errors.UnavailableError:
        raise
    except errors.APIError:
        return None
    return [obj for obj in found
            if any(ref.controller and ref.uid == owner.metadata.uid for ref in obj.metadata.owner_references)]


async def service_endpoints(api: Client, obj: Message) -> Message | None:
    """A Service's Endpoints object (its ready addresses); None for other kinds, or when there is none."""
    if kind_of(obj).kind != "Service":
        return None
    try:
        return await api.get(kinds.by_kind("Endpoints"), obj.metadata.name, namespace=obj.metadata.namespace)
    except errors.UnavailableError:
        raise
    except errors.APIError:
        return None


async def node_pods(api: Client, obj: Message) -> list[Message] | None:
    """A node's pods that have not finished; None for other kinds (or when they cannot be listed)."""
    if kind_of(obj).kind != "Node":
        return None
    selector = f"spec.nodeName={obj.metadata.name},status.phase!=Succeeded,status.phase!=Failed"
    try:
        pods, _ = await api.list(kinds.by_kind("Pod"), field_selector=selector)
    except errors.UnavailableError:
        raise
    except errors.APIError:
        return None
    return pods
