"""Fixtures shared across the test suite: real components, started once."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.support.components import require_binary
from tests.support.etcd import EtcdCluster, running_etcd


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
