"""A Deployment end to end: two real agents, the CLI, a rolling update and a rollback.

An in-process control service (scheduler and controllers) and two
``sampan agent`` processes on the process runtime, registered as two nodes,
each with its own data directory. Everything the user does goes through the
``sampan`` CLI as a process: apply a Deployment of 3 replicas (spread over
both nodes by the scheduler), wait with ``rollout status``, ``set image``
with maxUnavailable 0 and maxSurge 1 while a watch on the pods checks at
every event that at least 3 ready pods remain, ``rollout history``, then
``rollout undo`` back to the first template.

The pods' readiness probe has an initial delay, so a new pod runs for a
while before it is ready: the rollout must wait for it before removing an
old one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from control.api import errors
from control.client import Client
from control.controllers.pods import is_ready, is_terminating
from protos.api.v1 import core_pb2

NODES = ("node-a", "node-b")
MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: busybox:1.36
        command: ["sleep", "3600"]
        resources:
          requests: {cpu: 100m, memory: 16Mi}
        readinessProbe:
          exec:
            command: ["true"]
          initialDelaySeconds: 1
          periodSeconds: 1
"""


@contextlib.contextmanager
def running_agent(server: str, node: str, data_dir: Path) -> Iterator[subprocess.Popen]:
    """``sampan agent`` for node on the process runtime; killed (with its pods' processes) afterwards."""
    data_dir.mkdir(parents=True)
    log_path = data_dir.parent / f"{node}.log"
    with open(log_path, "ab") as log:
        agent = subprocess.Popen(
            [sys.executable, "-m", "control.cli.main", "agent", "--insecure-plaintext", "--server", server, "--node-name", node,
             "--data-dir", str(data_dir), "--runtime", "process", "--metrics-listen", "",
             "--listen", "127.0.0.1:0", "--restart-backoff", "0.5", "--restart-backoff-max", "2"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        yield agent
    except BaseException:
        print(f"{node} log:\n{log_path.read_text(errors='replace')[-4000:]}", file=sys.stderr)
        raise
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(agent.pid, signal.SIGKILL)
        agent.wait()


async def wait_for(check, *, timeout: float = 60.0, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}; last seen: {last!r}")


async def nodes_ready(api: Client):
    try:
        nodes = [await api.get("Node", name) for name in NODES]
    except errors.NotFoundError:
        return False
    return all(any(c.type == "Ready" and c.status == "True" for c in n.status.conditions) for n in nodes)


async def web_pods(api: Client) -> list[core_pb2.Pod]:
    pods, _ = await api.list("Pod", namespace="default", label_selector="app=web")
    return [pod for pod in pods if not is_terminating(pod)]


@pytest.fixture
async def two_agents(service, api, tmp_path):
    server = f"127.0.0.1:{service.port}"
    with contextlib.ExitStack() as agents:
        for node in NODES:
            agents.enter_context(running_agent(server, node, tmp_path / node))
        await wait_for(lambda: nodes_ready(api), what="both nodes Ready")
        try:
            yield
        finally:
            # Stop the pods' processes through their agents before the agents go.
            with contextlib.suppress(errors.APIError):
                await api.delete("Deployment", "web", namespace="default")
            for pod in (await api.list("Pod", namespace="default"))[0]:
                with contextlib.suppress(errors.APIError):
                    await api.delete("Pod", pod.metadata.name, namespace="default")

            async def no_pods():
                return not (await api.list("Pod", namespace="default"))[0]
            with contextlib.suppress(BaseException):
                await wait_for(no_pods, timeout=20, what="the pods to stop")


class ReadyPodWatch:
    """Watches the Deployment's pods and records, after every event, how many are ready (and not going away)."""

    def __init__(self, api: Client) -> None:
        self.api = api
        self.ready_counts: list[int] = []
        self.images_seen: set[str] = set()
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "ReadyPodWatch":
        pods, revision = await self.api.list("Pod", namespace="default", label_selector="app=web")
        present = {pod.metadata.name: pod for pod in pods}
        self.ready_counts.append(self._ready(present))
        self._task = asyncio.create_task(self._watch(present, revision))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _watch(self, present: dict[str, core_pb2.Pod], revision: str) -> None:
        async for event in self.api.watch("Pod", namespace="default", label_selector="app=web",
                                          resource_version=revision):
            pod = event.object
            if event.type == "DELETED":
                present.pop(pod.metadata.name, None)
            else:
                present[pod.metadata.name] = pod
                self.images_seen.add(pod.spec.containers[0].image)
            self.ready_counts.append(self._ready(present))

    @staticmethod
    def _ready(present: dict[str, core_pb2.Pod]) -> int:
        return sum(1 for pod in present.values() if is_ready(pod) and not is_terminating(pod))


async def test_a_deployment_rolls_out_an_image_without_losing_ready_replicas_and_rolls_back(
        api, sampan, two_agents, tmp_path):
    manifest = tmp_path / "web.yaml"
    manifest.write_text(MANIFEST)
    assert await sampan("apply", "-f", str(manifest)) == (0, "deployment.apps/web created\n", "")
    code, out, err = await sampan("rollout", "status", "deployment/web", "--timeout", "90s")
    assert (code, err) == (0, ""), out
    assert out.splitlines()[-1] == 'deployment "web" successfully rolled out'

    async def running_on_both_nodes():
        pods = await web_pods(api)
        running = [p for p in pods if p.status.phase == "Running" and is_ready(p)]
        return len(pods) == 3 and len(running) == 3 and running
    pods = await wait_for(running_on_both_nodes, what="3 running pods")
    assert {pod.spec.node_name for pod in pods} == set(NODES)

    async with ReadyPodWatch(api) as watch:
        assert await sampan("set", "image", "deployment/web", "web=busybox:1.37") == (
            0, "deployment.apps/web image updated\n", "")
        code, out, err = await sampan("rollout", "status", "deployment/web", "--timeout", "90s")
        assert (code, err) == (0, ""), out

        async def all_updated():
            pods = await web_pods(api)
            return (len(pods) == 3 and all(p.spec.containers[0].image == "busybox:1.37" and is_ready(p)
                                           for p in pods) and pods)
        await wait_for(all_updated, what="3 ready pods of the new image")
    assert watch.images_seen == {"busybox:1.36", "busybox:1.37"}
    assert len(watch.ready_counts) > 10
    assert min(watch.ready_counts) >= 3, watch.ready_counts

    code, out, err = await sampan("rollout", "history", "deployment/web")
    assert (code, err) == (0, "")
    assert [line.split()[0] for line in out.splitlines()[2:] if line] == ["1", "2"]

    assert await sampan("rollout", "undo", "deployment/web") == (0, "deployment.apps/web rolled back\n", "")
    code, out, err = await sampan("rollout", "status", "deployment/web", "--timeout", "90s")
    assert (code, err) == (0, ""), out
    deployment = await api.get("Deployment", "web", namespace="default")
    assert deployment.spec.template.spec.containers[0].image == "busybox:1.36"

    async def rolled_back():
        pods = await web_pods(api)
        return (len(pods) == 3 and all(p.spec.containers[0].image == "busybox:1.36" and is_ready(p)
                                       for p in pods) and pods)
    await wait_for(rolled_back, what="3 ready pods of the first image again")
    code, out, _ = await sampan("rollout", "history", "deployment/web")
    assert [line.split()[0] for line in out.splitlines()[2:] if line] == ["2", "3"]
