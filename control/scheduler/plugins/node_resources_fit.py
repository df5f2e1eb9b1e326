"""NodeResourcesFit: a pod fits a node when the node's allocatable resources
cover what the pods already bound there request plus what this pod requests,
and the node has room for one more pod (allocatable "pods").

Scoring follows one strategy over a weighted list of resources (by default
CPU and memory, each weighted 1); a resource the node does not offer is left
out of the weighted mean, as in Kubernetes:

- LeastAllocated (the default) prefers the emptiest node and so spreads pods;
- MostAllocated prefers the fullest node that still fits and so packs them;
- RequestedToCapacityRatio maps each resource's utilisation (0..100%)
  through a piecewise linear ``shape`` of (utilization, score 0..10) points;
- BalancedAllocation (the NodeResourcesBalancedAllocation scorer) prefers
  nodes whose resources fill evenly: 100 times one minus the standard
  deviation of the fractions used.

Scoring counts pods without requests as asking 100m CPU and 200Mi memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

from control.scheduler.framework import (
    CPU, MAX_NODE_SCORE, MEMORY, PODS, SUCCESS, CycleState, NodeInfo, Status, pod_resources,
)
from protos.api.v1 import core_pb2

NAME = "NodeResourcesFit"
BALANCED_NAME = "NodeResourcesBalancedAllocation"
TOO_MANY_PODS = "Too many pods"
Strategy = Literal["LeastAllocated", "MostAllocated", "RequestedToCapacityRatio", "BalancedAllocation"]
STRATEGIES: tuple[Strategy, ...] = ("LeastAllocated", "MostAllocated", "RequestedToCapacityRatio",
                                    "BalancedAllocation")
SCORED_RESOURCES = (CPU, MEMORY)
DEFAULT_RESOURCES: tuple[tuple[str, int], ...] = ((CPU, 1), (MEMORY, 1))
# RequestedToCapacityRatio's shape scores run 0..10 (Kubernetes' MaxCustomPriorityScore).
MAX_SHAPE_SCORE = 10


@dataclass(frozen=True, slots=True)
class ShapePoint:
    utilization: int  # percent, 0..100
    score: int  # 0..MAX_SHAPE_SCORE


# Without a shape, RequestedToCapacityRatio packs, like MostAllocated.
DEFAULT_SHAPE = (ShapePoint(0, 0), ShapePoint(100, MAX_SHAPE_SCORE))


def _ordered(resources: dict[str, int]) -> list[str]:
    # Kubernetes checks cpu, memory, ephemeral-storage, then the rest.
    first = [r for r in (CPU, MEMORY, "ephemeral-storage") if r in resources]
    return first + sorted(r for r in resources if r not in first)


def insufficient(pod: core_pb2.Pod, node_info: NodeInfo, state: CycleState | None = None) -> list[str]:
    """The reasons the pod does not fit the node ([] when it fits)."""
    reasons = []
    if node_info.pod_count + 1 > node_info.allocatable(PODS):
        reasons.append(TOO_MANY_PODS)
    requests = pod_resources(pod, state or CycleState()).requests
    for resource in _ordered(requests):
        wanted = requests[resource]
        if wanted > 0 and node_info.requested.get(resource, 0) + wanted > node_info.allocatable(resource):
            reasons.append(f"Insufficient {resource}")
    return reasons


def fits(pod: core_pb2.Pod, node_info: NodeInfo) -> bool:
    return not insufficient(pod, node_info)


def least_allocated(requested: int, allocatable: int) -> int:
    if requested > allocatable:
        return 0
    return (allocatable - requested) * MAX_NODE_SCORE // allocatable


def most_allocated(requested: int, allocatable: int) -> int:
    # Pods without requests are counted with defaults, which may overshoot a small node.
    return min(requested, allocatable) * MAX_NODE_SCORE // allocatable


def shape_score(utilization: float, shape: Sequence[ShapePoint]) -> int:
    """The shape's score (scaled to 0..MAX_NODE_SCORE) at utilization percent,
    linear between points and flat beyond the first and last."""
    scale = MAX_NODE_SCORE // MAX_SHAPE_SCORE
    if utilization <= shape[0].utilization:
        return shape[0].score * scale
    for low, high in zip(shape, shape[1:]):
        if utilization <= high.utilization:
            span = high.utilization - low.utilization
            value = low.score + (high.score - low.score) * (utilization - low.utilization) / span
            return int(value * scale)
    return shape[-1].score * scale


def resource_scores(pod: core_pb2.Pod, nodes: Sequence[NodeInfo], strategy: Strategy, *,
                    resources: Sequence[tuple[str, int]] = DEFAULT_RESOURCES,
                    shape: Sequence[ShapePoint] = DEFAULT_SHAPE, state: CycleState | None = None) -> list[int]:
    """Each node's score for pod under strategy (see the module docstring), in
    order. The pod's requests are looked up once: this runs for hundreds of
    nodes per decision."""
    wanted = pod_resources(pod, state or CycleState()).non_zero_requests
    weighted = [(resource, weight, wanted.get(resource, 0)) for resource, weight in resources]
    if strategy != "RequestedToCapacityRatio" and len(weighted) == 2:
        return _two_resource_scores(nodes, strategy, weighted, shape)
    return [_score(info, strategy, weighted, shape) for info in nodes]


def _score(info: NodeInfo, strategy: Strategy, weighted: Sequence[tuple[str, int, int]],
           shape: Sequence[ShapePoint]) -> int:
    """One node's score; weighted is (resource, weight, the pod's request) per scored resource."""
    allocatable, used = info.allocatable_values, info.non_zero_requested
    if strategy == "BalancedAllocation":
        shares = [min((used.get(r, 0) + want) / allocatable[r], 1.0) for r, _w, want in weighted if allocatable.get(r)]
        if not shares:
            return 0
        if len(shares) == 2:
            deviation = abs(shares[0] - shares[1]) / 2
        else:
            mean = sum(shares) / len(shares)
            deviation = math.sqrt(sum((share - mean) ** 2 for share in shares) / len(shares))
        return int((1 - deviation) * MAX_NODE_SCORE)
    total = weights = 0
    for resource, weight, want in weighted:
        capacity = allocatable.get(resource, 0)
        if not capacity:
            continue
        requested = used.get(resource, 0) + want
        if strategy == "LeastAllocated":
            score = least_allocated(requested, capacity)
        elif strategy == "MostAllocated":
            score = most_allocated(requested, capacity)
        else:
            score = shape_score(min(requested, capacity) * 100 / capacity, shape)
        total += score * weight
        weights += weight
    return total // weights if weights else 0


def _two_resource_scores(nodes: Sequence[NodeInfo], strategy: Strategy, weighted: Sequence[tuple[str, int, int]],
                         shape: Sequence[ShapePoint]) -> list[int]:
    """_score for the usual two resources (cpu and memory), written out for
    speed: the same arithmetic without the inner loop."""
    (first, first_weight, first_wanted), (second, second_weight, second_wanted) = weighted
    both = first_weight + second_weight
    balanced, least = strategy == "BalancedAllocation", strategy == "LeastAllocated"
    scores = []
    for info in nodes:
        allocatable, used = info.allocatable_values, info.non_zero_requested
        first_capacity, second_capacity = allocatable.get(first, 0), allocatable.get(second, 0)
        if not (first_capacity and second_capacity):
            scores.append(_score(info, strategy, weighted, shape))
            continue
        first_requested = used.get(first, 0) + first_wanted
        second_requested = used.get(second, 0) + second_wanted
        if balanced:
            deviation = abs(min(first_requested / first_capacity, 1.0) - min(second_requested / second_capacity, 1.0))
            scores.append(int((1 - deviation / 2) * MAX_NODE_SCORE))
            continue
        if least:
            a = ((first_capacity - first_requested) * MAX_NODE_SCORE // first_capacity
                 if first_requested <= first_capacity else 0)
            b = ((second_capacity - second_requested) * MAX_NODE_SCORE // second_capacity
                 if second_requested <= second_capacity else 0)
        else:
            a = most_allocated(first_requested, first_capacity)
            b = most_allocated(second_requested, second_capacity)
        scores.append((a * first_weight + b * second_weight) // both)
    return scores


def resource_score(pod: core_pb2.Pod, node_info: NodeInfo, strategy: Strategy, *,
                   resources: Sequence[tuple[str, int]] = DEFAULT_RESOURCES,
                   shape: Sequence[ShapePoint] = DEFAULT_SHAPE, state: CycleState | None = None) -> int:
    """The node's score for pod under strategy."""
    return resource_scores(pod, [node_info], strategy, resources=resources, shape=shape, state=state)[0]


