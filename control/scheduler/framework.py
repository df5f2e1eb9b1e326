"""The scheduling framework: extension points, the node snapshot, one decision.

As in kube-scheduler, a decision runs the Filter plugins of a profile over
the nodes (a node passes only if all of them pass), then the Score plugins
over the nodes that passed, and picks the node with the highest weighted sum.
Plugins are pure: they read the pod, a ``NodeInfo`` and the ``CycleState`` of
this decision and never write to the API; ``find_node`` is pure too, so
decisions are easy to test without a cluster.

What keeps a decision cheap in a large cluster, as in kube-scheduler:

- it stops filtering once it has found ``feasible_nodes_to_find`` feasible
  nodes (``percentageOfNodesToScore``; by default 50% of the nodes minus one
  point per 125 nodes, at least 5%, and never fewer than 100 nodes), and the
  caller starts the next search where this one stopped, so every node gets
  its turn;
- a plugin may implement ``pre_filter``/``pre_score``, called once per
  decision: returning False says this pod gives it nothing to check or to
  prefer (Kubernetes' Skip), and its per-node method is not called at all;
- a plugin may filter or score a whole batch of nodes in one call
  (``filter_all``/``score_all``: one Python call per decision instead of one
  per node), and a scorer giving every node the same score is left out of
  the sum, since it cannot change the choice;
- what a plugin needs to know about the pod is computed once per decision
  (``pod_resources``, or the plugin's own entry in ``CycleState.data``), and
  what the scheduler knows about each pod on a node once per pod version
  (``PodInfo``), never once per node.

When no node passes, ``FitError`` says why per node and summarises it the way
kubectl shows it in a FailedScheduling event.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence, runtime_checkable

from control.api.quantity import bytes_value, cpu_millis
from control.api.selectors import LabelSelector, from_label_selector_message
from protos.api.v1 import core_pb2

MAX_NODE_SCORE = 100
CPU, MEMORY, PODS = "cpu", "memory", "pods"
# Scoring counts a pod that requests nothing as requesting this much, so that
# spreading still spreads pods without requests (Kubernetes' non-zero defaults).
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024
# kube-scheduler's bounds on how many feasible nodes a decision looks for.
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE = 5
ADAPTIVE_BASE_PERCENTAGE = 50
ADAPTIVE_NODES_PER_PERCENT = 125

PodKey = tuple[str, str]  # (namespace, name)


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


@functools.lru_cache(maxsize=4096)
def quantity_value(resource: str, text: str) -> int:
    """A resource quantity in the unit the scheduler counts it in (CPU in
    millicores, everything else as a whole number). Cached: the same few
    quantity strings come back on every pod."""
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


def non_zero_requests(pod: core_pb2.Pod, requests: Mapping[str, int] | None = None) -> dict[str, int]:
    """pod_requests with CPU and memory defaulted when the pod names none, for scoring."""
    result = dict(pod_requests(pod) if requests is None else requests)
    result.setdefault(CPU, DEFAULT_MILLI_CPU_REQUEST)
    result.setdefault(MEMORY, DEFAULT_MEMORY_REQUEST)
    return result


# ----------------------------------------------------------------- affinity terms


@dataclass(frozen=True, slots=True)
class AffinityTerm:
    """A PodAffinityTerm of one pod, compiled once: which pods it refers to
    (its label selector, in its namespaces: by default the owner's, None for
    every namespace) and the topology key naming the domain."""

    selector: LabelSelector | None  # None: a term without a labelSelector selects nothing
    namespaces: frozenset[str] | None
    topology_key: str

    def selects(self, pod: core_pb2.Pod) -> bool:
        if self.selector is None:
            return False
        if self.namespaces is not None and pod.metadata.namespace not in self.namespaces:
            return False
        return self.selector.matches(pod.metadata.labels)


def compile_term(term: core_pb2.PodAffinityTerm, owner: core_pb2.Pod) -> AffinityTerm:
    """term (of owner's spec) in the form matching needs. namespaceSelector is
    not evaluated (the scheduler does not watch Namespaces); an empty one
    means every namespace."""
    if term.HasField("namespace_selector") and not term.namespace_selector.ListFields() and not term.namespaces:
        namespaces = None
    else:
        namespaces = frozenset(term.namespaces) or frozenset((owner.metadata.namespace,))
    selector = from_label_selector_message(term.label_selector) if term.HasField("label_selector") else None
    return AffinityTerm(selector=selector, namespaces=namespaces, topology_key=term.topology_key)


def required_anti_affinity_terms(pod: core_pb2.Pod) -> tuple[AffinityTerm, ...]:
    terms = pod.spec.affinity.pod_anti_affinity.required_during_scheduling_ignored_during_execution
    return tuple(compile_term(term, pod) for term in terms)


# --------------------------------------------------------------------- pods, nodes


class PodInfo:
    """A pod with what the scheduler derives from it once per version: its
    requests (as filtered and as scored) and its required anti-affinity terms."""

    __slots__ = ("pod", "requests", "non_zero_requests", "required_anti_affinity")

    def __init__(self, pod: core_pb2.Pod) -> None:
        self.pod = pod
        self.requests = pod_requests(pod)
        self.non_zero_requests = non_zero_requests(pod, self.requests)
        self.required_anti_affinity = required_anti_affinity_terms(pod)


def _pod_key(pod: core_pb2.Pod) -> PodKey:
    return pod.metadata.namespace, pod.metadata.name


class NodeInfo:
    """A node plus the pods bound to it and what they request in total.

    The scheduler's cache updates its NodeInfos in place (``add_pod``,
    ``remove_pod``, ``set_node``) between decisions; a decision runs without
    awaiting anything, so no plugin ever sees one change under it. Code that
    keeps a snapshot uses ``with_pod``, which returns a changed copy.
    """

    __slots__ = ("node", "name", "labels", "allocatable_values", "unschedulable", "taints", "requested",
                 "non_zero_requested", "pod_count", "pods_with_required_anti_affinity", "_infos", "_pods")

    def __init__(self, node: core_pb2.Node, pods: Iterable[core_pb2.Pod] = ()) -> None:
        self.requested: dict[str, int] = {}
        self.non_zero_requested: dict[str, int] = {}
        # The pods here with required anti-affinity terms (usually none), by key.
        self.pods_with_required_anti_affinity: dict[PodKey, PodInfo] = {}
        self._infos: dict[PodKey, PodInfo] = {}
        self.pod_count = 0
        self._pods: tuple[core_pb2.Pod, ...] | None = ()
        self.set_node(node)
        for pod in pods:
            self.add_pod(pod)

    def set_node(self, node: core_pb2.Node) -> None:
        """The node's object changed (labels, taints, allocatable): its pods stay."""
        self.node = node
        self.name = node.metadata.name
        # What every decision reads of the node, as plain values (cheaper than the message's fields).
        self.allocatable_values = {resource: quantity_value(resource, text)
                                   for resource, text in node.status.allocatable.items()}
        self.unschedulable = node.spec.unschedulable
        self.taints = tuple(node.spec.taints)
        self.labels = dict(node.metadata.labels)

    @property
    def pods(self) -> tuple[core_pb2.Pod, ...]:
        if self._pods is None:
            self._pods = tuple(info.pod for info in self._infos.values())
        return self._pods

    @property
    def pod_infos(self) -> Iterable[PodInfo]:
        return self._infos.values()

    def __len__(self) -> int:
        """How many pods are bound here (also ``pod_count``)."""
        return self.pod_count

    def allocatable(self, resource: str) -> int:
        return self.allocatable_values.get(resource, 0)

    def add_pod(self, pod: core_pb2.Pod, info: PodInfo | None = None) -> None:
        """Count pod here (replacing an earlier version of it)."""
        key = _pod_key(pod)
        if key in self._infos:
            self.remove_pod(key)
        info = info or PodInfo(pod)
        self._infos[key] = info
        self.pod_count = len(self._infos)
        self._pods = None
        _count(self.requested, info.requests, 1)
        _count(self.non_zero_requested, info.non_zero_requests, 1)
        if info.required_anti_affinity:
            self.pods_with_required_anti_affinity[key] = info

    def remove_pod(self, key: PodKey) -> None:
        info = self._infos.pop(key, None)
        if info is None:
            return
        self.pod_count = len(self._infos)
        self._pods = None
        _count(self.requested, info.requests, -1)
        _count(self.non_zero_requested, info.non_zero_requests, -1)
        self.pods_with_required_anti_affinity.pop(key, None)

    def with_pod(self, pod: core_pb2.Pod) -> "NodeInfo":
        copy = NodeInfo(self.node)
        for key, info in self._infos.items():
            copy.add_pod(info.pod, info)
        copy.add_pod(pod)
        return copy

    def __repr__(self) -> str:
        return f"NodeInfo({self.name!r}, pods={len(self._infos)})"


