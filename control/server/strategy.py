"""Per-kind rules the API applies on create, update and delete.

Kubernetes calls these "strategies": what a new object's status starts as,
which kinds keep their status behind the status subresource, when a spec
change bumps metadata.generation. Each kind's rules are one small entry in
``STRATEGIES``; kinds without an entry get the defaults of ``Strategy``.

Every workload kind starts with an empty status, which only its controller
writes after that (through the status subresource, ``Kind.has_status``). A
new Job also gets the selector Kubernetes generates for it unless it sets
``manualSelector``: its pod template is labelled with the Job's uid and name
(both label spellings, control/api/job_labels.py) and the selector matches
the uid, so the Job owns exactly the pods it creates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from google.protobuf.message import Message

from control.api import job_labels, kinds, quantity
from control.server import allocators

# Namespaces that always exist and may not be deleted.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _reset_pod_status(pod: Message) -> None:
    """A new pod starts Pending with its QoS class; the agent owns the rest."""
    pod.ClearField("status")
    pod.status.phase = "Pending"
    pod.status.qos_class = qos_class(pod)


def _namespace_active(ns: Message) -> None:
    ns.status.phase = "Active"


def _clear_status(obj: Message) -> None:
    """A new workload's status is its controller's to write, starting from nothing."""
    obj.ClearField("status")


def _prepare_job(job: Message) -> None:
    _clear_status(job)
    if job.spec.manual_selector:
        return
    # A Job without labels of its own took its template's (defaults.py); it
    # shows the generated ones too, as a Kubernetes Job does once read back.
    inherited = dict(job.metadata.labels) == dict(job.spec.template.metadata.labels)
    generate_job_selector(job)
    if inherited:
        job.metadata.labels.update(job.spec.template.metadata.labels)


def generate_job_selector(job: Message) -> None:
    """Label the Job's pod template with its uid and name and select on the uid.

    Labels the client already set are kept: if they disagree with the Job's
    uid or name, validation rejects the Job rather than this overwriting them.
    """
    meta, labels = job.metadata, job.spec.template.metadata.labels
    for key, value in ((job_labels.LEGACY_JOB_NAME_LABEL, meta.name), (job_labels.JOB_NAME_LABEL, meta.name),
                       (job_labels.LEGACY_CONTROLLER_UID_LABEL, meta.uid),
                       (job_labels.CONTROLLER_UID_LABEL, meta.uid)):
        if key not in labels:
            labels[key] = value
    match_labels = job.spec.selector.match_labels
    if job_labels.CONTROLLER_UID_LABEL not in match_labels:
        match_labels[job_labels.CONTROLLER_UID_LABEL] = meta.uid


@dataclass(frozen=True)
class Strategy:
    # Called on a new object after defaulting, once it has its name, uid and
    # creation timestamp, before validation.
    prepare_for_create: Callable[[Message], None] | None = None
    # Called on an update after defaulting, with the stored object, before validation.
    prepare_for_update: Callable[[Message, Message], None] | None = None


STRATEGIES: dict[str, Strategy] = {
    "Pod": Strategy(prepare_for_create=_reset_pod_status),
    "Namespace": Strategy(prepare_for_create=_namespace_active),
    "ReplicaSet": Strategy(prepare_for_create=_clear_status),
    "Deployment": Strategy(prepare_for_create=_clear_status),
    "DaemonSet": Strategy(prepare_for_create=_clear_status),
    "StatefulSet": Strategy(prepare_for_create=_clear_status),
    "Job": Strategy(prepare_for_create=_prepare_job),
    "CronJob": Strategy(prepare_for_create=_clear_status),
    "HorizontalPodAutoscaler": Strategy(prepare_for_create=_clear_status),
    # A request starts undecided: only the approver and the signer write its status.
    "CertificateSigningRequest": Strategy(prepare_for_create=_clear_status),
    # A Service's status is its load balancer's; an update keeps the allocated cluster IP and node ports.
    "Service": Strategy(prepare_for_create=_clear_status, prepare_for_update=allocators.keep_allocated_values),
}


def strategy_for(kind: kinds.Kind) -> Strategy:
    return STRATEGIES.get(kind.kind, Strategy())


def has_spec(kind: kinds.Kind) -> bool:
    """Kinds with a spec track metadata.generation."""
    return "spec" in kind.message.DESCRIPTOR.fields_by_name


def desired_state(obj: Message) -> Message:
    """The part of an object whose change bumps generation: all but metadata and status."""
    copy = type(obj)()
    copy.CopyFrom(obj)
    copy.ClearField("metadata")
    if "status" in copy.DESCRIPTOR.fields_by_name:
        copy.ClearField("status")
    return copy


def qos_class(pod: Message) -> str:
    """Kubernetes' pod QoS class from the containers' requests and limits."""
    containers = list(pod.spec.containers) + list(pod.spec.init_containers)
    any_set = False
    guaranteed = True
    for container in containers:
        requests = dict(container.resources.requests)
        limits = dict(container.resources.limits)
        if requests or limits:
            any_set = True
        for resource in ("cpu", "memory"):
            limit = limits.get(resource)
            request = requests.get(resource, limit)
            if limit is None or request is None:
                guaranteed = False
            elif quantity.parse_quantity(request) != quantity.parse_quantity(limit):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
