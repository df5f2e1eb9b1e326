"""gRPC TLS credentials from the cluster's certificates.

The API server and the agents' servers require a client certificate signed by
the cluster CA (mutual TLS): grpc itself refuses a peer with no certificate,
one from another CA or an expired one during the handshake, before any
request is read. Servers read their certificate and key from files at every
new handshake when the files changed, so a certificate renewed on disk
(``sampan certs renew``, an agent's rotation) is served without a restart;
connections already open keep theirs.

The API's server also presents the CA after its certificate (a joining
agent checks it against its token before it sends anything) and lets
clients with an anonymous certificate through the handshake: they prove
themselves with a bearer token (control/auth/anonymous.py).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import grpc

from control.auth.anonymous import anonymous_ca_pem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TLSFiles:
    """Where a component's trust anchor, certificate and key are."""

    ca: Path
    cert: Path
    key: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        return self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()

    def stamp(self) -> tuple[float, ...]:
        return tuple(os.stat(path).st_mtime_ns for path in (self.ca, self.cert, self.key))


def server_credentials(files: TLSFiles, *, require_client_certificate: bool = True,
                       send_ca: bool = False, accept_anonymous: bool = False) -> grpc.ServerCredentials:
    """Server credentials that pick up renewed files at the next handshake.

    send_ca: present the CA after the certificate, so a joining agent can
    compare it with its token's hash (the API's server); accept_anonymous:
    let clients that prove themselves with a token through the handshake
    (control/auth/anonymous.py)."""
    ca, cert, key = files.read()
    state = {"stamp": files.stamp()}

    def configuration(ca: bytes, cert: bytes, key: bytes):
        chain = cert.rstrip(b"\n") + b"\n" + ca if send_ca else cert
        client_cas = ca.rstrip(b"\n") + b"\n" + anonymous_ca_pem() if accept_anonymous else ca
        return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=client_cas)

    def fetch():
        try:
            stamp = files.stamp()
            if stamp == state["stamp"]:
                return None
            renewed = configuration(*files.read())
        except OSError as err:  # half-written or removed: keep serving what we have
            log.warning("cannot reload TLS files (%s); keeping the current certificate", err)
            return None
        state["stamp"] = stamp
        log.info("serving the renewed certificate %s", files.cert)
        return renewed

    return grpc.dynamic_ssl_server_credentials(
        configuration(ca, cert, key), fetch, require_client_authentication=require_client_certificate)


def channel_credentials(*, ca: bytes, cert: bytes | None = None, key: bytes | None = None) -> grpc.ChannelCredentials:
    """Client credentials: trust ca; present cert/key when given."""
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
