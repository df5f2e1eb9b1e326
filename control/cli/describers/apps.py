"""``describe`` for Deployments, ReplicaSets, DaemonSets and StatefulSets, laid out as kubectl's.

A Deployment: its replica counts on one line (``3 desired | 3 updated |
3 total | 3 available | 0 unavailable``), strategy, pod template, conditions,
and, when its ReplicaSets are given, which of them runs the current template
(NewReplicaSet) and which are older (OldReplicaSets), each with created/desired
replicas. The others: their counts, ``Pods Status`` from the pods they
control (when given), pod template and, for a ReplicaSet, its conditions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from google.protobuf.message import Message

from control.api.deployments import equal_ignoring_hash
from control.cli import durations
from control.cli.describers import sections
from control.cli.describers.pod_template import (
    conditions_section, controlled_by_line, pod_template_section, pods_status_line, selector_line,
)
from control.cli.describers.writer import DescriptionWriter
from control.cli.workload_cells import controller_of, format_labels

NONE = sections.NONE


def _int_or_string(value: Message) -> str:
    return value.str_value if value.WhichOneof("value") == "str_value" else str(value.int_value)


def _header(w: DescriptionWriter, obj: Message, *, created: bool = False) -> None:
    w.line(0, f"Name:\t{obj.metadata.name}")
    w.line(0, f"Namespace:\t{obj.metadata.namespace}")
    if created:
        w.line(0, f"CreationTimestamp:\t{durations.rfc1123z(obj.metadata.creation_timestamp)}")


def _labels_and_annotations(w: DescriptionWriter, obj: Message) -> None:
    sections.labels_multiline(w, obj.metadata.labels)
    sections.annotations_multiline(w, obj.metadata.annotations)


def _events(w: DescriptionWriter, events: Sequence[Message] | None, now: datetime) -> None:
    if events is not None:
        sections.events_section(w, events, now=now)


# ---------------------------------------------------------------- Deployment


def describe_deployment(deployment: Message, *, events: Sequence[Message] | None, now: datetime,
                        pods: Sequence[Message] | None = None,
                        replica_sets: Sequence[Message] | None = None) -> str:
    w = DescriptionWriter()
    spec, status = deployment.spec, deployment.status
    _header(w, deployment, created=True)
    _labels_and_annotations(w, deployment)
    selector_line(w, spec)
    w.line(0, f"Replicas:\t{spec.replicas} desired | {status.updated_replicas} updated | {status.replicas} total | "
              f"{status.available_replicas} available | {status.unavailable_replicas} unavailable")
    w.line(0, f"StrategyType:\t{spec.strategy.type}")
    w.line(0, f"MinReadySeconds:\t{spec.min_ready_seconds}")
    if spec.strategy.HasField("rolling_update"):
        rolling = spec.strategy.rolling_update
        w.line(0, f"RollingUpdateStrategy:\t{_int_or_string(rolling.max_unavailable)} max unavailable, "
                  f"{_int_or_string(rolling.max_surge)} max surge")
    pod_template_section(w, spec.template)
    conditions_section(w, status.conditions)
    if replica_sets is not None:
        new, old = split_replica_sets(deployment, replica_sets)
        if new is not None or old:
            w.line(0, f"OldReplicaSets:\t{_replica_sets_text(old)}")
            w.line(0, f"NewReplicaSet:\t{_replica_sets_text([new] if new is not None else [])}")
    _events(w, events, now)
    return w.text()


def split_replica_sets(deployment: Message, replica_sets: Sequence[Message]) -> tuple[Message | None, list[Message]]:
    """The Deployment's own ReplicaSets: the one whose template is the Deployment's (oldest first
    if several), and the others, by creation."""
    owned = sorted((rs for rs in replica_sets if (ref := controller_of(rs)) is not None
                    and ref.uid == deployment.metadata.uid),
                   key=lambda rs: (rs.metadata.creation_timestamp, rs.metadata.name))
    new = next((rs for rs in owned if equal_ignoring_hash(rs.spec.template, deployment.spec.template)), None)
    return new, [rs for rs in owned if rs is not new]


def _replica_sets_text(replica_sets: Sequence[Message]) -> str:
    text = ", ".join(f"{rs.metadata.name} ({rs.status.replicas}/{rs.spec.replicas} replicas created)"
                     for rs in replica_sets)
    return text or NONE


# ---------------------------------------------------------------- ReplicaSet


def describe_replica_set(rs: Message, *, events: Sequence[Message] | None, now: datetime,
                         pods: Sequence[Message] | None = None,
                         replica_sets: Sequence[Message] | None = None) -> str:
    w = DescriptionWriter()
    _header(w, rs)
    selector_line(w, rs.spec)
    _labels_and_annotations(w, rs)
    controlled_by_line(w, rs)
    w.line(0, f"Replicas:\t{rs.status.replicas} current / {rs.spec.replicas} desired")
    pods_status_line(w, pods)
    pod_template_section(w, rs.spec.template)
    conditions_section(w, rs.status.conditions)
    _events(w, events, now)
    return w.text()


# ----------------------------------------------------------------- DaemonSet


def describe_daemon_set(ds: Message, *, events: Sequence[Message] | None, now: datetime,
                        pods: Sequence[Message] | None = None,
                        replica_sets: Sequence[Message] | None = None) -> str:
    w = DescriptionWriter()
    status = ds.status
    _header(w, ds)
    selector_line(w, ds.spec)
    w.line(0, f"Node-Selector:\t{format_labels(ds.spec.template.spec.node_selector)}")
    _labels_and_annotations(w, ds)
    # kubectl writes these without a tab: they do not line up with the rest.
    w.line(0, f"Desired Number of Nodes Scheduled: {status.desired_number_scheduled}")
    w.line(0, f"Current Number of Nodes Scheduled: {status.current_number_scheduled}")
    w.line(0, f"Number of Nodes Scheduled with Up-to-date Pods: {status.updated_number_scheduled}")
    w.line(0, f"Number of Nodes Scheduled with Available Pods: {status.number_available}")
    w.line(0, f"Number of Nodes Misscheduled: {status.number_misscheduled}")
    pods_status_line(w, pods)
    pod_template_section(w, ds.spec.template)
    _events(w, events, now)
    return w.text()


# --------------------------------------------------------------- StatefulSet


def describe_stateful_set(sts: Message, *, events: Sequence[Message] | None, now: datetime,
                          pods: Sequence[Message] | None = None,
                          replica_sets: Sequence[Message] | None = None) -> str:
    w = DescriptionWriter()
    spec = sts.spec
    _header(w, sts, created=True)
    selector_line(w, spec)
    _labels_and_annotations(w, sts)
    w.line(0, f"Replicas:\t{spec.replicas} desired | {sts.status.replicas} total")
    w.line(0, f"Update Strategy:\t{spec.update_strategy.type}")
    rolling = spec.update_strategy.rolling_update
    if spec.update_strategy.HasField("rolling_update") and rolling.HasField("partition"):
        w.line(1, f"Partition:\t{rolling.partition}")
        if rolling.HasField("max_unavailable"):
            w.line(1, f"MaxUnavailable:\t{_int_or_string(rolling.max_unavailable)}")
    pods_status_line(w, pods)
    pod_template_section(w, spec.template)
    w.line(0, f"Volume Claims:\t{NONE}")
    _events(w, events, now)
    return w.text()
