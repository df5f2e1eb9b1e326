"""Top on the API service: resource usage gathered from the Ready nodes' agents.

As metrics-server scrapes every kubelet's resource metrics, ``Top`` asks the
agent of each Ready node for its Stats (protos/agent/v1/agent.proto), all at
once, each with a short deadline, over the relay's agent channels
(control.server.relay). A node whose agent does not answer is left out and
named in the response's warnings, so one dead node does not hide the rest.
Nodes are reported against their allocatable CPU and memory; pods are their
containers summed, filtered by namespace unless all namespaces are asked for.
"""

from __future__ import annotations

import asyncio

import grpc

from control.api import errors, kinds
from control.api.quantity import bytes_value, cpu_millis
from control.server.gate import RequestGate, RequestInfo
from control.server.relay import StreamRelay, agent_address
from control.server.resources import ResourceService
from protos.agent.v1 import agent_pb2
from protos.api.v1 import api_pb2, core_pb2

STATS_METHOD = "/sampan.agent.v1.Agent/Stats"
# The first Stats of an agent waits a second for its CPU window.
STATS_TIMEOUT = 5.0


def is_ready(node: core_pb2.Node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


class Top:
    """The API service's Top handler."""

    def __init__(self, resources: ResourceService, relay: StreamRelay, gate: RequestGate | None = None) -> None:
        self._resources = resources
        self._relay = relay
        self._gate = gate or RequestGate()

    async def top(self, request: api_pb2.TopRequest, info: RequestInfo) -> tuple[str, api_pb2.TopResponse]:
        if request.kind not in ("nodes", "pods"):
            raise errors.BadRequestError(f'top: unknown kind "{request.kind}": choose nodes or pods')
        # Who may list the pods (or nodes) may see their usage (metrics.k8s.io asks the same).
        info.verb, info.kind = "list", kinds.resolve("Node" if request.kind == "nodes" else "Pod")
        info.namespace = "" if request.kind == "nodes" or request.all_namespaces else request.namespace
        await self._gate.authorize(info)
        listed, _ = await self._resources.list(kinds.resolve("Node"), namespace="")
        nodes = sorted((n for n in listed if isinstance(n, core_pb2.Node) and is_ready(n)),
                       key=lambda n: n.metadata.name)
        answers = await asyncio.gather(*(self._stats(node) for node in nodes))
        response = api_pb2.TopResponse()
        for node, answer in zip(nodes, answers):
            if isinstance(answer, str):
                response.warnings.append(answer)
            elif request.kind == "nodes":
                response.nodes.add(
                    name=node.metadata.name, cpu_millicores=answer.node.cpu_millicores,
                    memory_bytes=answer.node.memory_used_bytes,
                    allocatable_cpu_millicores=_quantity(cpu_millis, node.status.allocatable.get("cpu")),
                    allocatable_memory_bytes=_quantity(bytes_value, node.status.allocatable.get("memory")))
            else:
                _add_pods(response, answer, namespace=None if request.all_namespaces else request.namespace)
        response.pods.sort(key=lambda pod: (pod.namespace, pod.name))
        return ("Node" if request.kind == "nodes" else "Pod"), response

    async def _stats(self, node: core_pb2.Node) -> agent_pb2.StatsResponse | str:
        """The node agent's Stats, or the warning saying why there are none."""
        name = node.metadata.name
        try:
            address = agent_address(node)
        except errors.APIError as err:
            return f"node {name}: {err.message}"
        call = self._relay.channel(address).unary_unary(
            STATS_METHOD, request_serializer=agent_pb2.StatsRequest.SerializeToString,
            response_deserializer=agent_pb2.StatsResponse.FromString)
        try:
            return await call(agent_pb2.StatsRequest(), timeout=STATS_TIMEOUT)
        except grpc.aio.AioRpcError as err:
            return f"node {name}: cannot get usage from its agent at {address}: {err.details() or err.code().name}"


def _add_pods(response: api_pb2.TopResponse, stats: agent_pb2.StatsResponse, *, namespace: str | None) -> None:
    pods: dict[tuple[str, str], api_pb2.PodTop] = {}
    for container in stats.containers:
        if namespace is not None and container.namespace != namespace:
            continue
        key = (container.namespace, container.pod)
        pod = pods.get(key)
        if pod is None:
            pod = pods[key] = response.pods.add(namespace=container.namespace, name=container.pod)
        pod.cpu_millicores += container.cpu_millicores
        pod.memory_bytes += container.memory_working_set_bytes


def _quantity(parse, text: str | None) -> int:
    try:
        return parse(text) if text else 0
    except ValueError:
        return 0
