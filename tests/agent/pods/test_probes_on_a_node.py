"""Probes on a running node: a failing liveness probe restarts the container,
a readiness probe drives the container's ready flag and the pod's Ready
condition, a startup probe holds readiness back until it passes.
(The probe mechanics themselves are in test_probes.py.)"""

from __future__ import annotations

from tests.agent.pods.support import condition, container, container_status, eventually, pod_manifest, pod_until


def exec_probe(script: str, **timing) -> dict:
    return {"exec": {"command": ["sh", "-c", script]}, "periodSeconds": 1, **timing}


async def test_a_failing_liveness_probe_restarts_the_container(api, agent, tmp_path):
    broken = tmp_path / "broken"
    probe = exec_probe(f"test ! -e {broken}", failureThreshold=1)
    # A fresh container repairs what broke its predecessor.
    app = container("app", f"rm -f {broken}; exec sleep 300", livenessProbe=probe)
    await api.create(pod_manifest("alive", app))
    pod = await pod_until(api, "alive", lambda p: container_status(p, "app").ready)
    first_id = container_status(pod, "app").container_id
    broken.touch()
    pod = await pod_until(api, "alive", lambda p: container_status(p, "app").restart_count >= 1
                          and container_status(p, "app").ready)
    status = container_status(pod, "app")
    assert status.restart_count == 1
    assert status.container_id != first_id
    assert status.last_state.terminated.container_id == first_id

    async def reasons():
        events, _ = await api.list("Event", namespace="default")
        return [(e.reason, e.message) for e in events if e.involved_object.uid == pod.metadata.uid]

    found = await eventually(reasons, lambda r: any(reason == "Unhealthy" for reason, _ in r))
    assert ("Killing", "Container app failed liveness probe, will be restarted") in found
    assert any(message.startswith("Liveness probe failed") for reason, message in found if reason == "Unhealthy")


async def test_readiness_toggles_the_pod_ready_condition(api, agent, tmp_path):
    ready = tmp_path / "ready"
    probe = exec_probe(f"test -e {ready}", failureThreshold=1)
    await api.create(pod_manifest("gated", container("app", readinessProbe=probe)))
    pod = await pod_until(api, "gated", lambda p: p.status.phase == "Running")
    assert condition(pod, "Ready") == "False" and not container_status(pod, "app").ready
    ready.touch()
    pod = await pod_until(api, "gated", lambda p: condition(p, "Ready") == "True")
    assert container_status(pod, "app").ready
    ready.unlink()
    pod = await pod_until(api, "gated", lambda p: condition(p, "Ready") == "False")
    ready_condition = next(c for c in pod.status.conditions if c.type == "Ready")
    assert ready_condition.reason == "ContainersNotReady"
    assert ready_condition.message == "containers with unready status: [app]"
    assert container_status(pod, "app").restart_count == 0  # readiness never restarts


async def test_a_startup_probe_holds_started_and_ready_until_it_passes(api, agent, tmp_path):
    booted = tmp_path / "booted"
    await api.create(pod_manifest("booting", container("app", startupProbe=exec_probe(f"test -e {booted}"))))
    pod = await pod_until(api, "booting", lambda p: p.status.phase == "Running")
    status = container_status(pod, "app")
    assert not status.started and not status.ready
    booted.touch()
    pod = await pod_until(api, "booting", lambda p: container_status(p, "app").started)
    assert container_status(pod, "app").ready and condition(pod, "Ready") == "True"


async def test_an_http_readiness_probe_reaches_the_pod_ip(api, agent, tmp_path):
    import asyncio

    async def answer(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        probe = {"httpGet": {"path": "/healthz", "port": "web"}, "periodSeconds": 1}
        app = container("app", readinessProbe=probe, ports=[{"name": "web", "containerPort": port}])
        await api.create(pod_manifest("served", app))
        await pod_until(api, "served", lambda p: condition(p, "Ready") == "True")
    finally:
        server.close()
