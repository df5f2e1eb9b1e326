"""InterPodAffinity: pods placed by the pods already placed.

Required pod affinity: for every term, some pod matching the term's selector
(in the term's namespaces, default the pod's own) runs in the same topology
domain as the node (nodes sharing the value of the term's topologyKey).
The first pod of a group that matches its own term may go anywhere the
topology key exists, or it could never start. Required anti-affinity: no
matching pod in the domain. Existing pods' required anti-affinity is
symmetric: a node is refused when a pod in its domain rejects this pod.
Preferred terms score: +weight per matching pod in the domain for affinity,
-weight for anti-affinity, normalised to 0..100 across the nodes.
namespaceSelector is not evaluated (the scheduler does not watch
Namespaces); an empty one means all namespaces.
"""

from __future__ import annotations

from typing import Iterable

from control.api.selectors import from_label_selector_message
from control.scheduler.framework import MAX_NODE_SCORE, SUCCESS, CycleState, NodeInfo, Status
from protos.api.v1 import core_pb2

NAME = "InterPodAffinity"
AFFINITY_REASON = "node(s) didn't match pod affinity rules"
ANTI_AFFINITY_REASON = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY_REASON = "node(s) didn't satisfy existing pods anti-affinity rules"
Domain = tuple[str, str]  # (topology key, value)


def term_selects(term: core_pb2.PodAffinityTerm, owner: core_pb2.Pod, candidate: core_pb2.Pod) -> bool:
    """Whether candidate is a pod the term of owner's spec refers to."""
    if term.HasField("namespace_selector") and not term.namespace_selector.ListFields() and not term.namespaces:
        pass  # an empty namespaceSelector selects every namespace
    else:
        namespaces = set(term.namespaces) or {owner.metadata.namespace}
        if candidate.metadata.namespace not in namespaces:
            return False
    if not term.HasField("label_selector"):
        return False
    return from_label_selector_message(term.label_selector).matches(candidate.metadata.labels)


def domain(node: core_pb2.Node, topology_key: str) -> Domain | None:
    value = node.metadata.labels.get(topology_key)
    return None if value is None else (topology_key, value)


def matching_domains(term: core_pb2.PodAffinityTerm, pod: core_pb2.Pod, nodes: Iterable[NodeInfo]) -> set[Domain]:
    """The topology domains holding a pod that term (of pod) selects."""
    found: set[Domain] = set()
    for info in nodes:
        where = domain(info.node, term.topology_key)
        if where is not None and where not in found and any(term_selects(term, pod, p) for p in info.pods):
            found.add(where)
    return found


def _pod_facts(pod: core_pb2.Pod, state: CycleState) -> dict:
    """Everything the filter needs about pod and the cluster, computed once per decision."""
    facts = state.data.get(NAME)
    if facts is None:
        affinity = pod.spec.affinity
        required = affinity.pod_affinity.required_during_scheduling_ignored_during_execution
        anti = affinity.pod_anti_affinity.required_during_scheduling_ignored_during_execution
        rejected: set[Domain] = set()
        for info in state.nodes:
            for existing in info.pods:
                for term in existing.spec.affinity.pod_anti_affinity.required_during_scheduling_ignored_during_execution:
                    where = domain(info.node, term.topology_key)
                    if where is not None and term_selects(term, existing, pod):
                        rejected.add(where)
        facts = {
            "affinity": [(term, matching_domains(term, pod, state.nodes)) for term in required],
            "anti_affinity": [(term, matching_domains(term, pod, state.nodes)) for term in anti],
            "existing_anti_affinity": rejected,
        }
        state.data[NAME] = facts
    return facts


def fits_with(pod: core_pb2.Pod, node: core_pb2.Node, state: CycleState) -> Status:
    # Checked in kube-scheduler's order: affinity, anti-affinity, existing pods' anti-affinity.
    facts = _pod_facts(pod, state)
    affinity = facts["affinity"]
    if affinity:
        nobody_yet = all(not domains for _term, domains in affinity) and all(
            term_selects(term, pod, pod) for term, _domains in affinity)
        for term, domains in affinity:
            where = domain(node, term.topology_key)
            if where is None or not (where in domains or nobody_yet):
                return Status.unschedulable(AFFINITY_REASON)
    for term, domains in facts["anti_affinity"]:
        if domain(node, term.topology_key) in domains:
            return Status.unschedulable(ANTI_AFFINITY_REASON)
    if any(domain(node, key) in facts["existing_anti_affinity"] for key in node.metadata.labels):
        return Status.unschedulable(EXISTING_ANTI_AFFINITY_REASON)
    return SUCCESS


def preference(pod: core_pb2.Pod, node: core_pb2.Node, nodes: Iterable[NodeInfo]) -> int:
    """Summed weight of preferred (anti-)affinity terms over the pods in node's domains."""
    affinity = pod.spec.affinity
    weighted = [(t, 1) for t in affinity.pod_affinity.preferred_during_scheduling_ignored_during_execution]
    weighted += [(t, -1) for t in affinity.pod_anti_affinity.preferred_during_scheduling_ignored_during_execution]
    if not weighted:
        return 0
    nodes = list(nodes)
    total = 0
    for weighted_term, sign in weighted:
        term = weighted_term.pod_affinity_term
        where = domain(node, term.topology_key)
        if where is None:
            continue
        for info in nodes:
            if domain(info.node, term.topology_key) == where:
                total += sign * weighted_term.weight * sum(1 for p in info.pods if term_selects(term, pod, p))
    return total


class InterPodAffinity:
    name = NAME

    def filter(self, pod: core_pb2.Pod, node_info: NodeInfo, state: CycleState) -> Status:
        return fits_with(pod, node_info.node, state)

    def score(self, pod: core_pb2.Pod, node_info: NodeInfo, state: CycleState) -> int:
        return preference(pod, node_info.node, state.nodes)

    def normalize(self, scores: dict[str, int], pod: core_pb2.Pod, state: CycleState) -> dict[str, int]:
        low, high = min(scores.values(), default=0), max(scores.values(), default=0)
        if high == low:
            return {name: 0 for name in scores}
        return {name: (value - low) * MAX_NODE_SCORE // (high - low) for name, value in scores.items()}


def new() -> InterPodAffinity:
    return InterPodAffinity()
