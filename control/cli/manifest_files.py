"""``-f FILE|DIR|-``: where manifests come from, and their objects made ready to send.

A file is read as it is; a directory contributes its ``*.yaml``, ``*.yml``
and ``*.json`` files in sorted order (with ``-R``, those of its
subdirectories too); ``-`` is standard input, named "STDIN" in messages as
kubectl names it. Objects keep the order they were given in.

``prepare_object`` places an object as kubectl does: a namespaced object
without a namespace gets -n's (else "default"); one whose namespace
contradicts an explicit -n is refused.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from control.api import kinds, manifest
from control.cli.errors import CommandError

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN_NAME = "STDIN"


@dataclass(frozen=True)
class ManifestFile:
    name: str  # the path as given, or STDIN
    data: bytes

    def objects(self) -> list[dict[str, Any]]:
        """Every object in the file (ManifestError naming the file when unreadable)."""
        return manifest.load_documents(self.data, source=self.name)


def read_manifest_files(paths: Sequence[str], *, recursive: bool = False) -> list[ManifestFile]:
    files: list[ManifestFile] = []
    for given in paths:
        if given == "-":
            files.append(ManifestFile(STDIN_NAME, sys.stdin.buffer.read()))
            continue
        path = Path(given)
        if not path.exists():
            raise CommandError(f'error: the path "{given}" does not exist')
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix in MANIFEST_SUFFIXES)
            files.extend(ManifestFile(str(p), p.read_bytes()) for p in found)
        else:
            files.append(ManifestFile(given, path.read_bytes()))
    return files


def prepare_object(obj: dict[str, Any], *, kind: kinds.Kind, namespace: str, explicit_namespace: bool,
                   require_name: bool = True) -> dict[str, Any]:
    """A copy of the manifest as it will be sent: placed in its namespace, named (unless not required)."""
    obj = copy.deepcopy(obj)
    metadata = obj.setdefault("metadata", {})
    if require_name and not metadata.get("name"):
        raise CommandError(f'error: error when retrieving current configuration from "{kind.plural}": '
                           "resource name may not be empty")
    if kind.namespaced:
        given = metadata.get("namespace")
        if given and explicit_namespace and given != namespace:
            raise CommandError(
                f'error: the namespace from the provided object "{given}" does not match the namespace '
                f'"{namespace}". You must pass \'--namespace={given}\' to perform this operation.')
        metadata["namespace"] = given or namespace
    return obj
