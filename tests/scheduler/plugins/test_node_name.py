"""NodeName: a pod naming a node fits only that node."""

from __future__ import annotations

from control.scheduler.framework import CycleState
from control.scheduler.plugins.node_name import fits, new
from tests.scheduler.builders import make_node, make_pod, node_info


def test_a_pod_without_node_name_fits_any_node():
    assert fits(make_pod(), make_node("a"))


def test_a_pod_naming_another_node_is_refused():
    status = new().filter(make_pod(node_name="b"), node_info(make_node("a")), CycleState())
    assert status.reasons == ("node(s) didn't match the requested node name",)
