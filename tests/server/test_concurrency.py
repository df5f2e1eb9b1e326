"""Optimistic concurrency through the API, on both stores: concurrent
read-modify-write clients never lose an update; a delete of one uid is not
refused because another write got in between (the uid is checked again)."""

from __future__ import annotations

import asyncio

import pytest

from control.api import errors, kinds
from control.client import Client
from control.server.resources import ResourceService
from control.service import ensure_system_namespaces
from control.store import open_store
from tests.server.test_api import make_configmap

ANNOTATION = "sampan.test/counter"


async def test_concurrent_read_modify_write_loses_no_update(any_api: Client, any_service):
    await any_api.create(make_configmap("counter", {}))
    target = f"127.0.0.1:{any_service.port}"
    successes = 0
    conflicts = 0

    async def client_loop(increments: int) -> None:
        nonlocal successes, conflicts
        async with Client.connect(target) as client:
            done = 0
            while done < increments:
                current = await client.get("ConfigMap", "counter", namespace="default")
                value = int(current.metadata.annotations.get(ANNOTATION, "0"))
                current.metadata.annotations[ANNOTATION] = str(value + 1)
                try:
                    await client.update(current)
                except errors.ConflictError:
                    conflicts += 1
                    continue
                successes += 1
                done += 1

    await asyncio.gather(*(client_loop(15) for _ in range(8)))
    final = await any_api.get("ConfigMap", "counter", namespace="default")
    assert int(final.metadata.annotations[ANNOTATION]) == successes == 8 * 15
    assert conflicts > 0, "the clients never raced; the test proves nothing"


class _WriteBeforeFirstDelete:
    """A store that lets another client's write in just before the first delete reaches it."""

    def __init__(self, store) -> None:
        self._store = store
        self.interleaved = False

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    async def delete(self, key: str, *, expected_revision: int | None = None):
        if not self.interleaved:
            self.interleaved = True
            current = await self._store.get(key)
            await self._store.update(key, current.value, expected_revision=current.mod_revision)
        return await self._store.delete(key, expected_revision=expected_revision)


async def test_a_delete_with_a_uid_precondition_survives_a_write_in_between(tmp_path):
    store = await open_store(f"sqlite:///{tmp_path}/state.db")
    raced = _WriteBeforeFirstDelete(store)
    resources = ResourceService(raced, cache_watches=False)
    try:
        await ensure_system_namespaces(resources)
        created = await resources.create(make_configmap("raced", {}))
        kind = kinds.by_api_version_kind("v1", "ConfigMap")
        with pytest.raises(errors.ConflictError, match="UID in precondition"):
            await resources.delete(kind, namespace="default", name="raced", uid="another-object")
        _, gone = await resources.delete(kind, namespace="default", name="raced", uid=created.metadata.uid)
        assert raced.interleaved and gone
        with pytest.raises(errors.NotFoundError):
            await resources.get(kind, namespace="default", name="raced")
    finally:
        await resources.close()
        await store.close()
