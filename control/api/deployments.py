"""How a Deployment's rollouts are recorded on its ReplicaSets, for the controller and the CLI alike.

The deployment controller keeps one ReplicaSet per pod template it has
rolled out; ``sampan rollout history`` and ``undo`` read them back. Both
sides need the same names and the same notion of "the same template":

- the ``pod-template-hash`` label, which the controller adds to each
  ReplicaSet's selector, template and pods (so ReplicaSets of one Deployment
  never fight over pods) and which is not part of the Deployment's template;
- the annotations the controller writes on ReplicaSets (revision, desired and
  max replicas, revision history), which are never copied from a Deployment
  to its ReplicaSets nor back on rollback;
- ``equal_ignoring_hash``: two templates are the same rollout when they are
  equal once the hash label is dropped.

Percentages of replicas (maxSurge, maxUnavailable) are resolved here too,
with Kubernetes' rounding, since the API's validation, the controller and the
CLI all read them.
"""

from __future__ import annotations

from google.protobuf.message import Message

from protos.api.v1 import core_pb2

POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"

# Annotations that belong to one object and are never copied between a
# Deployment and its ReplicaSets (either way).
UNCOPIED_ANNOTATIONS = frozenset({
    LAST_APPLIED_ANNOTATION, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION,
})


def revision_of(obj: Message) -> int:
    """The revision annotation as a number; 0 when absent or unreadable."""
    text = obj.metadata.annotations.get(REVISION_ANNOTATION, "")
    try:
        return int(text)
    except ValueError:
        return 0


def template_without_hash(template: core_pb2.PodTemplateSpec) -> core_pb2.PodTemplateSpec:
    """A copy of template without the pod-template-hash label."""
    copy = core_pb2.PodTemplateSpec()
    copy.CopyFrom(template)
    copy.metadata.labels.pop(POD_TEMPLATE_HASH_LABEL, None)
    return copy


def equal_ignoring_hash(a: core_pb2.PodTemplateSpec, b: core_pb2.PodTemplateSpec) -> bool:
    """Whether two pod templates are the same rollout (equal but for the pod-template-hash label)."""
    return template_without_hash(a) == template_without_hash(b)


def scaled_value(value: Message, total: int, *, round_up: bool) -> int:
    """An IntOrString (maxSurge, maxUnavailable) as a number of replicas out of total.

    A percentage is rounded up (maxSurge) or down (maxUnavailable), as
    Kubernetes does. An unset value is 0. Raises ValueError for a string
    that is not a percentage.
    """
    which = value.WhichOneof("value")
    if which is None:
        return 0
    if which == "int_value":
        return value.int_value
    text = value.str_value
    if not text.endswith("%") or not text[:-1].isdigit():
        raise ValueError(f"invalid value {text!r}: must be an integer or a percentage")
    hundredths = int(text[:-1]) * total
    return -(-hundredths // 100) if round_up else hundredths // 100
