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
