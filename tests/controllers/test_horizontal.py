"""The autoscaler's controller (control/controllers/horizontal.py) against a real API.

An in-process control service on SQLite whose controller manager runs no
controllers, so the autoscaler under test is the only one acting and the
pods stay as the test writes them (as a ReplicaSet's pods, Running and
Ready on a node). Each test calls the controller's ``sync`` at times it
chooses on a clock it moves, so stabilization windows take no waiting.

Usage comes from ``ScriptedMetrics``, a stand-in for the real source: that
one (``TopMetrics``) asks the nodes' agents through the API's Top call and
needs an agent running pods; tests/e2e/test_autoscale.py covers it with a
real agent.

Covered: scaling a Deployment, ReplicaSet or StatefulSet up on CPU above
target, with the status, conditions and event Kubernetes writes; maxReplicas
bounding it; scale-down held for the stabilization window; pods without
requests and unavailable metrics making the metric invalid without scaling;
out-of-range counts fixed without metrics; a target at zero disabling
autoscaling; a missing target; a target written concurrently (the update is
refused and retried, never lost); and the running controller scaling on its
own once an HPA appears.
"""

from __future__ import annotations

import asyncio

import pytest

from control.api.manifest import to_message
from control.controllers import manager
from control.controllers.horizontal import (
    COMPONENT,
    CONFLICT_RETRY_SECONDS,
    HorizontalController,
    MetricsUnavailable,
    PodUsage,
    run_horizontal_controller,
)
from control.controllers.informers import Informers
from control.controllers.manager import ControllerContext, ControllerOptions
from control.recorder import EventRecorder
from tests.controllers.stand_in_kubelet import eventually

START = 1_700_000_000.0
KEY = ("default", "web")


@pytest.fixture(autouse=True)
def no_other_controllers(monkeypatch):
    """The service under test runs no controllers: the test's autoscaler is the only one."""
    monkeypatch.setattr(manager, "_controllers", lambda: {})


class ScriptedMetrics:
    """Pod usage as the test sets it (millicores by pod name), or unavailable with a reason."""

    def __init__(self) -> None:
        self.cpu: dict[str, int] = {}
        self.unavailable = ""
        self.before_answer = None  # an async callable run before each answer

    async def pod_usage(self, namespace, selector):
        if self.before_answer is not None:
            await self.before_answer()
        if self.unavailable:
            raise MetricsUnavailable(self.unavailable)
        return {name: PodUsage(cpu, 16 << 20) for name, cpu in self.cpu.items()}


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class Harness:
    def __init__(self, api, controller: HorizontalController, metrics: ScriptedMetrics, clock: Clock) -> None:
        self.api, self.controller, self.metrics, self.clock = api, controller, metrics, clock

    async def sync(self):
        """One look at the HPA "web", once the controller's caches hold what the API holds."""
        await self.caught_up()
        return await self.controller.sync(KEY)

    async def caught_up(self) -> None:
        pods, _ = await self.api.list("Pod", namespace="default")
        hpas, _ = await self.api.list("HorizontalPodAutoscaler", namespace="default")

        async def cached():
            for informer, objects in ((self.controller.pods, pods), (self.controller.hpas, hpas)):
                held = {(o.metadata.name, o.metadata.resource_version) for o in informer.list("default")}
                if held != {(o.metadata.name, o.metadata.resource_version) for o in objects}:
                    return False
            return True

        await eventually(cached)

    async def hpa(self):
        return await self.api.get("HorizontalPodAutoscaler", "web", namespace="default")

    async def replicas(self, kind: str = "Deployment") -> int:
        return (await self.api.get(kind, "web", namespace="default")).spec.replicas


@pytest.fixture
async def autoscaler(api):
    clock, metrics = Clock(), ScriptedMetrics()
    informers = Informers(api)
    ctx = ControllerContext(api, informers, ControllerOptions(hpa_sync_period=15, hpa_downscale_stabilization=300),
                            clock=clock)
    recorder = EventRecorder(api, component=COMPONENT)
    controller = HorizontalController(ctx, metrics=metrics, recorder=recorder)
    informers.start()
    await informers.wait_synced()
    recording = asyncio.create_task(recorder.run())
    yield Harness(api, controller, metrics, clock)
    recording.cancel()
    await asyncio.gather(recording, return_exceptions=True)
    await informers.stop()


# ---------------------------------------------------------------- objects as users and agents write them


def target(kind: str = "Deployment", *, replicas: int = 2):
    spec = {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "busybox:1.36"}]}}}
    if kind == "StatefulSet":
        spec["serviceName"] = "web"
    return to_message({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "web", "namespace": "default"},
                       "spec": spec})


