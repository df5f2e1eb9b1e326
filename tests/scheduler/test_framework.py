"""The framework: a decision filters every node, scores the feasible ones,
and explains a failure the way kube-scheduler's FailedScheduling event does."""

from __future__ import annotations

from control.scheduler.framework import FitError, NodeInfo, pod_requests, schedule_one
from control.scheduler.plugins import REGISTRY, build_profile, default_profile
from tests.scheduler.builders import make_node, make_pod, node_info


def test_failure_summary_counts_reasons_and_sorts_them_as_kubernetes_does():
    nodes = [
        node_info(make_node("a", cpu="1"), make_pod("busy-a", cpu="800m", node_name="a")),
        node_info(make_node("b", cpu="1")),
        node_info(make_node("c", cpu="8", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])),
    ]
    chosen, failure = schedule_one(make_pod(cpu="2"), nodes, default_profile())
    assert chosen is None
    # kube-scheduler sorts the "<count> <reason>" strings, so "1 ..." precedes "2 ...".
    assert failure.message == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, 2 Insufficient cpu.")


def test_failure_summary_counts_every_reason_of_a_node():
    failure = FitError(num_all_nodes=2, node_reasons={
        "a": ("Insufficient cpu", "Insufficient memory"), "b": ("Insufficient cpu",)})
    assert failure.message == "0/2 nodes are available: 1 Insufficient memory, 2 Insufficient cpu."


def test_no_nodes_at_all_is_a_failure():
    chosen, failure = schedule_one(make_pod(), [], default_profile())
    assert chosen is None and failure.message == "0/0 nodes are available."


def test_the_only_feasible_node_is_chosen():
    nodes = [node_info(make_node("small", cpu="1")), node_info(make_node("big", cpu="8"))]
    assert schedule_one(make_pod(cpu="2"), nodes, default_profile()) == ("big", None)


def test_ties_go_to_the_first_node_by_name():
    nodes = [node_info(make_node("b")), node_info(make_node("a"))]
    assert schedule_one(make_pod(), nodes, default_profile())[0] == "a"


def test_requests_take_the_largest_init_container_when_it_exceeds_the_containers():
    pod = make_pod(cpu="500m", memory="1Gi", initContainers=[
        {"name": "setup", "image": "busybox", "resources": {"requests": {"cpu": "2", "memory": "64Mi"}}}])
    assert pod_requests(pod) == {"cpu": 2000, "memory": 1024 ** 3}


def test_requests_add_the_pod_overhead():
    pod = make_pod(cpu="500m", overhead={"cpu": "250m"})
    assert pod_requests(pod) == {"cpu": 750}


def test_node_info_sums_the_requests_of_its_pods():
    info = NodeInfo(make_node("a"), [make_pod("x", cpu="1"), make_pod("y", cpu="250m", memory="1Gi")])
    assert info.requested == {"cpu": 1250, "memory": 1024 ** 3}
    assert info.with_pod(make_pod("z", cpu="1")).requested["cpu"] == 2250
    assert info.requested["cpu"] == 1250


def test_every_registered_plugin_builds_and_names_itself():
    profile = build_profile(name="all", filters=[], scorers={name: 1 for name in REGISTRY})
    assert [s.plugin.name for s in profile.scorers] == list(REGISTRY)


def _varied_nodes():
    return [
        node_info(make_node("idle")),
        node_info(make_node("busy", cpu="2"), make_pod("b1", cpu="1500m", memory="1Gi", node_name="busy")),
        node_info(make_node("full", pods="1"), make_pod("f1", node_name="full")),
        node_info(make_node("cordoned", unschedulable=True)),
        node_info(make_node("tainted", taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}])),
        node_info(make_node("soft", taints=[{"key": "spot", "value": "yes", "effect": "PreferNoSchedule"}])),
        node_info(make_node("no-memory", memory="0")),
    ]


def test_batch_filters_and_scorers_agree_with_their_one_node_forms():
    from control.scheduler.framework import CycleState
    from control.scheduler.plugins import node_resources_fit

    nodes = _varied_nodes()
    pod = make_pod(cpu="600m", memory="512Mi")
    plugins = [*default_profile().filters, *(s.plugin for s in default_profile().scorers),
               node_resources_fit.new(strategy="MostAllocated"),
               node_resources_fit.new(strategy="RequestedToCapacityRatio", resources=[("cpu", 2), ("memory", 1)])]
    for plugin in plugins:
        if hasattr(plugin, "filter_all"):
            one_by_one = [(i, plugin.filter(pod, info, CycleState()).reasons) for i, info in enumerate(nodes)]
            batch = dict((i, s.reasons) for i, s in plugin.filter_all(pod, nodes, CycleState()))
            assert [(i, batch.get(i, ())) for i in range(len(nodes))] == one_by_one, plugin.name
        if hasattr(plugin, "score_all"):
            assert plugin.score_all(pod, nodes, CycleState()) == [
                plugin.score(pod, info, CycleState()) for info in nodes], plugin.name
