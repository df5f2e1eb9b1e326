"""``-o yaml``, ``-o json`` and ``-o name``: objects as documents.

One object prints as itself; several print as kubectl's ``kind: List``
wrapper (apiVersion v1, items, kind List, metadata.resourceVersion ""), the
same shape kubectl gives, so the output can be applied again. Documents are
the manifest module's dicts: only fields that are set, Kubernetes' JSON
names and key order, apiVersion and kind always present.
"""

from __future__ import annotations

from typing import Any, Sequence

from google.protobuf.message import Message

from control.api import manifest
from control.cli.objects import kind_of, resource_ref, with_type_meta

STRUCTURED_FORMATS = ("yaml", "json")


def object_dict(obj: Message) -> dict[str, Any]:
    return manifest.to_dict(with_type_meta(obj))


def list_document(objects: Sequence[Message]) -> dict[str, Any]:
    """kubectl's List wrapper around several objects."""
    return {
        "apiVersion": "v1",
        "items": [object_dict(obj) for obj in objects],
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    }


def dump(document: dict[str, Any], *, output: str) -> str:
    """A document as YAML or JSON text, ending with a newline."""
    text = manifest.dump_yaml(document) if output == "yaml" else manifest.dump_json(document)
    return text if text.endswith("\n") else text + "\n"


def format_objects(objects: Sequence[Message], *, output: str, single: bool) -> str:
    """The objects in a structured format: one object alone only when ``single``."""
    if output == "name":
        return "".join(name_line(obj) for obj in objects)
    if single and len(objects) == 1:
        return dump(object_dict(objects[0]), output=output)
    return dump(list_document(objects), output=output)


def name_line(obj: Message) -> str:
    return resource_ref(kind_of(obj), obj.metadata.name) + "\n"  # type: ignore[attr-defined]
