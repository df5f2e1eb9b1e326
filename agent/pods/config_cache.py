"""ConfigMaps and Secrets as the node's pods see them: one watch per object used.

As kubelet's watch-based managers do, the agent follows only the ConfigMaps
and Secrets that the pods bound to it use: ``register(pod)`` starts a
Reflector for each object the pod references (a watch in its namespace with
the field selector ``metadata.name=NAME``, the one form of list and watch
the node authorizer lets a node make), shared by every pod that uses it;
``unregister(uid)`` stops the ones no pod uses any more. So env resolution
and volume sync read memory, not the API, and a change reaches the pods that
use it at once: ``on_change(kind, namespace, name)`` fires for every change,
and ``references(pod)`` tells which objects a pod uses. Before an object's
first list has arrived, reads go to the API directly (a get, which the node
may also make for what its pods use).
"""

from __future__ import annotations

import asyncio
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
    """A ``ConfigSource`` (agent.pods.env) over one watch per referenced object."""

    def __init__(self, api: Client, *, on_change: Callable[[str, str, str], None]) -> None:
        self._api = api
        self._on_change = on_change
        # (kind, namespace, name) -> its reflector, the task running it, and the uids of the pods using it.
        self._watches: dict[tuple[str, str, str], tuple[Reflector, asyncio.Task]] = {}
        self._users: dict[tuple[str, str, str], set[str]] = {}
        self._used_by: dict[str, set[tuple[str, str, str]]] = {}

    def register(self, pod: core_pb2.Pod) -> None:
        """Follow what pod uses (and stop following what it no longer does). Must run on the loop."""
        uid, namespace = pod.metadata.uid, pod.metadata.namespace
        wanted = {(kind, namespace, name) for kind, name in references(pod) if name}
        for key in self._used_by.get(uid, set()) - wanted:
            self._release(uid, key)
        for key in wanted:
            self._users.setdefault(key, set()).add(uid)
            if key not in self._watches:
                self._start(key)
        self._used_by[uid] = wanted

    def unregister(self, uid: str) -> None:
        for key in self._used_by.pop(uid, set()):
            self._release(uid, key)

    def watched(self) -> set[tuple[str, str, str]]:
        """(kind, namespace, name) of every object followed now."""
        return set(self._watches)

    async def close(self) -> None:
        tasks = [task for _, task in self._watches.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._watches.clear()

    def _start(self, key: tuple[str, str, str]) -> None:
        kind, namespace, name = key

        def changed(old, new) -> None:
            self._on_change(kind, namespace, name)

        reflector: Reflector = Reflector(self._api, kind, namespace=namespace,
                                         field_selector=f"metadata.name={name}", on_change=changed)
        task = asyncio.get_running_loop().create_task(reflector.run(), name=f"{kind} {namespace}/{name} reflector")
        self._watches[key] = (reflector, task)

    def _release(self, uid: str, key: tuple[str, str, str]) -> None:
        users = self._users.get(key)
        if users is not None:
            users.discard(uid)
            if users:
                return
            del self._users[key]
        watch = self._watches.pop(key, None)
        if watch is not None:
            watch[1].cancel()

    async def _read(self, kind: str, namespace: str, name: str):
        watch = self._watches.get((kind, namespace, name))
        if watch is not None and watch[0].synced.is_set():
            return watch[0].get((namespace, name))
        try:
            return await self._api.get(kind, name, namespace=namespace)
        except errors.NotFoundError:
            return None

    async def config_map(self, namespace: str, name: str) -> core_pb2.ConfigMap | None:
        return await self._read(CONFIG_MAP, namespace, name)

    async def secret(self, namespace: str, name: str) -> core_pb2.Secret | None:
        return await self._read(SECRET, namespace, name)
