"""The Deployment controller inside a running control service.

Covers: the ReplicaSet named by the pod-template hash (label on its
selector, template and pods), revision and replicas annotations, status and
conditions; a rolling update that never exceeds maxSurge nor drops below
maxUnavailable at any moment (checked on every pod watch event); Recreate,
which never lets old and new pods coexist; pause (no rollout, scaling still
applies) and resume; proportional scaling in mid-rollout (Kubernetes' own
example: 8 old + 5 new, scaled from 10 to 15, become 11 + 7);
revisionHistoryLimit; the progress deadline; a hash collision.

Node objects are written by the test and no agent runs the pods: the
stand-in kubelet of tests/controllers/stand_in_kubelet.py (a fake) marks
bound pods Running and Ready and confirms graceful deletions. Pods whose
nodeSelector matches no node stay unscheduled, which is how these tests
hold a rollout still.
"""

from __future__ import annotations

from typing import Any

import pytest

from control.api.deployments import POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION
from control.api.manifest import to_message
from control.controllers.deployment import pod_template_hash
from control.controllers.pods import is_ready, is_terminating
from protos.api.v1 import apps_pb2
from tests.controllers.stand_in_kubelet import PodLog, StandInKubelet, add_ready_node, eventually


def deployment(name: str = "web", *, replicas: int = 3, image: str = "busybox:1.36",
               strategy: dict[str, Any] | None = None, **spec: Any) -> apps_pb2.Deployment:
    labels = {"app": name}
    body: dict[str, Any] = {
        "replicas": replicas, "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels},
                     "spec": {"containers": [{"name": "main", "image": image, "command": ["sleep", "3600"]}]}},
        **spec}
    if strategy is not None:
        body["strategy"] = strategy
    return to_message({"apiVersion": "apps/v1", "kind": "Deployment",
                       "metadata": {"name": name, "namespace": "default"}, "spec": body})


def rolling(max_surge: int | str, max_unavailable: int | str) -> dict[str, Any]:
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": max_unavailable}}


async def get_deployment(api, name: str = "web") -> apps_pb2.Deployment:
    return await api.get("Deployment", name, namespace="default")


async def replicasets(api, name: str = "web") -> list[apps_pb2.ReplicaSet]:
    items, _ = await api.list("ReplicaSet", namespace="default", label_selector=f"app={name}")
    return sorted(items, key=lambda rs: int(rs.metadata.annotations.get(REVISION_ANNOTATION, "0")))


async def rolled_out(api, name: str = "web"):
    """The Deployment once its latest spec is observed and every replica is updated and available."""
    d = await get_deployment(api, name)
    s = d.status
    done = (s.observed_generation == d.metadata.generation and s.updated_replicas == d.spec.replicas
            and s.replicas == d.spec.replicas and s.available_replicas == d.spec.replicas)
    return done and d


def condition(d: apps_pb2.Deployment, type_: str) -> apps_pb2.WorkloadCondition | None:
    return next((c for c in d.status.conditions if c.type == type_), None)


async def set_image(api, image: str, name: str = "web", **template_spec: Any) -> None:
    await api.patch("Deployment", name, {"spec": {"template": {"spec": {
        "containers": [{"name": "main", "image": image, "command": ["sleep", "3600"]}], **template_spec}}}},
        namespace="default")


def image_of(pod) -> str:
    return pod.spec.containers[0].image


