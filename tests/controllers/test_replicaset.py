"""The ReplicaSet controller inside a running control service, and its pure parts.

Covers: pods created from the template (generateName, controller reference,
SuccessfulCreate events) and counted in status; readiness and
minReadySeconds; a deleted pod replaced, and a pod stuck Terminating
replaced too; scale down in Kubernetes' deletion order; adoption of
orphans and release of pods that stop matching; no double creation, both
when a second pass runs before the watch has reported the first pass's
pods (checked on private, unwatched informers), when a late watch event
brings back an older copy, and under a burst of changes in a live service.

Where pods must run, Node objects are written by the test and the stand-in
kubelet of tests/controllers/stand_in_kubelet.py (a fake: no agent runs the
pods) marks bound pods Running and Ready and confirms graceful deletions.
Elsewhere there are no nodes, so pods stay unscheduled and Pending.
"""

from __future__ import annotations

import asyncio

from control.api.manifest import to_message
from control.api.timestamps import format_time
from control.controllers.informers import Informers
from control.controllers.manager import ControllerContext
from control.controllers.pods import is_terminating
from control.controllers.replicaset import ReplicaSetController, deletion_order, slow_start_batches
from control.recorder import EventRecorder
from protos.api.v1 import apps_pb2, core_pb2
from tests.controllers.stand_in_kubelet import PodLog, StandInKubelet, add_ready_node, eventually


def replicaset(name: str = "web", *, replicas: int = 3, labels: dict[str, str] | None = None,
               **spec) -> apps_pb2.ReplicaSet:
    labels = labels or {"app": name}
    return to_message({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "main", "image": "busybox:1.36",
                                                       "command": ["sleep", "3600"]}]}},
                 **spec}})


async def active_pods(api, selector: str = "app=web") -> list[core_pb2.Pod]:
    pods, _ = await api.list("Pod", namespace="default", label_selector=selector)
    return [pod for pod in pods if not is_terminating(pod)]


async def count_is(api, count: int, selector: str = "app=web"):
    pods = await active_pods(api, selector)
    return len(pods) == count and pods


async def rs_status(api, name: str = "web") -> apps_pb2.ReplicaSetStatus:
    return (await api.get("ReplicaSet", name, namespace="default")).status


async def test_pods_are_created_from_the_template_and_counted_in_status(api):
    rs = await api.create(replicaset(replicas=3))

    pods = await eventually(lambda: count_is(api, 3))

    for pod in pods:
        assert pod.metadata.generate_name == "web-" and pod.metadata.name.startswith("web-")
        assert dict(pod.metadata.labels) == {"app": "web"}
        [ref] = pod.metadata.owner_references
        assert (ref.kind, ref.name, ref.uid, ref.controller) == ("ReplicaSet", "web", rs.metadata.uid, True)

    async def counted():
        status = await rs_status(api)
        return status.replicas == 3 and status
    status = await eventually(counted)
    assert (status.fully_labeled_replicas, status.ready_replicas, status.available_replicas) == (3, 0, 0)
    assert status.observed_generation == rs.metadata.generation

    async def created_events():
        events, _ = await api.list("Event", namespace="default")
        mine = [e for e in events if e.involved_object.uid == rs.metadata.uid and e.reason == "SuccessfulCreate"]
        return len(mine) == 3 and mine
    events = await eventually(created_events)
    assert {e.message for e in events} == {f"Created pod: {pod.metadata.name}" for pod in pods}
    assert {e.source.component for e in events} == {"replicaset-controller"}


async def test_ready_pods_count_as_ready_and_available(api):
    await add_ready_node(api, "n1")
    async with StandInKubelet(api):
        await api.create(replicaset(replicas=2))

        async def available():
            status = await rs_status(api)
            return status.available_replicas == 2 and status
        status = await eventually(available)

    assert (status.replicas, status.ready_replicas, status.fully_labeled_replicas) == (2, 2, 2)


async def test_min_ready_seconds_holds_ready_pods_back_from_available(api):
    await add_ready_node(api, "n1")
    statuses: list[apps_pb2.ReplicaSetStatus] = []

    async def record():
        _, revision = await api.list("ReplicaSet", namespace="default")
        async for event in api.watch("ReplicaSet", namespace="default", resource_version=revision):
            statuses.append(event.object.status)

    recorder = asyncio.create_task(record())
    try:
        async with StandInKubelet(api):
            await api.create(replicaset(replicas=2, minReadySeconds=3))

            async def available():
                status = await rs_status(api)
                return status.available_replicas == 2
            await eventually(available)
    finally:
        recorder.cancel()

    assert any(s.ready_replicas == 2 and s.available_replicas == 0 for s in statuses)


