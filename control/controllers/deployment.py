"""The Deployment controller: rolls a Deployment's pod template out through ReplicaSets.

Each pod template a Deployment has run is one ReplicaSet named
``NAME-<pod-template-hash>``: the hash of the template (and of
status.collisionCount, bumped when that name is taken by a ReplicaSet with
another template), also added as the ``pod-template-hash`` label to the
ReplicaSet's selector, template and so its pods, so the ReplicaSets of one
Deployment never share pods. The ReplicaSet whose template equals the
Deployment's is the new one; the others are old. Every ReplicaSet carries the
revision it was last the new one at (``deployment.kubernetes.io/revision``;
the Deployment carries the latest), and the replicas and max replicas the
Deployment had when it last scaled it (``desired-replicas``,
``max-replicas``), which proportional scaling reads.

A pass (``reconcile_deployment``), level-triggered like every controller:

1. claim the ReplicaSets the selector matches (control/controllers/ownership.py);
2. paused, or spec.replicas changed (``is_scaling_event``): only resize, in
   proportion, and write status (no rollout while paused);
3. otherwise roll out by the strategy. RollingUpdate: grow the new ReplicaSet
   up to replicas + maxSurge pods in all, then shrink old ones down to
   replicas - maxUnavailable available pods (control/controllers/
   deployment_rollout.py has the arithmetic; one step per pass, each pass
   triggered by the ReplicaSets' status changes). Recreate: scale every old
   ReplicaSet to 0, wait until their pods are gone, then scale the new one up.
4. once the rollout is complete, delete the oldest empty ReplicaSets beyond
   revisionHistoryLimit;
5. write status and the Progressing/Available conditions
   (control/controllers/deployment_status.py), and come back when the
   progress deadline would pass.

Rollback is not the controller's business: ``sampan rollout undo`` copies an
old ReplicaSet's template back into the Deployment, which then rolls out as
any other change (the ReplicaSet is reused and gets the next revision).

Events ScalingReplicaSet ("Scaled up replica set web-7d9c from 1 to 2") are
recorded as component ``deployment-controller``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Hashable, Sequence

from google.protobuf.message import Message

from control.api import errors
from control.api.deployments import (
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    UNCOPIED_ANNOTATIONS,
    equal_ignoring_hash,
    revision_of,
)
from control.api.selectors import from_label_selector_message
from control.client import Client
from control.controllers.deployment_rollout import (
    by_age,
    fenceposts,
    is_recreate,
    is_scaling_event,
    proportional_scale,
    replicas_of,
    rolling_new_replicas,
    rolling_old_scale_down,
)
from control.controllers.deployment_status import (
    FOUND_NEW_RS,
    NEW_RS_CREATED,
    PROGRESSING,
    calculate_status,
    get_condition,
    is_complete,
    new_condition,
    paused_condition,
    progress_deadline,
    recheck_progress_in,
    rollout_status,
    set_condition,
)
from control.controllers.informers import Informer, controller_uid, queue_key_of, queue_owner_of
from control.controllers.manager import ControllerContext
from control.controllers.ownership import claim_dependents
from control.controllers.pods import is_finished, owner_reference
from control.controllers.queue import WorkQueue, run_workers
from control.recorder import EventRecorder
from protos.api.v1 import apps_pb2, core_pb2

log = logging.getLogger(__name__)

# A pass that lost a write race looks again this soon (the cache catches up meanwhile).
CONFLICT_RETRY_SECONDS = 0.05
COMPONENT = "deployment-controller"
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_HASH_LENGTH = 10


def pod_template_hash(template: core_pb2.PodTemplateSpec, collision_count: int | None) -> str:
    """A short, stable, DNS-safe hash of a pod template (and the collision count, when set)."""
    digest = hashlib.sha256(template.SerializeToString(deterministic=True))
    if collision_count is not None:
        digest.update(collision_count.to_bytes(4, "big"))
    return "".join(_HASH_ALPHABET[byte % len(_HASH_ALPHABET)] for byte in digest.digest()[:_HASH_LENGTH])


class HashCollision(Exception):
    """The new ReplicaSet's name is taken by another template: collisionCount was bumped, try again."""


def _copy(obj: Message) -> Message:
    copy = type(obj)()
    copy.CopyFrom(obj)
    return copy


