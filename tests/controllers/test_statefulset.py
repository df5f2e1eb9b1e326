"""The StatefulSet controller inside a running control service.

Covers: pod identity (names from ordinals.start, hostname, subdomain,
labels); OrderedReady creation (pod i only once 0..i-1 are Running and
Ready) and scale down (highest ordinal first, one at a time, only while the
lower pods are ready); Parallel; RollingUpdate in reverse ordinal order
honouring the partition, and with maxUnavailable; OnDelete; a deleted or
failed pod recreated under its name only after the old one is gone (checked
at every watch event); adoption of an orphan pod; the status and the
revisions it names.

A Ready Node object lets the scheduler bind the pods; no agent runs them:
the stand-in kubelet of tests/controllers/stand_in_kubelet.py (a fake) marks
bound pods Running and Ready and confirms graceful deletions, or the test
does so itself, pod by pod, where it needs to hold the set in a state.
"""

from __future__ import annotations

import asyncio

import pytest

from control.api.manifest import to_message
from control.controllers.history import REVISION_HASH_LABEL
from control.controllers.pods import is_ready, is_terminating
from control.controllers.statefulset import POD_INDEX_LABEL, POD_NAME_LABEL
from tests.controllers.stand_in_kubelet import (
    PodLog, StandInKubelet, add_ready_node, confirm_deletion, eventually, mark_failed, set_image,
    workload,
)


@pytest.fixture
async def node(api):
    return await add_ready_node(api, "n1")


async def pods_of(api, name="web"):
    pods, _ = await api.list("Pod", namespace="default", label_selector=f"app={name}")
    return {p.metadata.name: p for p in pods}


async def get_status(api, name="web"):
    return (await api.get("StatefulSet", name, namespace="default")).status


def ordinal(pod) -> int:
    return int(pod.metadata.labels[POD_INDEX_LABEL])


async def test_pods_take_their_identity_from_the_set_and_the_start_ordinal(api, node):
    await api.create(workload("StatefulSet", "web", replicas=2, serviceName="web-svc", podManagementPolicy="Parallel",
                              ordinals={"start": 5}))

    async def both():
        pods = await pods_of(api)
        return sorted(pods) == ["web-5", "web-6"] and pods
    pods = await eventually(both)

    for name, pod in pods.items():
        assert pod.spec.hostname == name
        assert pod.spec.subdomain == "web-svc"
        assert pod.metadata.labels[POD_NAME_LABEL] == name
        assert pod.metadata.labels[POD_INDEX_LABEL] == name.rsplit("-", 1)[1]
        assert pod.metadata.labels["app"] == "web"
    revision = await api.get("ControllerRevision", pods["web-5"].metadata.labels[REVISION_HASH_LABEL],
                             namespace="default")
    assert revision.revision == 1 and revision.data.spec.template.spec.containers[0].image == "busybox:1"
    status = await eventually(lambda: _status_where(api, revision=revision.metadata.name))
    assert status.current_revision == revision.metadata.name


async def test_ordered_ready_creates_each_pod_only_after_the_lower_ones_are_running_and_ready(api, node):
    async with PodLog(api) as log:
        await api.create(workload("StatefulSet", "web", replicas=3))
        web0 = await eventually(lambda: _pod(api, "web-0"))
        await asyncio.sleep(0.3)  # give a wrong controller the chance to run ahead
        assert sorted(await pods_of(api)) == ["web-0"]

        async with StandInKubelet(api):
            await eventually(lambda: _ready_count(api, 3))
        assert web0.metadata.uid == (await pods_of(api))["web-0"].metadata.uid

    for type_, pod, present in log.states():
        if type_ == "ADDED":
            lower = [f"web-{i}" for i in range(ordinal(pod))]
            assert all(n in present and is_ready(present[n]) and present[n].status.phase == "Running"
                       for n in lower), f"{pod.metadata.name} created before {lower} were ready"
    status = await eventually(lambda: _status_where(api, ready=3, current=3))  # written after the pods change
    assert (status.replicas, status.ready_replicas, status.available_replicas) == (3, 3, 3)
    assert status.current_revision == status.update_revision != ""


async def test_ordered_scale_down_removes_the_highest_ordinal_first_one_at_a_time(api, node):
    async with StandInKubelet(api):
        await api.create(workload("StatefulSet", "web", replicas=4))
        await eventually(lambda: _ready_count(api, 4))
    async with PodLog(api) as log:
        async with StandInKubelet(api):
            await api.patch("StatefulSet", "web", {"spec": {"replicas": 1}}, namespace="default")
            await eventually(lambda: _names_are(api, ["web-0"]))

    marked = [pod.metadata.name for type_, pod, _ in log.states()
              if type_ == "MODIFIED" and is_terminating(pod)]
    assert list(dict.fromkeys(marked)) == ["web-3", "web-2", "web-1"]
    for type_, pod, present in log.states():
        if type_ == "MODIFIED" and is_terminating(pod):
            others_terminating = [n for n, p in present.items() if is_terminating(p) and n != pod.metadata.name]
            assert not others_terminating, f"{pod.metadata.name} deleted while {others_terminating} terminating"
            lower = [present[f"web-{i}"] for i in range(ordinal(pod))]
            assert all(is_ready(p) for p in lower)


