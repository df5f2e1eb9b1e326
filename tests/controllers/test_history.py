"""Revision history (ControllerRevisions) for DaemonSets and StatefulSets.

The history functions run here against the in-process API with a ConfigMap
as the owner (the functions serve any owner; a ConfigMap is one no
controller acts on), through an informer like the controllers'. Then
through the controllers themselves: revisionHistoryLimit truncation keeps
the revisions pods still run. No agent runs pods: the stand-in kubelet of
tests/controllers/stand_in_kubelet.py (a fake) marks them ready.
"""

from __future__ import annotations

import pytest

from control.controllers.history import (
    REVISION_HASH_LABEL, ensure_revision, new_revision, template_hash, truncate_history,
)
from control.controllers.informers import Informers
from protos.api.v1 import core_pb2
from tests.controllers.stand_in_kubelet import StandInKubelet, add_ready_node, eventually, set_image, workload


def pod_template(image: str) -> core_pb2.PodTemplateSpec:
    spec = core_pb2.PodTemplateSpec()
    spec.metadata.labels["app"] = "web"
    spec.spec.containers.add(name="main", image=image)
    return spec


@pytest.fixture
async def revisions(api):
    informers = Informers(api)
    informer = informers.get("ControllerRevision")
    informers.start()
    await informers.wait_synced()
    yield informer
    await informers.stop()


@pytest.fixture
async def owner(api):
    config = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    config.metadata.name, config.metadata.namespace = "web", "default"
    return await api.create(config)


def test_the_hash_is_stable_and_changes_with_the_template_and_the_collision_count():
    assert template_hash(pod_template("a:1")) == template_hash(pod_template("a:1"))
    assert template_hash(pod_template("a:1")) != template_hash(pod_template("a:2"))
    assert template_hash(pod_template("a:1"), 1) != template_hash(pod_template("a:1"), 0)
    assert all(c in "bcdfghjklmnpqrstvwxz2456789" for c in template_hash(pod_template("a:1")))


async def test_a_new_template_gets_a_new_revision_named_by_its_hash(api, revisions, owner):
    first = await ensure_revision(api, revisions, owner, pod_template("a:1"), collision_count=0)
    second = await ensure_revision(api, revisions, owner, pod_template("a:2"), collision_count=0)

    hash_ = template_hash(pod_template("a:2"))
    assert second.current.metadata.name == f"web-{hash_}"
    assert second.current.metadata.labels[REVISION_HASH_LABEL] == hash_
    assert second.current.metadata.labels["app"] == "web"
    assert [(r.metadata.name, r.revision) for r in second.all] == [
        (first.current.metadata.name, 1), (second.current.metadata.name, 2)]
    stored = await api.get("ControllerRevision", second.current.metadata.name, namespace="default")
    assert stored.data.spec.template == pod_template("a:2")
    assert stored.metadata.owner_references[0].uid == owner.metadata.uid
    assert stored.metadata.owner_references[0].controller


async def test_the_same_template_again_reuses_its_revision(api, revisions, owner):
    first = await ensure_revision(api, revisions, owner, pod_template("a:1"), collision_count=0)
    again = await ensure_revision(api, revisions, owner, pod_template("a:1"), collision_count=0)

    assert again.current.metadata.name == first.current.metadata.name
    assert again.current.revision == 1
    items, _ = await api.list("ControllerRevision", namespace="default")
    assert len(items) == 1


async def test_going_back_to_an_older_template_renumbers_its_revision_as_the_newest(api, revisions, owner):
    one = await ensure_revision(api, revisions, owner, pod_template("a:1"), collision_count=0)
    await ensure_revision(api, revisions, owner, pod_template("a:2"), collision_count=0)

    back = await ensure_revision(api, revisions, owner, pod_template("a:1"), collision_count=0)

    assert back.current.metadata.name == one.current.metadata.name
    assert back.current.revision == 3
    stored = await api.get("ControllerRevision", one.current.metadata.name, namespace="default")
    assert stored.revision == 3
    assert len(back.all) == 2


