"""The autoscaler's arithmetic (control/controllers/horizontal_calc.py), without a cluster.

Covered: the replica count a metric asks for (ratio to target, ceil, the
tolerance either way, Utilization and AverageValue targets, memory), pods
whose samples cannot be trusted (pending and not-ready pods on the way up,
pods without a sample both ways, pods going away), pods' requests, the
metric specs an HPA may hold, the behavior read from a spec with its
defaults, the stabilization windows, and the rate limits of the policies
(Pods, Percent, selectPolicy Max/Min/Disabled, periods) with the min/max
bounds.
"""

from __future__ import annotations

import pytest

from control.api.manifest import to_message
from control.controllers import horizontal_calc as calc
from control.controllers.horizontal_calc import (
    Behavior,
    MetricError,
    PodSample,
    PodState,
    ResourceTarget,
    ScaleEvent,
    ScalingPolicy,
    ScalingRules,
    TimedRecommendation,
    Tolerance,
)

READY, NOT_READY, PENDING, GONE = PodState.READY, PodState.NOT_READY, PodState.PENDING, PodState.GONE
CPU_50 = ResourceTarget("cpu", utilization=50)


def pods(*usages: int | None, request: int = 100, state: PodState = READY, prefix: str = "p") -> list[PodSample]:
    return [PodSample(f"{prefix}{i}", state, usage, request) for i, usage in enumerate(usages)]


def replicas(samples: list[PodSample], *, current: int, target: ResourceTarget = CPU_50,
             tolerance: Tolerance = Tolerance()) -> int:
    return calc.resource_replicas(samples, current_replicas=current, target=target, tolerance=tolerance).replicas


# ---------------------------------------------------------------- the ratio to the target


def test_usage_above_target_asks_for_the_ratio_times_the_pods_rounded_up():
    # 90% of request against 50%: 1.8 x 2 pods = 3.6 -> 4
    assert replicas(pods(90, 90), current=2) == 4


def test_usage_below_target_asks_for_fewer():
    # 10% against 50%: 0.2 x 2 = 0.4 -> 1
    assert replicas(pods(10, 10), current=2) == 1


def test_a_ratio_within_the_tolerance_keeps_the_current_count():
    assert replicas(pods(54, 54), current=2) == 2  # 1.08
    assert replicas(pods(46, 46), current=2) == 2  # 0.92
    assert replicas(pods(56, 56), current=2) == 3  # 1.12 is beyond 10%


def test_the_tolerance_can_differ_per_direction():
    strict_up = Tolerance(up=0.0, down=0.5)
    assert replicas(pods(52, 52), current=2, tolerance=strict_up) == 3  # 1.04, no slack upwards
    assert replicas(pods(30, 30), current=2, tolerance=strict_up) == 2  # 0.6, within 50% downwards


def test_the_recommendation_reports_current_utilization_and_average_usage():
    found = calc.resource_replicas(pods(90, 30), current_replicas=2, target=CPU_50)
    assert (found.utilization, found.average_value) == (60, 60)


def test_utilization_is_against_the_summed_requests_of_uneven_pods():
    samples = [PodSample("big", READY, 100, 400), PodSample("small", READY, 100, 100)]
    found = calc.resource_replicas(samples, current_replicas=2, target=CPU_50)
    assert found.utilization == 40  # 200m of 500m
    assert found.replicas == 2  # 0.8 x 2 = 1.6 -> 2


def test_an_average_value_target_divides_the_average_usage_by_the_target():
    target = ResourceTarget("cpu", average_value=200)
    found = calc.resource_replicas(pods(300, 300, request=0), current_replicas=2, target=target)
    assert (found.replicas, found.utilization, found.average_value) == (3, None, 300)


def test_memory_utilization_works_like_cpu():
    mib = 1 << 20
    target = ResourceTarget("memory", utilization=50)
    assert replicas(pods(90 * mib, 90 * mib, request=100 * mib), current=2, target=target) == 4


# ---------------------------------------------------------------- pods whose usage cannot be trusted


def test_not_ready_pods_cannot_turn_a_scale_up_into_a_scale_down():
    # The ready pod alone (120%) would ask for 2 of 4; counted at 0% the
    # unready ones bring the ratio below 1: the count stays.
    samples = pods(60) + pods(80, 80, 80, state=NOT_READY, prefix="u")
    assert replicas(samples, current=4) == 4


def test_not_ready_pods_are_left_out_when_scaling_down():
    samples = pods(10, 10) + pods(90, 90, state=NOT_READY, prefix="u")
    assert replicas(samples, current=4) == 1  # 0.2 x the 2 ready pods