async def test_ordered_scale_down_waits_while_a_lower_pod_is_not_ready(api, node):
    async with StandInKubelet(api):
        await api.create(workload("StatefulSet", "web", replicas=3))
        await eventually(lambda: _ready_count(api, 3))
    await mark_failed(api, (await pods_of(api))["web-0"])  # web-0 fails and is recreated, not ready
    await eventually(lambda: _recreated_unready(api, "web-0"))

    await api.patch("StatefulSet", "web", {"spec": {"replicas": 2}}, namespace="default")
    await asyncio.sleep(0.3)
    assert not is_terminating((await pods_of(api))["web-2"])

    async with StandInKubelet(api):
        await eventually(lambda: _names_are(api, ["web-0", "web-1"]))


async def test_parallel_creates_and_deletes_all_pods_without_waiting(api, node):
    await api.create(workload("StatefulSet", "web", replicas=3, podManagementPolicy="Parallel"))
    await eventually(lambda: _names_are(api, ["web-0", "web-1", "web-2"]))  # none is ready: no kubelet

    async def all_bound():  # so that deletion only marks them: no agent confirms it
        return all(p.spec.node_name for p in (await pods_of(api)).values())
    await eventually(all_bound)
    await api.patch("StatefulSet", "web", {"spec": {"replicas": 0}}, namespace="default")

    async def all_terminating():
        pods = await pods_of(api)
        return len(pods) == 3 and all(is_terminating(p) for p in pods.values())
    await eventually(all_terminating)


async def test_rolling_update_goes_in_reverse_ordinal_order_and_stops_at_the_partition(api, node):
    async with StandInKubelet(api):
        await api.create(workload("StatefulSet", "web", replicas=4, updateStrategy={
            "type": "RollingUpdate", "rollingUpdate": {"partition": 2}}))
        await eventually(lambda: _ready_count(api, 4))
        old = (await get_status(api)).current_revision
        first_web_0 = (await pods_of(api))["web-0"]
        async with PodLog(api) as log:
            await set_image(api, "StatefulSet", "web", "busybox:2")
            await eventually(lambda: _images_are(api, ["busybox:1", "busybox:1", "busybox:2", "busybox:2"]))
            status = await eventually(lambda: _status_where(api, updated=2, ready=4))
            assert status.current_revision == old != status.update_revision
            assert status.current_replicas == 2

            # Below the partition a replaced pod keeps the current revision.
            await api.delete("Pod", "web-0", namespace="default")
            recreated = await eventually(lambda: _replaced(api, "web-0", first_web_0))
            assert recreated.spec.containers[0].image == "busybox:1"
            assert recreated.metadata.labels[REVISION_HASH_LABEL] == old
            await eventually(lambda: _ready_count(api, 4))

            await api.patch("StatefulSet", "web", {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}},
                            namespace="default")
            await eventually(lambda: _images_are(api, ["busybox:2"] * 4))
            status = await eventually(lambda: _status_where(api, updated=4, ready=4, current=4))

    assert status.current_revision == status.update_revision != old
    deleted = [pod.metadata.name for type_, pod, _ in log.states() if type_ == "DELETED"]
    assert deleted == ["web-3", "web-2", "web-0", "web-1", "web-0"]  # the third by hand
    for type_, pod, present in log.states():
        if type_ == "MODIFIED" and is_terminating(pod) and pod.metadata.uid != first_web_0.metadata.uid:
            above = [present.get(f"web-{i}") for i in range(ordinal(pod) + 1, 4)]
            assert all(p is not None and is_ready(p) and p.spec.containers[0].image == "busybox:2" for p in above)


