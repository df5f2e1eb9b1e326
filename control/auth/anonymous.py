"""Anonymous client certificates: TLS for callers that prove who they are with a token.

The API requires a client certificate at the TLS handshake (control/auth/tls.py),
and grpc's Python servers cannot ask for one without requiring it. Yet some
callers have no certificate yet and prove themselves with a bearer token: an
agent joining with a bootstrap token, a pod with its service account token.
They present an *anonymous* certificate instead, as a Kubernetes client that
sends none would.

The anonymous CA's key is derived from a fixed, public seed, so every client
can make such a certificate and anyone could: it proves nothing. The API's
server trusts this CA besides the cluster's for the handshake only; the
certificate authenticator (certificates.py) takes no identity from a
certificate this CA issued, so the request stands on its bearer token or is
refused UNAUTHENTICATED. A forged certificate that names the cluster CA as
its issuer fails the handshake, since only the cluster CA's key makes its
signature hold.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from control.auth import pki

ANONYMOUS_CA_NAME = "sampan-anonymous-clients"
ANONYMOUS_USER = "system:anonymous"
_SEED = b"sampan: anonymous client certificates prove nothing"
_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ANONYMOUS_CA_NAME)])


@functools.cache
def _ca() -> pki.CertKey:
    key = ec.derive_private_key(int.from_bytes(hashlib.sha256(_SEED).digest(), "big"), ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_NAME).issuer_name(_NAME).public_key(key.public_key()).serial_number(1)
        .not_valid_before(dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))
        .not_valid_after(dt.datetime(9999, 12, 31, tzinfo=dt.timezone.utc))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return pki.CertKey(cert, key)


def anonymous_ca_pem() -> bytes:
    """The anonymous CA's certificate, for a server's list of client CAs."""
    return _ca().cert_pem


@functools.cache
def anonymous_client() -> pki.CertKey:
    """A client certificate (and key) that names nobody; one per process."""
    return pki.issue(_ca(), common_name=ANONYMOUS_USER, validity=dt.timedelta(days=3650))


def is_anonymous(cert: x509.Certificate) -> bool:
    return cert.issuer == _NAME