def test_not_ready_pods_count_as_using_nothing_when_scaling_up():
    # 2 ready pods at 200% and 2 unready: (400 + 0 + 0) / (4 x 50) = 2.0 x 4 = 8;
    # with unready pods taken at face value (200% each) it would be 16.
    samples = pods(200, 200) + pods(200, 200, state=NOT_READY, prefix="u")
    assert replicas(samples, current=4) == 8


def test_readiness_does_not_matter_for_memory():
    target = ResourceTarget("memory", utilization=50)
    samples = pods(60) + pods(80, 80, 80, state=NOT_READY, prefix="u")
    assert replicas(samples, current=4, target=target) == 6  # all four at 75% / 50%: 1.5 x 4


def test_pending_pods_count_as_unready_for_any_resource():
    target = ResourceTarget("memory", utilization=50)
    samples = pods(60) + pods(None, None, None, state=PENDING, prefix="u")
    assert replicas(samples, current=4, target=target) == 4


def test_pods_without_a_sample_count_as_using_their_whole_request_when_scaling_down():
    # Alone the 4 measured pods (10%) would ask for 1; the missing one at
    # 100%: (40 + 100) / (5 x 50) = 0.56 x 5 = 2.8 -> 3.
    samples = pods(10, 10, 10, 10) + pods(None, prefix="m")
    assert replicas(samples, current=5) == 3


def test_pods_without_a_sample_count_at_the_target_when_it_is_above_their_request():
    target = ResourceTarget("cpu", utilization=150)
    # (2 x 30 + 150) / (3 x 150) = 0.47 x 3 = 1.4 -> 2
    assert replicas(pods(30, 30) + pods(None, prefix="m"), current=3, target=target) == 2


def test_pods_without_a_sample_count_as_using_nothing_when_scaling_up():
    # One pod at 120% would ask for 2; three missing at 0% make it 0.3: the count stays.
    assert replicas(pods(60) + pods(None, None, None, prefix="m"), current=4) == 4
    # Two at 300% and two missing: (600 + 0) / (4 x 50) = 3 x 4 = 12.
    assert replicas(pods(300, 300) + pods(None, None, prefix="m"), current=4) == 12


def test_pods_without_a_sample_that_land_within_the_tolerance_keep_the_count():
    # 2 x 100% + 2 missing at 0% = 50% on target, although the measured ones are at 2.0.
    assert replicas(pods(100, 100) + pods(None, None, prefix="m"), current=4) == 4


def test_pods_going_away_are_left_out():
    samples = pods(90, 90) + pods(500, 500, 500, state=GONE, prefix="g")
    assert replicas(samples, current=5) == 4  # counted, they would ask for 34


def test_no_pods_is_an_invalid_metric():
    with pytest.raises(MetricError, match="no pods returned by selector"):
        replicas([], current=1)


def test_no_sample_for_any_ready_pod_is_an_invalid_metric():
    with pytest.raises(MetricError, match=r"did not receive metrics for targeted pods \(pods might be unready\)"):
        replicas(pods(None, None) + pods(50, state=NOT_READY, prefix="u"), current=3)


def test_requests_of_zero_are_an_invalid_metric():
    with pytest.raises(MetricError, match="no metrics returned matched known pods"):
        replicas(pods(50, 50, request=0), current=2)


# ---------------------------------------------------------------- pods and specs


def make_pod(*containers: dict, init_containers: tuple[dict, ...] = (), **status) -> object:
    return to_message({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "default"},
                       "spec": {"containers": list(containers), "initContainers": list(init_containers)},
                       "status": status})


def container(name: str, **requests: str) -> dict:
    return {"name": name, "image": "busybox", "resources": {"requests": requests}}


def test_a_pods_request_sums_its_containers_and_sidecars():
    pod = make_pod(container("web", cpu="250m", memory="64Mi"), container("log", cpu="0.25", memory="64Mi"),
                   init_containers=({**container("proxy", cpu="100m", memory="1Mi"), "restartPolicy": "Always"},
                                    container("setup", cpu="4")))
    assert calc.pod_request(pod, "cpu") == 600
    assert calc.pod_request(pod, "memory") == 129 << 20


def test_a_container_without_a_request_makes_the_metric_invalid_naming_it():
    pod = make_pod(container("web", cpu="250m"), container("log", memory="64Mi"))
    with pytest.raises(MetricError, match="missing request for cpu in container log of Pod web-1"):
        calc.pod_request(pod, "cpu")


def test_an_unreadable_request_makes_the_metric_invalid_naming_it():
    with pytest.raises(MetricError, match="invalid request 'lots' for cpu in container web of Pod web-1"):
        calc.pod_request(make_pod(container("web", cpu="lots")), "cpu")


