"""The horizontal pod autoscaler: scales Deployments, ReplicaSets and StatefulSets with their pods' usage.

Kubernetes' HPA controller on Sampan's parts. Each HorizontalPodAutoscaler
is looked at when it appears or its spec changes, and then every
``hpa_sync_period`` (15 s). One look, ``sync``:

1. read the scale target that spec.scaleTargetRef names, from the API: its
   spec.replicas (the current count) and its selector;
2. bring a count outside minReplicas..maxReplicas back within them without
   asking any metric; a target scaled to 0 by hand is left alone
   (ScalingActive False, ScalingDisabled) until someone scales it up again;
3. otherwise list the target's pods (the shared Pod informer, by the
   target's selector), get their usage from the metrics source and let
   control/controllers/horizontal_calc.py turn each metric into a replica
   count (the largest wins), stabilize it against recent recommendations
   and limit it by the behavior's policies;
4. write a new count into the target's spec.replicas (an update
   preconditioned on the resourceVersion read in 1, as a scale subresource
   write would be), record a SuccessfulRescale Event, and write the HPA's
   status: currentReplicas, desiredReplicas, currentMetrics, lastScaleTime,
   observedGeneration, and the conditions AbleToScale, ScalingActive and
   ScalingLimited with Kubernetes' reasons.

The metrics source is a seam, ``PodMetricsSource``. The real one,
``TopMetrics``, asks the API's Top call, which gathers usage from the Ready
nodes' agents: the numbers ``sampan top pods`` shows, Sampan's
metrics-server. A pod on a node whose agent does not answer has no sample
and counts as missing.

Recent recommendations and scale events (for the stabilization windows and
the policies' periods) live in this controller's memory, as in Kubernetes. A
controller that starts (or meets an HPA) for the first time takes the
current count as its first recommendation, so it never scales down before a
full stabilization window has passed.

Events are recorded as component ``horizontal-pod-autoscaler``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Hashable, Protocol

from google.protobuf.message import Message

from control.api import errors
from control.api.quantity import format_decimal
from control.api.selectors import LabelSelector, from_label_selector_message
from control.api.timestamps import format_time
from control.client import Client
from control.controllers import horizontal_calc as calc
from control.controllers.informers import Informer
from control.controllers.manager import ControllerContext
from control.controllers.queue import WorkQueue, run_workers
from control.recorder import EventRecorder
from protos.api.v1 import autoscaling_pb2

log = logging.getLogger(__name__)

COMPONENT = "horizontal-pod-autoscaler"
SCALABLE_KINDS = ("Deployment", "ReplicaSet", "StatefulSet")
# Someone else wrote the target between our read and our write: look again soon.
CONFLICT_RETRY_SECONDS = 0.1

ABLE_TO_SCALE, SCALING_ACTIVE, SCALING_LIMITED = "AbleToScale", "ScalingActive", "ScalingLimited"


# ---------------------------------------------------------------- the metrics seam


@dataclass(frozen=True)
class PodUsage:
    """One pod's usage now, its containers summed."""

    cpu_millicores: int
    memory_bytes: int

    def of(self, resource: str) -> int | None:
        """The usage of resource in the calculator's unit, or None for a resource not measured."""
        if resource == "cpu":
            return self.cpu_millicores
        if resource == "memory":
            return self.memory_bytes
        return None


class MetricsUnavailable(Exception):
    """No usage could be had at all (the message says why)."""


class PodMetricsSource(Protocol):
    async def pod_usage(self, namespace: str, selector: LabelSelector) -> dict[str, PodUsage]:
        """The current usage of the pods in namespace that selector matches, by pod name.

        A pod without a sample is absent; pods the selector does not match may
        be present (callers look up the pods they want). Raises
        MetricsUnavailable when there is no usage to be had at all.
        """
        ...


class TopMetrics:
    """Pod usage from the API's Top call: what the nodes' agents measure."""

    def __init__(self, api: Client) -> None:
        self._api = api

    async def pod_usage(self, namespace: str, selector: LabelSelector) -> dict[str, PodUsage]:
        # Top knows pods by name only; the caller keeps the ones its selector chose.
        try:
            response = await self._api.top("pods", namespace=namespace)
        except errors.APIError as err:
            raise MetricsUnavailable(f"unable to fetch metrics from the nodes' agents: {err.message}") from None
        return {pod.name: PodUsage(pod.cpu_millicores, pod.memory_bytes) for pod in response.pods}


# ---------------------------------------------------------------- status helpers


def set_condition(status: autoscaling_pb2.HorizontalPodAutoscalerStatus, type_: str, value: str, reason: str,
                  message: str, *, now: float) -> None:
    """Set one condition, keeping its lastTransitionTime unless its status changes."""
    for condition in status.conditions:
        if condition.type == type_:
            if condition.status != value:
                condition.last_transition_time = format_time(now)
            condition.status, condition.reason, condition.message = value, reason, message
            return
    status.conditions.add(type=type_, status=value, reason=reason, message=message,
                          last_transition_time=format_time(now))


