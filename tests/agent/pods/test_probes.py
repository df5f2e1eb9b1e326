"""Probe mechanics: the exec, httpGet and tcpSocket actions against real
targets (a local HTTP server and TCP listener on 127.0.0.1, a process-runtime
container for exec), kubelet's threshold bookkeeping, and the probe tasks
(readiness flips, liveness and startup failures ask for a restart, startup
gates the others). Probe periods are scaled down 100-fold through the
manager's ``sleep`` so a 1 s period takes 10 ms."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from agent.pods.handlers import resolve_port, run_exec, run_http_get, run_tcp_socket
from agent.pods.probes import LIVENESS, ProbeManager, ProbeTarget, ThresholdCounter, run_probe
from agent.pods.status import ContainerProbeResults
from agent.runtime.base import ContainerSpec, SandboxSpec
from control.api import manifest
from protos.api.v1 import core_pb2, meta_pb2
from tests.agent.pods.support import eventually


class HTTPTarget:
    """A tiny HTTP server whose answer the test sets; it remembers the requests it got."""

    def __init__(self) -> None:
        self.status = 200
        self.delay = 0.0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> "HTTPTarget":
        self.server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    async def _answer(self, reader, writer) -> None:
        self.requests.append(await reader.readuntil(b"\r\n\r\n"))
        await asyncio.sleep(self.delay)
        body = b"not well" if self.status >= 400 else b"ok"
        writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (self.status, len(body), body))
        await writer.drain()
        writer.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_action(port: int | str, path: str = "/healthz", **fields) -> core_pb2.HTTPGetAction:
    action = core_pb2.HTTPGetAction(path=path, **fields)
    if isinstance(port, int):
        action.port.int_value = port
    else:
        action.port.str_value = port
    return action


def tcp_action(port: int) -> core_pb2.TCPSocketAction:
    action = core_pb2.TCPSocketAction()
    action.port.int_value = port
    return action


# ------------------------------------------------------------------ actions

async def test_http_get_succeeds_on_2xx_and_3xx_and_sends_kubelets_headers():
    async with HTTPTarget() as target:
        for status in (200, 204, 302):
            target.status = status
            result = await run_http_get(http_action(target.port, http_headers=[{"name": "X-Probe", "value": "1"}]),
                                        host="127.0.0.1", ports={}, timeout=1)
            assert result.ok, status
        request = target.requests[-1].decode()
        assert request.startswith("GET /healthz HTTP/1.1\r\n")
        assert "User-Agent: kube-probe/" in request and "X-Probe: 1" in request


async def test_http_get_fails_on_4xx_and_5xx_with_the_status_in_the_output():
    async with HTTPTarget() as target:
        target.status = 503
        result = await run_http_get(http_action(target.port), host="127.0.0.1", ports={}, timeout=1)
    assert not result.ok
    assert result.output == "HTTP probe failed with statuscode: 503: not well"


async def test_http_get_to_a_closed_port_fails():
    port = free_port()
    result = await run_http_get(http_action(port), host="127.0.0.1", ports={}, timeout=1)
    assert not result.ok and result.output.startswith(f'Get "http://127.0.0.1:{port}/healthz": ')


async def test_http_get_times_out():
    async with HTTPTarget() as target:
        target.delay = 1.0
        result = await run_http_get(http_action(target.port), host="127.0.0.1", ports={}, timeout=0.1)
    assert not result.ok and "context deadline exceeded" in result.output


async def test_a_named_port_is_looked_up_in_the_container_ports():
    async with HTTPTarget() as target:
        assert (await run_http_get(http_action("web"), host="127.0.0.1", ports={"web": target.port}, timeout=1)).ok
    result = await run_http_get(http_action("admin"), host="127.0.0.1", ports={}, timeout=1)
    assert not result.ok and "couldn't find port 'admin'" in result.output


def test_a_numeric_string_port_is_a_number():
    assert resolve_port(meta_pb2.IntOrString(str_value="8080"), {}) == 8080


async def test_tcp_socket_succeeds_when_something_listens_and_fails_otherwise():
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert (await run_tcp_socket(tcp_action(port), host="127.0.0.1", ports={}, timeout=1)).ok
    finally:
        server.close()
        await server.wait_closed()
    closed = await run_tcp_socket(tcp_action(free_port()), host="127.0.0.1", ports={}, timeout=1)
    assert not closed.ok and closed.output.startswith("dial tcp 127.0.0.1:")


@pytest.fixture
async def sleeper(runtime, tmp_path):
    """A running process-runtime container (``sleep``) to exec in."""
    sandbox_spec = SandboxSpec(pod_uid="u-probe", pod_name="p", namespace="default",
                               log_directory=str(tmp_path / "logs"))
    sandbox = await runtime.run_sandbox(sandbox_spec)
    cid = await runtime.create_container(sandbox.id, ContainerSpec(name="app", image="busybox:1.36",
                                                                   command=("sleep", "300")), sandbox_spec)
    await runtime.start_container(cid)
    return cid


async def test_exec_succeeds_on_exit_zero_and_reports_output_otherwise(runtime, sleeper):
    assert (await run_exec(runtime, sleeper, command=["true"], timeout=5)).ok
    result = await run_exec(runtime, sleeper, command=["sh", "-c", "echo not ready >&2; exit 1"], timeout=5)
    assert (result.ok, result.output) == (False, "not ready")
    silent = await run_exec(runtime, sleeper, command=["false"], timeout=5)
    assert not silent.ok and "exited with 1" in silent.output


async def test_exec_that_times_out_fails(runtime, sleeper):
    result = await run_exec(runtime, sleeper, command=["sleep", "5"], timeout=0.2)
    assert not result.ok and "timed out" in result.output


async def test_a_probe_without_a_handler_fails(runtime):
    result = await run_probe(runtime, core_pb2.Probe(), container_id="x", host="127.0.0.1", ports={})
    assert not result.ok


# --------------------------------------------------------------- thresholds

def test_a_result_is_published_only_after_its_threshold_in_a_row():
    counter = ThresholdCounter(core_pb2.Probe(success_threshold=2, failure_threshold=3))
    assert [counter.observe(ok) for ok in (True, True, False, False, True, False, False, False)] == [
        None, True, None, None, None, None, None, False]


def test_thresholds_default_to_one_success_and_three_failures():
    counter = ThresholdCounter(core_pb2.Probe())
    assert [counter.observe(ok) for ok in (True, False, False, False)] == [True, None, None, False]


# -------------------------------------------------------------- probe tasks

class Recorded:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def normal(self, pod, reason, message, *, field_path=""):
        self.events.append((reason, message))

    warning = normal


def probe_pod(**probes) -> tuple[core_pb2.Pod, core_pb2.Container]:
    pod = manifest.to_message({"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": "web", "namespace": "default", "uid": "u-probe"},
                               "spec": {"containers": [{"name": "app", "image": "x", **probes}]}})
    return pod, pod.spec.containers[0]


def tcp_probe(port: int, **timing) -> dict:
    return {"tcpSocket": {"port": port}, "periodSeconds": 1, **timing}


@pytest.fixture
def changes() -> list[str]:
    return []


@pytest.fixture
def recorder() -> Recorded:
    return Recorded()


@pytest.fixture
async def probes(runtime, changes, recorder):
    manager = ProbeManager(runtime, on_change=changes.append, recorder=recorder,
                           sleep=lambda seconds: asyncio.sleep(seconds / 100))
    yield manager
    manager.stop_all()


class Listener:
    """A TCP port the test opens and closes."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server: asyncio.Server | None = None

    async def open(self) -> None:
        self.server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", self.port)

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()


