"""Logs, Exec and ImportImage on the API service: relayed to a node's agent.

As the Kubernetes API server proxies ``pods/log`` and ``pods/exec`` to the
kubelet, the API service looks up the pod, then its node, dials the agent at
the node's InternalIP and the port the agent registered
(``status.daemonEndpoints.kubeletEndpoint.Port``), and relays the stream
both ways (protos/agent/v1/agent.proto). It picks the container first
(control.api.containers), so a request that cannot succeed fails here,
without a round trip to the node.

Messages pass as raw bytes, in the servicer's manner: only the first request
is decoded (to find the pod and fill in the container); log chunks, stdin
and exec output go through undecoded. Cancelling the client's call cancels
the agent's. One channel per agent address stays open for later requests.

ImportImage names its node in the archive's description in the call's
metadata (control.api.image_archives); the chunks go on to that node's agent
undecoded, each held to the API's 3 MiB request limit, and the agent's
result comes back with the node filled in. Data flows only after the agent
has accepted the archive (its response headers, which the relay then sends
on), so a refusal reaches the client before it has written anything.

Errors: a missing pod or node is NotFound; a pod not bound to a node, or a
container that cannot be chosen, is BadRequest; an agent that cannot be
reached (or a node that says nowhere to reach it) is UNAVAILABLE with reason
ServiceUnavailable; what the agent answers is passed on as it is (code,
message and ``sampan-reason``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import AsyncIterator, Callable

import grpc

from control.api import errors, kinds
from control.api.containers import choose_container
from control.api.image_archives import ACCEPTED_METADATA, accepted, archive_from_metadata, archive_metadata
from control.server.gate import RequestGate, RequestInfo
from control.server.metrics import ControlMetrics
from control.server.resources import ResourceService
from control.server.servicer import MAX_REQUEST_BYTES, parse_request, serve_stream
from protos.agent.v1 import agent_pb2
from protos.api.v1 import core_pb2


LOGS_METHOD = "/sampan.agent.v1.Agent/Logs"
EXEC_METHOD = "/sampan.agent.v1.Agent/Exec"
IMPORT_IMAGE_METHOD = "/sampan.agent.v1.Agent/ImportImage"


@dataclass(frozen=True)
class AgentTarget:
    """Where a request goes: the node's agent and the chosen container."""

    node: str
    address: str
    container: str


def agent_address(node: core_pb2.Node) -> str:
    """HOST:PORT of the node's agent; UnavailableError when the node does not say."""
    name = node.metadata.name
    ips = [a.address for a in node.status.addresses if a.type == "InternalIP" and a.address]
    if not ips:
        raise errors.UnavailableError(f"node {name} has no InternalIP address to reach its agent at")
    port = node.status.daemon_endpoints.kubelet_endpoint.port
    if not port:
        raise errors.UnavailableError(
            f"node {name} has no agent port (status.daemonEndpoints.kubeletEndpoint.Port): is its agent running?")
    host = f"[{ips[0]}]" if ":" in ips[0] else ips[0]
    return f"{host}:{port}"


def _agent_error(err: grpc.aio.AioRpcError, target: AgentTarget) -> errors.APIError:
    reason = next((value for key, value in err.trailing_metadata() or () if key == errors.REASON_METADATA_KEY), None)
    if reason is None and err.code() == grpc.StatusCode.UNAVAILABLE:
        return errors.UnavailableError(
            f"cannot reach the agent of node {target.node} at {target.address}: {err.details()}")
    return errors.from_status(err.code(), err.details() or err.code().name, reason)


