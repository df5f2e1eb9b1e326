"""kill -9 the control service in the middle of a rollout, then start it again.

A real ``sampan control`` process (embedded SQLite store, one replica, so no
leader election to wait out) and ``sampan simulate-nodes`` (three hollow
nodes that mark their pods Running and Ready and finish deletions, as
Kubernetes' KWOK does) run a Deployment and a StatefulSet. The test starts a
rolling update, kills the control service with SIGKILL after a delay drawn
from a seeded random generator, starts it again on the same store and waits
for the rollout to converge.

The test follows every pod event across the crash: its watch resumes from
the last resourceVersion it saw, so the store's history fills the gap and
no state in between is missed. At every event it checks the invariants the
controllers promise even when they die between two writes:

- a Deployment never has more live (not terminating, not finished) pods than
  replicas + maxSurge;
- a StatefulSet never has two live pods with the same ordinal (a pod is
  recreated only once its predecessor is gone from the API).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys
from pathlib import Path

import pytest

from control.api import errors, manifest
from control.client import Client
from control.controllers.pods import is_active
from protos.api.v1 import core_pb2
from tests.support.control import ControlServer

REPLICAS, MAX_SURGE = 6, 2
DEPLOYMENT = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: default}}
spec:
  replicas: {REPLICAS}
  minReadySeconds: 1
  selector: {{matchLabels: {{app: web}}}}
  strategy: {{type: RollingUpdate, rollingUpdate: {{maxSurge: {MAX_SURGE}, maxUnavailable: 1}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: "registry.local/web:1"}}]
"""
STATEFUL_REPLICAS = 4
STATEFULSET = f"""
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db, namespace: default}}
spec:
  replicas: {STATEFUL_REPLICAS}
  serviceName: db
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      containers: [{{name: db, image: "registry.local/db:1"}}]
"""


class PodHistory:
    """Every pod event in order, across restarts of the control service, with the invariants checked at each."""

    def __init__(self) -> None:
        self.live: dict[str, core_pb2.Pod] = {}  # uid -> latest copy, while the pod exists
        self.max_web = 0
        self.same_ordinal: list[str] = []
        self.events = 0
        self.new_pods = 0  # pods created from the updated templates

    def apply(self, event_type: str, pod: core_pb2.Pod) -> None:
        self.events += 1
        if event_type == "ADDED" and pod.spec.containers[0].image.endswith(":2"):
            self.new_pods += 1
        if event_type == "DELETED":
            self.live.pop(pod.metadata.uid, None)
        else:
            self.live[pod.metadata.uid] = pod
        web = [p for p in self.live.values() if p.metadata.labels.get("app") == "web" and is_active(p)]
        self.max_web = max(self.max_web, len(web))
        names: dict[str, str] = {}
        for p in self.live.values():
            if p.metadata.labels.get("app") != "db":
                continue
            if p.metadata.name in names:
                self.same_ordinal.append(f"{p.metadata.name}: {names[p.metadata.name]} and {p.metadata.uid}")
            names[p.metadata.name] = p.metadata.uid

    async def follow(self, address: str) -> None:
        """List once, then watch, resuming from the last version seen whenever the server goes away."""
        revision = ""
        while True:
            try:
                async with Client.connect(address, timeout=5) as api:
                    if not revision:
                        pods, revision = await api.list("Pod", namespace="default")
                        for pod in pods:
                            self.apply("ADDED", pod)
                    async for event in api.watch("Pod", namespace="default", resource_version=revision):
                        self.apply(event.type, event.object)
                        revision = event.object.metadata.resource_version
            except asyncio.CancelledError:
                raise
            except errors.ExpiredError:
                raise AssertionError("the pod history was compacted during the test; events were missed")
            except Exception:
                await asyncio.sleep(0.1)


async def wait_for(check, *, timeout: float, what: str):
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            last = await check()
            if last is True:
                return
        except errors.APIError as err:  # the server is restarting
            last = err
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


@contextlib.contextmanager
def simulated_nodes(address: str, log: Path):
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "control.cli.main", "simulate-nodes", "--count", "3", "--server", address,
             "--lease-interval", "2"], stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.kill()
        process.wait()


async def deployment_done(api: Client) -> bool | str:
    deployment = await api.get("Deployment", "web", namespace="default")
    status = deployment.status
    pods, _ = await api.list("Pod", namespace="default", label_selector="app=web")
    live = [p for p in pods if is_active(p)]
    images = sorted({p.spec.containers[0].image for p in live})
    done = (status.observed_generation == deployment.metadata.generation and status.updated_replicas == REPLICAS
            and status.available_replicas == REPLICAS and status.replicas == REPLICAS
            and len(live) == REPLICAS and images == ["registry.local/web:2"])
    return True if done else f"status {status}, live pods {len(live)} with images {images}"


