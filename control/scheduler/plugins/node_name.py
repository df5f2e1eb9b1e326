"""NodeName: a pod that names its node runs only there (spec.nodeName).
Any other pod skips the filter (PreFilter)."""

from __future__ import annotations

from control.scheduler.framework import SUCCESS, CycleState, NodeInfo, Status
from protos.api.v1 import core_pb2

NAME = "NodeName"
REASON = "node(s) didn't match the requested node name"


def fits(pod: core_pb2.Pod, node: core_pb2.Node) -> bool:
    return not pod.spec.node_name or pod.spec.node_name == node.metadata.name


class NodeName:
    name = NAME

    def pre_filter(self, pod: core_pb2.Pod, state: CycleState) -> bool:
        return bool(pod.spec.node_name)

    def filter(self, pod: core_pb2.Pod, node_info: NodeInfo, state: CycleState) -> Status:
        return SUCCESS if fits(pod, node_info.node) else Status.unschedulable(REASON)


def new() -> NodeName:
    return NodeName()
