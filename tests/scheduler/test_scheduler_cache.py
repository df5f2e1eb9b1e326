"""The scheduler's bookkeeping without a cluster: which pods it takes, how
its cache keeps its own bindings ("assume"), and when unschedulable pods go
back to the active queue."""

from __future__ import annotations

from control.scheduler.scheduler import Scheduler, SchedulerCache, wants_scheduling
from tests.scheduler.builders import make_node, make_pod


def test_only_unbound_live_pods_of_the_default_scheduler_are_taken():
    assert wants_scheduling(make_pod())
    assert wants_scheduling(make_pod(schedulerName="default-scheduler"))
    assert not wants_scheduling(make_pod(schedulerName="gpu-scheduler"))
    assert not wants_scheduling(make_pod(node_name="n1"))
    assert not wants_scheduling(make_pod(schedulingGates=[{"name": "wait"}]))
    deleting = make_pod()
    deleting.metadata.deletion_timestamp = "2024-05-01T12:00:00Z"
    assert not wants_scheduling(deleting)


def test_an_assumed_binding_survives_a_lagging_unbound_view_of_the_pod():
    cache = SchedulerCache()
    unbound = make_pod()
    unbound.metadata.uid = "u1"
    bound = make_pod(node_name="n1")
    bound.metadata.uid = "u1"
    cache.set_pod(bound)
    cache.set_pod(unbound)
    assert cache.pods[("default", "web")].spec.node_name == "n1"


def test_node_infos_count_bound_pods_on_ready_nodes_only():
    cache = SchedulerCache()
    cache.set_node(make_node("n1"))
    not_ready = make_node("n2")
    not_ready.status.conditions[0].status = "False"
    cache.set_node(not_ready)
    cache.set_pod(make_pod("a", cpu="1", node_name="n1"))
    done = make_pod("b", cpu="1", node_name="n1")
    done.status.phase = "Succeeded"
    cache.set_pod(done)
    infos = cache.node_infos()
    assert [info.name for info in infos] == ["n1"]
    assert infos[0].requested == {"cpu": 1000}


async def test_a_node_change_moves_unschedulable_pods_back_to_the_queue():
    scheduler = Scheduler(api=None)  # type: ignore[arg-type]  # handlers never call the API
    scheduler.pod_changed("ADDED", make_pod())
    await scheduler.queue.get()
    scheduler.queue.done(("default", "web"))
    scheduler.unschedulable.add(("default", "web"))
    assert len(scheduler.queue) == 0
    scheduler.node_changed("MODIFIED", make_node("n1"))
    assert len(scheduler.queue) == 1 and not scheduler.unschedulable


async def test_a_pod_deletion_moves_unschedulable_pods_back_to_the_queue():
    scheduler = Scheduler(api=None)  # type: ignore[arg-type]
    scheduler.unschedulable.add(("default", "waiting"))
    scheduler.pod_changed("DELETED", make_pod("gone", node_name="n1"))
    assert len(scheduler.queue) == 1


def test_a_node_info_follows_pods_arriving_moving_and_leaving():
    cache = SchedulerCache()
    cache.set_node(make_node("n1"))
    assert cache.node_infos()[0].requested == {}
    pod = make_pod("a", cpu="1", node_name="n1")
    cache.set_pod(pod)
    assert cache.node_infos()[0].requested == {"cpu": 1000}
    finished = make_pod("a", cpu="1", node_name="n1")
    finished.status.phase = "Failed"
    cache.set_pod(finished)
    assert cache.node_infos()[0].requested == {}
    cache.set_pod(pod)
    cache.remove_pod(("default", "a"))
    assert cache.node_infos()[0].pods == ()


def _pod(name: str = "web", *, uid: str = "u1", version: str = "1", **kwargs):
    pod = make_pod(name, **kwargs)
    pod.metadata.uid = uid
    pod.metadata.resource_version = version
    return pod


def _cache_with_node() -> SchedulerCache:
    cache = SchedulerCache()
    cache.set_node(make_node("n1"))
    return cache