async def test_a_deleted_pod_is_replaced(api):
    await api.create(replicaset(replicas=2))
    first = await eventually(lambda: count_is(api, 2))

    await api.delete("Pod", first[0].metadata.name, namespace="default")

    async def replaced():
        pods = await active_pods(api)
        names = {pod.metadata.name for pod in pods}
        return len(pods) == 2 and first[0].metadata.name not in names and pods
    await eventually(replaced)


async def test_a_pod_stuck_terminating_is_replaced_and_not_counted(api):
    await add_ready_node(api, "n1")
    async with StandInKubelet(api, confirm_deletions=False):  # as if the node had died
        await api.create(replicaset(replicas=2))

        async def ready():
            return (await rs_status(api)).ready_replicas == 2
        await eventually(ready)
        pods = await active_pods(api)
        await api.delete("Pod", pods[0].metadata.name, namespace="default")

        async def replaced():
            everything, _ = await api.list("Pod", namespace="default", label_selector="app=web")
            stuck = [p for p in everything if is_terminating(p)]
            return len(everything) == 3 and [p.metadata.name for p in stuck] == [pods[0].metadata.name]
        await eventually(replaced)

        async def counted():
            status = await rs_status(api)
            return status.replicas == 2 and status.ready_replicas == 2
        await eventually(counted)


async def _set_state(api, pod: core_pb2.Pod, *, node: str = "", phase: str = "Pending", ready: bool = False):
    if node:
        current = await api.get("Pod", pod.metadata.name, namespace="default")
        current.spec.node_name = node
        await api.update(current)
    current = await api.get("Pod", pod.metadata.name, namespace="default")
    current.status.phase = phase
    del current.status.conditions[:]
    current.status.conditions.add(type="Ready", status="True" if ready else "False",
                                  last_transition_time=format_time(1_700_000_000))
    await api.update_status(current)


async def test_scale_down_deletes_unscheduled_then_pending_then_not_ready_then_ready_pods(api):
    await api.create(replicaset(replicas=4))
    pods = await eventually(lambda: count_is(api, 4))
    unscheduled, pending, not_ready, ready = pods
    # No Node exists, so nothing binds these pods but the test.
    await _set_state(api, pending, node="gone-node")
    await _set_state(api, not_ready, node="gone-node", phase="Running")
    await _set_state(api, ready, node="gone-node", phase="Running", ready=True)
    await _set_state(api, unscheduled)

    async def ready_counted():
        return (await rs_status(api)).ready_replicas == 1
    await eventually(ready_counted)

    deleted_in_order = []
    for replicas in (3, 2, 1):
        await api.patch("ReplicaSet", "web", {"spec": {"replicas": replicas}}, namespace="default")
        remaining = await eventually(lambda: count_is(api, replicas))
        names = {pod.metadata.name for pod in remaining}
        deleted_in_order.extend(p.metadata.name for p in pods
                                if p.metadata.name not in names and p.metadata.name not in deleted_in_order)
    assert deleted_in_order == [unscheduled.metadata.name, pending.metadata.name, not_ready.metadata.name]


async def test_orphans_are_adopted_and_pods_that_stop_matching_are_released(api):
    orphan = to_message({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": "orphan", "namespace": "default", "labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}})
    orphan = await api.create(orphan)
    rs = await api.create(replicaset(replicas=2))

    async def adopted():
        pod = await api.get("Pod", "orphan", namespace="default")
        refs = [(r.uid, r.controller) for r in pod.metadata.owner_references]
        return refs == [(rs.metadata.uid, True)] and len(await active_pods(api)) == 2
    await eventually(adopted)

    await api.patch("Pod", "orphan", {"metadata": {"labels": {"app": "elsewhere"}}}, namespace="default")

    async def released_and_replaced():
        pod = await api.get("Pod", "orphan", namespace="default")
        matching = await active_pods(api)
        return (not pod.metadata.owner_references and len(matching) == 2
                and all(p.metadata.owner_references[0].uid == rs.metadata.uid for p in matching))
    await eventually(released_and_replaced)


