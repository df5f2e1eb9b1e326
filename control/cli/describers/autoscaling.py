"""``describe`` for HorizontalPodAutoscalers, laid out as kubectl's.

Its target, each metric as current / target (``<unknown>`` until the
autoscaler has measured), replica bounds, behavior rules when given, current
and desired replicas, and conditions with their messages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from google.protobuf.message import Message

from control.cli import durations
from control.cli.describers import sections
from control.cli.describers.writer import DescriptionWriter

UNSET = "<unset>"


def describe_horizontal_pod_autoscaler(hpa: Message, *, events: Sequence[Message] | None, now: datetime,
                                       pods: Sequence[Message] | None = None,
                                       replica_sets: Sequence[Message] | None = None) -> str:
    w = DescriptionWriter()
    spec, status = hpa.spec, hpa.status
    w.line(0, f"Name:\t{hpa.metadata.name}")
    w.line(0, f"Namespace:\t{hpa.metadata.namespace}")
    sections.labels_multiline(w, hpa.metadata.labels)
    sections.annotations_multiline(w, hpa.metadata.annotations)
    w.line(0, f"CreationTimestamp:\t{durations.rfc1123z(hpa.metadata.creation_timestamp)}")
    w.line(0, f"Reference:\t{spec.scale_target_ref.kind}/{spec.scale_target_ref.name}")
    w.line(0, "Metrics:\t( current / target )")
    for i, metric in enumerate(spec.metrics):
        current = status.current_metrics[i].resource.current if i < len(status.current_metrics) else None
        target, name = metric.resource.target, metric.resource.name
        if target.HasField("average_value"):
            value = current.average_value if current is not None and current.average_value else "<unknown>"
            w.line(1, f"resource {name} on pods:\t{value} / {target.average_value}")
        else:
            value = "<unknown>"
            if current is not None and current.HasField("average_utilization"):
                value = f"{current.average_utilization}% ({current.average_value or '0'})"
            wanted = f"{target.average_utilization}%" if target.HasField("average_utilization") else "<auto>"
            w.line(1, f"resource {name} on pods  (as a percentage of request):\t{value} / {wanted}")
    w.line(0, f"Min replicas:\t{spec.min_replicas if spec.HasField('min_replicas') else UNSET}")
    w.line(0, f"Max replicas:\t{spec.max_replicas}")
    if spec.HasField("behavior"):
        w.line(0, "Behavior:")
        for title, field in (("Scale Up", "scale_up"), ("Scale Down", "scale_down")):
            if spec.behavior.HasField(field):
                _scaling_rules(w, title, getattr(spec.behavior, field))
    w.line(0, f"{spec.scale_target_ref.kind} pods:\t{status.current_replicas} current / "
              f"{status.desired_replicas} desired")
    if status.conditions:
        w.line(0, "Conditions:")
        w.line(1, "Type\tStatus\tReason\tMessage")
        w.line(1, "----\t------\t------\t-------")
        for condition in status.conditions:
            w.line(1, f"{condition.type}\t{condition.status}\t{condition.reason}\t{condition.message}")
    if events is not None:
        sections.events_section(w, events, now=now)
    return w.text()


def _scaling_rules(w: DescriptionWriter, title: str, rules: Message) -> None:
    w.line(1, f"{title}:")
    if rules.HasField("stabilization_window_seconds"):
        w.line(2, f"Stabilization Window: {rules.stabilization_window_seconds} seconds")
    if rules.policies:
        w.line(2, f"Select Policy: {rules.select_policy if rules.HasField('select_policy') else UNSET}")
        w.line(2, "Policies:")
        for policy in rules.policies:
            w.line(3, f"- Type: {policy.type}\tValue: {policy.value}\tPeriod: {policy.period_seconds} seconds")
