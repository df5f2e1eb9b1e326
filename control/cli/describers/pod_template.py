"""The ``Pod Template:`` section every workload's description has (kubectl's DescribePodTemplate).

Labels and annotations, service account, init containers and containers
(with pod.py's container and volume sections, indented as kubectl indents a
template's), volumes, priority class, node selectors and tolerations. The
other parts the workload describers share are here too: the ``Selector:``
text, ``Controlled By:``, the three-column Conditions table and ``Pods
Status:`` counted from the workload's pods.
"""

from __future__ import annotations

from typing import Sequence

from google.protobuf.message import Message

from control.cli.describers import sections
from control.cli.describers.pod import describe_containers, describe_volumes
from control.cli.describers.writer import DescriptionWriter
from control.cli.workload_cells import controller_of, format_label_selector

SPACE = "  "


def pod_template_section(w: DescriptionWriter, template: Message) -> None:
    w.line(0, "Pod Template:")
    meta, spec = template.metadata, template.spec
    sections.labels_multiline(w, meta.labels, title=f"{SPACE}Labels")
    if meta.annotations:
        sections.annotations_multiline(w, meta.annotations, title=f"{SPACE}Annotations")
    if spec.service_account_name:
        w.line(1, f"Service Account:\t{spec.service_account_name}")
    if spec.init_containers:
        describe_containers(w, spec.init_containers, title="Init Containers", space=SPACE)
    describe_containers(w, spec.containers, title="Containers", space=SPACE)
    describe_volumes(w, spec.volumes, space=SPACE)
    if spec.priority_class_name:
        w.line(1, f"Priority Class Name:\t{spec.priority_class_name}")
    sections.labels_multiline(w, spec.node_selector, title=f"{SPACE}Node-Selectors")
    sections.tolerations_multiline(w, spec.tolerations, title=f"{SPACE}Tolerations")


def selector_line(w: DescriptionWriter, spec: Message) -> None:
    w.line(0, f"Selector:\t{format_label_selector(spec.selector, present=spec.HasField('selector'))}")


def controlled_by_line(w: DescriptionWriter, obj: Message) -> None:
    controller = controller_of(obj)
    if controller is not None:
        w.line(0, f"Controlled By:\t{controller.kind}/{controller.name}")


def conditions_section(w: DescriptionWriter, conditions: Sequence[Message]) -> None:
    """The workloads' Conditions table: Type, Status, Reason."""
    if not conditions:
        return
    w.line(0, "Conditions:")
    w.line(1, "Type\tStatus\tReason")
    w.line(1, "----\t------\t------")
    for condition in conditions:
        w.line(1, f"{condition.type} \t{condition.status}\t{condition.reason}")


def pods_status_line(w: DescriptionWriter, pods: Sequence[Message] | None) -> None:
    """``Pods Status:`` by phase (Pending counts as Waiting); left out when the pods are not known."""
    if pods is None:
        return
    phases = [pod.status.phase for pod in pods]
    w.line(0, f"Pods Status:\t{phases.count('Running')} Running / {phases.count('Pending')} Waiting / "
              f"{phases.count('Succeeded')} Succeeded / {phases.count('Failed')} Failed")
