"""An agent restart and a control-service outage leave running pods alone.

- A new agent on the same runtime state adopts what runs (``recover()``):
  same container ids, same restart counts, no restarts.
- Pods deleted while no agent ran are stopped and removed once the API answers.
- While the control service is down, pods keep running; the agent reconnects
  when it is back and carries on.
"""

from __future__ import annotations

import asyncio

import pytest

from agent.runtime.process import ProcessRuntime
from control.api import errors
from control.client import Client
from control.service import ControlConfig, ControlService
from tests.agent.pods.support import condition, container, container_status, eventually, pod_manifest, pod_until

# Crashes on its first run, then runs: a restart count of 1 to preserve.
CRASH_ONCE = "if [ -e {marker} ]; then exec sleep 300; fi; touch {marker}; exit 1"


async def _uid_containers(runtime, uid: str):
    return [c for c in await runtime.list_containers() if c.labels.get("io.sampan.pod.uid") == uid]


async def test_a_restarted_agent_adopts_running_containers_without_restarting_them(api, start_agent, runtime, tmp_path):
    first_agent = await start_agent()
    app = container("app", CRASH_ONCE.format(marker=tmp_path / "crashed"),
                    readinessProbe={"exec": {"command": ["true"]}, "periodSeconds": 1})
    await api.create(pod_manifest("kept", app))
    before = await pod_until(api, "kept", lambda p: condition(p, "Ready") == "True"
                             and container_status(p, "app").restart_count == 1)
    await first_agent.stop()

    second_agent = await start_agent(runtime=ProcessRuntime(str(tmp_path / "runtime")))
    # A pod created now runs only once the new agent has listed (and so synced) every pod.
    await api.create(pod_manifest("witness", container("app")))
    await pod_until(api, "witness", lambda p: p.status.phase == "Running")
    after = await pod_until(api, "kept", lambda p: condition(p, "Ready") == "True")
    assert container_status(after, "app").container_id == container_status(before, "app").container_id
    assert container_status(after, "app").restart_count == 1
    assert after.status.start_time == before.status.start_time
    states = [(c.attempt, c.state) for c in await _uid_containers(runtime, before.metadata.uid)]
    assert sorted(states) == [(0, "exited"), (1, "running")]
    assert second_agent.manager.pod_counts() == (2, 2)


async def test_a_pod_deleted_while_the_agent_was_down_is_removed_when_it_comes_back(api, start_agent, runtime, tmp_path):
    first_agent = await start_agent()
    await api.create(pod_manifest("stale", container("app")))
    pod = await pod_until(api, "stale", lambda p: p.status.phase == "Running")
    await first_agent.stop()
    await api.delete("Pod", "stale", namespace="default", grace_period_seconds=0, force=True)

    await start_agent(runtime=ProcessRuntime(str(tmp_path / "runtime")))
    await eventually(lambda: _uid_containers(runtime, pod.metadata.uid), lambda found: not found,
                     what="the orphan's containers removed")
    sandboxes = await runtime.list_sandboxes()
    assert not [s for s in sandboxes if s.pod_uid == pod.metadata.uid]


@pytest.fixture
async def restartable(tmp_path):
    """A control service that a test can stop and start again on the same port and store."""
    config = ControlConfig(store_url=f"sqlite:///{tmp_path}/outage/state.db", listen="127.0.0.1:0",
                           metrics_listen="", shutdown_grace=0.2)
    services = [ControlService(config)]
    await services[0].start()

    class Handle:
        port = services[0].port

        async def stop(self) -> None:
            await services[-1].stop()

        async def start(self) -> None:
            again = ControlService(ControlConfig(store_url=config.store_url, listen=f"127.0.0.1:{self.port}",
                                                 metrics_listen="", shutdown_grace=0.2))
            await again.start()
            services.append(again)

    handle = Handle()
    yield handle
    await services[-1].stop()


async def test_pods_keep_running_while_the_control_service_is_down(restartable, start_agent, runtime):
    async with Client.connect(f"127.0.0.1:{restartable.port}", timeout=5) as api:
        await start_agent(api=api)
        await api.create(pod_manifest("steady", container("app")))
        pod = await pod_until(api, "steady", lambda p: p.status.phase == "Running")
        before = container_status(pod, "app").container_id
        await restartable.stop()
        for _ in range(15):  # several relists and a resync with the API unreachable
            found = await _uid_containers(runtime, pod.metadata.uid)
            assert [c.state for c in found] == ["running"]
            await asyncio.sleep(0.1)
        await restartable.start()
        await _create_when_reachable(api, pod_manifest("after", container("app")))
        await pod_until(api, "after", lambda p: p.status.phase == "Running", timeout=20)
        again = await api.get("Pod", "steady", namespace="default")
        assert container_status(again, "app").container_id == before
        assert container_status(again, "app").restart_count == 0


async def _create_when_reachable(api: Client, obj) -> None:
    """The test's own client reconnects with gRPC's back-off: retry until it does."""
    for _ in range(100):
        try:
            await api.create(obj)
            return
        except errors.UnavailableError:
            await asyncio.sleep(0.1)
    raise AssertionError("the control service did not come back")
