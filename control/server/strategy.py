"""Per-kind rules the API applies on create, update and delete.

Kubernetes calls these "strategies": what a new object's status starts as,
which kinds keep their status behind the status subresource, when a spec
change bumps metadata.generation. Each kind's rules are one small entry in
``STRATEGIES``; kinds without an entry get the defaults of ``Strategy``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from google.protobuf.message import Message

from control.api import kinds, quantity

# Namespaces that always exist and may not be deleted.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _reset_pod_status(pod: Message) -> None:
    """A new pod starts Pending with its QoS class; the agent owns the rest."""
    pod.ClearField("status")
    pod.status.phase = "Pending"
    pod.status.qos_class = qos_class(pod)


def _namespace_active(ns: Message) -> None:
    ns.status.phase = "Active"


@dataclass(frozen=True)
class Strategy:
    # Called on a new object after defaulting, before validation.
    prepare_for_create: Callable[[Message], None] | None = None


STRATEGIES: dict[str, Strategy] = {
    "Pod": Strategy(prepare_for_create=_reset_pod_status),
    "Namespace": Strategy(prepare_for_create=_namespace_active),
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