async def statefulset_done(api: Client) -> bool | str:
    sts = await api.get("StatefulSet", "db", namespace="default")
    status = sts.status
    pods, _ = await api.list("Pod", namespace="default", label_selector="app=db")
    live = sorted(p.metadata.name for p in pods if is_active(p))
    images = sorted({p.spec.containers[0].image for p in pods if is_active(p)})
    done = (status.observed_generation == sts.metadata.generation and status.updated_replicas == STATEFUL_REPLICAS
            and status.ready_replicas == STATEFUL_REPLICAS and status.current_revision == status.update_revision
            and live == [f"db-{i}" for i in range(STATEFUL_REPLICAS)] and images == ["registry.local/db:2"])
    return True if done else f"status {status}, live pods {live} with images {images}"


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_rollouts_converge_after_the_control_service_is_killed(tmp_path, seed):
    rng = random.Random(seed)
    server = ControlServer(tmp_path / "control", extra_args=("--leader-elect=false",)).start()
    history = PodHistory()
    follower = None
    try:
        with simulated_nodes(server.address, tmp_path / "nodes.log"):
            async with Client.connect(server.address, timeout=5) as api:
                await wait_for(lambda: _ready_nodes(api, 3), timeout=30, what="three Ready simulated nodes")
                follower = asyncio.create_task(history.follow(server.address))
                for text in (DEPLOYMENT, STATEFULSET):
                    await api.create(manifest.to_message(manifest.load_documents(text)[0]))
                await wait_for(lambda: _all_ready(api), timeout=30, what="the first rollout")

                # The update, then a crash at a seeded moment while it is under way.
                await api.patch("Deployment", "web", {"spec": {"template": {"spec": {"containers": [
                    {"name": "web", "image": "registry.local/web:2"}]}}}}, namespace="default")
                await api.patch("StatefulSet", "db", {"spec": {"template": {"spec": {"containers": [
                    {"name": "db", "image": "registry.local/db:2"}]}}}}, namespace="default")
                crash_after = rng.randint(1, REPLICAS - 1)
                await wait_for(lambda: _at_least(history.new_pods, crash_after), timeout=30,
                               what=f"{crash_after} pods of the new templates")
                await asyncio.sleep(rng.uniform(0.0, 0.3))
                events_before_crash = history.events
                server.kill()
                await asyncio.sleep(rng.uniform(0.1, 1.0))
                server.start()

            async with Client.connect(server.address, timeout=5) as api:
                await wait_for(lambda: deployment_done(api), timeout=60, what="the Deployment to converge")
                await wait_for(lambda: statefulset_done(api), timeout=60, what="the StatefulSet to converge")
                # Let the follower catch up with the last events before judging.
                await wait_for(lambda: _caught_up(history, api), timeout=10, what="the watch to catch up")
    finally:
        if follower is not None:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        server.kill()
    assert history.events > events_before_crash, "no pod event after the crash: the test saw nothing happen"
    assert history.max_web <= REPLICAS + MAX_SURGE, (
        f"seed {seed}: {history.max_web} live Deployment pods at once, more than replicas + maxSurge "
        f"({REPLICAS + MAX_SURGE})")
    assert not history.same_ordinal, f"seed {seed}: two live StatefulSet pods with one ordinal: {history.same_ordinal}"


async def _at_least(value: int, wanted: int) -> bool | str:
    return True if value >= wanted else f"{value} of {wanted}"


async def _ready_nodes(api: Client, count: int) -> bool | str:
    nodes, _ = await api.list("Node")
    ready = [n.metadata.name for n in nodes
             if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)]
    return True if len(ready) >= count else f"ready nodes: {ready}"


async def _all_ready(api: Client) -> bool | str:
    deployment = await api.get("Deployment", "web", namespace="default")
    sts = await api.get("StatefulSet", "db", namespace="default")
    if deployment.status.available_replicas == REPLICAS and sts.status.ready_replicas == STATEFUL_REPLICAS:
        return True
    return f"deployment {deployment.status}, statefulset {sts.status}"


async def _caught_up(history: PodHistory, api: Client) -> bool | str:
    """Whether the follower's copy is exactly what the API lists now (uid and version of every pod)."""
    pods, _ = await api.list("Pod", namespace="default")
    listed = {p.metadata.uid: p.metadata.resource_version for p in pods}
    followed = {uid: p.metadata.resource_version for uid, p in history.live.items()}
    return True if listed == followed else f"followed {len(followed)} pods, listed {len(listed)}"
