"""What every workload controller needs to know about the pods it owns.

Creating a pod from a template with the owner's controlling reference, and
reading a pod's state the way Kubernetes' controllers do: active (counts
towards replicas), ready, available (ready for minReadySeconds).
"""

from __future__ import annotations

from google.protobuf.message import Message

from control.api import kinds
from control.api.timestamps import parse_time
from protos.api.v1 import core_pb2, meta_pb2


def owner_reference(owner: Message) -> meta_pb2.OwnerReference:
    """A controlling, deletion-blocking reference to owner (as controllers set on what they create)."""
    kind = kinds.by_type_url(kinds.TYPE_URL_PREFIX + owner.DESCRIPTOR.full_name)
    return meta_pb2.OwnerReference(api_version=kind.api_version, kind=kind.kind, name=owner.metadata.name,
                                   uid=owner.metadata.uid, controller=True, block_owner_deletion=True)


def is_controlled_by(obj: Message, owner: Message) -> bool:
    return any(ref.controller and ref.uid == owner.metadata.uid for ref in obj.metadata.owner_references)


def pod_from_template(template: core_pb2.PodTemplateSpec, owner: Message, *, name: str = "",
                      generate_name: str = "") -> core_pb2.Pod:
    """A new pod in owner's namespace: template's labels, annotations and spec, controlled by owner.

    Give name for a stable name (StatefulSets) or generate_name for the
    API to complete (ReplicaSets, Jobs, DaemonSets use "OWNER-").
    """
    pod = core_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.namespace = owner.metadata.namespace
    if name:
        pod.metadata.name = name
    else:
        pod.metadata.generate_name = generate_name or f"{owner.metadata.name}-"
    pod.metadata.labels.update(template.metadata.labels)
    pod.metadata.annotations.update(template.metadata.annotations)
    pod.metadata.finalizers.extend(template.metadata.finalizers)
    pod.metadata.owner_references.append(owner_reference(owner))
    pod.spec.CopyFrom(template.spec)
    return pod


def is_terminating(pod: core_pb2.Pod) -> bool:
    return pod.metadata.HasField("deletion_timestamp")


def is_finished(pod: core_pb2.Pod) -> bool:
    return pod.status.phase in ("Succeeded", "Failed")


def is_active(pod: core_pb2.Pod) -> bool:
    """Counts towards a controller's replicas: neither finished nor being deleted."""
    return not is_finished(pod) and not is_terminating(pod)


def ready_since(pod: core_pb2.Pod) -> float | None:
    """When the pod last became Ready (epoch seconds), or None if it is not Ready."""
    for condition in pod.status.conditions:
        if condition.type == "Ready":
            if condition.status != "True":
                return None
            return parse_time(condition.last_transition_time)
    return None


def is_ready(pod: core_pb2.Pod) -> bool:
    return ready_since(pod) is not None


def is_available(pod: core_pb2.Pod, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least min_ready_seconds (Kubernetes' podutil.IsPodAvailable)."""
    since = ready_since(pod)
    if since is None:
        return False
    return min_ready_seconds <= 0 or since + min_ready_seconds <= now
