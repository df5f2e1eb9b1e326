"""Autoscaling end to end, with every part real: a Deployment whose pods burn
CPU is scaled up by its HorizontalPodAutoscaler, and back down once the load
stops and the stabilization window has passed.

The parts: an in-process control service (API, scheduler, the Deployment,
ReplicaSet and autoscaler controllers; the autoscaler looks every second and
its scale-down window is shortened to 5 s) and the whole node agent on the
process runtime, whose CPU figures come from /proc (agent/usage.py) and
reach the autoscaler through the API's Top call, as ``sampan top pods``
shows them. The pods request 100m CPU and spin a core in a shell loop until
a flag file appears, then sleep. The HPA aims at 50% with maxReplicas 2, so
one spinning pod (about 1000%) asks for far more than 2.

The HPA is made as a user makes it, with ``sampan autoscale``. Checked: the
Deployment goes to 2 and never past it; ``sampan get hpa`` shows the
measured utilization against the target; the SuccessfulRescale events read
as Kubernetes' do; once the load stops, the HPA holds the count (AbleToScale
ScaleDownStabilized) before it scales down to 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from pathlib import Path

import pytest

from agent.runtime.process import ProcessRuntime
from agent.service import Agent, AgentConfig
from control.api.manifest import to_message
from control.client import Client
from control.service import ControlConfig, ControlService
from tests.support.runtime_pods import remove_everything

NODE = "node-hpa"


@pytest.fixture
async def cluster(tmp_path: Path):
    """A control service with a fast autoscaler, and an agent on the process runtime for NODE."""
    service = ControlService(ControlConfig(
        store_url=f"sqlite:///{tmp_path}/state.db", listen="127.0.0.1:0", metrics_listen="", shutdown_grace=0.5,
        controller_options={"hpa_sync_period": 1.0, "hpa_downscale_stabilization": 5.0}))
    await service.start()
    address = f"127.0.0.1:{service.port}"
    data_dir = tmp_path / "agent"
    agent = Agent(AgentConfig(server=address, node_name=NODE, data_dir=str(data_dir), runtime="process",
                              node_ip="127.0.0.1", metrics_listen="", listen="127.0.0.1:0",
                              backoff_initial=0.5, backoff_max=2.0))
    try:
        await agent.start()
        async with Client.connect(address) as api:
            yield api, address
    finally:
        with contextlib.suppress(Exception):
            await agent.stop()
        # Pods outlive their agent by design: stop every process the test started.
        await remove_everything(ProcessRuntime(str(data_dir / "process-runtime")))
        await service.stop()


def busy_deployment(flag: Path):
    spin = f"while [ ! -e {flag} ]; do :; done; exec sleep 600"
    return to_message({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "spin", "image": "busybox:1.36", "command": ["sh", "-c", spin],
                                     "resources": {"requests": {"cpu": "100m"}}}]}}}})


async def sampan(address: str, *args: str) -> str:
    """Run the sampan CLI as a process; its stdout (it must succeed)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "control.cli.main", "--server", address, *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


class Recorder:
    """Every version of the Deployment's spec.replicas and of the HPA's AbleToScale reason, in order."""

    def __init__(self, api: Client) -> None:
        self.api = api
        self.replicas: list[int] = []
        self.able_to_scale: list[str] = []

    async def run(self) -> None:
        await asyncio.gather(self._follow("Deployment", self._deployment), self._follow(
            "HorizontalPodAutoscaler", self._hpa))

    async def _follow(self, kind: str, record) -> None:
        async for event in self.api.watch(kind, namespace="default", resource_version="0"):
            if event.object.metadata.name == "web":
                record(event.object)

    def _deployment(self, deployment) -> None:
        self.replicas.append(deployment.spec.replicas)

    def _hpa(self, hpa) -> None:
        reason = next((c.reason for c in hpa.status.conditions if c.type == "AbleToScale"), "")
        if reason and (not self.able_to_scale or self.able_to_scale[-1] != reason):
            self.able_to_scale.append(reason)


async def wait_until(check, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.2)


async def test_an_hpa_scales_a_busy_deployment_up_and_back_down_when_the_load_stops(cluster, tmp_path):
    api, address = cluster
    flag = tmp_path / "stop-spinning"
    recorder = Recorder(api)
    following = asyncio.create_task(recorder.run())
    try:
        await api.create(busy_deployment(flag))
        assert await sampan(address, "autoscale", "deployment/web", "--min", "1", "--max", "2",
                            "--cpu-percent", "50") == "horizontalpodautoscaler.autoscaling/web autoscaled\n"

        async def deployment_replicas(count):
            return (await api.get("Deployment", "web", namespace="default")).spec.replicas == count

        await wait_until(lambda: deployment_replicas(2), timeout=60, what="the HPA to scale the Deployment to 2")
        table = await sampan(address, "get", "hpa")
        flag.touch()  # the load stops
        await wait_until(lambda: deployment_replicas(1), timeout=60, what="the HPA to scale back down to 1")

        hpa = await api.get("HorizontalPodAutoscaler", "web", namespace="default")
        events, _ = await api.list("Event", namespace="default")
        rescales = [e.message for e in sorted(events, key=lambda e: e.first_timestamp)
                    if e.reason == "SuccessfulRescale" and e.involved_object.kind == "HorizontalPodAutoscaler"]
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)

    assert rescales == ["New size: 2; reason: cpu resource utilization (percentage of request) above target",
                        "New size: 1; reason: All metrics below target"]
    assert max(recorder.replicas) == 2, recorder.replicas
    header, row = table.splitlines()
    assert header.split()[:3] == ["NAME", "REFERENCE", "TARGETS"]
    utilization = re.fullmatch(r"web\s+Deployment/web\s+cpu: (\d+)%/50%\s+1\s+2\s+\d\s+\S+", row)
    assert utilization is not None and int(utilization.group(1)) > 55, row  # beyond the 10% tolerance
    # Between the load stopping and the scale-down, the window held the count.
    assert "ScaleDownStabilized" in recorder.able_to_scale, recorder.able_to_scale
    assert recorder.able_to_scale.index("ScaleDownStabilized") > recorder.able_to_scale.index("SucceededRescale")
    assert hpa.status.last_scale_time and hpa.status.current_metrics[0].resource.name == "cpu"