async def test_rolling_update_replaces_up_to_max_unavailable_pods_at_once(api, node):
    async with StandInKubelet(api):
        await api.create(workload("StatefulSet", "web", replicas=4, podManagementPolicy="Parallel", updateStrategy={
            "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}))
        await eventually(lambda: _ready_count(api, 4))
        async with PodLog(api) as log:
            await set_image(api, "StatefulSet", "web", "busybox:2")
            await eventually(lambda: _images_are(api, ["busybox:2"] * 4))
            await eventually(lambda: _status_where(api, updated=4, ready=4, observed=True))

    most = 0
    for _type, _pod, present in log.states():
        unavailable = 4 - sum(1 for p in present.values() if is_ready(p) and not is_terminating(p))
        assert unavailable <= 2
        most = max(most, unavailable)
    assert most == 2


async def test_on_delete_updates_a_pod_only_when_it_is_deleted(api, node):
    async with StandInKubelet(api):
        await api.create(workload("StatefulSet", "web", replicas=2, updateStrategy={"type": "OnDelete"}))
        await eventually(lambda: _ready_count(api, 2))
        await set_image(api, "StatefulSet", "web", "busybox:2")
        await eventually(lambda: _status_where(api, updated=0, ready=2, observed=True))
        assert await _images_are(api, ["busybox:1", "busybox:1"])

        await api.delete("Pod", "web-1", namespace="default")
        await eventually(lambda: _images_are(api, ["busybox:1", "busybox:2"]))


async def test_a_deleted_pod_comes_back_under_its_name_only_after_the_old_one_is_gone(api, node):
    async with StandInKubelet(api):
        await api.create(workload("StatefulSet", "web", replicas=3, podManagementPolicy="Parallel"))
        await eventually(lambda: _ready_count(api, 3))
    async with PodLog(api) as log:
        old = (await pods_of(api))["web-1"]
        await api.delete("Pod", "web-1", namespace="default")  # graceful: the node has to confirm
        await eventually(lambda: _terminating(api, "web-1"))
        await asyncio.sleep(0.3)  # the old pod is still there: nothing may replace it yet
        assert (await pods_of(api))["web-1"].metadata.uid == old.metadata.uid

        await confirm_deletion(api, old)
        new = await eventually(lambda: _replaced(api, "web-1", old))
        failing = (await pods_of(api))["web-2"]
        await mark_failed(api, failing)
        await eventually(lambda: _replaced(api, "web-2", failing))

    _assert_one_pod_per_ordinal(log)
    added = [(type_, pod.metadata.uid) for type_, pod, _ in log.states() if pod.metadata.name == "web-1"]
    gone = added.index(("DELETED", old.metadata.uid))
    assert ("ADDED", new.metadata.uid) in added[gone:]


async def test_revisions_are_reused_on_rollback_and_the_status_names_them(api, node):
    async with StandInKubelet(api):
        await api.create(workload("StatefulSet", "web", replicas=1))
        first = (await eventually(lambda: _status_where(api, ready=1))).update_revision
        await set_image(api, "StatefulSet", "web", "busybox:2")
        second = (await eventually(lambda: _status_where(api, updated=1, ready=1, revision_changed=first)))
        await set_image(api, "StatefulSet", "web", "busybox:1")
        back = await eventually(lambda: _status_where(api, updated=1, ready=1, revision_changed=second.update_revision))

    assert back.update_revision == first
    revisions, _ = await api.list("ControllerRevision", namespace="default")
    numbers = {r.metadata.name: r.revision for r in revisions}
    assert numbers == {first: 3, second.update_revision: 2}


# ------------------------------------------------------------ helpers


def _assert_one_pod_per_ordinal(log: PodLog) -> None:
    live: dict[str, str] = {}
    for type_, pod, _ in log.states():
        name, uid = pod.metadata.name, pod.metadata.uid
        if type_ == "DELETED":
            assert live.pop(name, uid) == uid
        else:
            assert live.setdefault(name, uid) == uid, f"two pods named {name} at once"


async def _pod(api, name):
    return (await pods_of(api)).get(name)


async def _ready_count(api, count: int) -> bool:
    pods = await pods_of(api)
    return len(pods) == count and all(is_ready(p) and not is_terminating(p) for p in pods.values())


async def _names_are(api, names: list[str]) -> bool:
    return sorted(await pods_of(api)) == names


async def _images_are(api, images: list[str]) -> bool:
    pods = await pods_of(api)
    return [pods[n].spec.containers[0].image if n in pods else None
            for n in sorted(pods, key=lambda n: int(n.rsplit("-", 1)[1]))] == images and len(pods) == len(images)


async def _terminating(api, name: str) -> bool:
    pod = (await pods_of(api)).get(name)
    return pod is not None and is_terminating(pod)


async def _replaced(api, name: str, old):
    pod = (await pods_of(api)).get(name)
    return pod if pod is not None and pod.metadata.uid != old.metadata.uid else None


async def _recreated_unready(api, name: str) -> bool:
    pod = (await pods_of(api)).get(name)
    return pod is not None and pod.status.phase != "Failed" and not is_ready(pod)


async def _status_where(api, *, updated=None, ready=None, current=None, observed=False, revision_changed=None,
                        revision=None):
    sts = await api.get("StatefulSet", "web", namespace="default")
    s = sts.status
    if revision is not None and s.update_revision != revision:
        return None
    if observed and s.observed_generation != sts.metadata.generation:
        return None
    if revision_changed is not None and s.update_revision == revision_changed:
        return None
    checks = [(updated, s.updated_replicas), (ready, s.ready_replicas), (current, s.current_replicas)]
    return s if all(want is None or want == have for want, have in checks) else None


async def test_an_orphan_pod_with_a_members_name_is_adopted_not_replaced(api, node):
    orphan = await api.create(to_message({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0", "namespace": "default",
                                                        "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "main", "image": "busybox:1"}]}}))
    sts = await api.create(workload("StatefulSet", "web", replicas=1))

    async def adopted():
        pod = (await pods_of(api))["web-0"]
        return [ref.uid for ref in pod.metadata.owner_references if ref.controller] == [sts.metadata.uid] and pod
    pod = await eventually(adopted)

    assert pod.metadata.uid == orphan.metadata.uid
