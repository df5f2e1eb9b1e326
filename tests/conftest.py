"""Fixtures shared across the test suite: real components started by the tests.

- ``etcd_cluster``/``etcd_endpoint``: one private etcd for the session.
- ``service``/``api``: an in-process control service on a fresh SQLite store
  and a client for it; ``any_service``/``any_api`` run a test once per store
  backend (SQLite, and a private etcd started for the test).
- ``control_server``: the control service as a real subprocess.
- ``sampan``: run the ``sampan`` CLI as a process against ``service``; its
  exit code, stdout and stderr.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Iterator

import pytest

from control.client import Client
from control.service import ControlConfig, ControlService
from tests.support.components import require_binary
from tests.support.etcd import EtcdCluster, running_etcd

pytest_plugins = ["tests.support.watch_jitter"]


@pytest.fixture(scope="session")
def etcd_cluster() -> Iterator[EtcdCluster]:
    """One private single-member etcd for the whole session. Tests share it, so
    each must keep to its own key prefix."""
    binary = require_binary("etcd", package="etcd-server")
    with running_etcd(binary=binary) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def etcd_endpoint(etcd_cluster: EtcdCluster) -> str:
    return etcd_cluster.endpoints[0]


@pytest.fixture
def control_server(tmp_path):
    """A real control service process on an embedded SQLite store, killed afterwards."""
    from tests.support.control import ControlServer

    server = ControlServer(tmp_path / "control").start()
    yield server
    server.kill()


async def _started(store_url: str) -> ControlService:
    svc = ControlService(ControlConfig(
        store_url=store_url, listen="127.0.0.1:0", metrics_listen="", shutdown_grace=0.5))
    await svc.start()
    return svc


@pytest.fixture
async def service(tmp_path):
    svc = await _started(f"sqlite:///{tmp_path}/state.db")
    yield svc
    await svc.stop()


@pytest.fixture
async def api(service):
    async with Client.connect(f"127.0.0.1:{service.port}") as client:
        yield client


@pytest.fixture(params=["sqlite", "etcd"])
async def any_service(request, tmp_path):
    if request.param == "sqlite":
        svc = await _started(f"sqlite:///{tmp_path}/state.db")
        yield svc
        await svc.stop()
        return
    binary = require_binary("etcd", package="etcd-server")
    with running_etcd(binary=binary) as cluster:
        svc = await _started("etcd://" + ",".join(cluster.endpoints))
        yield svc
        await svc.stop()


@pytest.fixture
async def any_api(any_service):
    async with Client.connect(f"127.0.0.1:{any_service.port}") as client:
        yield client


@pytest.fixture
def sampan(service):
    async def run(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "control.cli.main", "--server", f"127.0.0.1:{service.port}", *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
        return process.returncode, stdout.decode(), stderr.decode()

    return run