def test_pod_states_follow_phase_readiness_and_deletion():
    ready = [{"type": "Ready", "status": "True"}]
    assert calc.pod_state(make_pod(container("web"), phase="Running", conditions=ready)) is READY
    assert calc.pod_state(make_pod(container("web"), phase="Running")) is NOT_READY
    assert calc.pod_state(make_pod(container("web"), phase="Pending")) is PENDING
    assert calc.pod_state(make_pod(container("web"), phase="Succeeded", conditions=ready)) is GONE
    deleting = make_pod(container("web"), phase="Running", conditions=ready)
    deleting.metadata.deletion_timestamp = "2024-01-01T00:00:00Z"
    assert calc.pod_state(deleting) is GONE


def hpa_spec(**spec) -> object:
    return to_message({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                       "metadata": {"name": "web"}, "spec": spec}).spec


def test_an_hpa_without_metrics_aims_at_80_percent_cpu():
    assert calc.metric_targets(hpa_spec()) == [ResourceTarget("cpu", utilization=80)]


def test_metric_specs_become_targets_in_the_resources_unit():
    spec = hpa_spec(metrics=[
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}}},
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "AverageValue", "averageValue": "1500m"}}},
    ])
    assert calc.metric_targets(spec) == [ResourceTarget("cpu", utilization=60),
                                         ResourceTarget("memory", average_value=1 << 30),
                                         ResourceTarget("cpu", average_value=1500)]


def test_metrics_the_autoscaler_cannot_follow_are_invalid():
    spec = hpa_spec(metrics=[
        {"type": "Pods"},
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Value", "value": "1"}}},
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "AverageValue", "averageValue": "0"}}},
    ])
    pods_metric, value_target, zero = calc.metric_targets(spec)
    assert isinstance(pods_metric, MetricError) and pods_metric.reason == "InvalidMetricSourceType"
    assert 'unknown metric source type "Pods"' in str(pods_metric)
    assert isinstance(value_target, MetricError) and 'invalid target type "Value"' in str(value_target)
    assert isinstance(zero, MetricError) and "must be greater than 0" in str(zero)


# ---------------------------------------------------------------- behavior from the spec


def test_without_behavior_the_defaults_apply():
    behavior = calc.behavior_from_spec(hpa_spec(), downscale_stabilization=300)
    assert behavior.scale_up == ScalingRules(
        0.0, "Max", (ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)))
    assert behavior.scale_down == ScalingRules(300.0, "Max", (ScalingPolicy("Percent", 100, 15),))
    assert behavior.tolerance == Tolerance(0.1, 0.1)


def test_behavior_fills_what_it_leaves_unset_with_the_defaults():
    spec = hpa_spec(behavior={
        "scaleDown": {"stabilizationWindowSeconds": 60, "tolerance": "0.05"},
        "scaleUp": {"selectPolicy": "Disabled", "policies": [{"type": "Pods", "value": 1, "periodSeconds": 30}]}})
    behavior = calc.behavior_from_spec(spec, downscale_stabilization=300)
    assert behavior.scale_down == ScalingRules(60.0, "Max", (ScalingPolicy("Percent", 100, 15),), 0.05)
    assert behavior.scale_up == ScalingRules(0.0, "Disabled", (ScalingPolicy("Pods", 1, 30),))
    assert behavior.events_seconds == 30


def test_the_downscale_stabilization_option_is_the_default_window():
    assert calc.behavior_from_spec(hpa_spec(), downscale_stabilization=5).scale_down.stabilization_seconds == 5


# ---------------------------------------------------------------- stabilization


DEFAULT = calc.behavior_from_spec(hpa_spec(), downscale_stabilization=300)


def test_scaling_down_takes_the_highest_recommendation_within_the_window():
    history = [TimedRecommendation(0, 5), TimedRecommendation(100, 3)]
    held = calc.stabilize(2, current=5, history=history, behavior=DEFAULT, now=200)
    assert (held.replicas, held.reason) == (5, "ScaleDownStabilized")
    assert held.message == ("recent recommendations were higher than current one, "
                            "applying the highest recent recommendation")
    assert calc.stabilize(2, current=5, history=history, behavior=DEFAULT, now=350).replicas == 3
    free = calc.stabilize(2, current=5, history=history, behavior=DEFAULT, now=401)
    assert (free.replicas, free.reason) == (2, "ReadyForNewScale")


def test_scaling_up_is_not_stabilized_by_default():
    history = [TimedRecommendation(99, 1)]
    assert calc.stabilize(6, current=2, history=history, behavior=DEFAULT, now=100).replicas == 6


