"""Helpers for the pod manager's tests: manifests as dicts, polling with a deadline.

Tests wait for a condition (``eventually``) instead of sleeping a guessed
time; a condition that never holds fails with the last value it saw.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any, Awaitable, Callable, TypeVar

from control.api import errors, manifest
from control.client import Client
from protos.api.v1 import core_pb2

NODE = "node-a"
IMAGE = "busybox:1.36"
T = TypeVar("T")


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def container(name: str, script: str | None = None, **fields: Any) -> dict[str, Any]:
    """A container manifest running ``sh -c script`` (default: sleep for a long time)."""
    return {"name": name, "image": IMAGE, "command": sh(script or "exec sleep 300"), **fields}


def pod_manifest(name: str, *containers: dict[str, Any], namespace: str = "default", node: str = NODE,
                 **spec: Any) -> core_pb2.Pod:
    """A Pod bound to ``node`` (there is no scheduler: tests set spec.nodeName)."""
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
           "spec": {"nodeName": node, "terminationGracePeriodSeconds": 5, "containers": list(containers), **spec}}
    return manifest.to_message(obj)


async def eventually(probe: Callable[[], Awaitable[T] | T], predicate: Callable[[T], bool], *,
                     timeout: float = 15.0, interval: float = 0.05, what: str = "condition") -> T:
    """Poll probe() (a plain or async function) until predicate holds for its value; the value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
            if inspect.isawaitable(last):
                last = await last
            if predicate(last):
                return last
        except errors.NotFoundError as err:
            last = err
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value:\n{last}")
        await asyncio.sleep(interval)


async def pod_until(api: Client, name: str, predicate: Callable[[core_pb2.Pod], bool], *,
                    namespace: str = "default", timeout: float = 15.0, what: str = "") -> core_pb2.Pod:
    return await eventually(lambda: api.get("Pod", name, namespace=namespace), predicate,
                            timeout=timeout, what=what or f"pod {namespace}/{name}")


async def gone(api: Client, name: str, *, namespace: str = "default", timeout: float = 15.0) -> None:
    async def absent() -> bool:
        try:
            await api.get("Pod", name, namespace=namespace)
        except errors.NotFoundError:
            return True
        return False

    await eventually(absent, bool, timeout=timeout, what=f"pod {namespace}/{name} to disappear")


def container_status(pod: core_pb2.Pod, name: str) -> core_pb2.ContainerStatus:
    for status in (*pod.status.container_statuses, *pod.status.init_container_statuses):
        if status.name == name:
            return status
    return core_pb2.ContainerStatus()


def condition(pod: core_pb2.Pod, type_: str) -> str:
    return next((c.status for c in pod.status.conditions if c.type == type_), "")


def waiting_reason(pod: core_pb2.Pod, name: str) -> str:
    return container_status(pod, name).state.waiting.reason


class Configs:
    """A ConfigSource (agent.pods.env) over dicts, for unit tests."""

    def __init__(self, config_maps=None, secrets=None) -> None:
        self.config_maps = {name: core_pb2.ConfigMap(data=data) for name, data in (config_maps or {}).items()}
        self.secrets = {name: core_pb2.Secret(data={k: v.encode() for k, v in data.items()})
                        for name, data in (secrets or {}).items()}

    async def config_map(self, namespace, name):
        return self.config_maps.get(name)

    async def secret(self, namespace, name):
        return self.secrets.get(name)