def _count(total: dict[str, int], amounts: Mapping[str, int], sign: int) -> None:
    for resource, value in amounts.items():
        left = total.get(resource, 0) + sign * value
        if left:
            total[resource] = left
        else:
            total.pop(resource, None)


# --------------------------------------------------------------- cycle state


@dataclass
class CycleState:
    """What one scheduling decision shares between plugins: every node of the
    snapshot (affinity between pods looks beyond the node being filtered) and
    a scratch dict where a plugin may keep what it computed once per pod."""

    nodes: Sequence[NodeInfo] = ()
    data: dict[str, Any] = field(default_factory=dict)
    # The nodes holding pods with required anti-affinity, when the caller knows
    # them (the scheduler's cache does); None: look through nodes.
    known_nodes_with_required_anti_affinity: Sequence[NodeInfo] | None = None

    @property
    def nodes_with_required_anti_affinity(self) -> Sequence[NodeInfo]:
        if self.known_nodes_with_required_anti_affinity is None:
            self.known_nodes_with_required_anti_affinity = [
                info for info in self.nodes if info.pods_with_required_anti_affinity]
        return self.known_nodes_with_required_anti_affinity


_RESOURCES_KEY = "framework/pod-resources"


def pod_resources(pod: core_pb2.Pod, state: CycleState) -> PodInfo:
    """The pod's requests, computed once per decision (and kept in state)."""
    cached = state.data.get(_RESOURCES_KEY)
    if cached is None or cached.pod is not pod:
        cached = state.data[_RESOURCES_KEY] = PodInfo(pod)
    return cached


