"""``describe`` for namespaces, config maps, secrets, and every other kind.

Namespace, ConfigMap and Secret follow kubectl's own describers (a secret's
values are never printed, only their sizes). Any other kind gets kubectl's
GenericDescriber: Name, Namespace, Labels and Annotations, then every other
field of the object, keys in sorted order, nested by indentation, named in
words ("holderIdentity" reads "Holder Identity").
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Sequence

from google.protobuf.message import Message

from control.cli import durations
from control.cli.describers import sections
from control.cli.describers.writer import DescriptionWriter
from control.cli.output import object_dict

# Fields the generic describer shows in its header or never shows.
GENERIC_SKIPPED = frozenset({
    ".metadata.name", ".metadata.namespace", ".metadata.labels", ".metadata.annotations",
    ".metadata.managedFields",
})
COMMON_ACRONYMS = frozenset({"API", "URL", "UID", "OSB", "GUID"})
_CAMEL_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def describe_namespace(ns: Message, *, events: Sequence[Message] | None, now: datetime) -> str:
    w = DescriptionWriter()
    w.line(0, f"Name:\t{ns.metadata.name}")
    sections.labels_multiline(w, ns.metadata.labels)
    sections.annotations_multiline(w, ns.metadata.annotations)
    w.line(0, f"Status:\t{ns.status.phase}")
    if ns.status.conditions:
        w.line(0, "Conditions:")
        w.line(1, "Type\tStatus\tLastTransitionTime\tReason\tMessage")
        w.line(1, "----\t------\t------------------\t------\t-------")
        for c in ns.status.conditions:
            w.line(1, f"{c.type}\t{c.status}\t{durations.rfc1123z(c.last_transition_time)}\t{c.reason}\t{c.message}")
    if events is not None:
        sections.events_section(w, events, now=now)
    return w.text()


def describe_configmap(cm: Message, *, events: Sequence[Message] | None, now: datetime) -> str:
    w = DescriptionWriter()
    _header(w, cm)
    w.write(0, "\nData\n====\n")
    for key in sorted(cm.data):
        w.write(0, f"{key}:\n----\n")
        w.write(0, f"{cm.data[key]}\n")
        w.write(0, "\n")
    w.write(0, "\nBinaryData\n====\n")
    for key in sorted(cm.binary_data):
        w.write(0, f"{key}: {len(cm.binary_data[key])} bytes\n")
    w.write(0, "\n")
    if events is not None:
        sections.events_section(w, events, now=now)
    return w.text()


def describe_secret(secret: Message, *, events: Sequence[Message] | None, now: datetime) -> str:
    w = DescriptionWriter()
    _header(w, secret)
    w.write(0, f"\nType:\t{secret.type}\n")
    w.write(0, "\nData\n====\n")
    for key in sorted(secret.data):
        w.write(0, f"{key}:\t{len(secret.data[key])} bytes\n")
    if events is not None:
        w.write(0, "\n")
        sections.events_section(w, events, now=now)
    return w.text()


def describe_generic(obj: Message, *, events: Sequence[Message] | None, now: datetime) -> str:
    w = DescriptionWriter()
    _header(w, obj)
    _content(w, object_dict(obj), level=0, path="")
    if events is not None:
        sections.events_section(w, events, now=now)
    return w.text()


def _header(w: DescriptionWriter, obj: Message) -> None:
    w.line(0, f"Name:\t{obj.metadata.name}")
    w.line(0, f"Namespace:\t{obj.metadata.namespace}")
    sections.labels_multiline(w, obj.metadata.labels)
    sections.annotations_multiline(w, obj.metadata.annotations)


def _content(w: DescriptionWriter, content: dict[str, Any], *, level: int, path: str) -> None:
    for field in sorted(content):
        value = content[field]
        field_path = f"{path}.{field}"
        if field_path in GENERIC_SKIPPED:
            continue
        if isinstance(value, dict):
            w.line(level, f"{smart_label(field)}:")
            _content(w, value, level=level + 1, path=field_path)
        elif isinstance(value, list):
            w.line(level, f"{smart_label(field)}:")
            for item in value:
                if isinstance(item, dict):
                    _content(w, item, level=level + 1, path=field_path)
                else:
                    w.line(level + 1, _scalar(item))
        else:
            w.line(level, f"{smart_label(field)}:\t{_scalar(value)}")


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "<nil>" if value is None else str(value)


def smart_label(field: str) -> str:
    """kubectl's smartLabelFor: camelCase as capitalised words, acronyms kept ("API Version")."""
    if any(not (ch.isalpha() or ch == "-") for ch in field):
        return field
    words = []
    for part in _CAMEL_PART.findall(field):
        words.append(part.upper() if part.upper() in COMMON_ACRONYMS else part[:1].upper() + part[1:])
    return " ".join(words)
