"""A client given several control endpoints (HA replicas) moves to the next when one dies."""

from __future__ import annotations

import pytest

from control.api import errors
from control.client import Client, ClientCredentials, grpc_target
from control.service import ControlConfig, ControlService, TLSConfig
from protos.api.v1 import core_pb2


def _config_map(name: str) -> core_pb2.ConfigMap:
    obj = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap", data={"k": "v"})
    obj.metadata.name, obj.metadata.namespace = name, "default"
    return obj


async def _replica(tmp_path, index: int, tls: TLSConfig | None) -> ControlService:
    svc = ControlService(ControlConfig(
        store_url=f"sqlite:///{tmp_path}/state-{index}.db", listen="127.0.0.1:0", metrics_listen="",
        shutdown_grace=0.1, leader_election=None, tls=tls))
    await svc.start()
    return svc


@pytest.mark.parametrize("secure", [False, True], ids=["plaintext", "mutual-tls"])
async def test_calls_go_to_the_next_endpoint_when_the_first_replica_dies(tmp_path, secure):
    # Two replicas with stores of their own, so the answer tells which one served it.
    tls = TLSConfig(pki_dir=tmp_path / "pki") if secure else None
    first = await _replica(tmp_path, 1, tls)
    second = await _replica(tmp_path, 2, tls)
    credentials = ClientCredentials()
    if secure:
        admin = first.pki.load("admin")
        credentials = ClientCredentials(ca=first.pki.ca_pem, cert=admin.cert_pem, key=admin.key_pem)
    try:
        async with Client.connect(f"127.0.0.1:{first.port},127.0.0.1:{second.port}",
                                  credentials=credentials, timeout=10) as api:
            await api.create(_config_map("on-the-first"))
            await first.stop()
            for _ in range(50):  # the failed call that reveals the dead replica may be answered UNAVAILABLE
                try:
                    await api.get("ConfigMap", "on-the-first", namespace="default")
                except errors.UnavailableError:
                    continue
                except errors.NotFoundError:
                    break  # the second replica answered: it never had the object
                raise AssertionError("the first replica answered after it stopped")
            else:
                raise AssertionError("the client never reached the second replica")
            created = await api.create(_config_map("on-the-second"))
            assert created.metadata.uid
    finally:
        await second.stop()


def test_several_endpoints_must_be_addresses_with_ports():
    assert grpc_target("10.0.0.1:6443")[0] == "10.0.0.1:6443"
    assert grpc_target("10.0.0.1:6443,10.0.0.2:6443")[0] == "ipv4:10.0.0.1:6443,10.0.0.2:6443"
    with pytest.raises(ValueError, match="must be IP:PORT"):
        grpc_target("control-1:6443,control-2:6443")
    with pytest.raises(ValueError, match="must be IP:PORT each, not \"10.0.0.2\""):
        grpc_target("10.0.0.1:6443,10.0.0.2")
