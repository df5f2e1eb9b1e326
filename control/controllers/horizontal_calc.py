"""The horizontal pod autoscaler's arithmetic: pure functions of what it has observed.

The controller (control/controllers/horizontal.py) gathers facts (the
target's replicas, its pods, their usage, the time) and asks this module three
questions in turn, as Kubernetes' autoscaler does:

1. ``resource_replicas``: how many replicas one Resource metric asks for.
   The pods' usage is set against the target (a percentage of the pods'
   requests, or an average value per pod): ``ceil(ratio * pods)``, and no
   change while the ratio stays within the tolerance (10% either way). Pods
   whose usage cannot be trusted are handled conservatively: pending pods,
   and for CPU pods that are not Ready, count as using nothing, and only when
   that could hold a scale-up back; pods without a sample count as using
   nothing on the way up and their full request on the way down. If
   assuming so flips the direction or lands within the tolerance, the
   replica count stays.
2. ``stabilize``: the recommendation against the recent ones. Scale-down takes
   the highest recommendation seen within its stabilization window (300 s by
   default), scale-up the lowest within its own (none by default), so a dip
   or a spike shorter than the window changes nothing.
3. ``limit_rate``: the stabilized count within minReplicas..maxReplicas and
   within the scaling policies (``Pods`` or ``Percent`` per ``periodSeconds``,
   counted from the replica count at the start of each period, so changes
   already made in the period use up the allowance; ``selectPolicy`` Max
   picks the policy allowing the largest change, Min the smallest, Disabled
   forbids that direction).

Each step also says why it changed what it was given, in the reasons and
messages Kubernetes writes into the HPA's conditions.

Units: CPU in millicores, memory in bytes; times in epoch seconds.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Sequence

from google.protobuf.message import Message

from control.api.quantity import bytes_value, cpu_millis, parse_quantity
from control.controllers import pods as pod_states
from protos.api.v1 import core_pb2

DEFAULT_TOLERANCE = 0.1
DEFAULT_CPU_UTILIZATION = 80
# Kubernetes' default policies: scale up by 4 pods or double, whichever is
# more, and scale down to anything, each within 15 s.
DEFAULT_POLICY_PERIOD = 15
SELECT_MAX, SELECT_MIN, SELECT_DISABLED = "Max", "Min", "Disabled"
PODS_POLICY, PERCENT_POLICY = "Pods", "Percent"


class MetricError(Exception):
    """A metric that cannot give a replica count; the message says why, as Kubernetes words it,
    and reason is the ScalingActive condition's reason."""

    def __init__(self, message: str, *, reason: str = "FailedGetResourceMetric") -> None:
        super().__init__(message)
        self.reason = reason


# ---------------------------------------------------------------- the pods and their usage


class PodState(enum.Enum):
    READY = "Ready"
    NOT_READY = "NotReady"
    PENDING = "Pending"
    GONE = "Gone"  # being deleted, or finished: left out altogether


@dataclass(frozen=True)
class PodSample:
    """One pod the target's selector matches, as the calculator sees it."""

    name: str
    state: PodState
    # Measured usage (millicores or bytes); None when the metrics had none for it.
    usage: int | None = None
    # Its containers' requests summed, in the same unit (needed for Utilization).
    request: int = 0


def pod_state(pod: core_pb2.Pod) -> PodState:
    if pod_states.is_terminating(pod) or pod_states.is_finished(pod):
        return PodState.GONE
    if pod.status.phase in ("", "Pending"):
        return PodState.PENDING
    return PodState.READY if pod_states.is_ready(pod) else PodState.NOT_READY


def resource_amount(resource: str, quantity: str) -> int:
    """A quantity in the unit the calculator uses for resource: millicores for cpu, else whole units."""
    return cpu_millis(quantity) if resource == "cpu" else bytes_value(quantity)


