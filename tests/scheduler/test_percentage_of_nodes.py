"""percentageOfNodesToScore: how many feasible nodes a decision looks for
(kube-scheduler's adaptive rule by default), that it stops filtering once it
has them, and that each decision starts where the previous one stopped."""

from __future__ import annotations

import pytest

from control.scheduler.framework import feasible_nodes_to_find, find_node
from control.scheduler.plugins import default_profile
from tests.scheduler.builders import make_node, make_pod, node_info


@pytest.mark.parametrize(("nodes", "percentage", "wanted"), [
    (50, 0, 50),        # under 100 nodes: all of them
    (100, 0, 100),      # 50% of 100 is 50, but never fewer than 100
    (500, 0, 230),      # adaptive: 50 - 500/125 = 46%
    (1000, 0, 420),     # 50 - 8 = 42%
    (5000, 0, 500),     # 50 - 40 = 10%
    (6000, 0, 300),     # 50 - 48 = 2%, raised to the 5% floor
    (500, 30, 150),     # configured: Kubernetes' own example
    (1000, 5, 100),     # 50 nodes would be too few: 100
    (1000, 100, 1000),  # 100%: every node
])
def test_feasible_nodes_to_find_follows_kubernetes(nodes, percentage, wanted):
    assert feasible_nodes_to_find(nodes, percentage) == wanted


def nodes_named(count: int, **resources: str):
    return [node_info(make_node(f"n{index:03d}", **resources)) for index in range(count)]


def test_a_decision_stops_filtering_once_it_has_enough_feasible_nodes():
    nodes = nodes_named(200)
    decision = find_node(make_pod(), nodes, default_profile(), feasible_wanted=100)
    assert (decision.evaluated, decision.feasible) == (100, 100)
    assert decision.node_name == "n000"  # all equal: the first by name among those looked at


def test_nodes_that_do_not_fit_do_not_count_towards_enough():
    nodes = nodes_named(150, cpu="1")[:100] + nodes_named(200, cpu="8")[100:]
    decision = find_node(make_pod(cpu="2"), nodes, default_profile(), feasible_wanted=30)
    assert decision.node_name == "n100"
    assert (decision.evaluated, decision.feasible) == (130, 30)


def test_the_search_starts_at_the_given_index_and_wraps_around():
    nodes = nodes_named(200)
    decision = find_node(make_pod(), nodes, default_profile(), feasible_wanted=100, start=150)
    assert decision.evaluated == 100
    assert decision.node_name == "n000"  # n150..n199 then n000..n049: n000 comes first by name


def test_without_a_fitting_node_every_node_is_looked_at_and_explained():
    nodes = nodes_named(120, cpu="1")
    decision = find_node(make_pod(cpu="2"), nodes, default_profile(), feasible_wanted=100, start=60)
    assert decision.node_name is None and decision.evaluated == 120
    assert decision.failure.message == "0/120 nodes are available: 120 Insufficient cpu."
