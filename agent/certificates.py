"""The node's certificates: joining the cluster with a token, and renewing them.

**Join** (Kubernetes' TLS bootstrap; ``sampan agent --token K10<hash>::ID.SECRET``),
when the PKI directory (control/auth/node_pki.py) has no valid client
certificate:

1. ``fetch_server_ca``: a TLS handshake with the server *without verifying
   it* reads the certificates it presents (the API sends its CA after its own
   certificate). The CA whose hash (``canonical_ca_hash``) is the token's is
   the one to trust, and the server's certificate must be signed by it. When
   none matches, ``JoinError``: nothing was sent but a handshake, and the
   token never leaves the machine.
2. Trusting that CA, the agent sends a CertificateSigningRequest for
   ``CN=system:node:NAME, O=system:nodes`` with the bootstrap token as its
   bearer token, and waits for the approver and signer to issue it; a wrong,
   expired or deleted token is refused UNAUTHENTICATED.
3. ``ca.crt``, ``client.key`` and ``client.crt`` are written (atomically).
   The agent then runs as the node, registering its Node with that identity.
   Its serving certificate needs its Node's addresses, so until the rotator
   obtains it (right after registration) a self-signed one stands in, which
   the control service does not trust (logs and exec wait for the real one).

**Rotation** (``CertificateRotator``): the client and serving certificates
are renewed once ``renew_fraction`` of their lifetime has passed (counted
from when this node got them: the file's time, since certificates are
back-dated for clock skew), by a new CSR signed with the node's current
identity. The files are replaced atomically; the running client switches
with ``Client.use_credentials`` (watches move to the new channel, pods are
not touched); the agent's server picks the new serving certificate up at the
next handshake (control/auth/tls.py); the proxy notices the new files
(control/auth/credential_files.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import ssl
import tempfile
from pathlib import Path
from typing import Awaitable, Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from control.api import certificates as csrs, errors
from control.auth.anonymous import anonymous_client
from control.auth.bootstrap import JoinToken, canonical_ca_hash
from control.auth.identity import NODE_PREFIX, NODES_GROUP
from control.auth.node_pki import CLIENT, SERVING, NodePKI
from control.auth.pki import CertKey, create_ca, issue, load_cert, make_csr, verify_signed_by
from control.client import Client, ClientCredentials

log = logging.getLogger(__name__)

DEFAULT_RENEW_FRACTION = 0.75
# The stand-in serving certificate's issuer: it proves nothing, and nobody trusts it.
PLACEHOLDER_ISSUER = "sampan-agent-placeholder"


class JoinError(ValueError):
    """Joining failed, and why (said so that an operator knows what to do)."""


# ---------------------------------------------------------------- the server's CA


def _split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise JoinError(f"--server: expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


def _der_chain(tls: ssl.SSLSocket) -> list[bytes]:
    """Every certificate the peer sent, unverified, as DER."""
    chain = tls.get_unverified_chain() if hasattr(tls, "get_unverified_chain") else \
        tls._sslobj.get_unverified_chain()  # Python < 3.13: the same, not yet public
    return [c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER) for c in chain or ()]


def presented_certificates(server: str, *, timeout: float = 10.0) -> list[x509.Certificate]:
    """The certificates server presents in a TLS handshake that verifies nothing. Nothing but the
    handshake is sent (an anonymous client certificate included, which the API's server asks for).
    Of several endpoints (HA replicas, comma-separated), the first that answers."""
    endpoints = [part.strip() for part in server.split(",") if part.strip()]
    if len(endpoints) > 1:
        failures = []
        for endpoint in endpoints:
            try:
                return presented_certificates(endpoint, timeout=timeout)
            except JoinError as err:
                failures.append(str(err))
        raise JoinError("; ".join(failures))
    host, port = _split_host_port(server)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    anonymous = anonymous_client()
    with tempfile.TemporaryDirectory() as scratch:
        cert_file, key_file = Path(scratch, "anonymous.crt"), Path(scratch, "anonymous.key")
        cert_file.write_bytes(anonymous.cert_pem)
        key_file.write_bytes(anonymous.key_pem)
        context.load_cert_chain(cert_file, key_file)
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host or None) as tls:
                chain = _der_chain(tls)
    except (OSError, ssl.SSLError) as err:
        raise JoinError(f"cannot reach the control service at {server} over TLS: {err}") from None
    return [x509.load_der_x509_certificate(der) for der in chain]


def fetch_server_ca(server: str, expected_hash: str, *, timeout: float = 10.0) -> bytes:
    """The PEM of the CA server presents whose hash is expected_hash, having checked that it
    signed the server's certificate; JoinError (before anything else is sent) otherwise."""
    chain = presented_certificates(server, timeout=timeout)
    if not chain:
        raise JoinError(f"the control service at {server} presented no certificate")
    seen = []
    for cert in chain:
        pem = cert.public_bytes(serialization.Encoding.PEM)
        digest = canonical_ca_hash(pem)
        seen.append(digest)
        if digest == expected_hash:
            if not verify_signed_by(chain[0], cert):
                raise JoinError(f"the control service at {server} presents the token's CA but a certificate that "
                                "CA did not sign: refusing to send the token")
            return pem
    raise JoinError(
        f"the control service at {server} does not present the CA the token names (token: sha256 "
        f"{expected_hash[:16]}..., presented: {', '.join(h[:16] + '...' for h in seen)}): it is not the cluster "
        "the token was made for (or someone is in between); the token was not sent")


# ---------------------------------------------------------------- certificate signing requests


async def request_certificate(api: Client, *, node_name: str, signer: str, usages: Sequence[str],
                              server_names: Sequence[str] = (), timeout: float = 120.0,
                              poll: float = 0.5) -> CertKey:
    """Ask for a certificate for CN=system:node:NAME, O=system:nodes and wait until it is issued;
    JoinError when it is denied or fails (or the wait times out)."""
    request, key = make_csr(common_name=NODE_PREFIX + node_name, organizations=[NODES_GROUP],
                            server_names=server_names)
    kind = "serving" if signer == csrs.NODE_SERVING_SIGNER else "client"
    csr = csrs.new_request(generate_name=f"node-{kind}-{node_name}-"[:200], request=request,
                           signer_name=signer, usages=usages)
    created = await api.create(csr)
    name = created.metadata.name
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        current = await api.get("CertificateSigningRequest", name)
        if current.status.certificate:
            return CertKey(load_cert(current.status.certificate), key)
        for refused in (csrs.DENIED, csrs.FAILED):
            cond = csrs.condition(current, refused)
            if cond is not None:
                raise JoinError(f"certificate signing request {name} was {refused.lower()}: "
                                f"{cond.reason}: {cond.message}")
        if loop.time() > deadline:
            raise JoinError(f"certificate signing request {name} was not issued within {timeout:g}s "
                            f"({csrs.state(current)})")
        await asyncio.sleep(poll)


def valid_certificate(pki: NodePKI, name: str, *, node_name: str, now: dt.datetime | None = None) -> bool:
    """Whether NAME's certificate is there, readable, this node's, signed by ca.crt and unexpired."""
    try:
        ca = load_cert(pki.ca_path.read_bytes())
        cert = load_cert(pki.cert_path(name).read_bytes())
        if not pki.key_path(name).is_file():
            return False
    except (OSError, ValueError):
        return False
    now = now or dt.datetime.now(dt.timezone.utc)
    common_name = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return (bool(common_name) and common_name[0].value == NODE_PREFIX + node_name
            and verify_signed_by(cert, ca) and cert.not_valid_after_utc > now)


def write_placeholder_serving(pki: NodePKI, *, node_name: str) -> None:
    """A self-signed serving certificate, so the agent's server can start before the real one."""
    stand_in = create_ca(common_name=PLACEHOLDER_ISSUER, validity=dt.timedelta(days=1))
    pki.write(SERVING, issue(stand_in, common_name=NODE_PREFIX + node_name, organizations=[NODES_GROUP],
                             validity=dt.timedelta(days=1), client=False, server=True,
                             server_names=[node_name, "localhost"]))


async def join(pki: NodePKI, *, server: str, node_name: str, token: JoinToken, timeout: float = 120.0) -> None:
    """Get this node's client certificate with a bootstrap token (see the module docstring)."""
    ca_pem = await asyncio.to_thread(fetch_server_ca, server, token.ca_hash)
    log.info("the control service at %s presents the cluster CA the token names; asking for node %s's "
             "client certificate", server, node_name)
    credentials = ClientCredentials(ca=ca_pem, token=token.bearer)
    async with Client.connect(server, credentials=credentials, timeout=30.0) as api:
        try:
            pair = await request_certificate(api, node_name=node_name, signer=csrs.NODE_CLIENT_SIGNER,
                                             usages=csrs.CLIENT_USAGES, timeout=timeout)
        except errors.UnauthorizedError as err:
            raise JoinError(f"the control service refused the token: {err}") from None
        except errors.APIError as err:
            raise JoinError(f"cannot ask for a certificate: {err}") from None
    pki.write_ca(ca_pem)
    pki.write(CLIENT, pair)
    log.info("joined: client certificate for %s%s written to %s", NODE_PREFIX, node_name, pki.directory)


async def ensure_credentials(pki: NodePKI, *, server: str, node_name: str, token: JoinToken | None) -> None:
    """Join if the directory has no valid client certificate (a token needed then), and put a stand-in
    serving certificate in place when there is none."""
    if not valid_certificate(pki, CLIENT, node_name=node_name):
        if token is None:
            raise JoinError(f"--pki-dir {pki.directory} holds no valid client certificate for node {node_name}: "
                            "join with --token (sampan token create prints one)")
        await join(pki, server=server, node_name=node_name, token=token)
    if not pki.cert_path(SERVING).is_file() or not pki.key_path(SERVING).is_file():
        write_placeholder_serving(pki, node_name=node_name)


# ---------------------------------------------------------------- rotation


def renewal_due(pki: NodePKI, name: str, *, fraction: float, node_name: str) -> float:
    """Seconds until NAME's certificate is due for renewal (0: now)."""
    if not valid_certificate(pki, name, node_name=node_name):
        return 0.0
    path = pki.cert_path(name)
    cert = load_cert(path.read_bytes())
    if cert.issuer.rfc4514_string().endswith(f"CN={PLACEHOLDER_ISSUER}"):
        return 0.0
    got = max(cert.not_valid_before_utc.timestamp(), os.stat(path).st_mtime)
    due = got + fraction * (cert.not_valid_after_utc.timestamp() - got)
    return max(0.0, due - dt.datetime.now(dt.timezone.utc).timestamp())


class CertificateRotator:
    """Renews the node's client (and serving) certificate before it expires; see the module docstring."""

    def __init__(self, api: Client, pki: NodePKI, *, node_name: str, fraction: float = DEFAULT_RENEW_FRACTION,
                 server_names: Callable[[], Awaitable[Sequence[str]]] | None = None,
                 retry: float = 5.0, max_sleep: float = 3600.0) -> None:
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"the renewal point must be a fraction of the lifetime between 0 and 1, not {fraction}")
        self.api = api
        self.pki = pki
        self.node_name = node_name
        self.fraction = fraction
        self.server_names = server_names
        self.retry = retry
        self.max_sleep = max_sleep
        self.renewals = 0

    async def run(self) -> None:
        names = [CLIENT] + ([SERVING] if self.server_names is not None else [])
        while True:
            waits = {name: renewal_due(self.pki, name, fraction=self.fraction, node_name=self.node_name)
                     for name in names}
            name = min(waits, key=waits.__getitem__)
            if waits[name] > 0:
                await asyncio.sleep(min(waits[name], self.max_sleep))
                continue
            try:
                await self.renew(name)
            except (errors.APIError, JoinError) as err:
                log.warning("cannot renew the %s certificate (retrying in %gs): %s", name, self.retry, err)
                await asyncio.sleep(self.retry)

    async def renew(self, name: str) -> None:
        if name == CLIENT:
            pair = await request_certificate(self.api, node_name=self.node_name, signer=csrs.NODE_CLIENT_SIGNER,
                                             usages=csrs.CLIENT_USAGES)
            self.pki.write(CLIENT, pair)
            await self.api.use_credentials(self.pki.client_credentials())
        else:
            names = await self.server_names()
            pair = await request_certificate(self.api, node_name=self.node_name, signer=csrs.NODE_SERVING_SIGNER,
                                             usages=csrs.SERVING_USAGES, server_names=names)
            self.pki.write(SERVING, pair)
        self.renewals += 1
        log.info("renewed the node's %s certificate (serial %x, valid until %s)", name, pair.cert.serial_number,
                 pair.not_after.isoformat())