def autoscaler_for(kind: str = "Deployment", *, min_replicas: int = 1, max_replicas: int = 10,
                   cpu_percent: int = 50):
    return to_message({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": "web"},
                 "minReplicas": min_replicas, "maxReplicas": max_replicas,
                 "metrics": [{"type": "Resource", "resource": {
                     "name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu_percent}}}]}})


async def running_pod(api, name: str, *, cpu_request: str | None = "100m"):
    """A pod of the target, Running and Ready on a node, as its agent reports it."""
    container = {"name": "web", "image": "busybox:1.36"}
    if cpu_request:
        container["resources"] = {"requests": {"cpu": cpu_request}}
    pod = await api.create(to_message({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"nodeName": "node-a", "containers": [container]}}))
    pod.status.phase = "Running"
    pod.status.conditions.add(type="Ready", status="True", last_transition_time="2024-01-01T00:00:00Z")
    return await api.update_status(pod)


async def workload_with_pods(api, kind: str = "Deployment", *, pods: int = 2, **pod_options):
    await api.create(target(kind, replicas=pods))
    for i in range(pods):
        await running_pod(api, f"web-{i}", **pod_options)


def conditions(hpa) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in hpa.status.conditions}


def condition_message(hpa, type_: str) -> str:
    return next(c.message for c in hpa.status.conditions if c.type == type_)


async def events(api, reason: str) -> list[str]:
    async def recorded():
        found, _ = await api.list("Event", namespace="default")
        return [e.message for e in found if e.reason == reason and e.involved_object.name == "web"
                and e.source.component == COMPONENT]

    return await eventually(recorded)


# ---------------------------------------------------------------- scaling up


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "StatefulSet"])
async def test_cpu_above_target_scales_the_target_up(autoscaler, kind):
    await workload_with_pods(autoscaler.api, kind)
    hpa = await autoscaler.api.create(autoscaler_for(kind))
    autoscaler.metrics.cpu = {"web-0": 90, "web-1": 90}  # 90% of 100m against 50%

    assert await autoscaler.sync() == 15
    assert await autoscaler.replicas(kind) == 4
    status = (await autoscaler.hpa()).status
    assert (status.current_replicas, status.desired_replicas) == (2, 4)
    assert status.observed_generation == hpa.metadata.generation
    assert status.last_scale_time == "2023-11-14T22:13:20Z"  # START
    [metric] = status.current_metrics
    assert (metric.type, metric.resource.name) == ("Resource", "cpu")
    assert (metric.resource.current.average_utilization, metric.resource.current.average_value) == (90, "90m")
    assert await events(autoscaler.api, "SuccessfulRescale") == [
        "New size: 4; reason: cpu resource utilization (percentage of request) above target"]


async def test_a_rescale_sets_kubernetes_conditions(autoscaler):
    await workload_with_pods(autoscaler.api)
    await autoscaler.api.create(autoscaler_for())
    autoscaler.metrics.cpu = {"web-0": 90, "web-1": 90}
    await autoscaler.sync()
    hpa = await autoscaler.hpa()
    assert conditions(hpa) == {"AbleToScale": ("True", "SucceededRescale"),
                               "ScalingActive": ("True", "ValidMetricFound"),
                               "ScalingLimited": ("False", "DesiredWithinRange")}
    assert condition_message(hpa, "AbleToScale") == "the HPA controller was able to update the target scale to 4"
    assert condition_message(hpa, "ScalingActive") == (
        "the HPA was able to successfully calculate a replica count from cpu resource utilization "
        "(percentage of request)")


async def test_max_replicas_bounds_the_scale_up(autoscaler):
    await workload_with_pods(autoscaler.api)
    await autoscaler.api.create(autoscaler_for(max_replicas=3))
    autoscaler.metrics.cpu = {"web-0": 500, "web-1": 500}
    await autoscaler.sync()
    assert await autoscaler.replicas() == 3
    hpa = await autoscaler.hpa()
    assert conditions(hpa)["ScalingLimited"] == ("True", "TooManyReplicas")
    assert hpa.status.desired_replicas == 3


async def test_usage_within_the_tolerance_changes_nothing(autoscaler):
    await workload_with_pods(autoscaler.api)
    await autoscaler.api.create(autoscaler_for())
    autoscaler.metrics.cpu = {"web-0": 53, "web-1": 54}
    await autoscaler.sync()
    assert await autoscaler.replicas() == 2
    hpa = await autoscaler.hpa()
    assert conditions(hpa)["AbleToScale"] == ("True", "ReadyForNewScale")
    assert (hpa.status.current_replicas, hpa.status.desired_replicas) == (2, 2)
    assert not hpa.status.last_scale_time


# ---------------------------------------------------------------- scaling down


async def test_scale_down_waits_for_the_stabilization_window(autoscaler):
    await workload_with_pods(autoscaler.api, pods=4)
    await autoscaler.api.create(autoscaler_for())
    autoscaler.metrics.cpu = {f"web-{i}": 10 for i in range(4)}  # asks for 1

    await autoscaler.sync()
    assert await autoscaler.replicas() == 4
    hpa = await autoscaler.hpa()
    assert conditions(hpa)["AbleToScale"] == ("True", "ScaleDownStabilized")
    assert hpa.status.desired_replicas == 4

    autoscaler.clock.now += 200
    await autoscaler.sync()
    assert await autoscaler.replicas() == 4

    autoscaler.clock.now += 101  # the first look's recommendation (4) is now out of the window
    await autoscaler.sync()
    assert await autoscaler.replicas() == 1
    assert await events(autoscaler.api, "SuccessfulRescale") == ["New size: 1; reason: All metrics below target"]


async def test_the_highest_recommendation_within_the_window_wins(autoscaler):
    await workload_with_pods(autoscaler.api, pods=4)
    await autoscaler.api.create(autoscaler_for())
    autoscaler.metrics.cpu = {f"web-{i}": 10 for i in range(4)}  # 20%: asks for 1
    await autoscaler.sync()  # held at 4, the count the controller started with

    autoscaler.clock.now += 200
    autoscaler.metrics.cpu = {f"web-{i}": 30 for i in range(4)}  # 60%: 0.6 x 4 = 2.4, asks for 3
    await autoscaler.sync()

    autoscaler.clock.now += 101
    autoscaler.metrics.cpu = {f"web-{i}": 10 for i in range(4)}
    await autoscaler.sync()  # 4 is out of the window, 3 is not
    assert await autoscaler.replicas() == 3

    autoscaler.clock.now += 200
    await autoscaler.sync()
    assert await autoscaler.replicas() == 1


# ---------------------------------------------------------------- metrics that cannot be used


async def test_pods_without_cpu_requests_make_the_metric_invalid(autoscaler):
    await workload_with_pods(autoscaler.api, cpu_request=None)
    await autoscaler.api.create(autoscaler_for())
    autoscaler.metrics.cpu = {"web-0": 900, "web-1": 900}
    await autoscaler.sync()
    assert await autoscaler.replicas() == 2
    hpa = await autoscaler.hpa()
    assert conditions(hpa)["ScalingActive"] == ("False", "FailedGetResourceMetric")
    assert condition_message(hpa, "ScalingActive") == (
        "the HPA was unable to compute the replica count: failed to get cpu utilization: "
        "missing request for cpu in container web of Pod web-0")
    assert conditions(hpa)["AbleToScale"] == ("True", "SucceededGetScale")
    assert hpa.status.current_replicas == 2
    assert [m.type for m in hpa.status.current_metrics] == [""]  # one entry per metric, this one unknown
    assert await events(autoscaler.api, "FailedComputeMetricsReplicas") == [
        "invalid metrics (1 invalid out of 1), first error is: failed to get cpu utilization: "
        "missing request for cpu in container web of Pod web-0"]


async def test_unavailable_metrics_make_the_metric_invalid(autoscaler):
    await workload_with_pods(autoscaler.api)
    await autoscaler.api.create(autoscaler_for())
    autoscaler.metrics.unavailable = "no agent answered"
    await autoscaler.sync()
    assert await autoscaler.replicas() == 2
    hpa = await autoscaler.hpa()
    assert conditions(hpa)["ScalingActive"] == ("False", "FailedGetResourceMetric")
    assert condition_message(hpa, "ScalingActive") == (
        "the HPA was unable to compute the replica count: failed to get cpu utilization: "
        "unable to get metrics for resource cpu: no agent answered")


async def test_a_valid_metric_recovers_the_condition(autoscaler):
    await workload_with_pods(autoscaler.api)
    await autoscaler.api.create(autoscaler_for())
    autoscaler.metrics.unavailable = "no agent answered"
    await autoscaler.sync()
    failed_at = next(c.last_transition_time for c in (await autoscaler.hpa()).status.conditions
                     if c.type == "ScalingActive")
    autoscaler.metrics.unavailable = ""
    autoscaler.metrics.cpu = {"web-0": 90, "web-1": 90}
    autoscaler.clock.now += 60
    await autoscaler.sync()
    hpa = await autoscaler.hpa()
    assert conditions(hpa)["ScalingActive"] == ("True", "ValidMetricFound")
    recovered_at = next(c.last_transition_time for c in hpa.status.conditions if c.type == "ScalingActive")
    assert recovered_at > failed_at
    assert await autoscaler.replicas() == 4


# ---------------------------------------------------------------- the target


async def test_a_count_above_max_replicas_is_brought_down_without_metrics(autoscaler):
    await workload_with_pods(autoscaler.api, pods=6)
    await autoscaler.api.create(autoscaler_for(max_replicas=4))
    autoscaler.metrics.unavailable = "no agent answered"
    await autoscaler.sync()
    assert await autoscaler.replicas() == 4
    assert await events(autoscaler.api, "SuccessfulRescale") == [
        "New size: 4; reason: Current number of replicas above Spec.MaxReplicas"]


async def test_a_count_below_min_replicas_is_brought_up(autoscaler):
    await workload_with_pods(autoscaler.api, pods=1)
    await autoscaler.api.create(autoscaler_for(min_replicas=3))
    await autoscaler.sync()
    assert await autoscaler.replicas() == 3
    assert await events(autoscaler.api, "SuccessfulRescale") == [
        "New size: 3; reason: Current number of replicas below Spec.MinReplicas"]


async def test_a_target_scaled_to_zero_disables_autoscaling(autoscaler):
    await autoscaler.api.create(target(replicas=0))
    await autoscaler.api.create(autoscaler_for(min_replicas=2))
    await autoscaler.sync()
    assert await autoscaler.replicas() == 0
    hpa = await autoscaler.hpa()
    assert conditions(hpa)["ScalingActive"] == ("False", "ScalingDisabled")
    assert condition_message(hpa, "ScalingActive") == (
        "scaling is disabled since the replica count of the target is zero")
    assert (hpa.status.current_replicas, hpa.status.desired_replicas) == (0, 0)


async def test_a_missing_target_is_reported(autoscaler):
    await autoscaler.api.create(autoscaler_for())
    await autoscaler.sync()
    hpa = await autoscaler.hpa()
    assert conditions(hpa) == {"AbleToScale": ("False", "FailedGetScale")}
    assert condition_message(hpa, "AbleToScale").startswith(
        "the HPA controller was unable to get the target's current scale: ")
    assert "web" in condition_message(hpa, "AbleToScale")
    assert await events(autoscaler.api, "FailedGetScale")


async def test_a_target_kind_that_cannot_scale_is_reported(autoscaler):
    hpa = autoscaler_for()
    hpa.spec.scale_target_ref.kind = "DaemonSet"
    await autoscaler.api.create(hpa)
    await autoscaler.sync()
    hpa = await autoscaler.hpa()
    assert conditions(hpa) == {"AbleToScale": ("False", "FailedGetScale")}
    assert condition_message(hpa, "AbleToScale").endswith(
        'cannot scale a DaemonSet "web": only Deployment, ReplicaSet, StatefulSet can be autoscaled')


async def test_a_target_written_between_read_and_scale_is_not_overwritten(autoscaler):
    await workload_with_pods(autoscaler.api)
    await autoscaler.api.create(autoscaler_for())
    autoscaler.metrics.cpu = {"web-0": 90, "web-1": 90}

    async def someone_scales_by_hand():
        autoscaler.metrics.before_answer = None
        await autoscaler.api.patch("Deployment", "web", {"spec": {"replicas": 3}}, namespace="default")

    autoscaler.metrics.before_answer = someone_scales_by_hand
    assert await autoscaler.sync() == CONFLICT_RETRY_SECONDS
    assert await autoscaler.replicas() == 3  # the hand's count stands; the look is repeated

    await autoscaler.sync()
    assert await autoscaler.replicas() == 4  # 1.8 x the 2 pods measured = 3.6 -> 4
    assert (await autoscaler.hpa()).status.current_replicas == 3  # the hand's count, read afresh


# ---------------------------------------------------------------- the running controller


async def test_the_running_controller_scales_a_new_hpas_target_and_looks_again_periodically(api):
    await workload_with_pods(api)
    metrics, informers = ScriptedMetrics(), Informers(api)
    metrics.cpu = {"web-0": 90, "web-1": 90}
    ctx = ControllerContext(api, informers, ControllerOptions(hpa_sync_period=0.2))
    running = asyncio.create_task(run_horizontal_controller(ctx, metrics=metrics))
    await asyncio.sleep(0)
    informers.start()
    try:
        await api.create(autoscaler_for(max_replicas=5))

        async def scaled_to(count):
            return (await api.get("Deployment", "web", namespace="default")).spec.replicas == count

        await eventually(lambda: scaled_to(4))
        # Nothing but the clock brings the next look: it sees the new usage.
        metrics.cpu = {"web-0": 200, "web-1": 200}  # 4 x 2 = 8, bounded by maxReplicas
        await eventually(lambda: scaled_to(5))
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await informers.stop()
