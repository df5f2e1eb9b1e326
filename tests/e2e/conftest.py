"""Fixtures for the end-to-end tests of the agent's services through the CLI.

- ``runtime``: a process runtime in the test's directory, emptied afterwards.
- ``node``: the agent's gRPC server for NODE on that runtime, and NODE
  registered as the agent registers it (InternalIP 127.0.0.1, its port in
  daemonEndpoints).
- ``start_pod``: a Pod bound to a node, with a sandbox in the runtime to run
  its containers in (tests.support.runtime_pods).
"""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest

from agent.pod_containers import APIPodLookup
from agent.runtime.process import ProcessRuntime
from agent.server import AgentServer, AgentServicer
from control.client import Client
from tests.support.runtime_pods import NODE, RuntimePod, pod_object, register_agent_node, remove_everything


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[ProcessRuntime]:
    runtime = ProcessRuntime(str(tmp_path / "runtime"))
    yield runtime
    await remove_everything(runtime)


@pytest.fixture
async def node(api: Client, runtime: ProcessRuntime, tmp_path: Path) -> AsyncIterator[None]:
    """The agent's server for NODE, and NODE registered with its port."""
    server = AgentServer(AgentServicer(runtime, APIPodLookup(api, NODE)), listen="127.0.0.1:0")
    await register_agent_node(api, tmp_path, agent_port=await server.start())
    yield
    await server.stop(0)


@pytest.fixture
def start_pod(api: Client, runtime: ProcessRuntime, tmp_path: Path):
    async def start(name: str = "web", containers: tuple[str, ...] = ("web",), *,
                    node: str | None = NODE) -> RuntimePod:
        pod = await api.create(pod_object(name, containers, node=node))
        return await RuntimePod.start(runtime, pod, log_root=tmp_path / "pods")

    return start