async def test_a_second_pass_before_the_watch_reports_the_first_creates_and_deletes_nothing_more(api):
    # The controller runs on informers that are never started: the only
    # copies they hold are what the controller itself assumes after writing,
    # as when the watch lags behind. The ReplicaSet exists only there, so
    # the service's own controller leaves its pods alone.
    informers = Informers(api)
    controller = ReplicaSetController(ControllerContext(api, informers), recorder=EventRecorder(api))
    rs = replicaset("private", replicas=3)
    rs.metadata.uid = "00000000-0000-4000-8000-000000000001"
    rs.metadata.generation = 1
    rs.metadata.creation_timestamp = format_time(1_700_000_000)
    informers.get("ReplicaSet").assume(rs)
    pods = informers.get("Pod")

    key = ("default", "private")

    def owned_names() -> set[str]:
        return {pod.metadata.name for pod in pods.owned_by(rs.metadata.uid)}

    await controller.reconcile_replicaset(key)
    created = owned_names()
    assert len(created) == 3
    await controller.reconcile_replicaset(key)
    assert owned_names() == created

    scaled = apps_pb2.ReplicaSet()
    scaled.CopyFrom(rs)
    scaled.spec.replicas = 1
    scaled.metadata.resource_version = "999999999"
    informers.get("ReplicaSet").assume(scaled)
    before = {pod.metadata.name: pod for pod in pods.owned_by(rs.metadata.uid)}
    await controller.reconcile_replicaset(key)
    [kept] = owned_names()
    # A late watch event may bring back an old copy of a deleted pod for a moment.
    for name, pod in before.items():
        if name != kept:
            pods.assume(pod)
    await controller.reconcile_replicaset(key)
    assert kept in owned_names()  # the stale copies counted for nothing: no second deletion


async def test_a_late_watch_event_does_not_undo_a_scale_the_cache_assumed(api):
    informers = Informers(api)
    cache = informers.get("ReplicaSet")
    before = replicaset("late", replicas=3)
    before.metadata.uid = "00000000-0000-4000-8000-000000000002"
    before.metadata.resource_version = "19"
    scaled = apps_pb2.ReplicaSet()
    scaled.CopyFrom(before)
    scaled.spec.replicas = 2
    scaled.metadata.resource_version = "20"
    cache.assume(scaled)

    cache.reflector._apply("MODIFIED", before)  # an event written before the scale, delivered after it

    assert cache.get("default", "late").spec.replicas == 2


async def test_a_burst_of_changes_never_creates_more_pods_than_replicas(api):
    async with PodLog(api) as log:
        await api.create(replicaset(replicas=10))
        for i in range(10):  # each change is another pass over the ReplicaSet
            await api.patch("ReplicaSet", "web", {"metadata": {"annotations": {"touch": str(i)}}},
                            namespace="default")
        await eventually(lambda: count_is(api, 10))

        async def status_settled():
            return (await rs_status(api)).replicas == 10
        await eventually(status_settled)
    created = {pod.metadata.name for type_, pod in log.events if type_ == "ADDED"}
    assert len(created) == 10


def _pod(name: str, *, node: str = "", phase: str = "Pending", ready_since: float | None = None,
         restarts: int = 0, created: float = 1_700_000_000, cost: str = "") -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.metadata.name = name
    pod.metadata.creation_timestamp = format_time(created)
    if cost:
        pod.metadata.annotations["controller.kubernetes.io/pod-deletion-cost"] = cost
    pod.spec.node_name = node
    pod.status.phase = phase
    if ready_since is not None:
        pod.status.conditions.add(type="Ready", status="True", last_transition_time=format_time(ready_since))
    pod.status.container_statuses.add(name="main", restart_count=restarts)
    return pod


def test_deletion_order_follows_kubernetes_ranking():
    pods = [
        _pod("ready-long", node="n", phase="Running", ready_since=1_000),
        _pod("ready-recently", node="n", phase="Running", ready_since=2_000),
        _pod("ready-recently-restarting", node="n", phase="Running", ready_since=2_000, restarts=3),
        _pod("ready-recently-newer", node="n", phase="Running", ready_since=2_000, created=1_700_000_100),
        _pod("ready-long-cheap", node="n", phase="Running", ready_since=1_000, cost="-10"),
        _pod("running-not-ready", node="n", phase="Running"),
        _pod("unknown", node="n", phase="Unknown"),
        _pod("pending-bound", node="n"),
        _pod("unscheduled"),
    ]
    assert [p.metadata.name for p in sorted(pods, key=deletion_order)] == [
        "unscheduled", "pending-bound", "unknown", "running-not-ready", "ready-long-cheap",
        "ready-recently-restarting", "ready-recently-newer", "ready-recently", "ready-long"]


def test_creations_go_in_slow_start_batches():
    assert slow_start_batches(1) == [1]
    assert slow_start_batches(10) == [1, 2, 4, 3]
    assert slow_start_batches(0) == []