def test_an_assumed_pod_counts_on_its_node_before_the_api_confirms_it():
    cache = _cache_with_node()
    cache.set_pod(_pod(cpu="1"))
    cache.assume(_pod(cpu="1", node_name="n1"))
    assert cache.node_infos()[0].requested == {"cpu": 1000}
    assert cache.is_assumed(("default", "web"))


def test_a_failed_binding_is_forgotten_and_the_newest_unbound_view_comes_back():
    cache = _cache_with_node()
    cache.set_pod(_pod(cpu="1", version="1"))
    cache.assume(_pod(cpu="1", node_name="n1", version="1"))
    cache.set_pod(_pod(cpu="1", version="2", labels={"changed": "yes"}))  # arrives while the binding is in flight
    cache.forget(("default", "web"))
    assert cache.node_infos()[0].requested == {}
    restored = cache.pods[("default", "web")]
    assert (restored.spec.node_name, restored.metadata.resource_version) == ("", "2")
    assert not cache.is_assumed(("default", "web"))


def test_a_confirmed_binding_never_replaces_a_newer_copy_from_the_watch():
    cache = _cache_with_node()
    cache.set_pod(_pod(version="1"))
    cache.assume(_pod(node_name="n1", version="1"))
    cache.set_pod(_pod(node_name="n1", version="3"))  # the watch was quicker than the binding's answer
    cache.confirm(("default", "web"), _pod(node_name="n1", version="2"))
    assert cache.pods[("default", "web")].metadata.resource_version == "3"
    assert len(cache.node_infos()[0]) == 1


def test_forgetting_a_pod_deleted_meanwhile_does_not_bring_it_back():
    cache = _cache_with_node()
    cache.set_pod(_pod())
    cache.assume(_pod(node_name="n1"))
    cache.remove_pod(("default", "web"))
    cache.forget(("default", "web"))
    assert ("default", "web") not in cache.pods
    assert len(cache.node_infos()[0]) == 0


def test_the_cache_knows_which_ready_nodes_hold_pods_with_required_anti_affinity():
    cache = _cache_with_node()
    cache.set_node(make_node("n2"))
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    cache.set_pod(_pod("db", node_name="n2", affinity=anti))
    cache.set_pod(_pod("web", uid="u2", node_name="n1"))
    assert [info.name for info in cache.nodes_with_required_anti_affinity()] == ["n2"]
    cache.remove_pod(("default", "db"))
    assert cache.nodes_with_required_anti_affinity() == []


def test_a_pod_bound_to_a_node_not_seen_yet_counts_once_the_node_arrives():
    cache = SchedulerCache()
    cache.set_pod(_pod(cpu="1", node_name="late"))
    cache.set_node(make_node("late"))
    assert cache.node_infos()[0].requested == {"cpu": 1000}


async def test_a_heartbeat_does_not_move_unschedulable_pods_but_a_new_taint_does():
    scheduler = Scheduler(api=None)  # type: ignore[arg-type]  # handlers never call the API
    node = make_node("n1")
    scheduler.node_changed("ADDED", node)
    scheduler.unschedulable.add(("default", "waiting"))
    heartbeat = make_node("n1")
    heartbeat.status.conditions[0].last_heartbeat_time = "2026-01-01T00:00:10Z"
    scheduler.node_changed("MODIFIED", heartbeat)
    assert len(scheduler.queue) == 0
    scheduler.node_changed("MODIFIED", make_node("n1", taints=[{"key": "a", "value": "b", "effect": "NoSchedule"}]))
    assert len(scheduler.queue) == 1


async def test_a_status_only_change_leaves_an_unschedulable_pod_waiting():
    scheduler = Scheduler(api=None)  # type: ignore[arg-type]
    scheduler.pod_changed("ADDED", make_pod())
    await scheduler.queue.get()
    scheduler.queue.done(("default", "web"))
    scheduler.unschedulable.add(("default", "web"))
    marked = make_pod()
    marked.status.conditions.add(type="PodScheduled", status="False", reason="Unschedulable")
    scheduler.pod_changed("MODIFIED", marked)  # the scheduler's own condition write coming back
    assert len(scheduler.queue) == 0
    scheduler.pod_changed("MODIFIED", make_pod(tolerations=[{"operator": "Exists"}]))
    assert len(scheduler.queue) == 1
