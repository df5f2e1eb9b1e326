"""The DaemonSet controller inside a running control service.

Covers: one pod per eligible node, placed by the scheduler through a
``metadata.name`` node affinity, with the daemon tolerations; nodeSelector,
taints and cordoning; following node label and taint changes and new nodes;
RollingUpdate within maxUnavailable, and with maxSurge; OnDelete; failed pods
replaced, with a doubling backoff per node; adoption of an orphan pod, and
no second pod on a node where the API shows one the controller's cache has
not seen yet; the status counts (a node's live pod, not an extra one being
deleted).

Nodes are API objects written by the test and no agent runs the pods: the
stand-in kubelet of tests/controllers/stand_in_kubelet.py (a fake) marks bound
pods Running and Ready and confirms their graceful deletion.
"""

from __future__ import annotations

import pytest

from control.api.manifest import to_message
from control.controllers.daemonset import (
    DAEMON_TOLERATIONS, UNSEEN_POD_RECHECK, DaemonSetController, _Changes, daemon_pod, target_node,
)
from control.controllers.history import REVISION_HASH_LABEL
from control.controllers.informers import Informers
from control.controllers.manager import ControllerContext
from control.controllers.pods import is_ready, is_terminating, owner_reference
from tests.controllers.stand_in_kubelet import (
    PodLog, StandInKubelet, add_ready_node, eventually, mark_failed, mark_ready, set_image, workload,
)


async def daemon_pods(api, name="agent", *, include_terminating=False):
    pods, _ = await api.list("Pod", namespace="default", label_selector=f"app={name}")
    return [p for p in pods if include_terminating or not is_terminating(p)]


async def pods_by_node(api, name="agent"):
    return {target_node(p): p for p in await daemon_pods(api, name)}


async def status(api, name="agent"):
    return (await api.get("DaemonSet", name, namespace="default")).status


async def test_each_ready_node_gets_one_pod_which_the_scheduler_binds_there(api):
    for node in ("n1", "n2", "n3"):
        await add_ready_node(api, node)
    await api.create(workload("DaemonSet", "agent"))

    async def bound_everywhere():
        pods = await daemon_pods(api)
        return len(pods) == 3 and all(p.spec.node_name for p in pods) and pods

    pods = await eventually(bound_everywhere)

    assert sorted(p.spec.node_name for p in pods) == ["n1", "n2", "n3"]
    for pod in pods:
        terms = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
        assert len(terms) == 1 and not terms[0].match_expressions
        assert [(f.key, f.operator, list(f.values)) for f in terms[0].match_fields] == [
            ("metadata.name", "In", [pod.spec.node_name])]
        for toleration in DAEMON_TOLERATIONS:
            assert toleration in pod.spec.tolerations
        assert not any(t.HasField("toleration_seconds") for t in pod.spec.tolerations
                       if t.key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"))
        assert pod.metadata.labels[REVISION_HASH_LABEL]
        assert pod.metadata.generate_name == "agent-"


async def test_status_counts_scheduled_ready_and_available_pods(api):
    for node in ("n1", "n2"):
        await add_ready_node(api, node)
    ds = await api.create(workload("DaemonSet", "agent"))
    async def scheduled():
        s = await status(api)
        return s.desired_number_scheduled == 2 and s.current_number_scheduled == 2 and s
    before = await eventually(scheduled)
    assert (before.number_ready, before.number_available, before.number_unavailable) == (0, 0, 2)
    assert before.updated_number_scheduled == 2 and before.observed_generation == ds.metadata.generation

    async with StandInKubelet(api):
        async def available():
            s = await status(api)
            return s.number_available == 2 and s
        after = await eventually(available)

    assert (after.number_ready, after.number_unavailable, after.number_misscheduled) == (2, 0, 0)


async def test_node_selector_limits_the_nodes_and_label_changes_are_followed(api):
    await add_ready_node(api, "ssd-1", labels={"disk": "ssd"})
    await add_ready_node(api, "hdd-1", labels={"disk": "hdd"})
    await api.create(workload("DaemonSet", "agent", pod_spec={"nodeSelector": {"disk": "ssd"}}))
    await eventually(lambda: _nodes_are(api, {"ssd-1"}))

    async with StandInKubelet(api):
        await api.patch("Node", "hdd-1", {"metadata": {"labels": {"disk": "ssd"}}})
        await eventually(lambda: _nodes_are(api, {"ssd-1", "hdd-1"}))

        await api.patch("Node", "ssd-1", {"metadata": {"labels": {"disk": None}}})
        await eventually(lambda: _nodes_are(api, {"hdd-1"}))

    final = await eventually(lambda: _status_where(api, desired=1, current=1, misscheduled=0))
    assert final.desired_number_scheduled == 1


async def test_a_new_node_gets_a_pod(api):
    await add_ready_node(api, "n1")
    await api.create(workload("DaemonSet", "agent"))
    await eventually(lambda: _nodes_are(api, {"n1"}))

    await add_ready_node(api, "n2")

    await eventually(lambda: _nodes_are(api, {"n1", "n2"}))
    assert (await eventually(lambda: _status_where(api, desired=2, current=2))).current_number_scheduled == 2


async def test_untolerated_taints_keep_new_pods_away_but_cordoned_nodes_get_one(api):
    await add_ready_node(api, "plain")
    await add_ready_node(api, "cordoned", unschedulable=True)
    await add_ready_node(api, "gpu", taints=[{"key": "gpu", "value": "true", "effect": "NoSchedule"}])
    await add_ready_node(api, "gpu-tolerated", taints=[{"key": "dedicated", "value": "ops", "effect": "NoSchedule"}])
    await api.create(workload("DaemonSet", "agent", pod_spec={
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}]}))

    await eventually(lambda: _nodes_are(api, {"plain", "cordoned", "gpu-tolerated"}))

    async def bound_on_cordoned():
        return (await pods_by_node(api))["cordoned"].spec.node_name == "cordoned"
    await eventually(bound_on_cordoned)  # the scheduler lets it through: it tolerates unschedulable
    assert (await eventually(lambda: _status_where(api, desired=3))).desired_number_scheduled == 3


