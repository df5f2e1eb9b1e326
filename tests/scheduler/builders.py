"""Pods and nodes for scheduler tests, written as the manifests users write."""

from __future__ import annotations

from typing import Any

from control.api.manifest import to_message
from control.scheduler.framework import NodeInfo
from protos.api.v1 import core_pb2


def make_pod(name: str = "web", *, namespace: str = "default", cpu: str = "", memory: str = "",
             labels: dict[str, str] | None = None, node_name: str = "", **spec: Any) -> core_pb2.Pod:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    container: dict[str, Any] = {"name": "main", "image": "nginx"}
    if requests:
        container["resources"] = {"requests": requests}
    body: dict[str, Any] = {"containers": [container], **spec}
    if node_name:
        body["nodeName"] = node_name
    return to_message({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
                       "spec": body})


def make_node(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: str = "110",
              labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None,
              unschedulable: bool = False) -> core_pb2.Node:
    spec: dict[str, Any] = {"taints": taints or []}
    if unschedulable:
        spec["unschedulable"] = True
    return to_message({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": spec,
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                   "capacity": {"cpu": cpu, "memory": memory, "pods": pods},
                   "conditions": [{"type": "Ready", "status": "True"}]},
    })


def node_info(node: core_pb2.Node, *pods: core_pb2.Pod) -> NodeInfo:
    return NodeInfo(node, pods)