def test_a_scale_up_window_takes_the_lowest_recommendation_within_it():
    behavior = Behavior(scale_up=ScalingRules(60, policies=calc.DEFAULT_SCALE_UP_POLICIES),
                        scale_down=DEFAULT.scale_down)
    history = [TimedRecommendation(50, 2), TimedRecommendation(80, 4)]
    held = calc.stabilize(6, current=2, history=history, behavior=behavior, now=100)
    assert (held.replicas, held.reason) == (2, "ScaleUpStabilized")
    assert calc.stabilize(6, current=2, history=history, behavior=behavior, now=115).replicas == 4


def test_remember_records_the_recommendation_and_forgets_what_is_out_of_every_window():
    history = (TimedRecommendation(0, 5), TimedRecommendation(50, 4))
    assert calc.remember(history, 2, now=320, keep_seconds=300) == (TimedRecommendation(50, 4),
                                                                   TimedRecommendation(320, 2))


# ---------------------------------------------------------------- rate limits and bounds


def limited(desired: int, *, current: int, events=(), behavior: Behavior = DEFAULT, now: float = 100,
            min_replicas: int = 1, max_replicas: int = 100) -> calc.Verdict:
    return calc.limit_rate(desired, current=current, min_replicas=min_replicas, max_replicas=max_replicas,
                           events=events, behavior=behavior, now=now)


def test_scaling_up_by_default_adds_four_pods_or_doubles_whichever_is_more():
    assert limited(20, current=1).replicas == 5
    assert limited(50, current=10).replicas == 20
    verdict = limited(50, current=10)
    assert (verdict.reason, verdict.message) == (
        "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate")


def rules(*policies: ScalingPolicy, select: str = "Max", stabilization: float = 0) -> ScalingRules:
    return ScalingRules(stabilization, select, tuple(policies))


def test_select_policy_min_takes_the_smallest_change():
    up = rules(ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15), select="Min")
    assert limited(50, current=10, behavior=Behavior(up, DEFAULT.scale_down)).replicas == 14
    down = rules(ScalingPolicy("Pods", 2, 15), ScalingPolicy("Percent", 50, 15), select="Min")
    assert limited(1, current=10, behavior=Behavior(DEFAULT.scale_up, down)).replicas == 8
    down_max = rules(ScalingPolicy("Pods", 2, 15), ScalingPolicy("Percent", 50, 15))
    assert limited(1, current=10, behavior=Behavior(DEFAULT.scale_up, down_max)).replicas == 5


def test_a_disabled_direction_keeps_the_count():
    behavior = Behavior(rules(ScalingPolicy("Pods", 4, 15), select="Disabled"),
                        rules(ScalingPolicy("Percent", 100, 15), select="Disabled"))
    assert limited(10, current=3, behavior=behavior).replicas == 3
    assert limited(1, current=3, behavior=behavior).replicas == 3


def test_percent_scale_up_rounds_up_so_a_small_target_still_grows():
    behavior = Behavior(rules(ScalingPolicy("Percent", 10, 60)), DEFAULT.scale_down)
    assert limited(10, current=3, behavior=behavior).replicas == 4


def test_changes_within_a_policys_period_use_up_its_allowance():
    behavior = Behavior(rules(ScalingPolicy("Pods", 2, 60)), rules(ScalingPolicy("Pods", 1, 60)))
    events = [ScaleEvent(50, +2)]  # 3 -> 5 ten seconds ago
    assert limited(10, current=5, events=events, behavior=behavior, now=60).replicas == 5
    assert limited(10, current=5, events=events, behavior=behavior, now=111).replicas == 7
    # A scale-down after the scale-up counts from the period's start (3), so 5 may go down to 2.
    assert limited(1, current=5, events=events, behavior=behavior, now=60).replicas == 2


def test_the_bounds_cut_what_the_policies_allow():
    verdict = limited(20, current=5, max_replicas=8)
    assert (verdict.replicas, verdict.reason, verdict.message) == (
        8, "TooManyReplicas", "the desired replica count is more than the maximum replica count")
    verdict = limited(1, current=5, min_replicas=3)
    assert (verdict.replicas, verdict.reason, verdict.message) == (
        3, "TooFewReplicas", "the desired replica count is less than the minimum replica count")


def test_a_count_within_bounds_and_policies_is_kept():
    verdict = limited(7, current=5)
    assert (verdict.replicas, verdict.reason, verdict.message) == (
        7, "DesiredWithinRange", "the desired count is within the acceptable range")


def test_record_scale_keeps_the_policies_longest_period():
    events = (ScaleEvent(0, 2), ScaleEvent(50, -1))
    assert calc.record_scale(events, before=4, after=6, now=70, keep_seconds=60) == (
        ScaleEvent(50, -1), ScaleEvent(70, 2))
    assert calc.record_scale(events, before=4, after=4, now=70, keep_seconds=60) == (ScaleEvent(50, -1),)