async def test_a_noschedule_taint_keeps_the_running_pod_and_a_noexecute_taint_removes_it(api):
    await add_ready_node(api, "n1")
    await add_ready_node(api, "n2")
    await api.create(workload("DaemonSet", "agent"))
    await eventually(lambda: _nodes_are(api, {"n1", "n2"}))
    first = (await pods_by_node(api))["n1"]

    async with StandInKubelet(api):
        await api.patch("Node", "n1", {"spec": {"taints": [{"key": "maint", "value": "x", "effect": "NoSchedule"}]}})
        # A NoSchedule taint: no longer desired there, but the pod may stay (misscheduled is not counted).
        await eventually(lambda: _status_where(api, desired=1, current=1, misscheduled=1))
        assert (await pods_by_node(api))["n1"].metadata.uid == first.metadata.uid

        await api.patch("Node", "n1", {"spec": {"taints": [{"key": "maint", "value": "x", "effect": "NoExecute"}]}})
        await eventually(lambda: _nodes_are(api, {"n2"}))
        await eventually(lambda: _status_where(api, desired=1, current=1, misscheduled=0))


async def test_rolling_update_keeps_within_max_unavailable_at_every_moment(api):
    nodes = [f"n{i}" for i in range(4)]
    for node in nodes:
        await add_ready_node(api, node)
    async with StandInKubelet(api), PodLog(api) as log:
        await api.create(workload("DaemonSet", "agent",
                                  updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}))
        await eventually(lambda: _status_where(api, available=4))
        await eventually(lambda: _log_shows_ready_pods_on(log, nodes))  # its watch may lag behind the status
        old_hash = (await daemon_pods(api))[0].metadata.labels[REVISION_HASH_LABEL]
        start = len(log.events)

        await set_image(api, "DaemonSet", "agent", "busybox:2")

        async def all_updated():
            pods = await daemon_pods(api)
            return (len(pods) == 4 and all(p.metadata.labels[REVISION_HASH_LABEL] != old_hash for p in pods)
                    and all(is_ready(p) for p in pods))
        await eventually(all_updated)
        await eventually(lambda: _status_where(api, updated=4, available=4))

    most_unavailable = 0
    for index, (_type, _pod, present) in enumerate(log.states()):
        if index < start:
            continue
        available_nodes = {target_node(p) for p in present.values() if is_ready(p) and not is_terminating(p)}
        most_unavailable = max(most_unavailable, len(nodes) - len(available_nodes))
        assert len(available_nodes) >= len(nodes) - 2, f"after event {index}: only {sorted(available_nodes)}"
    assert most_unavailable == 2  # the budget is used, two nodes at a time


