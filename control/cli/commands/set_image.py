"""``sampan set image KIND/NAME ... CONTAINER=IMAGE ...``: change containers' images.

Works on whatever holds a pod spec: pods, and the pod templates of
deployments, replicasets, daemonsets, statefulsets, jobs (and cronjobs'
job templates). ``CONTAINER=IMAGE`` names a container or init container;
``*=IMAGE`` sets every one. As kubectl: the objects come first, the pairs
after; an object that changed prints ``deployment.apps/web image updated``;
one already using those images prints nothing; a container name the object
lacks is ``error: unable to find container named "x"`` (exit 1, after the
other objects are updated). The write is compare-and-swap on the object as
read, re-read and retried after a conflict.
"""

from __future__ import annotations

import argparse

from google.protobuf.message import Message

from control.api import errors
from control.cli.connection import connect, namespace_of
from control.cli.errors import CommandError, report
from control.cli.objects import resource_ref
from control.cli.targets import parse_targets
from control.client import Client
from protos.api.v1 import core_pb2

WRITE_ATTEMPTS = 5
# Where each kind keeps the pod spec whose images are set.
POD_SPEC_PATHS = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "job_template", "spec", "template", "spec"),
}


def split_arguments(arguments: list[str]) -> tuple[list[str], dict[str, str]]:
    """The object arguments and the CONTAINER=IMAGE pairs (which must come after them)."""
    resources: list[str] = []
    images: dict[str, str] = {}
    for argument in arguments:
        if "=" in argument:
            container, _, image = argument.partition("=")
            if not container or not image:
                raise CommandError(f"error: invalid image update {argument!r}: expected CONTAINER=IMAGE")
            images[container] = image
        elif images:
            raise CommandError(f"error: all resources must be specified before image changes: {argument}")
        else:
            resources.append(argument)
    if not resources:
        raise CommandError("error: one or more resources must be specified as <resource> <name> or "
                           "<resource>/<name>")
    if not images:
        raise CommandError("error: at least one image update is required")
    if "*" in images and len(images) > 1:
        raise CommandError("error: all containers are already specified by *, but saw more than one "
                           "container_name=container_image pairs")
    return resources, images


def pod_spec_of(obj: Message, kind: str) -> core_pb2.PodSpec:
    spec = obj
    for field in POD_SPEC_PATHS[kind]:
        spec = getattr(spec, field)
    return spec  # type: ignore[return-value]


def set_images(spec: core_pb2.PodSpec, images: dict[str, str]) -> list[str]:
    """Set the images in spec; the container names asked for that it lacks."""
    missing = []
    for name, image in images.items():
        found = False
        for container in (*spec.init_containers, *spec.containers):
            if name in ("*", container.name):
                container.image = image
                found = True
        if not found:
            missing.append(name)
    return missing


async def run(args: argparse.Namespace) -> int:
    resources, images = split_arguments(args.arguments)
    objects = []
    for target in parse_targets(resources, command="set image"):
        if target.kind.kind not in POD_SPEC_PATHS:
            raise CommandError(f"error: {target.kind.plural} have no containers whose image could be set")
        if not target.names:
            raise CommandError("error: resource(s) were provided, but no name was specified")
        objects.extend((target.kind, name) for name in target.names)
    namespace = namespace_of(args)
    failed = False
    async with connect(args) as api:
        for kind, name in objects:
            scope = namespace if kind.namespaced else ""
            changed, missing = await update_images(api, kind.kind, name, namespace=scope, images=images)
            for container in missing:
                report(f'error: unable to find container named "{container}"')
                failed = True
            if changed:
                print(f"{resource_ref(kind, name)} image updated", flush=True)
    return 1 if failed else 0


async def update_images(api: Client, kind: str, name: str, *, namespace: str,
                        images: dict[str, str]) -> tuple[bool, list[str]]:
    """Whether the object changed, and the containers it lacks."""
    for attempt in range(WRITE_ATTEMPTS):
        obj = await api.get(kind, name, namespace=namespace)
        before = obj.SerializeToString(deterministic=True)
        missing = set_images(pod_spec_of(obj, kind), images)
        if obj.SerializeToString(deterministic=True) == before:
            return False, missing
        try:
            await api.update(obj)
            return True, missing
        except errors.ConflictError:
            if attempt == WRITE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