# ------------------------------------------------------------- extension points


@runtime_checkable
class FilterPlugin(Protocol):
    """Filter extension point.

    ``filter`` is called once per node per decision, in any order; it must
    not mutate pod, node_info or other plugins' entries in state. It returns
    SUCCESS when the pod may run on the node, else a Status whose reasons are
    short, node-independent strings (they are counted across nodes in the
    FailedScheduling summary).
    """

    name: str

    def filter(self, pod: core_pb2.Pod, node_info: NodeInfo, state: CycleState) -> Status: ...


@runtime_checkable
class PreFilterPlugin(Protocol):
    """Optional companion of FilterPlugin (Kubernetes' PreFilter): called once
    per decision before any ``filter``; False means the pod gives the plugin
    nothing to check, so its filter would pass every node and is skipped.
    It may also compute what its filter needs into state.data."""

    def pre_filter(self, pod: core_pb2.Pod, state: CycleState) -> bool: ...


@runtime_checkable
class BatchFilterPlugin(Protocol):
    """Optional companion of FilterPlugin: ``filter_all`` filters many nodes
    in one call and returns (index in nodes, status) for each node it
    rejects, in index order; its verdicts must be those of ``filter``."""

    def filter_all(self, pod: core_pb2.Pod, nodes: Sequence[NodeInfo],
                   state: CycleState) -> list[tuple[int, Status]]: ...


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
class PreScorePlugin(Protocol):
    """Optional companion of ScorePlugin (Kubernetes' PreScore): called once
    per decision with the feasible nodes; False means the pod gives the plugin
    nothing to prefer (every node would score the same), so it is skipped."""

    def pre_score(self, pod: core_pb2.Pod, feasible: Sequence[NodeInfo], state: CycleState) -> bool: ...