async def test_rolling_update_with_max_surge_starts_the_new_pod_before_removing_the_old(api):
    nodes = ["n1", "n2", "n3"]
    for node in nodes:
        await add_ready_node(api, node)
    async with StandInKubelet(api), PodLog(api) as log:
        await api.create(workload("DaemonSet", "agent", updateStrategy={
            "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}))
        await eventually(lambda: _status_where(api, available=3))
        await eventually(lambda: _log_shows_ready_pods_on(log, nodes))  # its watch may lag behind the status
        start = len(log.events)

        await set_image(api, "DaemonSet", "agent", "busybox:2")

        async def one_updated_pod_per_node():
            pods = await daemon_pods(api, include_terminating=True)
            return len(pods) == 3 and all(p.spec.containers[0].image == "busybox:2" and is_ready(p) for p in pods)
        await eventually(one_updated_pod_per_node)
        await eventually(lambda: _status_where(api, updated=3, available=3, current=3, generation_observed=True))

    most_surged = 0
    for index, (_type, _pod, present) in enumerate(log.states()):
        if index < start:
            continue
        live = [p for p in present.values() if not is_terminating(p)]
        per_node: dict[str, int] = {}
        for pod in live:
            per_node[target_node(pod)] = per_node.get(target_node(pod), 0) + 1
        available_nodes = {target_node(p) for p in live if is_ready(p)}
        assert available_nodes == set(nodes), f"after event {index}: a node without an available pod"
        surged = sum(1 for count in per_node.values() if count > 1)
        assert surged <= 1, f"after event {index}: surge above 1"
        most_surged = max(most_surged, surged)
    assert most_surged == 1  # each node had its new pod next to the old one for a while


async def test_on_delete_replaces_only_the_pods_that_are_deleted(api):
    await add_ready_node(api, "n1")
    await add_ready_node(api, "n2")
    async with StandInKubelet(api):
        await api.create(workload("DaemonSet", "agent", updateStrategy={"type": "OnDelete"}))
        await eventually(lambda: _status_where(api, available=2))
        before = await pods_by_node(api)

        await set_image(api, "DaemonSet", "agent", "busybox:2")
        await eventually(lambda: _status_where(api, updated=0, generation_observed=True))
        assert {n: p.metadata.uid for n, p in (await pods_by_node(api)).items()} == {
            n: p.metadata.uid for n, p in before.items()}

        await api.delete("Pod", before["n1"].metadata.name, namespace="default")
        await eventually(lambda: _status_where(api, updated=1, available=2))

    after = await pods_by_node(api)
    assert after["n1"].spec.containers[0].image == "busybox:2"
    assert after["n2"].metadata.uid == before["n2"].metadata.uid


async def test_a_failed_pod_is_deleted_and_replaced_on_its_node(api):
    await add_ready_node(api, "n1")
    await api.create(workload("DaemonSet", "agent"))
    failed = await eventually(lambda: _bound_on(api, "n1"))

    await mark_failed(api, failed)

    async def replaced():
        pods = await daemon_pods(api)
        return len(pods) == 1 and pods[0].metadata.uid != failed.metadata.uid and pods[0]
    replacement = await eventually(replaced)
    assert target_node(replacement) == "n1"
    events, _ = await api.list("Event", namespace="default")
    assert any(e.reason == "FailedDaemonPod" and failed.metadata.name in e.message for e in events)


# ------------------------------------------------------------ helpers


async def _nodes_are(api, expected: set[str]) -> bool:
    pods = await daemon_pods(api, include_terminating=True)
    return {target_node(p) for p in pods} == expected and len(pods) == len(expected)


async def _log_shows_ready_pods_on(log, nodes: list[str]) -> bool:
    """Whether the log's latest state has a ready, live pod on each node (the invariants start from there)."""
    present = {pod.metadata.name: pod for pod in log.initial}
    for _type, _pod, present in log.states():
        pass
    return {target_node(p) for p in present.values() if is_ready(p) and not is_terminating(p)} == set(nodes)


async def _bound_on(api, node: str):
    pods = await daemon_pods(api)
    return next((p for p in pods if p.spec.node_name == node), None)


async def _status_where(api, *, desired=None, current=None, misscheduled=None, available=None, updated=None,
                        generation_observed=False):
    ds = await api.get("DaemonSet", "agent", namespace="default")
    s = ds.status
    checks = [(desired, s.desired_number_scheduled), (current, s.current_number_scheduled),
              (misscheduled, s.number_misscheduled), (available, s.number_available),
              (updated, s.updated_number_scheduled)]
    if generation_observed and s.observed_generation != ds.metadata.generation:
        return None
    return s if all(want is None or want == have for want, have in checks) else None


async def test_an_orphan_pod_on_a_node_is_adopted_instead_of_starting_another(api):
    await add_ready_node(api, "n1")
    orphan = await api.create(to_message({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "agent-orphan", "namespace": "default",
                                                        "labels": {"app": "agent"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "main", "image": "busybox:1"}]}}))
    await mark_ready(api, orphan)
    ds = await api.create(workload("DaemonSet", "agent", updateStrategy={"type": "OnDelete"}))

    async def adopted():
        pods = await daemon_pods(api)
        return len(pods) == 1 and [r.uid for r in pods[0].metadata.owner_references if r.controller] == [
            ds.metadata.uid] and pods[0]
    pod = await eventually(adopted)

    assert pod.metadata.uid == orphan.metadata.uid
    assert (await eventually(lambda: _status_where(api, desired=1, current=1, available=1))).number_ready == 1


def test_replacing_failed_pods_on_a_node_backs_off_doubling_until_the_template_changes():
    """The backoff decision alone, on a controller that never starts (no API, a clock the test moves)."""
    now = [1000.0]
    controller = DaemonSetController(ControllerContext(api=None, informers=Informers(None), clock=lambda: now[0]))
    ds = workload("DaemonSet", "agent")
    ds.metadata.uid, ds.metadata.generation = "uid-1", 1

    def failed_pod(name):
        return to_message({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                           "spec": {"nodeName": "n1", "containers": [{"name": "main", "image": "busybox:1"}]},
                           "status": {"phase": "Failed"}})

    def decide(pod):
        changes = _Changes()
        running = controller._drop_finished(ds, "n1", [pod], changes)
        assert running == []
        return [p.metadata.name for p in changes.delete], changes.again

    assert decide(failed_pod("a")) == (["a"], None)  # the first failure is replaced at once
    now[0] += 0.5
    assert decide(failed_pod("b")) == ([], pytest.approx(0.5))  # within 1 s of the last: wait
    now[0] += 0.6
    assert decide(failed_pod("b")) == (["b"], None)
    now[0] += 1.5
    assert decide(failed_pod("c")) == ([], pytest.approx(0.5))  # the delay has doubled to 2 s
    ds.metadata.generation = 2
    assert decide(failed_pod("c")) == (["c"], None)  # a new template is tried at once


async def test_no_pod_is_created_on_a_node_where_the_api_shows_one_the_cache_has_not_seen_yet():
    """The re-check before creating, alone: a controller whose pod cache lags, over an API that answers one list."""
    ds = workload("DaemonSet", "agent")
    ds.metadata.uid = "uid-1"
    other = workload("DaemonSet", "other")
    other.metadata.uid = "uid-2"

    def pod(name, node, *, owner=None, deleting=False):
        made = daemon_pod(ds, node)
        made.metadata.name, made.metadata.uid = name, f"uid-{name}"
        del made.metadata.owner_references[:]
        if owner is not None:
            made.metadata.owner_references.append(owner_reference(owner))
        if deleting:
            made.metadata.deletion_timestamp = "2024-01-01T00:00:00Z"
        return made

    known_old = pod("known-old", "n5", owner=ds)  # the old pod a surge pod is to join
    live = [pod("orphan", "n1"), pod("ours-unseen", "n2", owner=ds), pod("orphan-deleting", "n3", deleting=True),
            pod("others", "n4", owner=other), known_old]

    class ListOnlyAPI:
        async def list(self, kind, *, namespace="", label_selector="", field_selector=""):
            assert (kind, namespace, label_selector) == ("Pod", "default", "app in (agent)")
            return live, "1"

    controller = DaemonSetController(ControllerContext(api=ListOnlyAPI(), informers=Informers(None)))
    controller.pods.assume(known_old)
    changes = _Changes(create_on=["n1", "n2", "n3", "n4", "n5", "n6"])

    await controller._drop_unseen(ds, changes)

    assert changes.create_on == ["n3", "n4", "n5", "n6"]  # n1 waits for the adoption, n2 for the cache
    assert changes.again == UNSEEN_POD_RECHECK


async def test_the_status_counts_the_live_pod_of_a_node_not_an_extra_one_being_deleted():
    """Status alone: an extra pod being deleted that sorts first (same second, then name) hides no ready one."""
    ds = workload("DaemonSet", "agent")
    ds.metadata.uid, ds.metadata.generation = "uid-1", 1

    def bound_pod(name, *, ready=False, deleting=False):
        made = daemon_pod(ds, "n1")
        made.metadata.name, made.metadata.creation_timestamp = name, "2024-01-01T00:00:00Z"
        made.spec.node_name = "n1"
        if ready:
            made.status.phase = "Running"
            made.status.conditions.add(type="Ready", status="True", last_transition_time="2024-01-01T00:00:01Z")
        if deleting:
            made.metadata.deletion_timestamp = "2024-01-01T00:00:02Z"
        return made

    written = []

    class StatusOnlyAPI:
        async def update_status(self, obj):
            written.append(obj.status)
            return obj

    controller = DaemonSetController(ControllerContext(api=StatusOnlyAPI(), informers=Informers(None)))
    pods = {"n1": [bound_pod("agent-9extra", deleting=True), bound_pod("agent-orphan", ready=True)]}

    await controller._write_status(ds, {"n1": (True, True)}, pods, "hash", 0)

    assert [(s.current_number_scheduled, s.number_ready, s.number_available) for s in written] == [(1, 1, 1)]