class DeploymentController:
    """Reconciles Deployments from the shared Deployment, ReplicaSet and Pod informers; see the module docstring."""

    def __init__(self, ctx: ControllerContext, *, recorder: EventRecorder) -> None:
        self.api: Client = ctx.api
        self.clock = ctx.clock
        self.deployments: Informer = ctx.informers.get("Deployment")
        self.replicasets: Informer = ctx.informers.get("ReplicaSet")
        self.pods: Informer = ctx.informers.get("Pod")
        self.recorder = recorder
        self.queue = WorkQueue()
        self.deployments.add_handler(queue_key_of(self.queue.add))
        self.replicasets.add_handler(queue_owner_of(self.queue.add, "Deployment", owners=self.deployments))
        self.pods.add_handler(self._pod_changed)

    # ------------------------------------------------------------ watch handlers

    def _pod_changed(self, old: Message | None, new: Message | None) -> None:
        # Only Recreate waits on pods (for the old ones to be gone): a pod
        # going away or finishing may let it proceed.
        if new is not None and not new.metadata.HasField("deletion_timestamp") and not is_finished(new):
            return
        pod = new if new is not None else old
        assert pod is not None
        owner = next((ref for ref in pod.metadata.owner_references if ref.controller), None)
        if owner is None or owner.kind != "ReplicaSet":
            return
        rs = self.replicasets.get(pod.metadata.namespace, owner.name)
        if rs is None:
            return
        rs_owner = next((ref for ref in rs.metadata.owner_references if ref.controller), None)
        if rs_owner is not None and rs_owner.kind == "Deployment":
            self.queue.add((rs.metadata.namespace, rs_owner.name))

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: Hashable) -> float | None:
        """One pass for one key; a write that lost a race is retried soon, without a traceback."""
        try:
            return await self.reconcile_deployment(key)
        except (errors.ConflictError, HashCollision) as err:
            log.info("deployment %s/%s: %s; looking again", *key, err)  # type: ignore[misc]
            return CONFLICT_RETRY_SECONDS

    async def reconcile_deployment(self, key: Hashable) -> float | None:
        namespace, name = key  # type: ignore[misc]
        deployment = self.deployments.get(namespace, name)
        if deployment is None:
            return None
        selector = from_label_selector_message(deployment.spec.selector)
        if selector.empty:
            # Validation refuses this; never let an empty selector claim every ReplicaSet.
            self.recorder.warning(deployment, "SelectingAll",
                                  "This deployment is selecting all pods. A non-empty selector is required.")
            return None
        replicasets = await claim_dependents(self.api, self.replicasets, deployment, selector)
        if deployment.metadata.HasField("deletion_timestamp"):
            await self._sync_status(deployment, replicasets)
            return None
        paused_status = paused_condition(deployment, now=self.clock())
        if paused_status is not None:
            deployment = await self._write_status(deployment, paused_status)
        if deployment.spec.paused or is_scaling_event(deployment, replicasets):
            return await self._scale_only(deployment, replicasets)
        if is_recreate(deployment):
            return await self._rollout_recreate(deployment, replicasets)
        return await self._rollout_rolling(deployment, replicasets)

    def _owned(self, deployment: apps_pb2.Deployment) -> list[apps_pb2.ReplicaSet]:
        """The Deployment's ReplicaSets as the cache holds them now (after this pass's writes)."""
        selector = from_label_selector_message(deployment.spec.selector)
        return [rs for rs in self.replicasets.owned_by(deployment.metadata.uid)
                if selector.matches(rs.metadata.labels)]

    # ------------------------------------------------------------ strategies

    async def _scale_only(self, deployment: apps_pb2.Deployment,
                          replicasets: list[apps_pb2.ReplicaSet]) -> float | None:
        """Paused or resized: spread spec.replicas over the ReplicaSets, no rollout."""
        deployment, new_rs, old = await self._new_and_old(deployment, replicasets, create=False)
        targets = proportional_scale(deployment, new_rs, old)
        for rs in [*old, *([new_rs] if new_rs is not None else [])]:
            if rs.metadata.uid in targets:
                await self._scale(rs, targets[rs.metadata.uid], deployment, annotate=True)
        if deployment.spec.paused:
            await self._clean_up_history(deployment, old)
        await self._sync_status(deployment, self._owned(deployment))
        return None

    async def _rollout_rolling(self, deployment: apps_pb2.Deployment,
                               replicasets: list[apps_pb2.ReplicaSet]) -> float | None:
        deployment, new_rs, old = await self._new_and_old(deployment, replicasets, create=True)
        assert new_rs is not None
        everything = [*old, new_rs]
        target = rolling_new_replicas(deployment, everything, new_rs)
        if target != replicas_of(new_rs):
            await self._scale(new_rs, target, deployment)
            return await self._sync_rollout_status(deployment)
        targets = rolling_old_scale_down(deployment, new_rs, old)
        scaled = False
        for rs in old:
            if rs.metadata.uid in targets and targets[rs.metadata.uid] != replicas_of(rs):
                await self._scale(rs, targets[rs.metadata.uid], deployment)
                scaled = True
        if scaled:
            return await self._sync_rollout_status(deployment)
        status = rollout_status(deployment, self._owned(deployment), new_rs, now=self.clock())
        if is_complete(deployment, status):
            await self._clean_up_history(deployment, old)
        return await self._sync_rollout_status(deployment)

    async def _rollout_recreate(self, deployment: apps_pb2.Deployment,
                                replicasets: list[apps_pb2.ReplicaSet]) -> float | None:
        deployment, new_rs, old = await self._new_and_old(deployment, replicasets, create=False)
        scaled = False
        for rs in old:
            if replicas_of(rs) > 0:
                await self._scale(rs, 0, deployment)
                scaled = True
        if scaled or self._old_pods_remain(new_rs, old):
            return await self._sync_rollout_status(deployment)
        if new_rs is None:
            deployment, new_rs, old = await self._new_and_old(deployment, self._owned(deployment), create=True)
            assert new_rs is not None
        if replicas_of(new_rs) != replicas_of(deployment):
            await self._scale(new_rs, replicas_of(deployment), deployment)
        else:
            status = rollout_status(deployment, self._owned(deployment), new_rs, now=self.clock())
            if is_complete(deployment, status):
                await self._clean_up_history(deployment, old)
        return await self._sync_rollout_status(deployment)

    def _old_pods_remain(self, new_rs: apps_pb2.ReplicaSet | None, old: Sequence[apps_pb2.ReplicaSet]) -> bool:
        """Whether a pod of an old ReplicaSet still exists and has not finished (terminating counts)."""
        if any(rs.status.replicas > 0 for rs in old):
            return True
        for rs in old:
            if new_rs is not None and rs.metadata.uid == new_rs.metadata.uid:
                continue
            if any(not is_finished(pod) for pod in self.pods.owned_by(rs.metadata.uid)):
                return True
        return False

    # ------------------------------------------------------------ the new ReplicaSet

    async def _new_and_old(
        self, deployment: apps_pb2.Deployment, replicasets: list[apps_pb2.ReplicaSet], *, create: bool
    ) -> tuple[apps_pb2.Deployment, apps_pb2.ReplicaSet | None, list[apps_pb2.ReplicaSet]]:
        """The Deployment (its revision brought up to date), its new ReplicaSet (created if asked) and the old ones."""
        matching = [rs for rs in by_age(replicasets) if equal_ignoring_hash(rs.spec.template, deployment.spec.template)]
        existing = matching[0] if matching else None
        old = [rs for rs in replicasets if existing is None or rs.metadata.uid != existing.metadata.uid]
        revision = max((revision_of(rs) for rs in old), default=0) + 1
        if existing is not None:
            new_rs = await self._sync_new_replicaset(existing, deployment, revision)
            deployment = await self._sync_revision(deployment, new_rs, created=False)
            return deployment, new_rs, old
        if not create:
            return deployment, None, old
        new_rs = await self._create_new_replicaset(deployment, old, revision)
        deployment = await self._sync_revision(deployment, new_rs, created=True)
        return deployment, new_rs, old

    def _annotate_new(self, rs: apps_pb2.ReplicaSet, deployment: apps_pb2.Deployment, revision: int) -> bool:
        """Copy the Deployment's annotations and the revision onto rs; whether anything changed."""
        changed = False
        annotations = rs.metadata.annotations
        for key, value in deployment.metadata.annotations.items():
            if key not in UNCOPIED_ANNOTATIONS and annotations.get(key) != value:
                annotations[key] = value
                changed = True
        current = revision_of(rs)
        if current < revision:
            if current > 0:
                history = [part for part in annotations.get(REVISION_HISTORY_ANNOTATION, "").split(",") if part]
                annotations[REVISION_HISTORY_ANNOTATION] = ",".join([*history, str(current)])
            annotations[REVISION_ANNOTATION] = str(revision)
            changed = True
        if REVISION_ANNOTATION not in annotations:
            annotations[REVISION_ANNOTATION] = str(revision)
            changed = True
        return changed

    def _annotate_replicas(self, rs: apps_pb2.ReplicaSet, deployment: apps_pb2.Deployment) -> bool:
        desired = replicas_of(deployment)
        wanted = {DESIRED_REPLICAS_ANNOTATION: str(desired),
                  MAX_REPLICAS_ANNOTATION: str(desired + fenceposts(deployment).max_surge)}
        changed = False
        for key, value in wanted.items():
            if rs.metadata.annotations.get(key) != value:
                rs.metadata.annotations[key] = value
                changed = True
        return changed

    async def _sync_new_replicaset(self, rs: apps_pb2.ReplicaSet, deployment: apps_pb2.Deployment,
                                   revision: int) -> apps_pb2.ReplicaSet:
        changed = _copy(rs)
        needs_update = self._annotate_new(changed, deployment, revision)
        if changed.spec.min_ready_seconds != deployment.spec.min_ready_seconds:
            changed.spec.min_ready_seconds = deployment.spec.min_ready_seconds
            needs_update = True
        if not needs_update:
            return rs
        return await self._update_replicaset(changed)

    async def _create_new_replicaset(self, deployment: apps_pb2.Deployment, old: list[apps_pb2.ReplicaSet],
                                     revision: int) -> apps_pb2.ReplicaSet:
        collision_count = (deployment.status.collision_count if deployment.status.HasField("collision_count")
                           else None)
        template_hash = pod_template_hash(deployment.spec.template, collision_count)
        rs = apps_pb2.ReplicaSet(api_version="apps/v1", kind="ReplicaSet")
        rs.metadata.name = f"{deployment.metadata.name}-{template_hash}"
        rs.metadata.namespace = deployment.metadata.namespace
        rs.metadata.labels.update(deployment.spec.template.metadata.labels)
        rs.metadata.labels[POD_TEMPLATE_HASH_LABEL] = template_hash
        rs.metadata.owner_references.append(owner_reference(deployment))
        rs.spec.selector.CopyFrom(deployment.spec.selector)
        rs.spec.selector.match_labels[POD_TEMPLATE_HASH_LABEL] = template_hash
        rs.spec.template.CopyFrom(deployment.spec.template)
        rs.spec.template.metadata.labels[POD_TEMPLATE_HASH_LABEL] = template_hash
        rs.spec.min_ready_seconds = deployment.spec.min_ready_seconds
        self._annotate_new(rs, deployment, revision)
        self._annotate_replicas(rs, deployment)
        if is_recreate(deployment):
            rs.spec.replicas = replicas_of(deployment)
        else:
            rs.spec.replicas = rolling_new_replicas(deployment, old, None)
        try:
            created = await self.api.create(rs)
        except errors.AlreadyExistsError:
            return await self._name_taken(deployment, rs)
        self.replicasets.assume(created)
        if replicas_of(created) > 0:
            self.recorder.normal(deployment, "ScalingReplicaSet",
                                 f"Scaled up replica set {created.metadata.name} from 0 to {replicas_of(created)}")
        return created

    async def _name_taken(self, deployment: apps_pb2.Deployment, wanted: apps_pb2.ReplicaSet) -> apps_pb2.ReplicaSet:
        """The new ReplicaSet's name exists: ours with this template (the cache lags), or a hash collision."""
        try:
            existing = await self.api.get("ReplicaSet", wanted.metadata.name, namespace=wanted.metadata.namespace)
        except errors.NotFoundError:
            raise RuntimeError(f"replicaset {wanted.metadata.name} vanished while being created; retrying") from None
        if (controller_uid(existing) == deployment.metadata.uid
                and equal_ignoring_hash(existing.spec.template, deployment.spec.template)):
            self.replicasets.assume(existing)
            return existing
        changed = _copy(deployment)
        changed.status.collision_count = deployment.status.collision_count + 1
        written = await self.api.update_status(changed)
        self.deployments.assume(written)
        raise HashCollision(f"replicaset {wanted.metadata.name} exists with another template; collisionCount "
                            f"is now {written.status.collision_count}")

    async def _sync_revision(self, deployment: apps_pb2.Deployment, new_rs: apps_pb2.ReplicaSet, *,
                             created: bool) -> apps_pb2.Deployment:
        """The Deployment's revision annotation follows its new ReplicaSet's; a starting rollout is Progressing."""
        revision = new_rs.metadata.annotations.get(REVISION_ANNOTATION, "")
        if revision and deployment.metadata.annotations.get(REVISION_ANNOTATION) != revision:
            changed = _copy(deployment)
            changed.metadata.annotations[REVISION_ANNOTATION] = revision
            deployment = await self._update_deployment(changed)
        if progress_deadline(deployment) is None:
            return deployment
        status = apps_pb2.DeploymentStatus()
        status.CopyFrom(deployment.status)
        if created:
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_CREATED,
                                                f'Created new replica set "{new_rs.metadata.name}"', now=self.clock()))
        elif get_condition(status, PROGRESSING) is None:
            set_condition(status, new_condition(PROGRESSING, "True", FOUND_NEW_RS,
                                                f'Found new replica set "{new_rs.metadata.name}"', now=self.clock()))
        else:
            return deployment
        return await self._write_status(deployment, status)

    # ------------------------------------------------------------ writes

    async def _scale(self, rs: apps_pb2.ReplicaSet, replicas: int, deployment: apps_pb2.Deployment, *,
                     annotate: bool = False) -> apps_pb2.ReplicaSet:
        """Set rs's spec.replicas (and its replicas annotations) and record the event."""
        before = replicas_of(rs)
        changed = _copy(rs)
        changed.spec.replicas = replicas
        annotations_changed = self._annotate_replicas(changed, deployment)
        if before == replicas and not (annotate and annotations_changed):
            return rs
        written = await self._update_replicaset(changed)
        if before != replicas:
            direction = "up" if replicas > before else "down"
            self.recorder.normal(deployment, "ScalingReplicaSet",
                                 f"Scaled {direction} replica set {rs.metadata.name} from {before} to {replicas}")
        return written

    async def _update_replicaset(self, changed: apps_pb2.ReplicaSet) -> apps_pb2.ReplicaSet:
        written = await self.api.update(changed)  # CAS on the cached resourceVersion
        self.replicasets.assume(written)
        return written

    async def _update_deployment(self, changed: apps_pb2.Deployment) -> apps_pb2.Deployment:
        written = await self.api.update(changed)
        self.deployments.assume(written)
        return written

    async def _write_status(self, deployment: apps_pb2.Deployment,
                            status: apps_pb2.DeploymentStatus) -> apps_pb2.Deployment:
        if status == deployment.status:
            return deployment
        changed = _copy(deployment)
        changed.status.CopyFrom(status)
        written = await self.api.update_status(changed)  # CAS: conditions depend on the status read
        self.deployments.assume(written)
        return written

    async def _clean_up_history(self, deployment: apps_pb2.Deployment, old: Sequence[apps_pb2.ReplicaSet]) -> None:
        """Delete the oldest empty old ReplicaSets beyond revisionHistoryLimit."""
        if not deployment.spec.HasField("revision_history_limit"):
            return
        alive = [rs for rs in old if not rs.metadata.HasField("deletion_timestamp")]
        surplus = len(alive) - deployment.spec.revision_history_limit
        if surplus <= 0:
            return
        oldest_first = sorted(alive, key=lambda rs: (revision_of(rs), rs.metadata.creation_timestamp))
        for rs in oldest_first[:surplus]:
            if rs.status.replicas != 0 or replicas_of(rs) != 0:
                continue
            if rs.status.observed_generation < rs.metadata.generation:
                continue
            try:
                await self.api.delete("ReplicaSet", rs.metadata.name, namespace=rs.metadata.namespace,
                                      uid=rs.metadata.uid)
            except errors.NotFoundError:
                pass
            self.replicasets.assume_deleted(rs)

    async def _sync_status(self, deployment: apps_pb2.Deployment, replicasets: list[apps_pb2.ReplicaSet]) -> None:
        """Counts and the Available condition only (paused, scaling, being deleted)."""
        new_rs = next((rs for rs in by_age(replicasets)
                       if equal_ignoring_hash(rs.spec.template, deployment.spec.template)), None)
        status = calculate_status(deployment, replicasets, new_rs, now=self.clock())
        await self._write_status(deployment, status)

    async def _sync_rollout_status(self, deployment: apps_pb2.Deployment) -> float | None:
        """Status with the Progressing condition; seconds until the progress deadline needs checking."""
        replicasets = self._owned(deployment)
        new_rs = next((rs for rs in by_age(replicasets)
                       if equal_ignoring_hash(rs.spec.template, deployment.spec.template)), None)
        now = self.clock()
        status = rollout_status(deployment, replicasets, new_rs, now=now)
        deployment = await self._write_status(deployment, status)
        return recheck_progress_in(deployment, status, now=now)


async def run_deployment_controller(ctx: ControllerContext) -> None:
    """Run the Deployment controller until cancelled."""
    recorder = EventRecorder(ctx.api, component=COMPONENT)
    controller = DeploymentController(ctx, recorder=recorder)
    await ctx.informers.wait_synced(["Deployment", "ReplicaSet", "Pod"])
    recording = asyncio.create_task(recorder.run())
    try:
        await run_workers(controller.queue, controller.reconcile, workers=ctx.options.workers)
    finally:
        recording.cancel()
        controller.queue.close()
        await asyncio.gather(recording, return_exceptions=True)
