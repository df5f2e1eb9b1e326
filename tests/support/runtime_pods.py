"""A pod's containers placed in a runtime by hand, labelled as the agent labels them.

The logs and exec tests need a Pod object bound to a node and containers in
that node's runtime carrying the pod's labels (uid, name, namespace,
container name). Until a test lets the pod manager create them, ``RuntimePod``
does it through the runtime API directly, attempt by attempt, so a test can
also lay out a restart (attempt 0 exited, attempt 1 running).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from agent.node import MachineFacts, NodeIdentity, register_node
from agent.runtime.base import (
    EXITED,
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    ContainerRuntime,
    ContainerSpec,
    SandboxSpec,
)
from control.api import manifest
from control.client import Client
from protos.api.v1 import core_pb2

IMAGE = "busybox:1.36"
NODE = "node-a"
UNSERVED_SCHEDULER = "no-such-scheduler"


def sh(script: str) -> tuple[str, ...]:
    return ("sh", "-c", script)


def pod_object(name: str, containers: Sequence[str] = ("web",), *, namespace: str = "default",
               node: str | None = NODE) -> core_pb2.Pod:
    """A Pod of busybox containers, bound to node (None: not bound, and kept so:
    it names a scheduler that does not run, so the default one leaves it be)."""
    spec: dict = {"containers": [{"name": c, "image": IMAGE, "command": ["sleep", "300"]} for c in containers]}
    if node:
        spec["nodeName"] = node
    else:
        spec["schedulerName"] = UNSERVED_SCHEDULER
    return manifest.to_message({"apiVersion": "v1", "kind": "Pod",
                                "metadata": {"name": name, "namespace": namespace}, "spec": spec})


@dataclass
class RuntimePod:
    """One sandbox in a runtime for a stored Pod; add its containers' attempts."""

    runtime: ContainerRuntime
    pod: core_pb2.Pod
    sandbox_id: str
    sandbox: SandboxSpec

    @classmethod
    async def start(cls, runtime: ContainerRuntime, pod: core_pb2.Pod, *, log_root: Path) -> "RuntimePod":
        meta = pod.metadata
        log_directory = log_root / f"{meta.namespace}_{meta.name}_{meta.uid}"
        log_directory.mkdir(parents=True)
        spec = SandboxSpec(
            pod_uid=meta.uid, pod_name=meta.name, namespace=meta.namespace, log_directory=str(log_directory),
            labels={LABEL_POD_UID: meta.uid, LABEL_POD_NAME: meta.name, LABEL_POD_NAMESPACE: meta.namespace})
        status = await runtime.run_sandbox(spec)
        return cls(runtime=runtime, pod=pod, sandbox_id=status.id, sandbox=spec)

    async def run(self, container: str, command: Sequence[str], *, attempt: int = 0) -> str:
        """Create and start one attempt of container running command; its id."""
        (Path(self.sandbox.log_directory) / container).mkdir(exist_ok=True)
        spec = ContainerSpec(
            name=container, image=IMAGE, attempt=attempt, command=tuple(command),
            log_path=f"{container}/{attempt}.log",
            labels={**self.sandbox.labels, LABEL_CONTAINER_NAME: container})
        container_id = await self.runtime.create_container(self.sandbox_id, spec, self.sandbox)
        await self.runtime.start_container(container_id)
        return container_id

    async def exited(self, container_id: str, *, timeout: float = 15.0) -> None:
        """Wait until the container has exited."""
        deadline = time.monotonic() + timeout
        while (await self.runtime.container_status(container_id)).state != EXITED:
            assert time.monotonic() < deadline, f"container {container_id} still runs after {timeout}s"
            await asyncio.sleep(0.05)

    async def logged(self, container_id: str, text: bytes, *, timeout: float = 15.0) -> None:
        """Wait until the container's log file holds text."""
        path = Path((await self.runtime.container_status(container_id)).log_path)
        deadline = time.monotonic() + timeout
        while not (path.exists() and text in path.read_bytes()):
            assert time.monotonic() < deadline, f"{path} has no {text!r} after {timeout}s"
            await asyncio.sleep(0.05)


async def register_agent_node(api: Client, tmp_path: Path, *, name: str = NODE, agent_port: int) -> None:
    """Register node name as its agent would, reachable at 127.0.0.1:agent_port."""
    facts = await asyncio.to_thread(MachineFacts.read, data_dir=str(tmp_path), node_ip="127.0.0.1")
    await register_node(api, NodeIdentity(name=name, agent_port=agent_port), facts)


async def remove_everything(runtime: ContainerRuntime) -> None:
    """Stop and remove every container and sandbox the runtime has."""
    for container in await runtime.list_containers():
        await runtime.remove_container(container.id)
    for sandbox in await runtime.list_sandboxes():
        await runtime.remove_sandbox(sandbox.id)
