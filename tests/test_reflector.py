"""The reflector keeps a local copy by list+watch: it resumes from the last
resourceVersion it saw, lists again when that version has been compacted
(reporting what changed meanwhile as updates and deletions), and applies a
field selector."""

from __future__ import annotations

import asyncio
import logging

from control.reflector import Reflector
from control.api import manifest
from tests.agent.pods.support import container, eventually, pod_manifest


def config_map(name: str, value: str = "x"):
    return manifest.to_message({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": name, "namespace": "default"}, "data": {"v": value}})


class Changes:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, old, new) -> None:
        if new is None:
            self.seen.append(("deleted", old.metadata.name))
        else:
            self.seen.append(("added" if old is None else "modified", new.metadata.name))


async def run_until(reflector: Reflector, condition) -> None:
    task = asyncio.create_task(reflector.run())
    try:
        await eventually(condition, bool)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_reflector_lists_then_follows_changes(api):
    await api.create(config_map("a"))
    changes = Changes()
    reflector = Reflector(api, "ConfigMap", on_change=changes)
    task = asyncio.create_task(reflector.run())
    try:
        await reflector.synced.wait()
        assert set(reflector.items) >= {("default", "a")}
        await api.create(config_map("b"))
        await api.delete("ConfigMap", "a", namespace="default")
        await eventually(lambda: ("deleted", "a") in changes.seen, bool)
        assert ("added", "b") in changes.seen and ("default", "a") not in reflector.items
    finally:
        task.cancel()


async def test_an_expired_resource_version_means_listing_again(api, service, caplog):
    caplog.set_level(logging.INFO, logger="control.reflector")
    await api.create(config_map("a"))
    changes = Changes()
    reflector = Reflector(api, "ConfigMap", on_change=changes)
    await run_until(reflector, reflector.synced.is_set)
    # While the reflector is away: changes, then the API compacts its history.
    await api.create(config_map("b"))
    await api.delete("ConfigMap", "a", namespace="default")
    _, now = await api.list("ConfigMap")
    await service._store.compact(int(now))
    # Its version is now older than anything the API keeps (store history or watch window).
    reflector.resource_version = "1"
    changes.seen.clear()
    await run_until(reflector, lambda: reflector.resource_version not in ("", "1"))
    assert "ConfigMap watch expired at resourceVersion 1; listing again" in caplog.text
    assert ("default", "a") not in reflector.items and ("default", "b") in reflector.items
    assert ("deleted", "a") in changes.seen and ("added", "b") in changes.seen


async def test_a_field_selector_limits_the_copy(api):
    await api.create(pod_manifest("mine", container("app"), node="node-a"))
    await api.create(pod_manifest("theirs", container("app"), node="node-b"))
    reflector = Reflector(api, "Pod", field_selector="spec.nodeName=node-a")
    await run_until(reflector, reflector.synced.is_set)
    assert [name for _, name in reflector.items] == ["mine"]
