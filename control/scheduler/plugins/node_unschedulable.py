"""NodeUnschedulable: a cordoned node (spec.unschedulable) takes no new pods,
except those tolerating the node.kubernetes.io/unschedulable:NoSchedule taint
(DaemonSet pods, in Kubernetes)."""

from __future__ import annotations

from typing import Sequence

from control.scheduler.framework import SUCCESS, CycleState, NodeInfo, Status
from control.scheduler.plugins.taint_toleration import tolerates
from protos.api.v1 import core_pb2

NAME = "NodeUnschedulable"
REASON = "node(s) were unschedulable"
UNSCHEDULABLE_TAINT = core_pb2.Taint(key="node.kubernetes.io/unschedulable", effect="NoSchedule")


def fits(pod: core_pb2.Pod, node: core_pb2.Node) -> bool:
    if not node.spec.unschedulable:
        return True
    return any(tolerates(toleration, UNSCHEDULABLE_TAINT) for toleration in pod.spec.tolerations)


REJECTED = Status.unschedulable(REASON)


class NodeUnschedulable:
    name = NAME

    def filter(self, pod: core_pb2.Pod, node_info: NodeInfo, state: CycleState) -> Status:
        return SUCCESS if fits(pod, node_info.node) else REJECTED

    def filter_all(self, pod: core_pb2.Pod, nodes: Sequence[NodeInfo], state: CycleState) -> list[tuple[int, Status]]:
        return [(index, REJECTED) for index, info in enumerate(nodes)
                if info.unschedulable and not fits(pod, info.node)]


def new() -> NodeUnschedulable:
    return NodeUnschedulable()