@runtime_checkable
class BatchScorePlugin(Protocol):
    """Optional companion of ScorePlugin: ``score_all`` returns the raw score
    of each node of nodes, in order, in one call; the same as ``score``'s."""

    def score_all(self, pod: core_pb2.Pod, nodes: Sequence[NodeInfo], state: CycleState) -> list[int]: ...


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
    """A scheduler profile: which filters run (in order) and which scorers
    count, how much; and how many nodes a decision looks at (None: the
    scheduler-wide percentageOfNodesToScore)."""

    name: str
    filters: tuple[FilterPlugin, ...]
    scorers: tuple[WeightedScorer, ...] = ()
    percentage_of_nodes_to_score: int | None = None


def feasible_nodes_to_find(num_nodes: int, percentage: int = 0) -> int:
    """How many feasible nodes a decision looks for before it scores
    (kube-scheduler's rule): every node in a cluster under 100 nodes or at
    100%; else percentage of them (0: adaptive, 50% minus one point per 125
    nodes, at least 5%), but never fewer than 100."""
    if num_nodes < MIN_FEASIBLE_NODES_TO_FIND or percentage >= 100:
        return num_nodes
    if percentage <= 0:
        percentage = max(ADAPTIVE_BASE_PERCENTAGE - num_nodes // ADAPTIVE_NODES_PER_PERCENT,
                         MIN_FEASIBLE_NODES_PERCENTAGE)
    return max(num_nodes * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


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


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision: the chosen node's name, or why none fits; and how many
    nodes it filtered (the next search starts that many nodes further on)."""

    node_name: str | None
    failure: FitError | None
    evaluated: int
    feasible: int


def filter_node(pod: core_pb2.Pod, node_info: NodeInfo, profile: Profile, state: CycleState) -> Status:
    """The first failing filter's status (Kubernetes stops at the first), else SUCCESS."""
    for plugin in profile.filters:
        status = plugin.filter(pod, node_info, state)
        if not status.success:
            return status
    return SUCCESS


BatchFilter = Callable[[core_pb2.Pod, Sequence[NodeInfo], CycleState], list[tuple[int, Status]]]


def _one_by_one(plugin: FilterPlugin) -> BatchFilter:
    def filter_all(pod: core_pb2.Pod, nodes: Sequence[NodeInfo], state: CycleState) -> list[tuple[int, Status]]:
        rejected = []
        for index, info in enumerate(nodes):
            status = plugin.filter(pod, info, state)
            if status.reasons:
                rejected.append((index, status))
        return rejected
    return filter_all


def _active_filters(pod: core_pb2.Pod, profile: Profile, state: CycleState) -> list[BatchFilter]:
    """The profile's filters that this pod needs, each as a batch filter."""
    active = []
    for plugin in profile.filters:
        pre_filter = getattr(plugin, "pre_filter", None)
        if pre_filter is None or pre_filter(pod, state):
            active.append(getattr(plugin, "filter_all", None) or _one_by_one(plugin))
    return active


def filter_nodes(pod: core_pb2.Pod, nodes: Sequence[NodeInfo], filters: Sequence[BatchFilter], state: CycleState,
                 rejected: dict[str, tuple[str, ...]]) -> list[NodeInfo]:
    """The nodes passing every filter; each other node's reasons (from the
    first filter rejecting it, filters running in order) go into rejected."""
    passing = list(nodes)
    for filter_all in filters:
        failures = filter_all(pod, passing, state)
        if failures:
            dropped = set()
            for index, status in failures:
                rejected[passing[index].name] = status.reasons
                dropped.add(index)
            passing = [info for index, info in enumerate(passing) if index not in dropped]
            if not passing:
                break
    return passing


def score_nodes(pod: core_pb2.Pod, feasible: Sequence[NodeInfo], profile: Profile,
                state: CycleState) -> list[int]:
    """Each feasible node's weighted total score, in the order of feasible,
    up to a constant: a scorer giving every node the same score is left out."""
    totals = [0] * len(feasible)
    names: list[str] | None = None
    for scorer in profile.scorers:
        plugin = scorer.plugin
        pre_score = getattr(plugin, "pre_score", None)
        if pre_score is not None and not pre_score(pod, feasible, state):
            continue
        score_all = getattr(plugin, "score_all", None)
        if score_all is not None:
            raw = score_all(pod, feasible, state)
        else:
            score = plugin.score
            raw = [score(pod, info, state) for info in feasible]
        if min(raw) == max(raw):
            continue
        normalize = getattr(plugin, "normalize", None)
        if normalize is not None:
            if names is None:
                names = [info.name for info in feasible]
            by_name = normalize(dict(zip(names, raw)), pod, state)
            raw = [by_name[name] for name in names]
        weight = scorer.weight
        totals = [total + weight * value for total, value in zip(totals, raw)]
    return totals


def find_node(pod: core_pb2.Pod, nodes: Sequence[NodeInfo], profile: Profile, *,
              feasible_wanted: int | None = None, start: int = 0,
              nodes_with_required_anti_affinity: Sequence[NodeInfo] | None = None) -> Decision:
    """Pick a node for pod among nodes.

    Filters nodes in order from index start (wrapping around) until
    feasible_wanted nodes passed (default: all of them), then scores those.
    Ties go to the node that comes first by name, so decisions are
    repeatable (Kubernetes picks among ties at random).
    nodes_with_required_anti_affinity, when given, must be exactly those of
    nodes holding pods with required anti-affinity.
    """
    state = CycleState(nodes=nodes, known_nodes_with_required_anti_affinity=nodes_with_required_anti_affinity)
    filters = _active_filters(pod, profile, state)
    total = len(nodes)
    wanted = total if feasible_wanted is None else max(1, min(feasible_wanted, total))
    start = start % total if total else 0
    ordered = nodes if not start else [*nodes[start:], *nodes[:start]]
    feasible: list[NodeInfo] = []
    rejected: dict[str, tuple[str, ...]] = {}
    evaluated = 0
    # In batches no larger than the feasible nodes still wanted, so exactly
    # the nodes a one-by-one search would look at are looked at.
    while evaluated < total and len(feasible) < wanted:
        batch = ordered[evaluated:evaluated + wanted - len(feasible)]
        evaluated += len(batch)
        feasible += filter_nodes(pod, batch, filters, state, rejected)
    if not feasible:
        return Decision(None, FitError(num_all_nodes=total, node_reasons=rejected), evaluated, 0)
    if len(feasible) == 1:
        return Decision(feasible[0].name, None, evaluated, 1)
    totals = score_nodes(pod, feasible, profile, state)
    best = max(totals)
    chosen = min(info.name for info, value in zip(feasible, totals) if value == best)
    return Decision(chosen, None, evaluated, len(feasible))


def schedule_one(pod: core_pb2.Pod, nodes: Sequence[NodeInfo],
                 profile: Profile) -> tuple[str | None, FitError | None]:
    """Pick a node for pod among all nodes: (its name, None), or (None, why none fits)."""
    decision = find_node(pod, nodes, profile)
    return decision.node_name, decision.failure
