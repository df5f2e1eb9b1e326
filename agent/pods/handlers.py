"""Probe and lifecycle-hook actions: exec, httpGet, tcpSocket, gRPC.

Probes (``probes.py``) and preStop/postStart hooks (``pod_sync.py``) share
these. Each returns an ``ActionResult`` and never raises for a failing
target: a refused connection, a 500 or a non-zero exit is a result, with the
output kubelet would show in its Unhealthy/FailedPreStopHook events.

httpGet and tcpSocket go to ``host`` (the pod IP, or the node's IP for a
hostNetwork pod) unless the action names one; a named port is looked up in
the container's ports. httpGet succeeds on a status from 200 to 399, as
kubelet's does; HTTPS is not verified (kubelet skips verification too).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Mapping

from agent.runtime.base import ContainerRuntime, RuntimeError_
from protos.api.v1 import core_pb2, meta_pb2

USER_AGENT = "kube-probe/1.30"
_MAX_OUTPUT = 10 * 1024


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    output: str = ""


def named_ports(container: core_pb2.Container) -> dict[str, int]:
    return {port.name: port.container_port for port in container.ports if port.name}


def resolve_port(port: meta_pb2.IntOrString, ports: Mapping[str, int]) -> int:
    """A port given as a number, a numeric string or a container port's name. ValueError if none."""
    if port.WhichOneof("value") == "int_value":
        return port.int_value
    name = port.str_value
    if name.isdigit():
        return int(name)
    if name in ports:
        return ports[name]
    raise ValueError(f"couldn't find port {name!r} in the container's ports")


async def run_exec(runtime: ContainerRuntime, container_id: str, *, command, timeout: float) -> ActionResult:
    try:
        result = await runtime.exec_sync(container_id, tuple(command), timeout=timeout)
    except RuntimeError_ as err:
        return ActionResult(False, str(err))
    output = (result.stdout + result.stderr).decode("utf-8", errors="replace")[:_MAX_OUTPUT].strip()
    if result.exit_code != 0 and not output:
        output = f"command {list(command)!r} exited with {result.exit_code}"
    return ActionResult(result.exit_code == 0, output)


def _host_header(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def run_http_get(
    action: core_pb2.HTTPGetAction, *, host: str, ports: Mapping[str, int], timeout: float
) -> ActionResult:
    try:
        port = resolve_port(action.port, ports)
    except ValueError as err:
        return ActionResult(False, str(err))
    target = action.host or host
    scheme = (action.scheme or "HTTP").lower()
    path = action.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    url = f"{scheme}://{_host_header(target, port)}{path}"
    headers = {"Host": _host_header(target, port), "User-Agent": USER_AGENT, "Accept": "*/*"}
    for header in action.http_headers:
        headers[header.name] = header.value
    headers["Connection"] = "close"
    context = None
    if scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(target, port, ssl=context)
            writer.write(request.encode("latin-1"))
            await writer.drain()
            status_line = await reader.readline()
            body = b""
            parts = status_line.decode("latin-1").split(" ", 2)
            if len(parts) < 2 or not parts[1].isdigit():
                return ActionResult(False, f'Get "{url}": malformed HTTP response {status_line[:80]!r}')
            code = int(parts[1])
            if not 200 <= code < 400:
                await reader.readuntil(b"\r\n\r\n")
                body = await reader.read(_MAX_OUTPUT)
    except TimeoutError:
        return ActionResult(False, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while '
                                   "awaiting headers)")
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError) as err:
        return ActionResult(False, f'Get "{url}": {err}')
    finally:
        if writer is not None:
            writer.close()
    if 200 <= code < 400:
        return ActionResult(True, "")
    text = body.decode("utf-8", errors="replace").strip()
    return ActionResult(False, f"HTTP probe failed with statuscode: {code}" + (f": {text}" if text else ""))


async def run_tcp_socket(
    action: core_pb2.TCPSocketAction, *, host: str, ports: Mapping[str, int], timeout: float
) -> ActionResult:
    try:
        port = resolve_port(action.port, ports)
    except ValueError as err:
        return ActionResult(False, str(err))
    target = action.host or host
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(target, port)
    except TimeoutError:
        return ActionResult(False, f"dial tcp {_host_header(target, port)}: i/o timeout")
    except OSError as err:
        return ActionResult(False, f"dial tcp {_host_header(target, port)}: {err}")
    writer.close()
    return ActionResult(True, "")


async def run_grpc(action: core_pb2.GRPCAction, *, host: str, timeout: float) -> ActionResult:
    """The gRPC health protocol's Check, as kubelet's gRPC probe does."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    address = _host_header(host, action.port)
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=action.service), timeout=timeout)
    except grpc.aio.AioRpcError as err:
        return ActionResult(False, f"failed to connect service {address!r} within {timeout:g}s: {err.details()}")
    if answer.status != health_pb2.HealthCheckResponse.SERVING:
        return ActionResult(False, f"service unhealthy (responded with {health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)})")
    return ActionResult(True, "")