def pod_request(pod: core_pb2.Pod, resource: str) -> int:
    """The pod's request of resource: its containers' (and sidecars') requests summed.

    A container without a request makes utilization meaningless:
    MetricError, naming the container and the pod.
    """
    containers = list(pod.spec.containers)
    # Sidecars (init containers that keep running) use resources like the others.
    containers += [c for c in pod.spec.init_containers if c.restart_policy == "Always"]
    total = 0
    for container in containers:
        quantity = container.resources.requests.get(resource)
        if quantity is None:
            raise MetricError(f"missing request for {resource} in container {container.name} "
                              f"of Pod {pod.metadata.name}")
        try:
            total += resource_amount(resource, quantity)
        except ValueError as err:
            raise MetricError(f"invalid request {quantity!r} for {resource} in container {container.name} "
                              f"of Pod {pod.metadata.name}: {err}") from None
    return total


# ---------------------------------------------------------------- one metric's recommendation


@dataclass(frozen=True)
class ResourceTarget:
    """What one Resource metric aims at: a percentage of request, or an average per pod."""

    resource: str
    utilization: int | None = None  # percent of the pods' requests (target type Utilization)
    average_value: int | None = None  # per pod, in the resource's unit (target type AverageValue)

    @property
    def description(self) -> str:
        """How events and conditions name the metric."""
        if self.utilization is not None:
            return f"{self.resource} resource utilization (percentage of request)"
        return f"{self.resource} resource"


def metric_targets(spec: Message) -> list[ResourceTarget | MetricError]:
    """What each of an HPA's spec.metrics aims at (CPU at 80% of request when none are given),
    or, for one the autoscaler cannot follow, the error that makes it invalid."""
    if not spec.metrics:
        return [ResourceTarget("cpu", utilization=DEFAULT_CPU_UTILIZATION)]
    targets: list[ResourceTarget | MetricError] = []
    for metric in spec.metrics:
        if metric.type != "Resource":
            targets.append(MetricError(f'unknown metric source type "{metric.type}": only Resource metrics '
                                       "are supported", reason="InvalidMetricSourceType"))
            continue
        resource, target = metric.resource.name, metric.resource.target
        if target.type == "Utilization" and target.average_utilization > 0:
            targets.append(ResourceTarget(resource, utilization=target.average_utilization))
        elif target.type == "AverageValue" and target.HasField("average_value"):
            try:
                average = resource_amount(resource, target.average_value)
            except ValueError as err:
                average = 0
                problem = str(err)
            else:
                problem = "must be greater than 0"
            if average > 0:
                targets.append(ResourceTarget(resource, average_value=average))
            else:
                targets.append(MetricError(f"invalid averageValue {target.average_value!r} for resource "
                                           f"{resource}: {problem}", reason="InvalidMetricSourceType"))
        else:
            targets.append(MetricError(f'invalid target type "{target.type}" for resource {resource}: '
                                       "must be Utilization (with averageUtilization) or AverageValue "
                                       "(with averageValue)", reason="InvalidMetricSourceType"))
    return targets


@dataclass(frozen=True)
class Tolerance:
    """How far the usage ratio may stray above (up) or below (down) 1.0 without a change."""

    up: float = DEFAULT_TOLERANCE
    down: float = DEFAULT_TOLERANCE

    def holds(self, ratio: float) -> bool:
        return 1.0 - self.down <= ratio <= 1.0 + self.up


@dataclass(frozen=True)
class ResourceRecommendation:
    replicas: int
    # What the counted pods use now: percent of their requests (Utilization
    # targets only) and the average per pod.
    utilization: int | None
    average_value: int


