"""Node join with a bootstrap token (TLS bootstrap), CSRs, and certificate rotation.

Against an in-process control service serving mutual TLS, with the real
agent on the process runtime: a join token is ``K10<CA hash>::ID.SECRET``;
a server presenting another CA never receives a byte after the handshake (a
plain TLS server records what it gets); a wrong, expired or deleted token is
refused UNAUTHENTICATED and no Node appears; a real join ends with the Node
Ready under its own identity; with short certificate lifetimes the agent
renews its certificates and switches its running client while its pod keeps
running in the same container.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import socket
import ssl
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509

from agent.certificates import JoinError, PLACEHOLDER_ISSUER, ensure_credentials, presented_certificates
from agent.runtime.process import ProcessRuntime
from agent.service import Agent, AgentConfig
from control.api import certificates as csrs, errors
from control.auth import bootstrap, pki
from control.auth.authenticator import Credentials
from control.auth.node_pki import CLIENT, SERVING, NodePKI
from control.client import Client, ClientCredentials
from control.client_config import write_config
from control.controllers.csr_approving import APPROVE, DENY, WAIT, decide
from control.service import ControlService
from protos.api.v1 import core_pb2
from tests.support.control import free_port
from tests.support.secure_control import secure_service
from tests.support.runtime_pods import remove_everything

CERT_VALIDITY = dt.timedelta(seconds=12)


@pytest.fixture
async def secure(tmp_path):
    # The service's own certificates live a year; what the signer issues lives CERT_VALIDITY.
    pki.ClusterPKI(tmp_path / "pki").ensure(server_names=["127.0.0.1"])
    async with secure_service(tmp_path, cert_validity=CERT_VALIDITY) as svc:
        yield svc


def _address(svc: ControlService) -> str:
    return f"127.0.0.1:{svc.port}"


@contextlib.asynccontextmanager
async def _admin(svc: ControlService):
    admin = svc.pki.load("admin")
    async with Client.connect(_address(svc), credentials=ClientCredentials(
            ca=svc.pki.ca_pem, cert=admin.cert_pem, key=admin.key_pem)) as api:
        yield api


async def _new_token(api: Client, svc: ControlService, **kwargs) -> bootstrap.JoinToken:
    token_id, secret = bootstrap.generate_token()
    await api.create(bootstrap.token_secret(token_id, secret, **kwargs))
    return bootstrap.JoinToken(bootstrap.canonical_ca_hash(svc.pki.ca_pem), token_id, secret)


def _agent_config(svc: ControlService, tmp_path: Path, node: str, token: bootstrap.JoinToken | None,
                  **kwargs) -> AgentConfig:
    return AgentConfig(server=_address(svc), node_name=node, data_dir=str(tmp_path / node), runtime="process",
                       node_ip="127.0.0.1", metrics_listen="", listen="127.0.0.1:0", pod_routes=False,
                       tls=NodePKI(tmp_path / node / "pki"), join_token=token, **kwargs)


# ------------------------------------------------------------------ tokens


def test_a_join_token_carries_the_ca_hash_and_a_bootstrap_token():
    ca = pki.create_ca()
    token_id, secret = bootstrap.generate_token()
    assert re.fullmatch(r"[a-z0-9]{6}", token_id) and re.fullmatch(r"[a-z0-9]{16}", secret)
    joined = bootstrap.JoinToken(bootstrap.canonical_ca_hash(ca.cert_pem), token_id, secret)
    assert str(joined) == f"K10{pki.ca_hash(ca.cert_pem)}::{token_id}.{secret}"
    assert bootstrap.parse_join_token(str(joined)) == joined
    assert secret not in repr(joined)
    # Another spelling of the same CA file (CRLF line ends) has the same hash.
    assert bootstrap.canonical_ca_hash(ca.cert_pem.replace(b"\n", b"\r\n")) == joined.ca_hash
    for bad in ("abcdef.0123456789abcdef", f"K10{joined.ca_hash}::ABCDEF.0123456789abcdef", "K10xyz::a.b"):
        with pytest.raises(ValueError, match="--token: expected a join token"):
            bootstrap.parse_join_token(bad)
    stored = bootstrap.token_secret(token_id, secret, ttl=dt.timedelta(hours=24))
    assert stored.metadata.name == f"bootstrap-token-{token_id}" and stored.metadata.namespace == "kube-system"
    assert stored.type == "bootstrap.kubernetes.io/token"
    assert stored.data["token-secret"] == secret.encode()
    assert stored.data["usage-bootstrap-authentication"] == b"true"
    assert not bootstrap.is_expired(stored)


# ------------------------------------------------------------------ a server with another CA


class RecordingTLSServer:
    """A TLS server with a certificate from its own CA that records every byte it receives
    after the handshake, from every connection."""

    def __init__(self, directory: Path) -> None:
        ca = pki.create_ca(common_name="impostor-ca")
        leaf = pki.issue(ca, common_name="impostor", client=False, server=True, server_names=["127.0.0.1"])
        (directory / "chain.crt").write_bytes(leaf.cert_pem + ca.cert_pem)
        (directory / "server.key").write_bytes(leaf.key_pem)
        self.ca_pem = ca.cert_pem
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(directory / "chain.crt", directory / "server.key")
        self.context.set_alpn_protocols(["h2"])
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.handshakes = 0
        self.received = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(raw, server_side=True) as tls:
                    self.handshakes += 1
                    tls.settimeout(2.0)
                    while chunk := tls.recv(65536):
                        self.received += chunk
            except (OSError, ssl.SSLError):
                pass

    def close(self) -> None:
        self.sock.close()


async def test_a_server_presenting_another_ca_never_receives_the_token(tmp_path, secure):
    impostor = RecordingTLSServer(tmp_path)
    try:
        async with _admin(secure) as api:
            token = await _new_token(api, secure)
        node_pki = NodePKI(tmp_path / "node-pki")
        with pytest.raises(JoinError, match="does not present the CA the token names") as refused:
            await ensure_credentials(node_pki, server=f"127.0.0.1:{impostor.port}", node_name="n1", token=token)
        assert "the token was not sent" in str(refused.value)
        await asyncio.sleep(0.3)  # let the server's thread read whatever might have come
        assert impostor.handshakes >= 1
        assert impostor.received == b""  # not a byte after the handshake: no request, no token
        assert not node_pki.directory.exists()  # nothing written
        # The recorder does record: a client that sends something is heard.
        def send() -> None:
            context = ssl.create_default_context(cadata=impostor.ca_pem.decode())
            with socket.create_connection(("127.0.0.1", impostor.port)) as raw:
                with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    tls.sendall(b"ping " + token.bearer.encode())

        await asyncio.to_thread(send)
        await asyncio.sleep(0.3)
        assert impostor.received == b"ping " + token.bearer.encode()
    finally:
        impostor.close()


async def test_the_api_presents_its_ca_after_its_certificate(secure):
    chain = await asyncio.to_thread(presented_certificates, _address(secure))
    assert [c.subject for c in chain] == [secure.pki.load("server").cert.subject, secure.pki.ca.cert.subject]


async def test_of_several_endpoints_the_first_that_answers_presents_the_ca(secure):
    dead = f"127.0.0.1:{free_port()}"
    chain = await asyncio.to_thread(presented_certificates, f"{dead},{_address(secure)}")
    assert chain[-1].subject == secure.pki.ca.cert.subject
    with pytest.raises(JoinError, match="cannot reach the control service at 127.0.0.1"):
        await asyncio.to_thread(presented_certificates, f"{dead},{dead}")


# ------------------------------------------------------------------ refused tokens


async def _refused_join(secure, tmp_path, node: str, token: bootstrap.JoinToken, *reasons: str) -> None:
    agent = Agent(_agent_config(secure, tmp_path, node, token))
    with pytest.raises(JoinError, match="refused the token") as refused:
        await agent.start()
    assert any(reason in str(refused.value) for reason in reasons), refused.value
    assert not (tmp_path / node / "pki" / "client.crt").exists()


async def test_a_wrong_expired_or_deleted_token_is_refused_and_no_node_appears(secure, tmp_path):
    async with _admin(secure) as api:
        good = await _new_token(api, secure)
        wrong = bootstrap.JoinToken(good.ca_hash, good.token_id, "0" * 16)
        expired = await _new_token(api, secure, ttl=dt.timedelta(hours=1),
                                   now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2))
        deleted = await _new_token(api, secure)
        await api.delete("Secret", f"bootstrap-token-{deleted.token_id}", namespace="kube-system")
        await _refused_join(secure, tmp_path, "wrong", wrong, "the secret does not match")
        # Expired: refused as such, or as gone once the token cleaner has deleted it.
        await _refused_join(secure, tmp_path, "expired", expired, "has expired", "does not exist")
        await _refused_join(secure, tmp_path, "deleted", deleted, "does not exist")
        nodes, _ = await api.list("Node")
        assert [n.metadata.name for n in nodes] == []
        requests, _ = await api.list("CertificateSigningRequest")
        assert requests == []
        # The token cleaner deletes the expired token's Secret, and only that one.
        async def cleaned():
            left, _ = await api.list("Secret", namespace="kube-system")
            return {s.metadata.name for s in left} == {f"bootstrap-token-{good.token_id}"}
        await _eventually(cleaned, what="the expired token to be deleted")


class _Secrets:
    def __init__(self, *secrets) -> None:
        self.secrets = {s.metadata.name: s for s in secrets}

    async def get(self, kind: str, *, namespace: str, name: str):
        assert (kind, namespace) == ("Secret", "kube-system")
        return self.secrets.get(name)


async def test_the_bootstrap_token_authenticator_names_why_it_refuses():
    now = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    valid = bootstrap.token_secret("abcdef", "0123456789abcdef", ttl=dt.timedelta(hours=1), now=now)
    unusable = bootstrap.token_secret("ghijkl", "0123456789abcdef", ttl=None)
    del unusable.data["usage-bootstrap-authentication"]
    authenticator = bootstrap.BootstrapTokenAuthenticator(_Secrets(valid, unusable), clock=lambda: now)
    user = await authenticator.authenticate(Credentials(bearer_token="abcdef.0123456789abcdef"))
    assert user.name == "system:bootstrap:abcdef" and "system:bootstrappers" in user.groups
    assert await authenticator.authenticate(Credentials(bearer_token="not-a-bootstrap-token")) is None
    for token, reason in (("abcdef.0000000000000000", "does not match"), ("zzzzzz.0123456789abcdef", "does not exist"),
                          ("ghijkl.0123456789abcdef", "may not be used for authentication")):
        with pytest.raises(errors.UnauthorizedError, match=reason):
            await authenticator.authenticate(Credentials(bearer_token=token))
    later = bootstrap.BootstrapTokenAuthenticator(_Secrets(valid), clock=lambda: now + dt.timedelta(hours=2))
    with pytest.raises(errors.UnauthorizedError, match="has expired"):
        await later.authenticate(Credentials(bearer_token="abcdef.0123456789abcdef"))


async def test_a_bootstrapper_may_only_ask_for_certificates_and_cannot_choose_who_it_is(secure):
    async with _admin(secure) as api:
        token = await _new_token(api, secure)
    request, _ = pki.make_csr(common_name="system:node:sneaky", organizations=["system:nodes"])
    csr = csrs.new_request(name="sneaky", request=request, signer_name=csrs.NODE_CLIENT_SIGNER,
                           usages=csrs.CLIENT_USAGES)
    csr.spec.username = "system:node:sneaky"
    csr.spec.groups.append("system:masters")
    async with Client.connect(_address(secure), credentials=ClientCredentials(
            ca=secure.pki.ca_pem, token=token.bearer)) as bootstrapper:
        created = await bootstrapper.create(csr)
        assert created.spec.username == f"system:bootstrap:{token.token_id}"
        assert list(created.spec.groups) == ["system:bootstrappers", "system:authenticated"]
        with pytest.raises(errors.ForbiddenError, match='cannot list resource "pods"'):
            await bootstrapper.list("Pod", namespace="default")
        with pytest.raises(errors.ForbiddenError, match='cannot get resource "secrets"'):
            await bootstrapper.get("Secret", f"bootstrap-token-{token.token_id}", namespace="kube-system")
    async with Client.connect(_address(secure), credentials=ClientCredentials(ca=secure.pki.ca_pem)) as nobody:
        with pytest.raises(errors.UnauthorizedError):
            await nobody.list("CertificateSigningRequest")


def _csr(common_name: str, organizations=("system:nodes",), *, signer=csrs.NODE_CLIENT_SIGNER,
         usages=csrs.CLIENT_USAGES, names=(), username: str, groups=()):
    request, _ = pki.make_csr(common_name=common_name, organizations=list(organizations), server_names=names)
    csr = csrs.new_request(name="x", request=request, signer_name=signer, usages=usages)
    csr.spec.username = username
    csr.spec.groups.extend(groups)
    return csr


def test_the_approver_approves_only_what_a_node_may_have():
    boot = dict(username="system:bootstrap:abcdef", groups=["system:bootstrappers"])
    node_a = dict(username="system:node:a", groups=["system:nodes"])
    node = core_pb2.Node()
    node.metadata.name = "a"
    node.status.addresses.add(type="InternalIP", address="10.0.0.5")
    assert decide(_csr("system:node:a", **boot))[0] == APPROVE
    assert decide(_csr("system:node:a", **node_a))[0] == APPROVE
    verdict, reason, message = decide(_csr("system:node:b", **node_a))
    assert (verdict, reason) == (DENY, "NotAllowed") and "node \"b\"" in message
    assert decide(_csr("alice", ("developers",), **boot))[:2] == (DENY, "NotANodeCertificate")
    assert decide(_csr("system:node:a", ("system:nodes", "system:masters"), **boot))[0] == DENY
    serving = dict(signer=csrs.NODE_SERVING_SIGNER, usages=csrs.SERVING_USAGES)
    assert decide(_csr("system:node:a", names=["a", "10.0.0.5"], **serving, **node_a), node)[0] == APPROVE
    assert decide(_csr("system:node:a", names=["a"], **serving, **node_a), None)[0] == WAIT
    verdict, reason, message = decide(_csr("system:node:a", names=["a", "10.9.9.9"], **serving, **node_a), node)
    assert (verdict, reason) == (DENY, "UnknownNames") and "10.9.9.9" in message
    assert decide(_csr("system:node:a", names=["a"], **serving, **boot), node)[0] == DENY


# ------------------------------------------------------------------ join and rotation


async def _eventually(check, *, timeout: float = 30.0, what: str = ""):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


def _ready(node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


async def test_a_node_joins_then_renews_its_certificates_without_disturbing_its_pod(secure, tmp_path):
    async with _admin(secure) as api:
        token = await _new_token(api, secure, description="test join")
        config = _agent_config(secure, tmp_path, "joined", token, cert_renew_fraction=0.5,
                               lease_interval=1.0, status_interval=1.0)
        agent = Agent(config)
        try:
            await agent.start()
            client_pem = config.tls.cert_path(CLIENT).read_bytes()
            cert = pki.load_cert(client_pem)
            assert pki.subject_names(cert) == ("system:node:joined", ("system:nodes",))
            assert pki.verify_signed_by(cert, secure.pki.ca.cert)
            assert config.tls.ca_path.read_bytes() == secure.pki.ca_pem
            first_serial = cert.serial_number

            async def ready():
                with contextlib.suppress(errors.NotFoundError):
                    return _ready(await api.get("Node", "joined"))
            await _eventually(ready, what="the joined Node to be Ready")
            requests, _ = await api.list("CertificateSigningRequest")
            joined = [r for r in requests if r.spec.username == f"system:bootstrap:{token.token_id}"]
            assert len(joined) == 1 and csrs.state(joined[0]) == "Approved,Issued"

            pod = core_pb2.Pod(api_version="v1", kind="Pod")
            pod.metadata.name, pod.metadata.namespace = "sleeper", "default"
            pod.spec.node_name = "joined"
            pod.spec.containers.add(name="main", image="busybox", command=["sh", "-c", "sleep 3600"])
            await api.create(pod)

            async def running():
                current = await api.get("Pod", "sleeper", namespace="default")
                statuses = current.status.container_statuses
                return statuses[0].container_id if statuses and statuses[0].state.HasField("running") else None
            container = await _eventually(running, what="the pod to run")

            # The serving certificate is requested once the Node exists, then both are renewed.
            async def rotated():
                serving = pki.load_cert(config.tls.cert_path(SERVING).read_bytes())
                current = pki.load_cert(agent._api.credentials.cert)
                return (current.serial_number != first_serial and agent.rotator.renewals >= 3
                        and PLACEHOLDER_ISSUER not in serving.issuer.rfc4514_string())
            await _eventually(rotated, timeout=40, what="the client and serving certificates to be renewed")
            renewed = pki.load_cert(agent._api.credentials.cert)
            assert renewed.serial_number == pki.load_cert(config.tls.cert_path(CLIENT).read_bytes()).serial_number
            assert pki.subject_names(renewed) == ("system:node:joined", ("system:nodes",))
            serving = pki.load_cert(config.tls.cert_path(SERVING).read_bytes())
            names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert "127.0.0.1" in [str(n.value) for n in names]
            renewals = [r for r in (await api.list("CertificateSigningRequest"))[0]
                        if r.spec.username == "system:node:joined"]
            assert renewals and all(csrs.state(r) == "Approved,Issued" for r in renewals)

            # Still the node, still heard from with the renewed certificate, the pod untouched.
            lease_before = (await api.get("Lease", "joined", namespace="kube-node-lease")).spec.renew_time

            async def heartbeat():
                lease = await api.get("Lease", "joined", namespace="kube-node-lease")
                return lease.spec.renew_time != lease_before
            await _eventually(heartbeat, what="a heartbeat after the renewal")
            assert _ready(await agent._api.get("Node", "joined"))
            after = await api.get("Pod", "sleeper", namespace="default")
            assert after.status.container_statuses[0].container_id == container
            assert after.status.container_statuses[0].restart_count == 0
        finally:
            with contextlib.suppress(Exception):
                await agent.stop()
            await remove_everything(ProcessRuntime(str(tmp_path / "joined" / "process-runtime")))


async def _sampan(*args: str, config: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "control.cli.main", "--config", str(config), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    return process.returncode, out.decode(), err.decode()


async def test_sampan_token_create_list_and_delete(secure, tmp_path):
    admin = secure.pki.load("admin")
    config = write_config(_address(secure), path=tmp_path / "admin.config", ca=secure.pki.ca_pem,
                          cert=admin.cert_pem, key=admin.key_pem)
    code, out, err = await _sampan("token", "create", "--ttl", "2h", "--description", "rack 4", config=config)
    assert code == 0, err
    token = bootstrap.parse_join_token(out.strip())
    assert token.ca_hash == pki.ca_hash(secure.pki.ca_pem)
    code, out, err = await _sampan("token", "list", config=config)
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split() == ["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION"]
    assert row.split()[0] == token.token_id and row.split()[1] in ("2h", "119m", "120m")
    assert row.split()[3:] == ["authentication", "rack", "4"]
    assert token.secret not in out
    code, out, err = await _sampan("token", "delete", token.token_id, config=config)
    assert (code, out.strip()) == (0, f'bootstrap token "{token.token_id}" deleted'), err
    code, out, err = await _sampan("token", "delete", token.token_id, config=config)
    assert code == 1 and "not found" in err
    code, out, err = await _sampan("token", "create", "--ttl", "soon", config=config)
    assert code == 1 and "--ttl" in err
