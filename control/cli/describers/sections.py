"""Parts that kubectl's describers share: labels, annotations, taints,
tolerations, resources and the Events table, each printed as kubectl prints it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable, Mapping, Sequence

from google.protobuf.message import Message

from control.cli import durations
from control.cli.describers.writer import DescriptionWriter
from control.cli.merge_patch import LAST_APPLIED

NONE = "<none>"
# kubectl shortens longer annotation values and prints them on their own lines.
MAX_ANNOTATION_LENGTH = 140
# kubectl never shows apply's bookkeeping annotation.
HIDDEN_ANNOTATIONS = frozenset({LAST_APPLIED})


def labels_multiline(w: DescriptionWriter, labels: Mapping[str, str], *, title: str = "Labels",
                     initial_indent: str = "", inner_indent: str = "\t") -> None:
    """``Labels:  a=b`` then one ``key=value`` a line, aligned, sorted; <none> when empty."""
    w.write(0, f"{initial_indent}{title}:{inner_indent}")
    if not labels:
        w.line(0, NONE)
        return
    for index, key in enumerate(sorted(labels)):
        if index:
            w.write(0, initial_indent + inner_indent)
        w.line(0, f"{key}={labels[key]}")


def annotations_multiline(w: DescriptionWriter, annotations: Mapping[str, str], *, title: str = "Annotations") -> None:
    w.write(0, f"{title}:\t")
    keys = sorted(key for key in annotations if key not in HIDDEN_ANNOTATIONS)
    if not keys:
        w.line(0, NONE)
        return
    for index, key in enumerate(keys):
        if index:
            w.write(0, "\t")
        value = annotations[key].removesuffix("\n")
        if len(value) + len(key) + 2 > MAX_ANNOTATION_LENGTH or "\n" in value:
            w.line(0, f"{key}:")
            for part in value.split("\n"):
                w.line(0, f"\t  {_shorten(part, MAX_ANNOTATION_LENGTH - 2)}")
        else:
            w.line(0, f"{key}: {value}")


def _shorten(text: str, length: int) -> str:
    return text[:length] + "..." if len(text) > length else text


def taints_multiline(w: DescriptionWriter, taints: Sequence[Message], *, title: str = "Taints") -> None:
    w.write(0, f"{title}:\t")
    if not taints:
        w.line(0, NONE)
        return
    for index, taint in enumerate(taints):
        if index:
            w.write(0, "\t")
        value = f"={taint.value}" if taint.value else ""
        w.line(0, f"{taint.key}{value}:{taint.effect}")


def tolerations_multiline(w: DescriptionWriter, tolerations: Sequence[Message], *, title: str = "Tolerations") -> None:
    w.write(0, f"{title}:\t")
    if not tolerations:
        w.line(0, NONE)
        return
    for index, toleration in enumerate(sorted(tolerations, key=lambda t: t.key)):
        if index:
            w.write(0, "\t")
        text = toleration.key
        if toleration.value:
            text += f"={toleration.value}"
        if toleration.effect:
            text += f":{toleration.effect}"
        # An Exists toleration without a key tolerates everything.
        if toleration.operator == "Exists" and not toleration.value:
            text += " op=Exists" if toleration.key or toleration.effect else "op=Exists"
        if toleration.HasField("toleration_seconds"):
            text += f" for {toleration.toleration_seconds}s"
        w.line(0, text)


def resource_requirements(w: DescriptionWriter, requirements: Message, *, level: int) -> None:
    for title, values in (("Limits", requirements.limits), ("Requests", requirements.requests)):
        if values:
            w.line(level, f"{title}:")
            for name in sorted(values):
                w.line(level + 1, f"{name}:\t{values[name]}")


def conditions_table(w: DescriptionWriter, conditions: Iterable[Message]) -> None:
    """Pods' two-column Conditions table."""
    conditions = list(conditions)
    if conditions:
        w.line(0, "Conditions:")
        w.line(1, "Type\tStatus")
        for condition in conditions:
            w.line(1, f"{condition.type} \t{condition.status} ")


def _event_time(event: Message) -> str:
    return event.last_timestamp or event.event_time or event.first_timestamp


def sort_events(events: Iterable[Message]) -> list[Message]:
    """kubectl's SortableEvents: by lastTimestamp, oldest first."""
    epoch = datetime.min.replace(tzinfo=durations.now().tzinfo)
    return sorted(events, key=lambda e: durations.parse_timestamp(_event_time(e)) or epoch)


def events_section(w: DescriptionWriter, events: Sequence[Message], *, now: datetime) -> None:
    """The Events table (Type Reason Age From Message), or ``Events: <none>``."""
    if not events:
        w.line(0, f"Events:\t{NONE}")
        return
    w.flush()
    w.line(0, "Events:")
    w.line(1, "Type\tReason\tAge\tFrom\tMessage")
    w.line(1, "----\t------\t----\t----\t-------")
    for event in sort_events(events):
        first_seen = durations.age(event.event_time or event.first_timestamp, at=now)
        if event.count > 1:
            interval = f"{durations.age(event.last_timestamp, at=now)} (x{event.count} over {first_seen})"
        else:
            interval = first_seen
        source = event.source.component or event.reporting_component
        w.line(1, f"{event.type}\t{event.reason}\t{interval}\t{source}\t{event.message.strip()}")
