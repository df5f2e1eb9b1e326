"""A bound pod's containers as the runtime has them: what logs and exec act on.

The agent serves only pods bound to its node (``PodLookup``), and finds
their containers in the runtime by the labels every runtime object carries
(agent.runtime.base): the pod's uid, name and namespace and the container's
name, so a container of an earlier pod of the same name is never taken for
the current pod's. The runtime keeps a container's earlier attempts after a
restart: the *current* attempt is the newest; the *previous* one is the most
recent exited attempt before it (what ``kubectl logs --previous`` reads).
Errors are the kubelet's, as BadRequest.
"""

from __future__ import annotations

from typing import Protocol

from agent.runtime.base import (
    EXITED,
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    ContainerRuntime,
    ContainerStatus,
)
from control.api import errors
from control.client import Client
from protos.api.v1 import core_pb2


class PodLookup(Protocol):
    async def bound_pod(self, namespace: str, name: str) -> core_pb2.Pod:
        """The pod if it is bound to this agent's node; NotFoundError otherwise.
        Called once per logs or exec request."""


class APIPodLookup:
    """``PodLookup`` asking the control service (one Get per request)."""

    def __init__(self, api: Client, node_name: str) -> None:
        self._api = api
        self._node_name = node_name

    async def bound_pod(self, namespace: str, name: str) -> core_pb2.Pod:
        pod = await self._api.get("Pod", name, namespace=namespace)
        assert isinstance(pod, core_pb2.Pod)
        if pod.spec.node_name != self._node_name:
            raise errors.NotFoundError(f'pod "{name}" in namespace "{namespace}" is not bound to node {self._node_name}')
        return pod


async def container_attempts(runtime: ContainerRuntime, pod: core_pb2.Pod, container: str) -> list[ContainerStatus]:
    """The runtime's attempts of one container of pod, oldest first."""
    wanted = {
        LABEL_POD_UID: pod.metadata.uid, LABEL_POD_NAME: pod.metadata.name,
        LABEL_POD_NAMESPACE: pod.metadata.namespace, LABEL_CONTAINER_NAME: container,
    }
    attempts = [status for status in await runtime.list_containers()
                if all(status.labels.get(key) == value for key, value in wanted.items())]
    return sorted(attempts, key=lambda status: (status.attempt, status.created_at))


def current_attempt(pod: core_pb2.Pod, container: str, attempts: list[ContainerStatus]) -> ContainerStatus:
    """The newest attempt; BadRequestError while there is none."""
    if attempts:
        return attempts[-1]
    reason = next((status.state.waiting.reason
                   for status in (*pod.status.init_container_statuses, *pod.status.container_statuses)
                   if status.name == container and status.state.waiting.reason), "")
    where = f'container "{container}" in pod "{pod.metadata.name}"'
    raise errors.BadRequestError(f"{where} is waiting to start: {reason}" if reason
                                 else f"{where} is waiting to start - no logs yet")


def previous_attempt(pod: core_pb2.Pod, container: str, attempts: list[ContainerStatus]) -> ContainerStatus:
    """The most recent exited attempt before the newest; BadRequestError if none."""
    earlier = [status for status in attempts[:-1] if status.state == EXITED]
    if not earlier:
        raise errors.BadRequestError(
            f'previous terminated container "{container}" in pod "{pod.metadata.name}" not found')
    return earlier[-1]
