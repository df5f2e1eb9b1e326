"""``sampan create``: create objects from files or from the command line.

``create -f FILE`` creates every object in the files (an existing one is an
error: ``Error from server (AlreadyExists): pods "web" already exists``;
the others go on). ``create namespace NAME``, ``create configmap NAME`` and
``create secret generic NAME`` build the object from flags, as kubectl's
generators do: ``--from-literal=key=value``, ``--from-file=[key=]path`` (a
directory adds each of its files). ``--dry-run=client`` only prints;
``-o yaml|json|name`` prints the object instead of ``kind/name created``.
``--save-config`` stores the last-applied annotation so ``apply`` can take over.
``create job NAME --from=cronjob/CRON`` runs a CronJob's job template now
(control/api/cronjob_jobs.py builds the Job, as the CronJob controller does).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from control.api import errors, kinds, manifest
from control.api.cronjob_jobs import INSTANTIATE, job_for_cronjob
from control.api.manifest import ManifestError
from control.cli.connection import connect, namespace_of, server_of
from control.cli.errors import CommandError, error_line, manifest_error_line, report
from control.cli.manifest_files import prepare_object, read_manifest_files
from control.cli.merge_patch import last_applied_value, with_last_applied
from control.cli.objects import kind_of, resource_ref
from control.cli.output import format_objects
from protos.api.v1 import core_pb2

# Kubernetes' rule for ConfigMap and Secret keys (IsConfigMapKey).
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
MAX_CONFIG_KEY_LENGTH = 253


async def run(args: argparse.Namespace) -> int:
    if args.what is None:
        if not args.filename:
            raise CommandError("error: must specify one of -f, or a kind to create "
                               "(namespace, configmap, secret generic, job)")
        return await create_from_files(args)
    if args.what == "job":
        return await create_job_from_cronjob(args)
    obj = build_object(args)
    if args.dry_run == "client":
        print(created_text(obj, output=args.output, dry_run=True), end="")
        return 0
    async with connect(args) as api:
        print(created_text(await api.create(obj), output=args.output), end="", flush=True)
    return 0


def created_text(obj: Message, *, output: str | None, dry_run: bool = False) -> str:
    """What create prints for an object: the object itself with -o, else ``kind/name created``."""
    if output:
        return format_objects([obj], output=output, single=True)
    return f"{resource_ref(kind_of(obj), obj.metadata.name)} created{' (dry run)' if dry_run else ''}\n"


async def create_from_files(args: argparse.Namespace) -> int:
    failed = False
    explicit = bool(args.namespace)
    async with connect(args) as api:
        for source in read_manifest_files(args.filename, recursive=args.recursive):
            try:
                objects = source.objects()
            except ManifestError as err:
                report(manifest_error_line(err, source=source.name))
                failed = True
                continue
            for obj in objects:
                try:
                    message = _message_for(obj, args=args, explicit_namespace=explicit)
                    if args.dry_run != "client":
                        message = await api.create(message)
                    print(created_text(message, output=args.output, dry_run=args.dry_run == "client"),
                          end="", flush=True)
                except errors.UnavailableError:
                    raise
                except ManifestError as err:
                    report(manifest_error_line(err, source=source.name))
                    failed = True
                except (errors.APIError, kinds.UnknownKindError, CommandError) as err:
                    report(error_line(err, server=server_of(args)) or str(err))
                    failed = True
    return 1 if failed else 0


def _message_for(obj: dict[str, Any], *, args: argparse.Namespace, explicit_namespace: bool) -> Message:
    kind = kind_of(manifest.to_message(obj))
    obj = prepare_object(obj, kind=kind, namespace=namespace_of(args), explicit_namespace=explicit_namespace,
                         require_name=False)
    if getattr(args, "save_config", False):
        obj = with_last_applied(obj, last_applied_value(obj))
    return manifest.to_message(obj)


async def create_job_from_cronjob(args: argparse.Namespace) -> int:
    """``create job NAME --from=cronjob/CRON``: run a CronJob's job template now, as kubectl does."""
    kind, slash, cronjob_name = args.from_object.partition("/")
    if not slash or not cronjob_name or kind.lower() not in ("cronjob", "cronjobs", "cj", "cronjob.batch"):
        raise CommandError(f"error: --from must be cronjob/NAME, not {args.from_object!r}")
    async with connect(args) as api:
        cronjob = await api.get("CronJob", cronjob_name, namespace=namespace_of(args))
        job = job_for_cronjob(cronjob, name=args.name, annotations={INSTANTIATE: "manual"},
                              block_owner_deletion=False)
        if args.dry_run != "client":
            job = await api.create(job)
        print(created_text(job, output=args.output, dry_run=args.dry_run == "client"), end="", flush=True)
    return 0


# ------------------------------------------------------------- generators


def build_object(args: argparse.Namespace) -> Message:
    """The object a ``create <kind> NAME`` command line describes."""
    if args.what == "namespace":
        ns = core_pb2.Namespace(api_version="v1", kind="Namespace")
        ns.metadata.name = args.name
        return ns
    data = collect_data(literals=args.from_literal, files=args.from_file, owner=f'{args.what} "{args.name}"')
    if args.what == "configmap":
        cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
        for key, value in data.items():
            try:
                cm.data[key] = value.decode("utf-8")
            except UnicodeDecodeError:
                cm.binary_data[key] = value
        obj: Message = cm
    else:
        secret = core_pb2.Secret(api_version="v1", kind="Secret", type=args.type)
        for key, value in data.items():
            secret.data[key] = value
        obj = secret
    obj.metadata.name = args.name
    obj.metadata.namespace = namespace_of(args)
    return obj


def collect_data(*, literals: list[str], files: list[str], owner: str) -> dict[str, bytes]:
    """Keys and values from --from-literal and --from-file, refusing bad or repeated keys."""
    data: dict[str, bytes] = {}

    def add(key: str, value: bytes) -> None:
        if not CONFIG_KEY.match(key) or len(key) > MAX_CONFIG_KEY_LENGTH or key in (".", ".."):
            raise CommandError(f'error: "{key}" is not a valid key name: a valid config key must consist of '
                               "alphanumeric characters, '-', '_' or '.'")
        if key in data:
            raise CommandError(f'error: cannot add key "{key}", another key by that name already exists '
                               f"in {owner}")
        data[key] = value

    for literal in literals:
        key, equals, value = literal.partition("=")
        if not equals or not key:
            raise CommandError(f'error: invalid literal source {literal}, expected key=value')
        add(key, value.encode())
    for given in files:
        key, equals, path_text = given.partition("=")
        if not equals:
            key, path_text = "", given
        path = Path(path_text)
        if path.is_dir():
            if key:
                raise CommandError(f'error: cannot give a key name for a directory path: {given}')
            for child in sorted(p for p in path.iterdir() if p.is_file()):
                add(child.name, child.read_bytes())
        elif path.is_file():
            add(key or path.name, path.read_bytes())
        else:
            raise CommandError(f'error: the path "{path_text}" does not exist')
    return data