async def test_a_deployment_runs_its_template_through_a_replicaset_named_by_its_hash(api):
    await add_ready_node(api, "n1")
    async with StandInKubelet(api):
        await api.create(deployment(replicas=3))
        d = await eventually(lambda: rolled_out(api))

    [rs] = await replicasets(api)
    template_hash = pod_template_hash(d.spec.template, None)
    assert rs.metadata.name == f"web-{template_hash}"
    assert rs.spec.selector.match_labels[POD_TEMPLATE_HASH_LABEL] == template_hash
    assert rs.spec.template.metadata.labels[POD_TEMPLATE_HASH_LABEL] == template_hash
    assert [(r.kind, r.name, r.controller) for r in rs.metadata.owner_references] == [("Deployment", "web", True)]
    annotations = rs.metadata.annotations
    assert annotations[REVISION_ANNOTATION] == "1" == d.metadata.annotations[REVISION_ANNOTATION]
    # 25% of 3 is a surge of 1 (rounded up).
    assert (annotations["deployment.kubernetes.io/desired-replicas"],
            annotations["deployment.kubernetes.io/max-replicas"]) == ("3", "4")
    pods, _ = await api.list("Pod", namespace="default", label_selector="app=web")
    assert {p.metadata.labels[POD_TEMPLATE_HASH_LABEL] for p in pods} == {template_hash}
    s = d.status
    assert (s.replicas, s.updated_replicas, s.ready_replicas, s.available_replicas, s.unavailable_replicas) == \
        (3, 3, 3, 3, 0)
    available, progressing = condition(d, "Available"), condition(d, "Progressing")
    assert (available.status, available.reason) == ("True", "MinimumReplicasAvailable")
    assert (progressing.status, progressing.reason, progressing.message) == (
        "True", "NewReplicaSetAvailable", f'ReplicaSet "{rs.metadata.name}" has successfully progressed.')


@pytest.mark.parametrize(("max_surge", "max_unavailable"), [(1, 1), (1, 0), (0, 1), ("50%", "25%")])
async def test_a_rolling_update_stays_within_max_surge_and_max_unavailable(api, max_surge, max_unavailable):
    replicas = 4
    surge = 2 if max_surge == "50%" else max_surge
    unavailable = 1 if max_unavailable == "25%" else max_unavailable
    await add_ready_node(api, "n1")
    async with StandInKubelet(api):
        await api.create(deployment(replicas=replicas, strategy=rolling(max_surge, max_unavailable)))
        await eventually(lambda: rolled_out(api))
        async with PodLog(api) as log:
            await set_image(api, "busybox:1.37")

            async def new_rolled_out():
                d = await rolled_out(api)
                return d and d.metadata.annotations[REVISION_ANNOTATION] == "2" and d
            await eventually(new_rolled_out)

    assert log.events
    for _, _, present in log.states():
        active = [p for p in present.values() if not is_terminating(p)]
        assert len(active) <= replicas + surge, [p.metadata.name for p in active]
        assert sum(1 for p in active if is_ready(p)) >= replicas - unavailable
    pods, _ = await api.list("Pod", namespace="default", label_selector="app=web")
    assert sorted(image_of(p) for p in pods if not is_terminating(p)) == ["busybox:1.37"] * replicas
    old, new = await replicasets(api)
    assert (old.spec.replicas, new.spec.replicas) == (0, replicas)
    assert new.metadata.annotations[REVISION_ANNOTATION] == "2"


async def test_recreate_removes_every_old_pod_before_the_first_new_one(api):
    await add_ready_node(api, "n1")
    async with StandInKubelet(api):
        await api.create(deployment(replicas=3, strategy={"type": "Recreate"}))
        await eventually(lambda: rolled_out(api))
        async with PodLog(api) as log:
            await set_image(api, "busybox:1.37")

            async def new_rolled_out():
                d = await rolled_out(api)
                return d and d.metadata.annotations[REVISION_ANNOTATION] == "2"
            await eventually(new_rolled_out)

    images_seen = set()
    for _, _, present in log.states():
        images = {image_of(p) for p in present.values()}
        assert len(images) <= 1, images  # never old and new pods at once
        images_seen |= images
    assert images_seen == {"busybox:1.36", "busybox:1.37"}


async def test_a_paused_deployment_does_not_roll_out_but_still_scales(api):
    await add_ready_node(api, "n1")
    async with StandInKubelet(api):
        await api.create(deployment(replicas=2))
        await eventually(lambda: rolled_out(api))
        await api.patch("Deployment", "web", {"spec": {"paused": True}}, namespace="default")
        await set_image(api, "busybox:1.37")
        await api.patch("Deployment", "web", {"spec": {"replicas": 4}}, namespace="default")

        async def paused_and_scaled():
            d = await get_deployment(api)
            progressing = condition(d, "Progressing")
            return (d.status.observed_generation == d.metadata.generation and progressing.reason == "DeploymentPaused"
                    and d.status.available_replicas == 4 and d)
        d = await eventually(paused_and_scaled)
        assert condition(d, "Progressing").status == "Unknown"
        [rs] = await replicasets(api)
        assert rs.spec.template.spec.containers[0].image == "busybox:1.36"
        assert rs.spec.replicas == 4

        await api.patch("Deployment", "web", {"spec": {"paused": False}}, namespace="default")

        async def resumed_and_rolled_out():
            d = await rolled_out(api)
            return d and d.metadata.annotations[REVISION_ANNOTATION] == "2" and d
        await eventually(resumed_and_rolled_out)
    old, new = await replicasets(api)
    assert (old.spec.replicas, new.spec.replicas) == (0, 4)
    assert new.spec.template.spec.containers[0].image == "busybox:1.37"


