"""Optimistic concurrency through the API, on both stores: concurrent
read-modify-write clients never lose an update."""

from __future__ import annotations

import asyncio

from control.api import errors
from control.client import Client
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