def metric_status(target: calc.ResourceTarget, found: calc.ResourceRecommendation) -> autoscaling_pb2.MetricStatus:
    """currentMetrics' entry for a metric: the average per pod, and the utilization if that is the target."""
    status = autoscaling_pb2.MetricStatus(type="Resource")
    status.resource.name = target.resource
    average = Decimal(found.average_value) / 1000 if target.resource == "cpu" else Decimal(found.average_value)
    status.resource.current.average_value = format_decimal(average)
    if found.utilization is not None:
        status.resource.current.average_utilization = found.utilization
    return status


def replicas_of(target: Message) -> int:
    return target.spec.replicas if target.spec.HasField("replicas") else 1


@dataclass
class Proposal:
    """What the metrics ask for together."""

    replicas: int
    metric: str  # the metric that asked for the most, as events name it
    statuses: list[autoscaling_pb2.MetricStatus]


@dataclass
class Memory:
    """What the controller remembers of one HPA between looks."""

    uid: str
    recommendations: tuple[calc.TimedRecommendation, ...] = ()
    scale_events: tuple[calc.ScaleEvent, ...] = ()
    started: bool = False


class ScaleTargetError(Exception):
    """The scale target cannot be read; the message says why."""


# ---------------------------------------------------------------- the controller


class HorizontalController:
    """Autoscales from the shared HPA and Pod informers; see the module docstring."""

    def __init__(self, ctx: ControllerContext, *, metrics: PodMetricsSource, recorder: EventRecorder) -> None:
        self.api: Client = ctx.api
        self.clock = ctx.clock
        self.options = ctx.options
        self.metrics = metrics
        self.recorder = recorder
        self.hpas: Informer = ctx.informers.get("HorizontalPodAutoscaler")
        self.pods: Informer = ctx.informers.get("Pod")
        self.queue = WorkQueue()
        self._memory: dict[Hashable, Memory] = {}
        self.hpas.add_handler(self._hpa_changed)

    def _hpa_changed(self, old: Message | None, new: Message | None) -> None:
        # A new HPA, a changed spec or a deletion is looked at now; everything
        # else (our own status writes among them) waits for the periodic look.
        if old is None or new is None or old.metadata.generation != new.metadata.generation:
            obj = new if new is not None else old
            assert obj is not None
            self.queue.add((obj.metadata.namespace, obj.metadata.name))

    async def sync(self, key: Hashable) -> float | None:
        """Look at one HPA; seconds until the next look, None once it is gone."""
        namespace, name = key  # type: ignore[misc]
        hpa = self.hpas.get(namespace, name)
        if hpa is None:
            self._memory.pop(key, None)
            return None
        memory = self._memory.get(key)
        if memory is None or memory.uid != hpa.metadata.uid:
            memory = self._memory[key] = Memory(uid=hpa.metadata.uid)
        now = self.clock()
        status = autoscaling_pb2.HorizontalPodAutoscalerStatus()
        status.CopyFrom(hpa.status)
        status.observed_generation = hpa.metadata.generation
        retry = await self._autoscale(hpa, status, memory, now=now)
        if retry is not None:
            return retry
        await self._write_status(hpa, status)
        return self.options.hpa_sync_period

    async def _autoscale(self, hpa: autoscaling_pb2.HorizontalPodAutoscaler,
                         status: autoscaling_pb2.HorizontalPodAutoscalerStatus, memory: Memory, *,
                         now: float) -> float | None:
        """Decide and scale, filling status; a retry delay when the look must be repeated at once."""
        try:
            target = await self._read_target(hpa)
        except ScaleTargetError as err:
            set_condition(status, ABLE_TO_SCALE, "False", "FailedGetScale",
                          f"the HPA controller was unable to get the target's current scale: {err}", now=now)
            self.recorder.warning(hpa, "FailedGetScale", str(err))
            return None
        set_condition(status, ABLE_TO_SCALE, "True", "SucceededGetScale",
                      "the HPA controller was able to get the target's current scale", now=now)
        current = status.current_replicas = replicas_of(target)
        decision = await self._decide(hpa, target, status, memory, current=current, now=now)
        if decision is None:
            return None
        desired, reason = decision
        if desired != current:
            try:
                await self._scale(target, desired)
            except errors.ConflictError:
                return CONFLICT_RETRY_SECONDS
            except errors.APIError as err:
                set_condition(status, ABLE_TO_SCALE, "False", "FailedUpdateScale",
                              f"the HPA controller was unable to update the target scale: {err}", now=now)
                self.recorder.warning(hpa, "FailedRescale", f"New size: {desired}; reason: {reason}; error: {err}")
                return None
            set_condition(status, ABLE_TO_SCALE, "True", "SucceededRescale",
                          f"the HPA controller was able to update the target scale to {desired}", now=now)
            self.recorder.normal(hpa, "SuccessfulRescale", f"New size: {desired}; reason: {reason}")
            log.info("%s/%s: scaled %s %s from %d to %d (%s)", hpa.metadata.namespace, hpa.metadata.name,
                     hpa.spec.scale_target_ref.kind, target.metadata.name, current, desired, reason)
            memory.scale_events = calc.record_scale(memory.scale_events, before=current, after=desired, now=now,
                                                    keep_seconds=self._behavior(hpa).events_seconds)
            status.last_scale_time = format_time(now)
        status.desired_replicas = desired
        return None

    async def _decide(self, hpa: autoscaling_pb2.HorizontalPodAutoscaler, target: Message,
                      status: autoscaling_pb2.HorizontalPodAutoscalerStatus, memory: Memory, *, current: int,
                      now: float) -> tuple[int, str] | None:
        """The count to scale to and why; None when there is nothing to decide (status says why)."""
        min_replicas = hpa.spec.min_replicas if hpa.spec.HasField("min_replicas") else 1
        max_replicas = hpa.spec.max_replicas
        if current == 0 and min_replicas != 0:
            set_condition(status, SCALING_ACTIVE, "False", "ScalingDisabled",
                          "scaling is disabled since the replica count of the target is zero", now=now)
            del status.current_metrics[:]
            status.desired_replicas = 0
            return None
        if current > max_replicas:
            return max_replicas, "Current number of replicas above Spec.MaxReplicas"
        if current < min_replicas:
            return min_replicas, "Current number of replicas below Spec.MinReplicas"
        selector = from_label_selector_message(target.spec.selector)
        if selector.empty:
            set_condition(status, SCALING_ACTIVE, "False", "InvalidSelector",
                          "the HPA target's scale is missing a selector", now=now)
            self.recorder.warning(hpa, "SelectorRequired", "selector is required")
            return None
        behavior = self._behavior(hpa)
        proposal = await self._propose(hpa, status, selector, current=current, behavior=behavior, now=now)
        del status.current_metrics[:]
        status.current_metrics.extend(proposal.statuses)
        if proposal.replicas < 0:
            return None
        reason = f"{proposal.metric} above target" if proposal.replicas > current else "All metrics below target"
        desired = self._behave(status, memory, proposal.replicas, current=current, min_replicas=min_replicas,
                               max_replicas=max_replicas, behavior=behavior, now=now)
        return desired, reason

    def _behavior(self, hpa: autoscaling_pb2.HorizontalPodAutoscaler) -> calc.Behavior:
        return calc.behavior_from_spec(hpa.spec, downscale_stabilization=self.options.hpa_downscale_stabilization)

    async def _read_target(self, hpa: autoscaling_pb2.HorizontalPodAutoscaler) -> Message:
        ref = hpa.spec.scale_target_ref
        if ref.kind not in SCALABLE_KINDS:
            raise ScaleTargetError(f'cannot scale a {ref.kind or "target without a kind"} "{ref.name}": '
                                   f"only {', '.join(SCALABLE_KINDS)} can be autoscaled")
        try:
            return await self.api.get(ref.kind, ref.name, namespace=hpa.metadata.namespace)
        except errors.NotFoundError as err:
            raise ScaleTargetError(err.message) from None

    async def _propose(self, hpa: autoscaling_pb2.HorizontalPodAutoscaler,
                       status: autoscaling_pb2.HorizontalPodAutoscalerStatus, selector: LabelSelector, *,
                       current: int, behavior: calc.Behavior, now: float) -> Proposal:
        """Every metric's replica count; the proposal's replicas are -1 when the metrics cannot decide.

        Invalid metrics make the decision only when every metric is invalid,
        or when the valid ones would scale down (a metric that cannot be read
        might be the one asking for more).
        """
        pods = self.pods.list(hpa.metadata.namespace, selector=selector)
        usage: dict[str, PodUsage] | None = None
        proposal = Proposal(replicas=0, metric="", statuses=[])
        invalid: list[calc.MetricError] = []
        targets = calc.metric_targets(hpa.spec)
        for target in targets:
            try:
                if isinstance(target, calc.MetricError):
                    raise target
                if usage is None:
                    usage = await self._usage(hpa.metadata.namespace, selector, target.resource)
                found = calc.resource_replicas(self._samples(pods, usage, target), current_replicas=current,
                                               target=target, tolerance=behavior.tolerance)
            except calc.MetricError as err:
                if not isinstance(target, calc.MetricError):
                    what = "utilization" if target.utilization is not None else "usage"
                    err = calc.MetricError(f"failed to get {target.resource} {what}: {err}", reason=err.reason)
                invalid.append(err)
                proposal.statuses.append(autoscaling_pb2.MetricStatus())  # keeps currentMetrics in spec order
                continue
            proposal.statuses.append(metric_status(target, found))
            if found.replicas > proposal.replicas or not proposal.metric:
                proposal.replicas, proposal.metric = found.replicas, target.description
        if invalid and (len(invalid) == len(targets) or proposal.replicas < current):
            first = invalid[0]
            set_condition(status, SCALING_ACTIVE, "False", first.reason,
                          f"the HPA was unable to compute the replica count: {first}", now=now)
            self.recorder.warning(hpa, first.reason, str(first))
            self.recorder.warning(hpa, "FailedComputeMetricsReplicas",
                                  f"invalid metrics ({len(invalid)} invalid out of {len(targets)}), "
                                  f"first error is: {first}")
            proposal.replicas = -1
            return proposal
        set_condition(status, SCALING_ACTIVE, "True", "ValidMetricFound",
                      f"the HPA was able to successfully calculate a replica count from {proposal.metric}", now=now)
        return proposal

    async def _usage(self, namespace: str, selector: LabelSelector, resource: str) -> dict[str, PodUsage]:
        try:
            return await self.metrics.pod_usage(namespace, selector)
        except MetricsUnavailable as err:
            raise calc.MetricError(f"unable to get metrics for resource {resource}: {err}") from None

    @staticmethod
    def _samples(pods: list[Message], usage: dict[str, PodUsage],
                 target: calc.ResourceTarget) -> list[calc.PodSample]:
        samples = []
        for pod in pods:
            measured = usage.get(pod.metadata.name)
            samples.append(calc.PodSample(
                name=pod.metadata.name, state=calc.pod_state(pod),
                usage=measured.of(target.resource) if measured is not None else None,
                request=calc.pod_request(pod, target.resource) if target.utilization is not None else 0))
        return samples

    def _behave(self, status: autoscaling_pb2.HorizontalPodAutoscalerStatus, memory: Memory, proposed: int, *,
                current: int, min_replicas: int, max_replicas: int, behavior: calc.Behavior, now: float) -> int:
        """The proposal stabilized and rate-limited, with AbleToScale and ScalingLimited saying how."""
        if not memory.started:
            # A fresh start: the current count stands in for the recommendations not remembered.
            memory.recommendations = (calc.TimedRecommendation(now, current),)
            memory.started = True
        stabilized = calc.stabilize(proposed, current=current, history=memory.recommendations, behavior=behavior,
                                    now=now)
        memory.recommendations = calc.remember(memory.recommendations, proposed, now=now,
                                               keep_seconds=behavior.history_seconds)
        set_condition(status, ABLE_TO_SCALE, "True", stabilized.reason, stabilized.message, now=now)
        limited = calc.limit_rate(stabilized.replicas, current=current, min_replicas=min_replicas,
                                  max_replicas=max_replicas, events=memory.scale_events, behavior=behavior, now=now)
        set_condition(status, SCALING_LIMITED, "False" if limited.replicas == stabilized.replicas else "True",
                      limited.reason, limited.message, now=now)
        return limited.replicas

    async def _scale(self, target: Message, replicas: int) -> None:
        """Write replicas into the target's spec.replicas, only if it is still the version read."""
        changed = type(target)()
        changed.CopyFrom(target)
        changed.spec.replicas = replicas
        await self.api.update(changed)

    async def _write_status(self, hpa: autoscaling_pb2.HorizontalPodAutoscaler,
                            status: autoscaling_pb2.HorizontalPodAutoscalerStatus) -> None:
        if status == hpa.status:
            return
        changed = autoscaling_pb2.HorizontalPodAutoscaler()
        changed.CopyFrom(hpa)
        changed.status.CopyFrom(status)
        # Status is recomputed on every look, so the latest write wins.
        changed.metadata.ClearField("resource_version")
        try:
            written = await self.api.update_status(changed)
        except errors.NotFoundError:
            return
        self.hpas.assume(written)


async def run_horizontal_controller(ctx: ControllerContext, *, metrics: PodMetricsSource | None = None) -> None:
    """Run the autoscaler until cancelled, with usage from metrics (default: the API's Top call)."""
    recorder = EventRecorder(ctx.api, component=COMPONENT)
    controller = HorizontalController(ctx, metrics=metrics or TopMetrics(ctx.api), recorder=recorder)
    await ctx.informers.wait_synced(["HorizontalPodAutoscaler", "Pod"])
    recording = asyncio.create_task(recorder.run())
    try:
        await run_workers(controller.queue, controller.sync, workers=ctx.options.workers)
    finally:
        recording.cancel()
        controller.queue.close()
        await asyncio.gather(recording, return_exceptions=True)