async def test_scaling_in_mid_rollout_spreads_the_change_in_proportion(api):
    await add_ready_node(api, "n1")
    async with StandInKubelet(api):
        await api.create(deployment(replicas=10, strategy=rolling(3, 2)))
        await eventually(lambda: rolled_out(api))
        # The new pods can go nowhere, so the rollout stops with 8 old and 5 new.
        await set_image(api, "busybox:1.37", nodeSelector={"disk": "none"})

        async def stuck():
            sets = await replicasets(api)
            sizes = [rs.spec.replicas for rs in sets]
            return len(sets) == 2 and sizes == [8, 5] and all(rs.status.replicas == rs.spec.replicas for rs in sets)
        await eventually(stuck)

        await api.patch("Deployment", "web", {"spec": {"replicas": 15}}, namespace="default")

        async def scaled():
            return [rs.spec.replicas for rs in await replicasets(api)] == [11, 7]
        await eventually(scaled)


async def test_old_replicasets_beyond_the_revision_history_limit_are_deleted(api):
    await add_ready_node(api, "n1")
    async with StandInKubelet(api):
        await api.create(deployment(replicas=1, revisionHistoryLimit=1))
        for revision, image in enumerate(("busybox:1.37", "busybox:1.38"), start=2):
            await eventually(lambda: rolled_out(api))
            await set_image(api, image)

            async def rolled_out_to(revision=revision):
                d = await rolled_out(api)
                return d and d.metadata.annotations[REVISION_ANNOTATION] == str(revision)
            await eventually(rolled_out_to)

        async def one_old_left():
            sets = await replicasets(api)
            return [rs.metadata.annotations[REVISION_ANNOTATION] for rs in sets] == ["2", "3"]
        await eventually(one_old_left)


async def test_a_rollout_without_progress_exceeds_its_progress_deadline(api):
    await api.create(deployment(replicas=2, progressDeadlineSeconds=1))  # no node: pods never start

    async def timed_out():
        d = await get_deployment(api)
        progressing = condition(d, "Progressing")
        return progressing is not None and progressing.reason == "ProgressDeadlineExceeded" and d
    d = await eventually(timed_out)

    [rs] = await replicasets(api)
    progressing, available = condition(d, "Progressing"), condition(d, "Available")
    assert (progressing.status, progressing.message) == (
        "False", f'ReplicaSet "{rs.metadata.name}" has timed out progressing.')
    assert (available.status, available.reason) == ("False", "MinimumReplicasUnavailable")
    assert (d.status.replicas, d.status.available_replicas, d.status.unavailable_replicas) == (2, 0, 2)


async def test_a_replicaset_name_taken_by_another_template_bumps_the_collision_count(api):
    await api.create(deployment(replicas=1, paused=True))  # paused: no ReplicaSet yet
    d = await get_deployment(api)
    taken = f"web-{pod_template_hash(d.spec.template, None)}"
    squatter = to_message({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": taken, "namespace": "default"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "squatter"}},
                 "template": {"metadata": {"labels": {"app": "squatter"}},
                              "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}}})
    await api.create(squatter)

    await api.patch("Deployment", "web", {"spec": {"paused": False}}, namespace="default")

    async def created_elsewhere():
        sets = await replicasets(api)
        return len(sets) == 1 and sets[0]
    rs = await eventually(created_elsewhere)
    d = await get_deployment(api)
    assert d.status.collision_count == 1
    assert rs.metadata.name == f"web-{pod_template_hash(d.spec.template, 1)}" != taken
