"""Fixtures for the pod manager's tests: a real control service (``api``, from
tests/conftest.py), the process runtime, and agents on them.

- ``runtime``: a ProcessRuntime in the test's directory; at teardown every
  container it still has is killed and removed (shims outlive agents by design).
- ``start_agent(**options)``: a PodManager for node ``node-a`` with tiny
  back-off (0.2 s doubling to 0.8 s), a 0.2 s relist and a 1 s resync,
  recovered and running (options override PodManager's arguments, e.g. a
  fresh ``runtime`` object on the same state for a restarted agent);
  ``await agent.stop()`` ends it as a crash would (pods keep running).
- ``agent``: one started agent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.pods import PodManager, RestartBackoff
from agent.runtime.process import ProcessRuntime
from tests.agent.pods.support import NODE

HOST_IP = "127.0.0.1"
TINY_BACKOFF = RestartBackoff(initial=0.2, maximum=0.8, reset_after=60.0)


@pytest.fixture
async def runtime(tmp_path: Path):
    state_dir = str(tmp_path / "runtime")
    yield ProcessRuntime(state_dir)
    leftover = ProcessRuntime(state_dir)
    for found in await leftover.list_containers():
        await leftover.remove_container(found.id)
    for sandbox in await leftover.list_sandboxes():
        await leftover.remove_sandbox(sandbox.id)


@dataclass
class RunningAgent:
    manager: PodManager
    task: asyncio.Task
    data_dir: Path

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def start_agent(api, runtime, tmp_path: Path):
    started: list[RunningAgent] = []

    async def start(**options) -> RunningAgent:
        data_dir = tmp_path / "agent"
        options = {"api": api, "runtime": runtime, "backoff": TINY_BACKOFF, "resync_seconds": 1.0,
                   "relist_seconds": 0.2, **options}
        manager = PodManager(node_name=NODE, data_dir=str(data_dir), host_ip=HOST_IP, **options)
        await manager.recover()
        running = RunningAgent(manager, asyncio.create_task(manager.run()), data_dir)
        started.append(running)
        return running

    yield start
    for running in started:
        await running.stop()


@pytest.fixture
async def agent(start_agent) -> RunningAgent:
    return await start_agent()