def resource_replicas(samples: Sequence[PodSample], *, current_replicas: int, target: ResourceTarget,
                      tolerance: Tolerance = Tolerance()) -> ResourceRecommendation:
    """The replica count target asks for, given the pods' samples (see the module docstring)."""
    if not samples:
        raise MetricError("no pods returned by selector while calculating replica count")
    # Only CPU is distorted while a pod starts (and before it is ready); memory counts as measured.
    readiness_matters = target.resource == "cpu"
    ready: list[PodSample] = []
    unready: list[PodSample] = []
    missing: list[PodSample] = []
    for sample in samples:
        if sample.state is PodState.GONE:
            continue
        if sample.state is PodState.PENDING:
            unready.append(sample)
        elif sample.usage is None:
            missing.append(sample)
        elif readiness_matters and sample.state is PodState.NOT_READY:
            unready.append(sample)
        else:
            ready.append(sample)
    if not ready:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")

    measured = [(sample.usage or 0, sample.request) for sample in ready]
    ratio = _usage_ratio(measured, target)
    total_usage = sum(usage for usage, _ in measured)
    total_request = sum(request for _, request in measured)
    utilization = total_usage * 100 // total_request if target.utilization is not None else None
    recommendation = ResourceRecommendation(current_replicas, utilization, total_usage // len(measured))

    scale_up_held_back = bool(unready) and ratio > 1.0
    if not scale_up_held_back and not missing:
        if tolerance.holds(ratio):
            return recommendation
        return ResourceRecommendation(math.ceil(ratio * len(measured)), utilization, recommendation.average_value)

    # Assume the worst of the pods without a usable sample, and see whether the decision survives.
    assumed = list(measured)
    if missing and ratio != 1.0:
        for sample in missing:
            assumed.append((_full_usage(sample, target) if ratio < 1.0 else 0, sample.request))
    if scale_up_held_back:
        assumed.extend((0, sample.request) for sample in unready)
    new_ratio = _usage_ratio(assumed, target)
    if tolerance.holds(new_ratio) or (ratio < 1.0 < new_ratio) or (new_ratio < 1.0 < ratio):
        return recommendation
    replicas = math.ceil(new_ratio * len(assumed))
    if (new_ratio < 1.0 and replicas > current_replicas) or (new_ratio > 1.0 and replicas < current_replicas):
        return recommendation
    return ResourceRecommendation(replicas, utilization, recommendation.average_value)


def _usage_ratio(usage_and_requests: Sequence[tuple[int, int]], target: ResourceTarget) -> float:
    """Usage over what the target allows for these pods (1.0: exactly on target)."""
    total_usage = sum(usage for usage, _ in usage_and_requests)
    if target.utilization is not None:
        total_request = sum(request for _, request in usage_and_requests)
        if total_request <= 0:
            raise MetricError("no metrics returned matched known pods")
        return total_usage * 100 / (total_request * target.utilization)
    assert target.average_value is not None
    return total_usage / (len(usage_and_requests) * target.average_value)


def _full_usage(sample: PodSample, target: ResourceTarget) -> int:
    """What a pod without a sample is assumed to use on the way down: its whole request
    (or the target, if that is above 100%), or the target average."""
    if target.utilization is not None:
        return sample.request * max(100, target.utilization) // 100
    assert target.average_value is not None
    return target.average_value


# ---------------------------------------------------------------- behavior: stabilization and rate limits


@dataclass(frozen=True)
class ScalingPolicy:
    type: str  # Pods or Percent
    value: int
    period_seconds: int


@dataclass(frozen=True)
class ScalingRules:
    """One direction's behavior."""

    stabilization_seconds: float
    select_policy: str = SELECT_MAX
    policies: tuple[ScalingPolicy, ...] = ()
    tolerance: float = DEFAULT_TOLERANCE


@dataclass(frozen=True)
class Behavior:
    scale_up: ScalingRules
    scale_down: ScalingRules

    @property
    def tolerance(self) -> Tolerance:
        return Tolerance(up=self.scale_up.tolerance, down=self.scale_down.tolerance)

    @property
    def history_seconds(self) -> float:
        """How long recommendations matter."""
        return max(self.scale_up.stabilization_seconds, self.scale_down.stabilization_seconds)

    @property
    def events_seconds(self) -> int:
        """How long scale events matter: the longest policy period."""
        periods = [p.period_seconds for p in (*self.scale_up.policies, *self.scale_down.policies)]
        return max(periods, default=DEFAULT_POLICY_PERIOD)


DEFAULT_SCALE_UP_POLICIES = (ScalingPolicy(PODS_POLICY, 4, DEFAULT_POLICY_PERIOD),
                             ScalingPolicy(PERCENT_POLICY, 100, DEFAULT_POLICY_PERIOD))
DEFAULT_SCALE_DOWN_POLICIES = (ScalingPolicy(PERCENT_POLICY, 100, DEFAULT_POLICY_PERIOD),)


def behavior_from_spec(spec: Message, *, downscale_stabilization: float) -> Behavior:
    """The Behavior an HPA's spec.behavior describes, every unset part at its default.

    Defaults: scale-up without stabilization, up to 4 pods or 100% per 15 s
    (the larger); scale-down stabilized over downscale_stabilization seconds,
    up to 100% per 15 s; tolerance 10% both ways.
    """
    behavior = spec.behavior if spec.HasField("behavior") else None
    return Behavior(
        scale_up=_rules(behavior.scale_up if behavior is not None and behavior.HasField("scale_up") else None,
                        stabilization=0.0, policies=DEFAULT_SCALE_UP_POLICIES),
        scale_down=_rules(behavior.scale_down if behavior is not None and behavior.HasField("scale_down") else None,
                          stabilization=downscale_stabilization, policies=DEFAULT_SCALE_DOWN_POLICIES))


def _rules(rules: Message | None, *, stabilization: float, policies: tuple[ScalingPolicy, ...]) -> ScalingRules:
    if rules is None:
        return ScalingRules(stabilization_seconds=stabilization, policies=policies)
    tolerance = DEFAULT_TOLERANCE
    if rules.HasField("tolerance"):
        try:
            tolerance = float(parse_quantity(rules.tolerance))
        except ValueError:
            pass  # validation refuses it; an old object keeps the default
    return ScalingRules(
        stabilization_seconds=float(rules.stabilization_window_seconds)
        if rules.HasField("stabilization_window_seconds") else stabilization,
        select_policy=rules.select_policy or SELECT_MAX,
        policies=tuple(ScalingPolicy(p.type, p.value, p.period_seconds) for p in rules.policies) or policies,
        tolerance=tolerance)


@dataclass(frozen=True)
class TimedRecommendation:
    at: float
    replicas: int


@dataclass(frozen=True)
class ScaleEvent:
    at: float
    change: int  # replicas added (positive) or removed (negative)


@dataclass(frozen=True)
class Verdict:
    """A step's result and, as a condition, why."""

    replicas: int
    reason: str
    message: str


def stabilize(desired: int, *, current: int, history: Sequence[TimedRecommendation], behavior: Behavior,
              now: float) -> Verdict:
    """desired held within the recent recommendations: no lower than the highest within the
    scale-down window, no higher than the lowest within the scale-up window."""
    up_cutoff = now - behavior.scale_up.stabilization_seconds
    down_cutoff = now - behavior.scale_down.stabilization_seconds
    lowest_recent, highest_recent = desired, desired
    for past in history:
        if past.at > up_cutoff:
            lowest_recent = min(lowest_recent, past.replicas)
        if past.at > down_cutoff:
            highest_recent = max(highest_recent, past.replicas)
    stabilized = min(max(current, lowest_recent), highest_recent)
    if stabilized == desired:
        return Verdict(stabilized, "ReadyForNewScale", "recommended size matches current size")
    if desired >= current:
        return Verdict(stabilized, "ScaleUpStabilized",
                       "recent recommendations were lower than current one, applying the lowest recent recommendation")
    return Verdict(stabilized, "ScaleDownStabilized",
                   "recent recommendations were higher than current one, applying the highest recent recommendation")


def remember(history: Sequence[TimedRecommendation], desired: int, *, now: float,
             keep_seconds: float) -> tuple[TimedRecommendation, ...]:
    """history with desired recorded at now, and what is older than keep_seconds dropped."""
    cutoff = now - keep_seconds
    return (*(past for past in history if past.at >= cutoff), TimedRecommendation(now, desired))


def limit_rate(desired: int, *, current: int, min_replicas: int, max_replicas: int,
               events: Sequence[ScaleEvent], behavior: Behavior, now: float) -> Verdict:
    """desired within min..max and within the direction's scaling policies.

    The reason is ScalingLimited's: DesiredWithinRange when nothing was cut,
    else TooManyReplicas/TooFewReplicas (the bounds) or
    ScaleUpLimit/ScaleDownLimit (the policies).
    """
    if desired > current:
        limit = max(current, scale_up_limit(current, events, behavior.scale_up, now=now))
        if limit < max_replicas:
            bound, reason, message = limit, "ScaleUpLimit", \
                "the desired replica count is increasing faster than the maximum scale rate"
        else:
            bound, reason, message = max_replicas, "TooManyReplicas", \
                "the desired replica count is more than the maximum replica count"
        if desired > bound:
            return Verdict(bound, reason, message)
    elif desired < current:
        limit = min(current, scale_down_limit(current, events, behavior.scale_down, now=now))
        if limit > min_replicas:
            bound, reason, message = limit, "ScaleDownLimit", \
                "the desired replica count is decreasing faster than the maximum scale rate"
        else:
            bound, reason, message = min_replicas, "TooFewReplicas", \
                "the desired replica count is less than the minimum replica count"
        if desired < bound:
            return Verdict(bound, reason, message)
    return Verdict(desired, "DesiredWithinRange", "the desired count is within the acceptable range")


def _period_start(current: int, events: Sequence[ScaleEvent], period: int, now: float) -> int:
    """The replica count at the start of the period ending now (undoing the changes made since)."""
    cutoff = now - period
    return current - sum(event.change for event in events if event.at > cutoff)


def scale_up_limit(current: int, events: Sequence[ScaleEvent], rules: ScalingRules, *, now: float) -> int:
    """The most replicas the scale-up policies allow now."""
    if rules.select_policy == SELECT_DISABLED or not rules.policies:
        return current
    proposals = []
    for policy in rules.policies:
        start = _period_start(current, events, policy.period_seconds, now)
        if policy.type == PODS_POLICY:
            proposals.append(start + policy.value)
        else:
            # Rounded up, or a small target could never grow by a percentage.
            proposals.append(math.ceil(Decimal(start) * (100 + policy.value) / 100))
    return min(proposals) if rules.select_policy == SELECT_MIN else max(proposals)


def scale_down_limit(current: int, events: Sequence[ScaleEvent], rules: ScalingRules, *, now: float) -> int:
    """The fewest replicas the scale-down policies allow now."""
    if rules.select_policy == SELECT_DISABLED or not rules.policies:
        return current
    proposals = []
    for policy in rules.policies:
        start = _period_start(current, events, policy.period_seconds, now)
        if policy.type == PODS_POLICY:
            proposals.append(start - policy.value)
        else:
            proposals.append(math.floor(Decimal(start) * (100 - policy.value) / 100))
    # Min selects the smallest change, which going down is the largest count.
    return max(proposals) if rules.select_policy == SELECT_MIN else min(proposals)


def record_scale(events: Sequence[ScaleEvent], *, before: int, after: int, now: float,
                 keep_seconds: float) -> tuple[ScaleEvent, ...]:
    """events with a rescale from before to after added, and what is older than keep_seconds dropped."""
    cutoff = now - keep_seconds
    kept = tuple(event for event in events if event.at >= cutoff)
    return (*kept, ScaleEvent(now, after - before)) if after != before else kept
