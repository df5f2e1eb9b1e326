"""NodeResourcesFit: requests against allocatable, pod count, and the three
scoring strategies (spread, pack, balance)."""

from __future__ import annotations

import pytest

from control.scheduler.framework import schedule_one
from control.scheduler.plugins import default_profile
from control.scheduler.plugins.node_resources_fit import insufficient, new, resource_score
from tests.scheduler.builders import make_node, make_pod, node_info


def test_a_pod_fits_when_requests_stay_within_allocatable():
    info = node_info(make_node("a", cpu="2"), make_pod("x", cpu="1500m", node_name="a"))
    assert insufficient(make_pod(cpu="500m"), info) == []
    assert insufficient(make_pod(cpu="501m"), info) == ["Insufficient cpu"]


def test_each_short_resource_is_a_reason_cpu_first():
    info = node_info(make_node("a", cpu="1", memory="1Gi"))
    assert insufficient(make_pod(cpu="2", memory="2Gi"), info) == ["Insufficient cpu", "Insufficient memory"]


def test_an_init_container_bigger_than_the_node_does_not_fit():
    pod = make_pod(cpu="100m", initContainers=[
        {"name": "setup", "image": "busybox", "resources": {"requests": {"cpu": "3"}}}])
    assert insufficient(pod, node_info(make_node("a", cpu="2"))) == ["Insufficient cpu"]


def test_a_full_node_has_too_many_pods():
    info = node_info(make_node("a", pods="1"), make_pod("x", node_name="a"))
    assert insufficient(make_pod(), info) == ["Too many pods"]


def test_an_unknown_extended_resource_is_insufficient():
    pod = make_pod()
    pod.spec.containers[0].resources.requests["example.com/gpu"] = "1"
    assert insufficient(pod, node_info(make_node("a"))) == ["Insufficient example.com/gpu"]


def test_least_allocated_prefers_the_emptier_node():
    busy = node_info(make_node("busy"), make_pod("x", cpu="3", memory="6Gi", node_name="busy"))
    idle = node_info(make_node("idle"))
    pod = make_pod(cpu="500m", memory="1Gi")
    assert resource_score(pod, idle, "LeastAllocated") > resource_score(pod, busy, "LeastAllocated")


def test_most_allocated_prefers_the_fuller_node():
    busy = node_info(make_node("busy"), make_pod("x", cpu="3", memory="6Gi", node_name="busy"))
    idle = node_info(make_node("idle"))
    pod = make_pod(cpu="500m", memory="1Gi")
    assert resource_score(pod, busy, "MostAllocated") > resource_score(pod, idle, "MostAllocated")


def test_balanced_allocation_prefers_even_cpu_and_memory_use():
    cpu_heavy = node_info(make_node("cpu-heavy"), make_pod("x", cpu="3", memory="1Gi", node_name="cpu-heavy"))
    even = node_info(make_node("even"), make_pod("y", cpu="2", memory="4Gi", node_name="even"))
    pod = make_pod(cpu="500m", memory="1Gi")
    assert resource_score(pod, even, "BalancedAllocation") > resource_score(pod, cpu_heavy, "BalancedAllocation")


def _place(count: int, strategy: str) -> dict[str, int]:
    """Schedule count pods one after another over two nodes, as the loop does."""
    infos = {name: node_info(make_node(name)) for name in ("n1", "n2")}
    profile = default_profile(scoring_strategy=strategy)
    for index in range(count):
        pod = make_pod(f"p{index}", cpu="500m", memory="512Mi")
        chosen, failure = schedule_one(pod, list(infos.values()), profile)
        assert failure is None
        pod.spec.node_name = chosen
        infos[chosen] = infos[chosen].with_pod(pod)
    return {name: len(info.pods) for name, info in infos.items()}


def test_least_allocated_spreads_pods_over_the_nodes():
    assert _place(4, "LeastAllocated") == {"n1": 2, "n2": 2}


def test_most_allocated_packs_pods_onto_one_node():
    assert _place(4, "MostAllocated") == {"n1": 4, "n2": 0}


def test_an_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown scoring strategy"):
        new(strategy="Random")


@pytest.mark.parametrize(("strategy", "expected"), [
    ("LeastAllocated", (50 + 75) // 2),      # cpu 2 of 4 used, memory 2Gi of 8Gi
    ("MostAllocated", (50 + 25) // 2),
    ("BalancedAllocation", 87),             # 100 * (1 - |0.5 - 0.25| / 2)
    ("RequestedToCapacityRatio", (50 + 25) // 2),  # the default shape: 0 at 0%, 10 (x10) at 100%
])
def test_each_strategy_scores_as_kubernetes_computes_it(strategy, expected):
    info = node_info(make_node("a", cpu="4", memory="8Gi"), make_pod("x", cpu="1", memory="1Gi", node_name="a"))
    assert resource_score(make_pod(cpu="1", memory="1Gi"), info, strategy) == expected


def test_resource_weights_and_a_resource_the_node_lacks():
    info = node_info(make_node("a", cpu="4", memory="8Gi"), make_pod("x", cpu="1", memory="1Gi", node_name="a"))
    pod = make_pod(cpu="1", memory="1Gi")
    assert resource_score(pod, info, "LeastAllocated", resources=[("cpu", 3), ("memory", 1)]) == (50 * 3 + 75) // 4
    # A resource with no allocatable on the node is left out of the mean.
    assert resource_score(pod, info, "LeastAllocated", resources=[("cpu", 1), ("example.com/gpu", 1)]) == 50
