"""An in-process control service on a fresh store, and a client for it.

``service``/``api`` use the embedded SQLite store; ``any_service``/``any_api``
run the same test once per backend, on SQLite and on a private etcd started
for the test.
"""

from __future__ import annotations

import pytest

from control.client import Client
from control.service import ControlConfig, ControlService
from tests.support.components import require_binary
from tests.support.etcd import running_etcd


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