class NodeResourcesFit:
    def __init__(self, *, strategy: Strategy = "LeastAllocated", name: str = NAME,
                 resources: Sequence[tuple[str, int]] = DEFAULT_RESOURCES,
                 shape: Sequence[ShapePoint] = DEFAULT_SHAPE) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown scoring strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
        self.strategy = strategy
        self.name = name
        self.resources = tuple(resources)
        self.shape = tuple(shape)

    def filter(self, pod: core_pb2.Pod, node_info: NodeInfo, state: CycleState) -> Status:
        rejected = self.filter_all(pod, [node_info], state)
        return rejected[0][1] if rejected else SUCCESS

    def filter_all(self, pod: core_pb2.Pod, nodes: Sequence[NodeInfo], state: CycleState) -> list[tuple[int, Status]]:
        # The common case in a few dict lookups per node; the reasons only for a node that does not fit.
        requests = [(resource, value) for resource, value in pod_resources(pod, state).requests.items() if value > 0]
        rejected = []
        for index, info in enumerate(nodes):
            allocatable = info.allocatable_values
            if info.pod_count < allocatable.get(PODS, 0):
                used = info.requested
                for resource, wanted in requests:
                    if used.get(resource, 0) + wanted > allocatable.get(resource, 0):
                        break
                else:
                    continue
            rejected.append((index, Status.unschedulable(*insufficient(pod, info, state))))
        return rejected

    def score(self, pod: core_pb2.Pod, node_info: NodeInfo, state: CycleState) -> int:
        return self.score_all(pod, [node_info], state)[0]

    def score_all(self, pod: core_pb2.Pod, nodes: Sequence[NodeInfo], state: CycleState) -> list[int]:
        return resource_scores(pod, nodes, self.strategy, resources=self.resources, shape=self.shape, state=state)


def new(*, strategy: Strategy = "LeastAllocated", resources: Sequence[tuple[str, int]] = DEFAULT_RESOURCES,
        shape: Sequence[ShapePoint] = DEFAULT_SHAPE) -> NodeResourcesFit:
    if strategy == "BalancedAllocation":
        raise ValueError("BalancedAllocation is the NodeResourcesBalancedAllocation plugin, not a scoring strategy")
    return NodeResourcesFit(strategy=strategy, resources=resources, shape=shape)


def new_balanced_allocation(*, resources: Sequence[tuple[str, int]] = DEFAULT_RESOURCES) -> NodeResourcesFit:
    """Kubernetes' NodeResourcesBalancedAllocation scorer (its filter is NodeResourcesFit's)."""
    return NodeResourcesFit(strategy="BalancedAllocation", name=BALANCED_NAME, resources=resources)
