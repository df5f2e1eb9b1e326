"""``describe`` for Roles, ClusterRoles and their bindings, as kubectl prints them.

A role's PolicyRule table has one row per resource and API group
(``deployments.apps``) or per non-resource URL, the resource names and verbs
in Go's list notation (``[get list]``), sorted by resource. A binding shows
its Role reference and a table of its subjects.
"""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from google.protobuf.message import Message

from control.cli.describers import sections
from control.cli.describers.writer import DescriptionWriter


def _go_list(values: Sequence[str]) -> str:
    return "[" + " ".join(values) + "]"


def rule_rows(rules: Sequence[Message]) -> list[tuple[str, str, str, str]]:
    """(resources, non-resource URLs, resource names, verbs) per resource of each rule, sorted."""
    rows = []
    for rule in rules:
        names, verbs = _go_list(rule.resource_names), _go_list(rule.verbs)
        for group in rule.api_groups:
            for resource in rule.resources:
                rows.append((f"{resource}.{group}" if group else resource, "[]", names, verbs))
        for url in rule.non_resource_urls:
            rows.append(("", f"[{url}]", names, verbs))
    return sorted(rows)


def _header(w: DescriptionWriter, obj: Message) -> None:
    w.line(0, f"Name:\t{obj.metadata.name}")
    sections.labels_multiline(w, obj.metadata.labels)
    sections.annotations_multiline(w, obj.metadata.annotations)


def describe_role(role: Message, *, events: Sequence[Message] | None, now: datetime) -> str:
    w = DescriptionWriter()
    _header(w, role)
    w.line(0, "PolicyRule:")
    w.line(1, "Resources\tNon-Resource URLs\tResource Names\tVerbs")
    w.line(1, "---------\t-----------------\t--------------\t-----")
    for row in rule_rows(role.rules):
        w.line(1, "\t".join(row))
    return w.text()


def describe_binding(binding: Message, *, events: Sequence[Message] | None, now: datetime) -> str:
    w = DescriptionWriter()
    _header(w, binding)
    w.line(0, "Role:")
    w.line(1, f"Kind:\t{binding.role_ref.kind}")
    w.line(1, f"Name:\t{binding.role_ref.name}")
    w.line(0, "Subjects:")
    w.line(1, "Kind\tName\tNamespace")
    w.line(1, "----\t----\t---------")
    for subject in binding.subjects:
        w.line(1, f"{subject.kind}\t{subject.name}\t{subject.namespace}")
    return w.text()
