"""NodeResourcesFit: a pod fits a node when the node's allocatable resources
cover what the pods already bound there request plus what this pod requests,
and the node has room for one more pod (allocatable "pods").

Scoring follows one strategy over CPU and memory, each weighted 1:
LeastAllocated (the default) prefers the emptiest node and so spreads pods;
MostAllocated prefers the fullest node that still fits and so packs them;
BalancedAllocation prefers nodes whose CPU and memory fill evenly. Scoring
counts pods without requests as asking 100m CPU and 200Mi memory.
"""

from __future__ import annotations

import statistics
from typing import Literal

from control.scheduler.framework import (
    CPU, MAX_NODE_SCORE, MEMORY, PODS, SUCCESS, CycleState, NodeInfo, Status, non_zero_requests, pod_requests,
)
from protos.api.v1 import core_pb2

NAME = "NodeResourcesFit"
BALANCED_NAME = "NodeResourcesBalancedAllocation"
TOO_MANY_PODS = "Too many pods"
Strategy = Literal["LeastAllocated", "MostAllocated", "BalancedAllocation"]
STRATEGIES: tuple[Strategy, ...] = ("LeastAllocated", "MostAllocated", "BalancedAllocation")
SCORED_RESOURCES = (CPU, MEMORY)


def _ordered(resources: dict[str, int]) -> list[str]:
    # Kubernetes checks cpu, memory, ephemeral-storage, then the rest.
    first = [r for r in (CPU, MEMORY, "ephemeral-storage") if r in resources]
    return first + sorted(r for r in resources if r not in first)


def insufficient(pod: core_pb2.Pod, node_info: NodeInfo) -> list[str]:
    """The reasons the pod does not fit the node ([] when it fits)."""
    reasons = []
    if len(node_info.pods) + 1 > node_info.allocatable(PODS):
        reasons.append(TOO_MANY_PODS)
    requests = pod_requests(pod)
    for resource in _ordered(requests):
        wanted = requests[resource]
        if wanted > 0 and node_info.requested.get(resource, 0) + wanted > node_info.allocatable(resource):
            reasons.append(f"Insufficient {resource}")
    return reasons


def fits(pod: core_pb2.Pod, node_info: NodeInfo) -> bool:
    return not insufficient(pod, node_info)


def _fractions(pod: core_pb2.Pod, node_info: NodeInfo) -> list[tuple[int, int]]:
    """(requested with this pod, allocatable) per scored resource."""
    requests = non_zero_requests(pod)
    return [(node_info.non_zero_requested.get(r, 0) + requests.get(r, 0), node_info.allocatable(r))
            for r in SCORED_RESOURCES]


def resource_score(pod: core_pb2.Pod, node_info: NodeInfo, strategy: Strategy) -> int:
    pairs = _fractions(pod, node_info)
    if strategy == "BalancedAllocation":
        shares = [min(requested / allocatable, 1.0) for requested, allocatable in pairs if allocatable]
        if not shares:
            return 0
        return int((1 - statistics.pstdev(shares)) * MAX_NODE_SCORE)
    scores = []
    for requested, allocatable in pairs:
        if allocatable == 0 or requested > allocatable:
            scores.append(0)
        elif strategy == "LeastAllocated":
            scores.append((allocatable - requested) * MAX_NODE_SCORE // allocatable)
        else:
            scores.append(requested * MAX_NODE_SCORE // allocatable)
    return sum(scores) // len(scores)


class NodeResourcesFit:
    def __init__(self, *, strategy: Strategy = "LeastAllocated", name: str = NAME) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown scoring strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
        self.strategy = strategy
        self.name = name

    def filter(self, pod: core_pb2.Pod, node_info: NodeInfo, state: CycleState) -> Status:
        reasons = insufficient(pod, node_info)
        return Status.unschedulable(*reasons) if reasons else SUCCESS

    def score(self, pod: core_pb2.Pod, node_info: NodeInfo, state: CycleState) -> int:
        return resource_score(pod, node_info, self.strategy)


def new(*, strategy: Strategy = "LeastAllocated") -> NodeResourcesFit:
    return NodeResourcesFit(strategy=strategy)


def new_balanced_allocation() -> NodeResourcesFit:
    """Kubernetes' NodeResourcesBalancedAllocation scorer (its filter is NodeResourcesFit's)."""
    return NodeResourcesFit(strategy="BalancedAllocation", name=BALANCED_NAME)
