"""The agent's gRPC server with TLS: mutual TLS with the node's serving
certificate, and only the control service (a certificate in system:masters)
as a caller. A node's own certificate, a user's, or one from another CA is
refused; a caller without a certificate does not get past the handshake."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import grpc
import pytest

from agent.pod_containers import APIPodLookup
from agent.runtime.process import ProcessRuntime
from agent.server import AgentServer, AgentServicer
from control.auth import pki
from control.auth.identity import CONTROL_PLANE_USER, SYSTEM_MASTERS
from control.auth.node_pki import CLIENT, SERVING, NodePKI, issue_node
from control.client import Client
from protos.agent.v1 import agent_pb2, agent_pb2_grpc
from tests.support.runtime_pods import NODE


@pytest.fixture
def cluster(tmp_path: Path) -> pki.ClusterPKI:
    cluster = pki.ClusterPKI(tmp_path / "pki")
    cluster.ensure()
    return cluster


@pytest.fixture
def node_pki(tmp_path: Path, cluster: pki.ClusterPKI) -> NodePKI:
    node = NodePKI(tmp_path / "node-pki")
    issue_node(cluster, node, node_name=NODE, addresses=["127.0.0.1"])
    return node


@pytest.fixture
async def agent_port(tmp_path: Path, api: Client, node_pki: NodePKI) -> AsyncIterator[int]:
    runtime = ProcessRuntime(str(tmp_path / "runtime"))
    server = AgentServer(AgentServicer(runtime, APIPodLookup(api, NODE)), listen="127.0.0.1:0",
                         tls=node_pki.files(SERVING))
    port = await server.start()
    yield port
    await server.stop(0)
    await runtime.close()


async def _stats(port: int, *, ca: bytes, cert: bytes | None = None, key: bytes | None = None):
    credentials = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        return await agent_pb2_grpc.AgentStub(channel).Stats(agent_pb2.StatsRequest(), timeout=10)


async def test_the_control_service_certificate_is_served(agent_port, cluster):
    control = pki.issue(cluster.ca, common_name=CONTROL_PLANE_USER, organizations=[SYSTEM_MASTERS])
    answer = await _stats(agent_port, ca=cluster.ca_pem, cert=control.cert_pem, key=control.key_pem)
    assert isinstance(answer, agent_pb2.StatsResponse)


async def test_a_nodes_own_certificate_is_refused_permission_denied(agent_port, node_pki):
    ca, cert, key = node_pki.files(CLIENT).read()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _stats(agent_port, ca=ca, cert=cert, key=key)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert 'User "system:node:' in refused.value.details() and "system:masters" in refused.value.details()


async def test_a_user_certificate_is_refused_permission_denied(agent_port, cluster):
    alice = pki.issue(cluster.ca, common_name="alice", organizations=["developers"])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _stats(agent_port, ca=cluster.ca_pem, cert=alice.cert_pem, key=alice.key_pem)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_no_certificate_or_another_cas_is_refused_in_the_handshake(agent_port, cluster):
    with pytest.raises(grpc.aio.AioRpcError) as without:
        await _stats(agent_port, ca=cluster.ca_pem)
    other = pki.create_ca(common_name="another-ca")
    stranger = pki.issue(other, common_name=CONTROL_PLANE_USER, organizations=[SYSTEM_MASTERS])
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await _stats(agent_port, ca=cluster.ca_pem, cert=stranger.cert_pem, key=stranger.key_pem)
    assert {without.value.code(), foreign.value.code()} <= {grpc.StatusCode.UNAVAILABLE,
                                                            grpc.StatusCode.UNAUTHENTICATED}


async def test_the_serving_certificate_names_the_nodes_addresses(node_pki):
    serving = pki.load_cert(node_pki.cert_path(SERVING).read_bytes())
    names = [str(name.value) for name in serving.extensions.get_extension_for_class(
        pki.x509.SubjectAlternativeName).value]
    assert "127.0.0.1" in names and NODE in names
    assert pki.subject_names(serving) == (f"system:node:{NODE}", ("system:nodes",))
