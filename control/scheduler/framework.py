"""The scheduling framework: extension points, the node snapshot, one decision.

As in kube-scheduler, a decision runs every Filter plugin of a profile over
every node (a node passes only if all of them pass), then every Score plugin
over the nodes that passed, and picks the node with the highest weighted sum.
Plugins are pure: they read the pod, a ``NodeInfo`` and the ``CycleState`` of
this decision and never write to the API; ``schedule_one`` is pure too, so
decisions are easy to test without a cluster.

When no node passes, ``FitError`` says why per node and summarises it the way
kubectl shows it in a FailedScheduling event.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from control.api.quantity import bytes_value, cpu_millis
from protos.api.v1 import core_pb2

MAX_NODE_SCORE = 100
CPU, MEMORY, PODS = "cpu", "memory", "pods"
# Scoring counts a pod that requests nothing as requesting this much, so that
# spreading still spreads pods without requests (Kubernetes' non-zero defaults).
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Status:
    """A filter's verdict: success, or the reasons the node was rejected, as
    kubectl shows them ("Insufficient cpu")."""

    reasons: tuple[str, ...] = ()

    @property
    def success(self) -> bool:
        return not self.reasons

    @classmethod
    def unschedulable(cls, *reasons: str) -> "Status":
        return cls(tuple(reasons))


SUCCESS = Status()


def quantity_value(resource: str, text: str) -> int:
    """A resource quantity in the unit the scheduler counts it in (CPU in
    millicores, everything else as a whole number)."""
    return cpu_millis(text) if resource == CPU else bytes_value(text)


def _add(total: dict[str, int], requests: Mapping[str, str]) -> None:
    for resource, text in requests.items():
        total[resource] = total.get(resource, 0) + quantity_value(resource, text)


def pod_requests(pod: core_pb2.Pod) -> dict[str, int]:
    """What the pod asks of a node: the sum over its containers, or the largest
    init container's request when that is bigger (init containers run one at
    a time, before the others), plus the pod overhead."""
    total: dict[str, int] = {}
    for container in pod.spec.containers:
        _add(total, container.resources.requests)
    for container in pod.spec.init_containers:
        for resource, text in container.resources.requests.items():
            total[resource] = max(total.get(resource, 0), quantity_value(resource, text))
    _add(total, pod.spec.overhead)
    return total


def non_zero_requests(pod: core_pb2.Pod) -> dict[str, int]:
    """pod_requests with CPU and memory defaulted when the pod names none, for scoring."""
    requests = pod_requests(pod)
    requests.setdefault(CPU, DEFAULT_MILLI_CPU_REQUEST)
    requests.setdefault(MEMORY, DEFAULT_MEMORY_REQUEST)
    return requests


class NodeInfo:
    """A node plus the pods bound to it and what they request in total.

    Immutable by convention: ``with_pod`` returns a new NodeInfo, so a
    snapshot handed to plugins never changes under them.
    """

    __slots__ = ("node", "pods", "requested", "non_zero_requested")

    def __init__(self, node: core_pb2.Node, pods: Sequence[core_pb2.Pod] = ()) -> None:
        self.node = node
        self.pods: tuple[core_pb2.Pod, ...] = tuple(pods)
        self.requested: dict[str, int] = {}
        self.non_zero_requested: dict[str, int] = {}
        for pod in self.pods:
            self._count(pod)

    def _count(self, pod: core_pb2.Pod) -> None:
        for resource, value in pod_requests(pod).items():
            self.requested[resource] = self.requested.get(resource, 0) + value
        for resource, value in non_zero_requests(pod).items():
            self.non_zero_requested[resource] = self.non_zero_requested.get(resource, 0) + value

    @property
    def name(self) -> str:
        return self.node.metadata.name

    def allocatable(self, resource: str) -> int:
        text = self.node.status.allocatable.get(resource)
        return quantity_value(resource, text) if text else 0

    def with_pod(self, pod: core_pb2.Pod) -> "NodeInfo":
        info = NodeInfo(self.node)
        info.pods = self.pods + (pod,)
        info.requested = dict(self.requested)
        info.non_zero_requested = dict(self.non_zero_requested)
        info._count(pod)
        return info

    def __repr__(self) -> str:
        return f"NodeInfo({self.name!r}, pods={len(self.pods)})"


@dataclass
class CycleState:
    """What one scheduling decision shares between plugins: every node of the
    snapshot (affinity between pods looks beyond the node being filtered) and
    a scratch dict where a plugin may keep what it computed once per pod."""

    nodes: Sequence[NodeInfo] = ()
    data: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class FilterPlugin(Protocol):
    """Filter extension point.

    ``filter`` is called once per node per decision, in any order, possibly
    concurrently with other nodes; it must not mutate pod, node_info or other
    plugins' entries in state. It returns SUCCESS when the pod may run on the
    node, else a Status whose reasons are short, node-independent strings
    (they are counted across nodes in the FailedScheduling summary).
    """

    name: str

    def filter(self, pod: core_pb2.Pod, node_info: NodeInfo, state: CycleState) -> Status: ...


@runtime_checkable
class ScorePlugin(Protocol):
    """Score extension point.

    ``score`` is called once per node that passed every filter; it returns an
    int from 0 to MAX_NODE_SCORE (higher is better) unless the plugin also
    implements ScoreNormalizer, whose ``normalize`` then maps the raw scores
    into that range. Must be pure, like filter.
    """

    name: str

    def score(self, pod: core_pb2.Pod, node_info: NodeInfo, state: CycleState) -> int: ...


@runtime_checkable
class ScoreNormalizer(Protocol):
    """Optional companion of ScorePlugin (Kubernetes' ScoreExtensions):
    ``normalize`` receives every node's raw score by node name and returns the
    scores rescaled to 0..MAX_NODE_SCORE. Called once per decision."""

    def normalize(self, scores: dict[str, int], pod: core_pb2.Pod, state: CycleState) -> dict[str, int]: ...


@dataclass(frozen=True, slots=True)
class WeightedScorer:
    plugin: ScorePlugin
    weight: int = 1


@dataclass(frozen=True, slots=True)
class Profile:
    """A scheduler profile: which filters run (in order) and which scorers count, how much."""

    name: str
    filters: tuple[FilterPlugin, ...]
    scorers: tuple[WeightedScorer, ...] = ()


NO_NODE_AVAILABLE = "0/{count} nodes are available"


@dataclass(frozen=True, slots=True)
class FitError:
    """Why no node fits: each rejected node's reasons."""

    num_all_nodes: int
    node_reasons: Mapping[str, tuple[str, ...]]

    def histogram(self) -> Counter[str]:
        return Counter(reason for reasons in self.node_reasons.values() for reason in reasons)

    @property
    def message(self) -> str:
        """kube-scheduler's summary, e.g. ``0/3 nodes are available: 1 node(s)
        had untolerated taint {dedicated: db}, 2 Insufficient cpu.``. As in
        Kubernetes the "count reason" strings are sorted as strings."""
        head = NO_NODE_AVAILABLE.format(count=self.num_all_nodes)
        parts = sorted(f"{count} {reason}" for reason, count in self.histogram().items())
        return f"{head}: {', '.join(parts)}." if parts else f"{head}."

    def __str__(self) -> str:
        return self.message


def filter_node(pod: core_pb2.Pod, node_info: NodeInfo, profile: Profile, state: CycleState) -> Status:
    """The first failing filter's status (Kubernetes stops at the first), else SUCCESS."""
    for plugin in profile.filters:
        status = plugin.filter(pod, node_info, state)
        if not status.success:
            return status
    return SUCCESS


def score_nodes(pod: core_pb2.Pod, feasible: Sequence[NodeInfo], profile: Profile,
                state: CycleState) -> dict[str, int]:
    """Each feasible node's weighted total score."""
    totals = {info.name: 0 for info in feasible}
    for scorer in profile.scorers:
        raw = {info.name: scorer.plugin.score(pod, info, state) for info in feasible}
        if isinstance(scorer.plugin, ScoreNormalizer):
            raw = scorer.plugin.normalize(raw, pod, state)
        for name, value in raw.items():
            totals[name] += value * scorer.weight
    return totals


def schedule_one(pod: core_pb2.Pod, nodes: Sequence[NodeInfo],
                 profile: Profile) -> tuple[str | None, FitError | None]:
    """Pick a node for pod: (its name, None), or (None, why none fits).

    Ties go to the node that comes first by name, so decisions are repeatable
    (Kubernetes picks among ties at random).
    """
    state = CycleState(nodes=nodes)
    feasible: list[NodeInfo] = []
    rejected: dict[str, tuple[str, ...]] = {}
    for info in nodes:
        status = filter_node(pod, info, profile, state)
        if status.success:
            feasible.append(info)
        else:
            rejected[info.name] = status.reasons
    if not feasible:
        return None, FitError(num_all_nodes=len(nodes), node_reasons=rejected)
    if len(feasible) == 1:
        return feasible[0].name, None
    totals = score_nodes(pod, feasible, profile, state)
    best = min(totals, key=lambda name: (-totals[name], name))
    return best, None