def target(pod, container, cid: str = "c1") -> ProbeTarget:
    return ProbeTarget(pod=pod, container=container, container_id=cid, started_at=time.time(), host="127.0.0.1")


def results(probes: ProbeManager, cid: str = "c1") -> ContainerProbeResults:
    return probes.results()[cid]


async def test_readiness_starts_false_and_follows_the_probe(probes, changes):
    listener = Listener()
    pod, container = probe_pod(readinessProbe=tcp_probe(listener.port, failureThreshold=1))
    probes.ensure(target(pod, container))
    assert not probes.results()["c1"].ready
    await listener.open()
    await eventually(lambda: results(probes), lambda r: r.ready)
    await listener.close()
    await eventually(lambda: results(probes), lambda r: not r.ready)
    assert changes[:2] == ["u-probe", "u-probe"]
    assert probes.restart_reason("c1") == ""  # readiness never restarts


async def test_a_liveness_failure_asks_for_a_restart_and_records_unhealthy(probes, changes, recorder):
    pod, container = probe_pod(livenessProbe=tcp_probe(free_port(), failureThreshold=2))
    probes.ensure(target(pod, container))
    assert await eventually(lambda: probes.restart_reason("c1"), bool) == "failed liveness probe"
    assert probes.running_tasks("c1") == 0  # on hold until the container is replaced
    assert changes == ["u-probe"]
    unhealthy = [message for reason, message in recorder.events if reason == "Unhealthy"]
    assert len(unhealthy) == 2 and unhealthy[0].startswith(f"{LIVENESS} probe failed: dial tcp")