async def _forward(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for raw in rest:
        yield raw


class StreamRelay:
    """The API service's Logs and Exec handlers (raw bytes in, raw bytes out)."""

    def __init__(self, resources: ResourceService, metrics: ControlMetrics, gate: RequestGate | None = None, *,
                 agent_credentials: grpc.ChannelCredentials | None = None) -> None:
        """agent_credentials: mutual TLS to the agents (None: plain text)."""
        self._resources = resources
        self._metrics = metrics
        self._gate = gate or RequestGate()
        self._agent_credentials = agent_credentials
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def target(self, *, namespace: str, pod_name: str, container: str) -> AgentTarget:
        """The agent and container a request for a pod's container goes to."""
        pod = await self._resources.get(kinds.resolve("Pod"), namespace=namespace, name=pod_name)
        assert isinstance(pod, core_pb2.Pod)
        container = choose_container(pod, container)
        if not pod.spec.node_name:
            raise errors.BadRequestError(f"pod {pod_name} does not have a host assigned")
        node = await self._resources.get(kinds.resolve("Node"), namespace="", name=pod.spec.node_name)
        assert isinstance(node, core_pb2.Node)
        return AgentTarget(node=node.metadata.name, address=agent_address(node), container=container)

    async def node_target(self, node_name: str) -> AgentTarget:
        """The agent a request for a node (not a pod) goes to."""
        if not node_name:
            raise errors.BadRequestError("the node to import into must be named (archive.node)")
        node = await self._resources.get(kinds.resolve("Node"), namespace="", name=node_name)
        assert isinstance(node, core_pb2.Node)
        return AgentTarget(node=node.metadata.name, address=agent_address(node), container="")

    def channel(self, address: str) -> grpc.aio.Channel:
        """The open channel to the agent at address (control.server.top shares them)."""
        return self._channel(address)

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = (
                grpc.aio.insecure_channel(address) if self._agent_credentials is None
                else grpc.aio.secure_channel(address, self._agent_credentials))
        return channel

    async def logs(self, raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        async def relay(info: RequestInfo) -> AsyncIterator[bytes]:
            request = parse_request(agent_pb2.LogsRequest, raw)
            await self._authorize(info, "get", "Pod", "log", namespace=request.namespace, name=request.pod)
            target = await self.target(namespace=request.namespace, pod_name=request.pod,
                                       container=request.container)
            request.container = target.container
            call = self._channel(target.address).unary_stream(LOGS_METHOD)(request.SerializeToString())
            async for chunk in self._relayed(call, target):
                yield chunk

        async for chunk in self._serving("logs", relay, context):
            yield chunk

    async def exec(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        async def relay(info: RequestInfo) -> AsyncIterator[bytes]:
            incoming = aiter(requests)
            first_raw = await anext(incoming, None)
            first = parse_request(agent_pb2.ExecInput, first_raw or b"")
            if first.WhichOneof("input") != "start":
                raise errors.BadRequestError("the first exec message must be start (namespace, pod, command)")
            await self._authorize(info, "create", "Pod", "exec", namespace=first.start.namespace,
                                  name=first.start.pod)
            target = await self.target(namespace=first.start.namespace, pod_name=first.start.pod,
                                       container=first.start.container)
            first.start.container = target.container
            call = self._channel(target.address).stream_stream(EXEC_METHOD)(
                _forward(first.SerializeToString(), incoming))
            async for output in self._relayed(call, target):
                yield output

        async for output in self._serving("exec", relay, context):
            yield output

    async def import_image(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
        async def relay(info: RequestInfo) -> AsyncIterator[bytes]:
            archive = archive_from_metadata(context.invocation_metadata())
            await self._authorize(info, "create", "Node", "images", name=archive.node)
            target = await self.node_target(archive.node)
            # Chunks are read here, in the handler's task, and written to the
            # agent only once it has accepted the archive (its headers).
            call = self._channel(target.address).stream_unary(IMPORT_IMAGE_METHOD)(
                metadata=archive_metadata(archive))
            try:
                if accepted(await call.initial_metadata()):
                    await context.send_initial_metadata(ACCEPTED_METADATA)
                    try:
                        async for raw in requests:
                            if len(raw) > MAX_REQUEST_BYTES:
                                raise errors.RequestTooLargeError(
                                    f"image chunk is {len(raw)} bytes; the limit is {MAX_REQUEST_BYTES} bytes (3 MiB)")
                            await call.write(raw)
                        await call.done_writing()
                    except asyncio.InvalidStateError:
                        pass  # the agent has answered already; its status says how
                result = agent_pb2.ImportImageResult.FromString(await call)
            except grpc.aio.AioRpcError as err:
                raise _agent_error(err, target) from None
            finally:
                call.cancel()
            result.node = target.node
            yield result.SerializeToString()

        # One answer, or _serving aborts; draining it lets it count the request.
        answers = [answer async for answer in self._serving("import", relay, context, kind="Node")]
        return answers[0]

    @staticmethod
    async def _relayed(call, target: AgentTarget) -> AsyncIterator[bytes]:
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as err:
            raise _agent_error(err, target) from None
        finally:
            call.cancel()

    async def _authorize(self, info: RequestInfo, verb: str, kind: str, subresource: str, *,
                         namespace: str = "", name: str = "") -> None:
        """Authorize as Kubernetes names these requests: get pods/log, create pods/exec
        (and, Sampan's own, create nodes/images)."""
        info.verb, info.kind, info.subresource = verb, kinds.resolve(kind), subresource
        info.namespace, info.name = namespace, name
        await self._gate.authorize(info)

    def _serving(self, verb: str, relay: Callable[[RequestInfo], AsyncIterator[bytes]],
                 context: grpc.aio.ServicerContext, *, kind: str = "Pod") -> AsyncIterator[bytes]:
        """Relay to the client, answering errors as the API does and counting the request."""
        async def opened(info: RequestInfo) -> tuple[str, AsyncIterator[bytes]]:
            return kind, relay(info)

        return serve_stream(verb, opened, context, self._metrics, self._gate)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
