"""``sampan apply -f``: make objects match manifests, as ``kubectl apply`` does.

For each object, in the order given (namespaces first, so a file may create
a namespace and fill it): create it when it does not exist, else send the
three-way merge patch between the manifest applied last time (kept in the
last-applied-configuration annotation), this manifest and the live object
(control.cli.merge_patch). Prints ``pod/web created``, ``configured`` or
``unchanged`` (the server keeps the resourceVersion when a patch changes
nothing). A bad manifest or a refused object prints one error line and the
others go on; the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
from typing import Any

from google.protobuf.message import Message

from control.api import errors, kinds, manifest
from control.api.manifest import ManifestError
from control.cli.connection import connect, namespace_of, server_of
from control.cli.errors import CommandError, error_line, manifest_error_line, report
from control.cli.manifest_files import prepare_object, read_manifest_files
from control.cli.merge_patch import (
    LAST_APPLIED,
    last_applied_value,
    parse_last_applied,
    three_way_merge_patch,
    with_last_applied,
)
from control.cli.objects import kind_of, resource_ref
from control.cli.output import object_dict
from control.client import Client

MISSING_ANNOTATION_WARNING = (
    "Warning: resource {plural}/{name} is missing the " + LAST_APPLIED + " annotation which is required by "
    "sampan apply. sampan apply should only be used on resources created declaratively by either "
    "sampan create --save-config or sampan apply. The missing annotation will be patched automatically."
)


async def run(args: argparse.Namespace) -> int:
    failed = False
    objects: list[tuple[str, dict[str, Any]]] = []
    for source in read_manifest_files(args.filename, recursive=args.recursive):
        try:
            objects.extend((source.name, obj) for obj in source.objects())
        except ManifestError as err:
            report(manifest_error_line(err, source=source.name))
            failed = True
    if not objects and not failed:
        raise CommandError("error: no objects passed to apply")
    # Stable: namespaces first, everything else in the order given.
    objects.sort(key=lambda item: item[1].get("kind") != "Namespace")
    async with connect(args) as api:
        for source, obj in objects:
            try:
                print(await apply_object(api, obj, source=source, namespace=namespace_of(args),
                                         explicit_namespace=bool(args.namespace)), flush=True)
            except errors.UnavailableError:
                raise
            except ManifestError as err:
                report(manifest_error_line(err, source=source))
                failed = True
            except (errors.APIError, kinds.UnknownKindError, CommandError) as err:
                report(_failure_line(err, obj, source=source, server=server_of(args)))
                failed = True
    return 1 if failed else 0


def _failure_line(err: Exception, obj: dict[str, Any], *, source: str, server: str) -> str:
    if isinstance(err, kinds.UnknownKindError):
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        return (f'error: resource mapping not found for name: "{meta.get("name", "")}" namespace: '
                f'"{meta.get("namespace", "")}" from "{source}": {err}')
    return error_line(err, server=server) or str(err)


def normalized(obj: dict[str, Any]) -> dict[str, Any]:
    """A manifest as the server would print it back (canonical quantities, base64 bytes ...).

    Comparing normalized documents keeps "cpu: 0.5" and the server's "500m"
    from looking like a change. A manifest that no longer converts is used as written.
    """
    try:
        return object_dict(manifest.to_message(obj))
    except (ManifestError, kinds.UnknownKindError):
        return obj


async def apply_object(api: Client, obj: dict[str, Any], *, source: str, namespace: str,
                       explicit_namespace: bool) -> str:
    """Create or patch one object; returns the line to print (``pod/web configured``)."""
    kind = kind_of(manifest.to_message(obj))
    obj = prepare_object(obj, kind=kind, namespace=namespace, explicit_namespace=explicit_namespace)
    name = obj["metadata"]["name"]
    scope = obj["metadata"].get("namespace", "") if kind.namespaced else ""
    desired = manifest.to_message(with_last_applied(obj, last_applied_value(obj)))
    ref = resource_ref(kind, name)
    try:
        current = await api.get(kind, name, namespace=scope)
    except errors.NotFoundError:
        await api.create(desired)
        return f"{ref} created"
    patch = patch_for(current, desired, plural=kind.plural)
    if not patch:
        return f"{ref} unchanged"
    updated = await api.patch(kind, name, patch, namespace=scope)
    changed = updated.metadata.resource_version != current.metadata.resource_version
    return f"{ref} {'configured' if changed else 'unchanged'}"


def patch_for(current: Message, desired: Message, *, plural: str) -> dict[str, Any]:
    """The three-way patch from the live object to the desired one."""
    annotation = current.metadata.annotations.get(LAST_APPLIED)
    if annotation is None:
        report(MISSING_ANNOTATION_WARNING.format(plural=plural, name=current.metadata.name))
    previous = parse_last_applied(annotation or "")
    return three_way_merge_patch(
        original=normalized(previous) if previous is not None else None,
        modified=object_dict(desired),
        current=object_dict(current),
    )
