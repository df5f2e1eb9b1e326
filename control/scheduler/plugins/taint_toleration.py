"""TaintToleration: a node's NoSchedule and NoExecute taints keep away every
pod that does not tolerate them; PreferNoSchedule taints only lower the
node's score, by how many of them the pod does not tolerate."""

from __future__ import annotations

from typing import Iterable, Sequence

from control.scheduler.framework import MAX_NODE_SCORE, SUCCESS, CycleState, NodeInfo, Status
from protos.api.v1 import core_pb2

NAME = "TaintToleration"
FILTERED_EFFECTS = ("NoSchedule", "NoExecute")


def tolerates(toleration: core_pb2.Toleration, taint: core_pb2.Taint) -> bool:
    """Kubernetes' ToleratesTaint: an empty effect matches every effect, an
    empty key with Exists matches every taint, Equal (the default) compares values."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    if toleration.operator == "Exists":
        return True
    if toleration.operator in ("", "Equal"):
        return bool(toleration.key) and toleration.value == taint.value
    return False


def untolerated_taint(pod: core_pb2.Pod, node: core_pb2.Node,
                      effects: Iterable[str] = FILTERED_EFFECTS) -> core_pb2.Taint | None:
    """The node's first taint with one of effects that the pod does not tolerate."""
    taints = node.spec.taints
    if not taints:
        return None
    effects = tuple(effects)
    for taint in taints:
        if taint.effect in effects and not any(tolerates(t, taint) for t in pod.spec.tolerations):
            return taint
    return None


def fits(pod: core_pb2.Pod, node: core_pb2.Node) -> bool:
    return untolerated_taint(pod, node) is None


def reason(taint: core_pb2.Taint) -> str:
    return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"


def intolerable_preferences(pod: core_pb2.Pod, node: core_pb2.Node) -> int:
    """How many PreferNoSchedule taints of the node the pod does not tolerate."""
    if not node.spec.taints:
        return 0
    tolerations = [t for t in pod.spec.tolerations if t.effect in ("", "PreferNoSchedule")]
    return sum(1 for taint in node.spec.taints
               if taint.effect == "PreferNoSchedule" and not any(tolerates(t, taint) for t in tolerations))


class TaintToleration:
    name = NAME

    def filter(self, pod: core_pb2.Pod, node_info: NodeInfo, state: CycleState) -> Status:
        taint = untolerated_taint(pod, node_info.node)
        return SUCCESS if taint is None else Status.unschedulable(reason(taint))

    def filter_all(self, pod: core_pb2.Pod, nodes: Sequence[NodeInfo], state: CycleState) -> list[tuple[int, Status]]:
        rejected = []
        for index, info in enumerate(nodes):
            if info.taints:  # most nodes have none
                taint = untolerated_taint(pod, info.node)
                if taint is not None:
                    rejected.append((index, Status.unschedulable(reason(taint))))
        return rejected

    def score(self, pod: core_pb2.Pod, node_info: NodeInfo, state: CycleState) -> int:
        return intolerable_preferences(pod, node_info.node)

    def score_all(self, pod: core_pb2.Pod, nodes: Sequence[NodeInfo], state: CycleState) -> list[int]:
        return [intolerable_preferences(pod, info.node) if info.taints else 0 for info in nodes]

    def normalize(self, scores: dict[str, int], pod: core_pb2.Pod, state: CycleState) -> dict[str, int]:
        # Fewer intolerable taints is better: the worst node gets 0.
        worst = max(scores.values(), default=0)
        if worst == 0:
            return {name: MAX_NODE_SCORE for name in scores}
        return {name: MAX_NODE_SCORE - value * MAX_NODE_SCORE // worst for name, value in scores.items()}


def new() -> TaintToleration:
    return TaintToleration()
