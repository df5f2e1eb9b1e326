"""NodeAffinity: spec.nodeSelector and required node affinity filter nodes;
preferred node affinity scores them.

Required terms are ORed, the requirements inside a term ANDed; a term with
no requirement matches nothing, as in Kubernetes. matchExpressions look at
the node's labels (In, NotIn, Exists, DoesNotExist, Gt, Lt); matchFields
knows the one field Kubernetes supports, metadata.name. A pod with neither
a nodeSelector nor required terms skips the filter (PreFilter), one without
preferred terms the scoring (PreScore).
"""

from __future__ import annotations

from typing import Sequence

from control.api.selectors import Requirement
from control.scheduler.framework import MAX_NODE_SCORE, SUCCESS, CycleState, NodeInfo, Status
from protos.api.v1 import core_pb2

NAME = "NodeAffinity"
REASON = "node(s) didn't match Pod's node affinity/selector"
NODE_NAME_FIELD = "metadata.name"


def _requirement_matches(requirement: core_pb2.NodeSelectorRequirement, values: dict[str, str]) -> bool:
    if requirement.operator in ("Gt", "Lt"):
        if len(requirement.values) != 1 or not requirement.values[0].lstrip("-").isdigit():
            return False
    return Requirement(requirement.key, requirement.operator, tuple(requirement.values)).matches(values)


def term_matches(term: core_pb2.NodeSelectorTerm, node: core_pb2.Node) -> bool:
    if not term.match_expressions and not term.match_fields:
        return False
    labels = dict(node.metadata.labels)
    fields = {NODE_NAME_FIELD: node.metadata.name}
    return (all(_requirement_matches(r, labels) for r in term.match_expressions)
            and all(r.key == NODE_NAME_FIELD and _requirement_matches(r, fields) for r in term.match_fields))


def fits(pod: core_pb2.Pod, node: core_pb2.Node) -> bool:
    labels = node.metadata.labels
    if any(labels.get(key) != value for key, value in pod.spec.node_selector.items()):
        return False
    affinity = pod.spec.affinity.node_affinity
    if not affinity.HasField("required_during_scheduling_ignored_during_execution"):
        return True
    terms = affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
    return any(term_matches(term, node) for term in terms)


def preference_weight(pod: core_pb2.Pod, node: core_pb2.Node) -> int:
    """The summed weights of the preferred terms the node matches."""
    preferred = pod.spec.affinity.node_affinity.preferred_during_scheduling_ignored_during_execution
    return sum(term.weight for term in preferred if term_matches(term.preference, node))


def has_required(pod: core_pb2.Pod) -> bool:
    """Whether the pod restricts its nodes at all (nodeSelector or required node affinity)."""
    return bool(pod.spec.node_selector) or pod.spec.affinity.node_affinity.HasField(
        "required_during_scheduling_ignored_during_execution")


class NodeAffinity:
    name = NAME

    def pre_filter(self, pod: core_pb2.Pod, state: CycleState) -> bool:
        return has_required(pod)

    def pre_score(self, pod: core_pb2.Pod, feasible: Sequence[NodeInfo], state: CycleState) -> bool:
        return bool(pod.spec.affinity.node_affinity.preferred_during_scheduling_ignored_during_execution)

    def filter(self, pod: core_pb2.Pod, node_info: NodeInfo, state: CycleState) -> Status:
        return SUCCESS if fits(pod, node_info.node) else Status.unschedulable(REASON)

    def score(self, pod: core_pb2.Pod, node_info: NodeInfo, state: CycleState) -> int:
        return preference_weight(pod, node_info.node)

    def normalize(self, scores: dict[str, int], pod: core_pb2.Pod, state: CycleState) -> dict[str, int]:
        best = max(scores.values(), default=0)
        if best <= 0:
            return {name: 0 for name in scores}
        return {name: value * MAX_NODE_SCORE // best for name, value in scores.items()}


def new() -> NodeAffinity:
    return NodeAffinity()
