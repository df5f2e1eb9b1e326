"""The agent's gRPC server: container logs and exec for the pods on this node.

The control service relays ``sampan logs`` and ``sampan exec`` here
(control/server/relay.py), as the Kubernetes API server proxies them to the
kubelet; it finds this server at the node's InternalIP and the port the agent
registers as ``status.daemonEndpoints.kubeletEndpoint.Port``. Each request
names a pod: the servicer checks that the pod is bound to this node
(agent.pod_containers.PodLookup), picks the container (control.api.containers),
finds its attempt in the runtime, and hands over to the log reader
(agent.logs) or to exec (agent.exec). ImportImage names no pod: it spools an
image archive and hands it to the node's image store (agent.image_import);
Stats neither: it reports the node's and its containers' usage (agent.usage).
Failures are API errors sent as the API sends them: the gRPC code, one line,
and the reason in ``sampan-reason``.

With TLS (the default; ``AgentServer(..., tls=TLSFiles)``) it serves
mutual TLS with the node's serving certificate (its SANs are the addresses
the control service dials), grpc refuses in the handshake a caller without a
certificate the cluster CA signed, and ``ControlPlaneOnly`` answers
PERMISSION_DENIED to every caller whose certificate is not in group
``system:masters`` (the control service's control-client certificate): a
node, a user or a pod cannot reach another pod's logs or exec through here,
only through the API, which authorizes them. With ``--insecure-plaintext``
(tls=None) there is no authentication: whoever reaches the port can read
every pod's logs and run commands in its containers.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import AsyncIterator

import grpc

from agent.exec import check_exec_start, exec_output, exec_stream_output, wants_stream
from agent.image_import import ImageStore, NoImageStore, check_archive_header, receive_archive
from agent.logs import LogOptions, read_log
from agent.pod_containers import PodLookup, container_attempts, current_attempt, previous_attempt
from agent.runtime.base import RUNNING, ContainerRuntime, ContainerStatus, RuntimeError_, StreamingExec
from agent.usage import UsageTracker
from control.api import errors
from control.auth.identity import SYSTEM_MASTERS
from control.auth.pki import load_cert, subject_names
from control.auth.tls import TLSFiles, server_credentials
from control.api.containers import choose_container
from control.api.image_archives import ACCEPTED_METADATA, archive_from_metadata
from protos.agent.v1 import agent_pb2, agent_pb2_grpc
from protos.api.v1 import core_pb2

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "0.0.0.0:10251"


async def _abort(context: grpc.aio.ServicerContext, err: errors.APIError) -> None:
    context.set_trailing_metadata(((errors.REASON_METADATA_KEY, err.reason),))
    await context.abort(err.code, err.message)


class AgentServicer(agent_pb2_grpc.AgentServicer):
    """sampan.agent.v1.Agent over a container runtime."""

    def __init__(self, runtime: ContainerRuntime, pods: PodLookup, *,
                 images: ImageStore | None = None, spool_dir: Path | None = None,
                 usage: UsageTracker | None = None) -> None:
        """images: where ImportImage puts archives (default: none, as on the
        process runtime); spool_dir: where they wait meanwhile (default: the
        system's temporary directory); usage: what Stats answers from
        (default: a tracker of runtime)."""
        self._runtime = runtime
        self._pods = pods
        self._images = images if images is not None else NoImageStore("this node")
        self._spool_dir = spool_dir or Path(tempfile.gettempdir()) / "sampan-image-imports"
        self._usage = usage or UsageTracker(runtime)

    async def Logs(self, request: agent_pb2.LogsRequest,
                   context: grpc.aio.ServicerContext) -> AsyncIterator[agent_pb2.LogChunk]:
        try:
            async for chunk in self._log_chunks(request):
                yield agent_pb2.LogChunk(data=chunk)
        except errors.APIError as err:
            await _abort(context, err)
        except Exception:
            log.exception("logs of %s/%s failed", request.namespace, request.pod)
            await _abort(context, errors.InternalError("internal error while reading logs; see the agent's log"))

    async def Exec(self, request_iterator: AsyncIterator[agent_pb2.ExecInput],
                   context: grpc.aio.ServicerContext) -> AsyncIterator[agent_pb2.ExecOutput]:
        try:
            first = await anext(aiter(request_iterator), None)
            if first is None or first.WhichOneof("input") != "start":
                raise errors.BadRequestError("the first exec message must be start (namespace, pod, command)")
            async for output in self._exec(first.start, request_iterator):
                yield output
        except errors.APIError as err:
            await _abort(context, err)
        except Exception:
            log.exception("exec failed")
            await _abort(context, errors.InternalError("internal error while running exec; see the agent's log"))

    async def Stats(self, request: agent_pb2.StatsRequest,
                    context: grpc.aio.ServicerContext) -> agent_pb2.StatsResponse:
        try:
            return await self._usage.stats()
        except Exception:
            log.exception("reading usage failed")
            await _abort(context, errors.InternalError("internal error while reading usage; see the agent's log"))
        raise AssertionError("unreachable")  # abort() raises

    async def ImportImage(self, request_iterator: AsyncIterator[agent_pb2.ImageChunk],
                          context: grpc.aio.ServicerContext) -> agent_pb2.ImportImageResult:
        try:
            return await self._import_image(aiter(request_iterator), context)
        except errors.APIError as err:
            await _abort(context, err)
        except Exception:
            log.exception("image import failed")
            await _abort(context, errors.InternalError("internal error while importing an image; see the agent's log"))
        raise AssertionError("unreachable")  # abort() raises

    async def _import_image(self, chunks: AsyncIterator[agent_pb2.ImageChunk],
                            context: grpc.aio.ServicerContext) -> agent_pb2.ImportImageResult:
        archive = archive_from_metadata(context.invocation_metadata())
        self._images.check_available()
        check_archive_header(archive)
        await context.send_initial_metadata(ACCEPTED_METADATA)  # the archive is welcome: send it

        async def data() -> AsyncIterator[bytes]:
            async for chunk in chunks:
                yield chunk.data

        path = await receive_archive(archive, data(), directory=self._spool_dir)
        try:
            images = await self._images.import_archive(path)
        finally:
            path.unlink(missing_ok=True)
        log.info("imported %s from %s", ", ".join(images) or "no images", archive.name)
        return agent_pb2.ImportImageResult(images=images)

    async def _attempts(self, namespace: str, pod_name: str,
                        container: str) -> tuple[core_pb2.Pod, str, list[ContainerStatus]]:
        pod = await self._pods.bound_pod(namespace, pod_name)
        container = choose_container(pod, container)
        return pod, container, await container_attempts(self._runtime, pod, container)

    async def _log_chunks(self, request: agent_pb2.LogsRequest) -> AsyncIterator[bytes]:
        pod, container, attempts = await self._attempts(request.namespace, request.pod, request.container)
        pick = previous_attempt if request.previous else current_attempt
        target = pick(pod, container, attempts)
        options = LogOptions(
            follow=request.follow,
            tail_lines=request.tail_lines if request.HasField("tail_lines") else None,
            since=time.time() - request.since_seconds if request.HasField("since_seconds") else None,
            timestamps=request.timestamps)

        async def still_running() -> bool:
            try:
                return (await self._runtime.container_status(target.id)).state == RUNNING
            except RuntimeError_:
                return False  # removed

        async for chunk in read_log(target.log_path, options, still_running=still_running):
            yield chunk

    async def _exec(self, start: agent_pb2.ExecStart,
                    inputs: AsyncIterator[agent_pb2.ExecInput]) -> AsyncIterator[agent_pb2.ExecOutput]:
        check_exec_start(start, self._runtime)
        pod, container, attempts = await self._attempts(start.namespace, start.pod, start.container)
        target = current_attempt(pod, container, attempts)
        if target.state != RUNNING:
            raise errors.BadRequestError(f'container "{container}" in pod "{pod.metadata.name}" is not running')
        if wants_stream(start):
            assert isinstance(self._runtime, StreamingExec)  # check_exec_start refused it otherwise
            outputs = exec_stream_output(self._runtime, target.id, start, inputs)
        else:
            outputs = exec_output(self._runtime, target.id, tuple(start.command))
        async for output in outputs:
            yield output


def caller_groups(context: grpc.aio.ServicerContext) -> tuple[str, tuple[str, ...]] | None:
    """(CN, O values) of the caller's verified client certificate; None without one."""
    pems = context.auth_context().get("x509_pem_cert") or []
    if not pems:
        return None
    try:
        return subject_names(load_cert(pems[0]))
    except ValueError:
        return None


def _refusal(context: grpc.aio.ServicerContext) -> errors.APIError | None:
    caller = caller_groups(context)
    if caller is None:
        return errors.UnauthorizedError("Unauthorized: the agent API needs a client certificate")
    name, groups = caller
    if SYSTEM_MASTERS in groups:
        return None
    return errors.ForbiddenError(
        f'User "{name}" cannot call the agent API: only the control service ({SYSTEM_MASTERS}) may; '
        f"use sampan logs, exec or top through the API")


class ControlPlaneOnly(grpc.aio.ServerInterceptor):
    """Let only callers in system:masters through; others get PERMISSION_DENIED.

    The caller's certificate is only known to the handler's context, so the
    interceptor wraps each handler with the check rather than deciding here."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        if handler.unary_unary:
            inner_uu = handler.unary_unary

            async def unary_unary(request, context):
                await _check(context)
                return await inner_uu(request, context)

            return grpc.unary_unary_rpc_method_handler(unary_unary, handler.request_deserializer,
                                                       handler.response_serializer)
        if handler.stream_unary:
            inner_su = handler.stream_unary

            async def stream_unary(requests, context):
                await _check(context)
                return await inner_su(requests, context)

            return grpc.stream_unary_rpc_method_handler(stream_unary, handler.request_deserializer,
                                                        handler.response_serializer)
        if handler.unary_stream:
            inner_us = handler.unary_stream

            async def unary_stream(request, context):
                await _check(context)
                async for response in inner_us(request, context):
                    yield response

            return grpc.unary_stream_rpc_method_handler(unary_stream, handler.request_deserializer,
                                                        handler.response_serializer)
        inner_ss = handler.stream_stream

        async def stream_stream(requests, context):
            await _check(context)
            async for response in inner_ss(requests, context):
                yield response

        return grpc.stream_stream_rpc_method_handler(stream_stream, handler.request_deserializer,
                                                     handler.response_serializer)


async def _check(context: grpc.aio.ServicerContext) -> None:
    refusal = _refusal(context)
    if refusal is not None:
        log.warning("refused an agent API call from %s: %s", context.peer(), refusal.message)
        await _abort(context, refusal)


class AgentServer:
    """The agent's gRPC server on ``listen`` (HOST:PORT; port 0 picks one); with tls, mutual TLS
    and only the control service as a caller (see the module docstring)."""

    def __init__(self, servicer: AgentServicer, *, listen: str = DEFAULT_LISTEN, tls: TLSFiles | None = None) -> None:
        # No SO_REUSEPORT: a second agent on the same port must fail, not share it.
        self._server = grpc.aio.server(options=[("grpc.so_reuseport", 0)],
                                       interceptors=[ControlPlaneOnly()] if tls is not None else [])
        agent_pb2_grpc.add_AgentServicer_to_server(servicer, self._server)
        self.listen = listen
        self.tls = tls
        self.port = 0

    async def start(self) -> int:
        """Start serving; returns the port. OSError if the address cannot be bound."""
        try:
            if self.tls is None:
                self.port = self._server.add_insecure_port(self.listen)
            else:
                self.port = self._server.add_secure_port(self.listen, server_credentials(self.tls))
        except RuntimeError as err:  # grpc's word for a taken or bad address
            raise OSError(f"agent API --listen {self.listen}: {err}") from None
        await self._server.start()
        log.info("agent API listening on %s (port %d, %s)", self.listen, self.port,
                 "plain text, unauthenticated" if self.tls is None else "mutual TLS, the control service only")
        return self.port

    async def stop(self, grace: float = 1.0) -> None:
        """Stop serving; open streams (followed logs) are cancelled after grace seconds."""
        await self._server.stop(grace)
