"""NodeUnschedulable: a cordoned node takes no new pods unless they tolerate
the unschedulable taint."""

from __future__ import annotations

from control.scheduler.framework import CycleState, schedule_one
from control.scheduler.plugins import default_profile
from control.scheduler.plugins.node_unschedulable import fits, new
from tests.scheduler.builders import make_node, make_pod, node_info


def test_a_cordoned_node_is_refused_with_kubernetes_reason():
    status = new().filter(make_pod(), node_info(make_node("a", unschedulable=True)), CycleState())
    assert status.reasons == ("node(s) were unschedulable",)


def test_a_pod_tolerating_the_unschedulable_taint_may_go_there():
    pod = make_pod(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                 "effect": "NoSchedule"}])
    assert fits(pod, make_node("a", unschedulable=True))


def test_cordoning_moves_new_pods_elsewhere():
    nodes = [node_info(make_node("a", unschedulable=True)), node_info(make_node("b"))]
    assert schedule_one(make_pod(), nodes, default_profile())[0] == "b"
