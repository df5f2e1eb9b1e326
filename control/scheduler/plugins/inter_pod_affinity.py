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

As kube-scheduler's PreFilter does, the domains each term allows or forbids
are worked out once per decision, from the pods on every node (existing
pods' anti-affinity from the few nodes that hold such pods); each node's
filter is then a few set lookups. A pod without terms, in a cluster without
pods carrying anti-affinity, skips the plugin altogether.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from control.scheduler.framework import (
    MAX_NODE_SCORE, SUCCESS, AffinityTerm, CycleState, NodeInfo, Status, compile_term,
)
from protos.api.v1 import core_pb2

NAME = "InterPodAffinity"
AFFINITY_REASON = "node(s) didn't match pod affinity rules"
ANTI_AFFINITY_REASON = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY_REASON = "node(s) didn't satisfy existing pods anti-affinity rules"
Domain = tuple[str, str]  # (topology key, value)
AFFINITY_REJECTED = Status.unschedulable(AFFINITY_REASON)
ANTI_AFFINITY_REJECTED = Status.unschedulable(ANTI_AFFINITY_REASON)
EXISTING_ANTI_AFFINITY_REJECTED = Status.unschedulable(EXISTING_ANTI_AFFINITY_REASON)


def term_selects(term: core_pb2.PodAffinityTerm, owner: core_pb2.Pod, candidate: core_pb2.Pod) -> bool:
    """Whether candidate is a pod the term of owner's spec refers to."""
    return compile_term(term, owner).selects(candidate)


def domain(node: core_pb2.Node, topology_key: str) -> Domain | None:
    value = node.metadata.labels.get(topology_key)
    return None if value is None else (topology_key, value)


def matching_domains(term: AffinityTerm, nodes: Iterable[NodeInfo]) -> set[Domain]:
    """The topology domains holding a pod that term selects."""
    found: set[Domain] = set()
    key = term.topology_key
    for info in nodes:
        if not info.pod_count:
            continue
        value = info.labels.get(key)
        if value is not None and (key, value) not in found and any(term.selects(p) for p in info.pods):
            found.add((key, value))
    return found


@dataclass(frozen=True, slots=True)
class PodFacts:
    """What the filter needs, computed once per decision: each required term
    with the domains holding pods it selects, and the domains where an
    existing pod's anti-affinity rejects this pod."""

    affinity: tuple[tuple[AffinityTerm, set[Domain]], ...]
    anti_affinity: tuple[tuple[AffinityTerm, set[Domain]], ...]
    existing_anti_affinity: frozenset[Domain]
    # The first pod of a self-affine group may go anywhere its keys exist.
    nobody_yet: bool

    def rejection(self, labels: Mapping[str, str]) -> Status | None:
        """Why a node with these labels is refused (None: it is not), in kube-scheduler's order:
        affinity, anti-affinity, existing pods' anti-affinity."""
        for term, domains in self.affinity:
            value = labels.get(term.topology_key)
            if value is None or not ((term.topology_key, value) in domains or self.nobody_yet):
                return AFFINITY_REJECTED
        for term, domains in self.anti_affinity:
            value = labels.get(term.topology_key)
            if value is not None and (term.topology_key, value) in domains:
                return ANTI_AFFINITY_REJECTED
        if self.existing_anti_affinity:
            for key, value in labels.items():
                if (key, value) in self.existing_anti_affinity:
                    return EXISTING_ANTI_AFFINITY_REJECTED
        return None


def _existing_anti_affinity(pod: core_pb2.Pod, nodes: Iterable[NodeInfo]) -> frozenset[Domain]:
    """The domains where a pod on one of nodes (those with such pods) rejects pod."""
    rejected: set[Domain] = set()
    for info in nodes:
        for existing in info.pods_with_required_anti_affinity.values():
            for term in existing.required_anti_affinity:
                value = info.labels.get(term.topology_key)
                if value is not None and term.selects(pod):
                    rejected.add((term.topology_key, value))
    return frozenset(rejected)


def pod_facts(pod: core_pb2.Pod, state: CycleState) -> PodFacts:
    facts = state.data.get(NAME)
    if facts is None or facts[0] is not pod:
        affinity = pod.spec.affinity
        required = [compile_term(t, pod)
                    for t in affinity.pod_affinity.required_during_scheduling_ignored_during_execution]
        anti = [compile_term(t, pod)
                for t in affinity.pod_anti_affinity.required_during_scheduling_ignored_during_execution]
        with_domains = tuple((term, matching_domains(term, state.nodes)) for term in required)
        facts = (pod, PodFacts(
            affinity=with_domains,
            anti_affinity=tuple((term, matching_domains(term, state.nodes)) for term in anti),
            existing_anti_affinity=_existing_anti_affinity(pod, state.nodes_with_required_anti_affinity),
            nobody_yet=all(not domains for _term, domains in with_domains) and all(
                term.selects(pod) for term in required)))
        state.data[NAME] = facts
    return facts[1]


def fits_with(pod: core_pb2.Pod, node: core_pb2.Node, state: CycleState) -> Status:
    return pod_facts(pod, state).rejection(node.metadata.labels) or SUCCESS


def _weighted_terms(pod: core_pb2.Pod) -> list[tuple[core_pb2.WeightedPodAffinityTerm, int]]:
    affinity = pod.spec.affinity
    weighted = [(t, 1) for t in affinity.pod_affinity.preferred_during_scheduling_ignored_during_execution]
    weighted += [(t, -1) for t in affinity.pod_anti_affinity.preferred_during_scheduling_ignored_during_execution]
    return weighted


def preference(pod: core_pb2.Pod, node: core_pb2.Node, nodes: Iterable[NodeInfo]) -> int:
    """Summed weight of preferred (anti-)affinity terms over the pods in node's domains."""
    weighted = _weighted_terms(pod)
    if not weighted:
        return 0
    nodes = list(nodes)
    total = 0
    for weighted_term, sign in weighted:
        term = compile_term(weighted_term.pod_affinity_term, pod)
        where = domain(node, term.topology_key)
        if where is None:
            continue
        for info in nodes:
            if domain(info.node, term.topology_key) == where:
                total += sign * weighted_term.weight * sum(1 for p in info.pods if term.selects(p))
    return total


class InterPodAffinity:
    name = NAME

    def pre_filter(self, pod: core_pb2.Pod, state: CycleState) -> bool:
        affinity = pod.spec.affinity
        if (affinity.pod_affinity.required_during_scheduling_ignored_during_execution
                or affinity.pod_anti_affinity.required_during_scheduling_ignored_during_execution):
            return True
        return bool(state.nodes_with_required_anti_affinity)

    def filter(self, pod: core_pb2.Pod, node_info: NodeInfo, state: CycleState) -> Status:
        return pod_facts(pod, state).rejection(node_info.labels) or SUCCESS

    def filter_all(self, pod: core_pb2.Pod, nodes: Sequence[NodeInfo], state: CycleState) -> list[tuple[int, Status]]:
        rejection = pod_facts(pod, state).rejection
        return [(index, status) for index, info in enumerate(nodes) if (status := rejection(info.labels)) is not None]

    def pre_score(self, pod: core_pb2.Pod, feasible: Sequence[NodeInfo], state: CycleState) -> bool:
        return bool(_weighted_terms(pod))

    def score(self, pod: core_pb2.Pod, node_info: NodeInfo, state: CycleState) -> int:
        return preference(pod, node_info.node, state.nodes)

    def normalize(self, scores: dict[str, int], pod: core_pb2.Pod, state: CycleState) -> dict[str, int]:
        low, high = min(scores.values(), default=0), max(scores.values(), default=0)
        if high == low:
            return {name: 0 for name in scores}
        return {name: (value - low) * MAX_NODE_SCORE // (high - low) for name, value in scores.items()}


def new() -> InterPodAffinity:
    return InterPodAffinity()
