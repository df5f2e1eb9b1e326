"""``sampan delete --cascade``: kubectl's flag against a real control service
and its garbage collector. background (the default) collects the dependents
after the owner; foreground returns only once the owner is gone, its
dependents first; orphan keeps them; the old boolean forms still work, with
kubectl's deprecation warning; anything else is refused."""

from __future__ import annotations

import asyncio
import time

import pytest

from control.cli.commands.delete import cascade_policy
from control.cli.errors import CommandError
from control.client import Client
from protos.api.v1 import core_pb2, meta_pb2
from tests.cli import sampan


@pytest.mark.parametrize(("flag", "policy", "warning"), [
    ("background", "Background", ""),
    ("Foreground", "Foreground", ""),
    ("orphan", "Orphan", ""),
    ("true", "Background", "warning: --cascade=true is deprecated (boolean value) and can be replaced with "
                           "--cascade=background.\n"),
    ("false", "Orphan", "warning: --cascade=false is deprecated (boolean value) and can be replaced with "
                        "--cascade=orphan.\n"),
])
def test_cascade_values_follow_kubectl(capsys, flag, policy, warning):
    assert cascade_policy(flag) == policy
    assert capsys.readouterr().err == warning


def test_an_unknown_cascade_value_is_refused():
    with pytest.raises(CommandError, match=r'invalid cascade value \(sideways\). Must be "background", '
                                           r'"foreground", or "orphan".'):
        cascade_policy("sideways")


async def owner_with_dependents(server) -> None:
    """ConfigMap "owner" and its dependents "child-a" and "child-b"."""
    async with Client.connect(server.address) as api:
        owner = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
        owner.metadata.name = "owner"
        owner = await api.create(owner)
        names = ["child-a", "child-b"]
        for name in names:
            child = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
            child.metadata.name = name
            child.metadata.owner_references.append(meta_pb2.OwnerReference(
                api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid,
                block_owner_deletion=True, controller=name == "child-a"))
            await api.create(child)


async def config_maps(server) -> dict[str, list[str]]:
    """Every ConfigMap's name, with the uids of its owners."""
    async with Client.connect(server.address) as api:
        items, _ = await api.list("ConfigMap", namespace="default")
        return {cm.metadata.name: [ref.uid for ref in cm.metadata.owner_references] for cm in items}


async def eventually_equal(probe, expected, *, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while (got := await probe()) != expected:
        assert time.monotonic() < deadline, f"still {got!r}, expected {expected!r}"
        await asyncio.sleep(0.05)


async def test_default_cascade_collects_the_dependents(capsys, control_server):
    await owner_with_dependents(control_server)
    result = await asyncio.to_thread(sampan, capsys, control_server, "delete", "configmap", "owner")
    assert (result.code, result.out) == (0, 'configmap "owner" deleted\n')
    await eventually_equal(lambda: config_maps(control_server), {})


async def test_foreground_cascade_returns_once_owner_and_dependents_are_gone(capsys, control_server):
    await owner_with_dependents(control_server)
    result = await asyncio.to_thread(sampan, capsys, control_server, "delete", "cm", "owner", "--cascade=foreground")
    assert (result.code, result.out, result.err) == (0, 'configmap "owner" deleted\n', "")
    assert await config_maps(control_server) == {}


async def test_orphan_cascade_keeps_the_dependents_without_their_owner(capsys, control_server):
    await owner_with_dependents(control_server)
    result = await asyncio.to_thread(sampan, capsys, control_server, "delete", "cm", "owner", "--cascade=orphan")
    assert (result.code, result.out) == (0, 'configmap "owner" deleted\n')
    assert await config_maps(control_server) == {"child-a": [], "child-b": []}


async def test_cascade_false_orphans_with_a_warning(capsys, control_server):
    await owner_with_dependents(control_server)
    result = await asyncio.to_thread(sampan, capsys, control_server, "delete", "cm", "owner", "--cascade=false")
    assert result.code == 0
    assert result.err == ("warning: --cascade=false is deprecated (boolean value) and can be replaced with "
                          "--cascade=orphan.\n")
    assert await config_maps(control_server) == {"child-a": [], "child-b": []}


async def test_a_bare_cascade_flag_is_background(capsys, control_server):
    await owner_with_dependents(control_server)
    result = await asyncio.to_thread(sampan, capsys, control_server, "delete", "cm", "owner", "--cascade")
    assert (result.code, result.err) == (0, "")
    await eventually_equal(lambda: config_maps(control_server), {})