async def test_a_startup_probe_gates_readiness_until_it_succeeds(probes):
    startup, ready = Listener(), Listener()
    await ready.open()
    pod, container = probe_pod(startupProbe=tcp_probe(startup.port, failureThreshold=1000),
                               readinessProbe=tcp_probe(ready.port))
    probes.ensure(target(pod, container))
    await asyncio.sleep(0.1)  # ten readiness periods: none may run before startup passes
    assert probes.results()["c1"] == ContainerProbeResults(ready=False, started=False)
    await startup.open()
    found = await eventually(lambda: results(probes), lambda r: r.started and r.ready)
    assert found.started
    await startup.close()
    await ready.close()


async def test_a_startup_failure_asks_for_a_restart(probes):
    pod, container = probe_pod(startupProbe=tcp_probe(free_port(), failureThreshold=1))
    probes.ensure(target(pod, container))
    assert await eventually(lambda: probes.restart_reason("c1"), bool) == "failed startup probe"


async def test_the_initial_delay_holds_the_first_probe(probes):
    pod, container = probe_pod(readinessProbe=tcp_probe(free_port(), initialDelaySeconds=3600, failureThreshold=1))
    probes.ensure(target(pod, container))
    await asyncio.sleep(0.05)
    assert probes.running_tasks("c1") == 1
    assert not probes.results()["c1"].ready


async def test_stopping_a_container_ends_its_probe_tasks(probes):
    listener = Listener()
    await listener.open()
    pod, container = probe_pod(readinessProbe=tcp_probe(listener.port), livenessProbe=tcp_probe(listener.port))
    probes.ensure(target(pod, container))
    assert probes.running_tasks("c1") == 2
    probes.stop_container("c1")
    assert probes.running_tasks("c1") == 0
    assert "c1" not in probes.results()
    await listener.close()


async def test_ensure_is_idempotent_per_instance(probes):
    pod, container = probe_pod(readinessProbe=tcp_probe(free_port()))
    probes.ensure(target(pod, container))
    probes.ensure(target(pod, container))
    assert probes.running_tasks("c1") == 1


async def test_an_exec_probe_runs_in_the_container(runtime, probes, sleeper, tmp_path):
    flag = tmp_path / "ok"
    pod, container = probe_pod(readinessProbe={"exec": {"command": ["test", "-e", str(flag)]}, "periodSeconds": 1})
    probes.ensure(target(pod, container, cid=sleeper))
    flag.touch()
    await eventually(lambda: results(probes, sleeper), lambda r: r.ready)