async def test_a_name_taken_by_another_template_raises_the_collision_count(api, revisions, owner):
    squatter = new_revision(owner, pod_template("other:1"), number=7, collision_count=0)
    squatter.metadata.name = f"web-{template_hash(pod_template('a:1'))}"  # the name a:1 would get
    await api.create(squatter)

    result = await ensure_revision(api, revisions, owner, pod_template("a:1"), collision_count=0)

    assert result.collision_count == 1
    assert result.current.metadata.name == f"web-{template_hash(pod_template('a:1'), 1)}"
    assert result.current.data.spec.template == pod_template("a:1")


async def test_truncation_deletes_the_oldest_revisions_that_nothing_uses(api, revisions, owner):
    made = []
    for image in ("a:1", "a:2", "a:3", "a:4", "a:5"):
        made.append((await ensure_revision(api, revisions, owner, pod_template(image), collision_count=0)).current)
    names = [r.metadata.name for r in made]

    deleted = await truncate_history(api, revisions, made, live={names[0], names[4]}, limit=1)

    assert deleted == [names[1], names[2]]
    items, _ = await api.list("ControllerRevision", namespace="default")
    assert sorted(r.metadata.name for r in items) == sorted([names[0], names[3], names[4]])


# ------------------------------------------------------------ through the controllers


async def test_a_daemonset_keeps_the_revision_its_pods_run_beyond_the_history_limit(api):
    await add_ready_node(api, "n1")
    await api.create(workload("DaemonSet", "agent", revisionHistoryLimit=0, updateStrategy={"type": "OnDelete"}))
    first = await eventually(lambda: _revision_names(api))
    for image in ("busybox:2", "busybox:3"):
        await set_image(api, "DaemonSet", "agent", image)
        await eventually(lambda: _observed(api, "DaemonSet", "agent"))

    async def two_left():
        names = await _revision_names(api)
        return len(names) == 2 and names
    names = await eventually(two_left)

    pods, _ = await api.list("Pod", namespace="default")
    running = {p.metadata.labels[REVISION_HASH_LABEL] for p in pods}
    revs, _ = await api.list("ControllerRevision", namespace="default")
    by_hash = {r.metadata.labels[REVISION_HASH_LABEL]: r for r in revs}
    assert running <= set(by_hash) and first[0] in names  # the pods' revision (the first) is kept
    assert max(r.revision for r in revs) == 3  # and the newest; the middle one went
    assert by_hash[max(by_hash, key=lambda h: by_hash[h].revision)].data.spec.template.spec.containers[0].image \
        == "busybox:3"


async def test_a_statefulset_truncates_its_history_to_the_limit_once_rolled_out(api):
    await add_ready_node(api, "n1")
    async with StandInKubelet(api):
        await api.create(workload("StatefulSet", "web", replicas=2, revisionHistoryLimit=1))
        for image in ("busybox:2", "busybox:3", "busybox:4"):
            await set_image(api, "StatefulSet", "web", image)
            await eventually(lambda image=image: _rolled_out(api, image))

        async def two_left():
            names = await _revision_names(api)
            return len(names) == 2 and names
        await eventually(two_left)

    revs, _ = await api.list("ControllerRevision", namespace="default")
    images = sorted((r.revision, r.data.spec.template.spec.containers[0].image) for r in revs)
    assert images == [(3, "busybox:3"), (4, "busybox:4")]


async def _revision_names(api) -> list[str]:
    revs, _ = await api.list("ControllerRevision", namespace="default")
    return [r.metadata.name for r in sorted(revs, key=lambda r: r.revision)]


async def _observed(api, kind: str, name: str) -> bool:
    obj = await api.get(kind, name, namespace="default")
    return obj.status.observed_generation == obj.metadata.generation


async def _rolled_out(api, image: str) -> bool:
    sts = await api.get("StatefulSet", "web", namespace="default")
    if sts.status.observed_generation != sts.metadata.generation:
        return False
    pods, _ = await api.list("Pod", namespace="default")
    return (sts.status.current_revision == sts.status.update_revision and sts.status.ready_replicas == 2
            and len(pods) == 2 and all(p.spec.containers[0].image == image for p in pods))
