"""ConfigMaps and Secrets as the node's pods see them: two watch caches.

The agent keeps every ConfigMap and Secret in local copies (``Reflector``)
so env resolution and volume sync read memory, not the API, and so a change
reaches the pods that use it at once: ``on_change(kind, namespace, name)``
fires for every change, and ``references(pod)`` tells which objects a pod
uses. Before the first list has arrived, reads go to the API directly.
(Kubernetes narrows a node's view to the objects its pods use; with a node
authorizer Sampan will too, and this class is where that goes.)
"""

from __future__ import annotations

from typing import Callable

from control.reflector import Reflector
from control.api import errors
from control.client import Client
from protos.api.v1 import core_pb2

CONFIG_MAP, SECRET = "ConfigMap", "Secret"


def references(pod: core_pb2.Pod) -> set[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret the pod reads, in env or volumes."""
    found: set[tuple[str, str]] = set()
    for container in (*pod.spec.init_containers, *pod.spec.containers):
        for source in container.env_from:
            if source.HasField("config_map_ref"):
                found.add((CONFIG_MAP, source.config_map_ref.name))
            if source.HasField("secret_ref"):
                found.add((SECRET, source.secret_ref.name))
        for var in container.env:
            if var.value_from.HasField("config_map_key_ref"):
                found.add((CONFIG_MAP, var.value_from.config_map_key_ref.name))
            if var.value_from.HasField("secret_key_ref"):
                found.add((SECRET, var.value_from.secret_key_ref.name))
    for volume in pod.spec.volumes:
        if volume.HasField("config_map"):
            found.add((CONFIG_MAP, volume.config_map.name))
        if volume.HasField("secret"):
            found.add((SECRET, volume.secret.secret_name))
        for projection in volume.projected.sources:
            if projection.HasField("config_map"):
                found.add((CONFIG_MAP, projection.config_map.name))
            if projection.HasField("secret"):
                found.add((SECRET, projection.secret.name))
    return found


class ConfigCache:
    """A ``ConfigSource`` (agent.pods.env) over two watch caches."""

    def __init__(self, api: Client, *, on_change: Callable[[str, str, str], None]) -> None:
        self._api = api

        def changed(kind: str):
            def handler(old, new) -> None:
                obj = new if new is not None else old
                on_change(kind, obj.metadata.namespace, obj.metadata.name)
            return handler

        self.config_maps: Reflector[core_pb2.ConfigMap] = Reflector(api, CONFIG_MAP, on_change=changed(CONFIG_MAP))
        self.secrets: Reflector[core_pb2.Secret] = Reflector(api, SECRET, on_change=changed(SECRET))

    async def _read(self, cache: Reflector, namespace: str, name: str):
        if cache.synced.is_set():
            return cache.get((namespace, name))
        try:
            return await self._api.get(cache.kind, name, namespace=namespace)
        except errors.NotFoundError:
            return None

    async def config_map(self, namespace: str, name: str) -> core_pb2.ConfigMap | None:
        return await self._read(self.config_maps, namespace, name)

    async def secret(self, namespace: str, name: str) -> core_pb2.Secret | None:
        return await self._read(self.secrets, namespace, name)
