"""The cluster's PKI: one CA, and the certificates it signs.

As kubeadm and k3s do, the control service creates a cluster CA on first
start (ten years, ``CA_VALIDITY``) in its PKI directory, or uses the one it
finds there (an operator may put their own ``ca.crt``/``ca.key`` in first).
Everything else is a leaf the CA signs, with a lifetime the operator chooses
(``--cert-validity``, default one year; ``parse_validity("10y")`` gives ten):

====================  ===============================  =========================
file (DIR/NAME.crt)   subject                          used by
====================  ===============================  =========================
ca                    CN=sampan-ca                     everyone (trust anchor)
server                CN=sampan-control, SANs          the API's TLS server
control-client        CN=system:sampan-control,        the control service's own
                      O=system:masters                 client (scheduler, ...)
admin                 CN=sampan-admin,                 the admin CLI config
                      O=system:masters
====================  ===============================  =========================

Keys are ECDSA P-256 (small and fast to make); a certificate names its user
in CN and its groups in O, which is how the API authenticates a client
certificate (control/auth/certificates.py). Private keys are written 0600,
atomically. ``ca_hash`` is the digest a join token carries, so an agent can
check the CA it is shown before it sends anything.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = dt.timedelta(days=3650)
DEFAULT_VALIDITY = dt.timedelta(days=365)
DEFAULT_PKI_DIR = Path("/var/lib/sampan/pki")
CA_NAME = "ca"
SERVER_NAME = "server"
CONTROL_CLIENT_NAME = "control-client"
ADMIN_NAME = "admin"
ADMIN_USER = "sampan-admin"
# Certificates are back-dated a little, so a peer whose clock is slightly behind accepts them.
_CLOCK_SKEW = dt.timedelta(minutes=5)

_UNITS = {"y": 365 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_VALIDITY = re.compile(r"(\d+)(y|d|h|m|s)")


def parse_validity(text: str) -> dt.timedelta:
    """A lifetime such as ``10y``, ``365d``, ``1y30d``, ``24h`` or ``90m`` (y is 365 days).

    ValueError says what is accepted."""
    text = text.strip().lower()
    parts = _VALIDITY.findall(text)
    if not text or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f'invalid duration "{text}": use a number and a unit y, d, h, m or s, e.g. 10y, 365d, 24h')
    seconds = sum(int(number) * _UNITS[unit] for number, unit in parts)
    if seconds <= 0:
        raise ValueError(f'invalid duration "{text}": must be longer than zero')
    return dt.timedelta(seconds=seconds)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class CertKey:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | None = None

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        if self.key is None:
            raise ValueError("this certificate's private key is not at hand")
        return key_pem(self.key)

    @property
    def not_after(self) -> dt.datetime:
        return self.cert.not_valid_after_utc

    @property
    def common_name(self) -> str:
        return subject_names(self.cert)[0]

    @property
    def organizations(self) -> tuple[str, ...]:
        return subject_names(self.cert)[1]


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def subject_names(cert: x509.Certificate | x509.CertificateSigningRequest) -> tuple[str, tuple[str, ...]]:
    """(CN, the O values) of a certificate's or a CSR's subject."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (str(cns[0].value) if cns else "", tuple(str(o.value) for o in orgs))


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _alt_names(names: Iterable[str]) -> list[x509.GeneralName]:
    result: list[x509.GeneralName] = []
    for name in dict.fromkeys(n for n in names if n):
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            result.append(x509.DNSName(name))
    return result


def create_ca(*, common_name: str = "sampan-ca", validity: dt.timedelta = CA_VALIDITY) -> CertKey:
    key = new_key()
    start = now() - _CLOCK_SKEW
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name)).issuer_name(_name(common_name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + _CLOCK_SKEW + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertKey(cert, key)


def issue(
    ca: CertKey,
    *,
    common_name: str,
    organizations: Sequence[str] = (),
    validity: dt.timedelta = DEFAULT_VALIDITY,
    client: bool = True,
    server: bool = False,
    server_names: Sequence[str] = (),
    public_key: ec.EllipticCurvePublicKey | None = None,
) -> CertKey:
    """A leaf certificate signed by ca; with a new key unless public_key is given
    (a CSR's), in which case the result carries no key. A leaf never outlives its CA."""
    if ca.key is None:
        raise ValueError("cannot sign: the CA's private key is not at hand")
    key = None
    if public_key is None:
        key = new_key()
        public_key = key.public_key()
    start = now() - _CLOCK_SKEW
    end = min(start + _CLOCK_SKEW + validity, ca.not_after)
    usages = ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else []) + ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organizations)).issuer_name(ca.cert.subject)
        .public_key(public_key).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                     crl_sign=False, content_commitment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.cert.public_key()), critical=False)
    )
    alt_names = _alt_names(server_names)
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return CertKey(builder.sign(ca.key, hashes.SHA256()), key)


def make_csr(*, common_name: str, organizations: Sequence[str] = (), server_names: Sequence[str] = (),
             key: ec.EllipticCurvePrivateKey | None = None) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    """A PEM certificate signing request and its (new, unless given) key."""
    key = key or new_key()
    builder = x509.CertificateSigningRequestBuilder().subject_name(_name(common_name, organizations))
    alt_names = _alt_names(server_names)
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM), key


def load_csr(pem: bytes) -> x509.CertificateSigningRequest:
    """The CSR in pem; ValueError when it is not one or its signature does not hold."""
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError as err:
        raise ValueError(f"not a PEM certificate signing request: {err}") from None
    if not csr.is_signature_valid:
        raise ValueError("the certificate signing request's signature is not valid")
    if not isinstance(csr.public_key(), ec.EllipticCurvePublicKey):
        raise ValueError("the certificate signing request's key must be ECDSA (P-256)")
    return csr


def csr_server_names(csr: x509.CertificateSigningRequest) -> list[str]:
    try:
        extension = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(name.value) for name in extension.value]


def load_cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("expected an ECDSA private key")
    return key


def ca_hash(ca_pem: bytes) -> str:
    """The hex SHA-256 of the CA certificate's PEM bytes, as a join token carries it."""
    return hashlib.sha256(ca_pem).hexdigest()


def verify_signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, Exception):  # InvalidSignature is not a ValueError
        return False
    return True


def write_private(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write data to path atomically, readable only by its owner (for keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    tmp.replace(path)


def default_server_names() -> list[str]:
    """The names the API's server certificate carries unless told more: loopback and this host."""
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname()]
    try:
        names.extend(info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None))
    except OSError:
        pass
    return names


@dataclass(frozen=True)
class Expiration:
    """One row of ``sampan certs check-expiration``."""

    name: str
    not_after: dt.datetime
    authority: str

    def residual(self, at: dt.datetime | None = None) -> dt.timedelta:
        return self.not_after - (at or now())


class ClusterPKI:
    """The control service's PKI directory (see the module docstring for its files)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path(self, name: str, suffix: str) -> Path:
        return self.directory / f"{name}.{suffix}"

    def exists(self, name: str) -> bool:
        return self.path(name, "crt").exists() and self.path(name, "key").exists()

    def load(self, name: str) -> CertKey:
        cert = load_cert(self.path(name, "crt").read_bytes())
        key_path = self.path(name, "key")
        return CertKey(cert, load_key(key_path.read_bytes()) if key_path.exists() else None)

    def save(self, name: str, pair: CertKey) -> None:
        if pair.key is not None:
            write_private(self.path(name, "key"), pair.key_pem)
        write_private(self.path(name, "crt"), pair.cert_pem, mode=0o644)

    @property
    def ca(self) -> CertKey:
        return self.load(CA_NAME)

    @property
    def ca_pem(self) -> bytes:
        return self.path(CA_NAME, "crt").read_bytes()

    def ensure(self, *, validity: dt.timedelta = DEFAULT_VALIDITY, server_names: Sequence[str] = ()) -> list[str]:
        """Create the CA if there is none and every leaf that is missing, or whose
        server names do not cover server_names; returns the names created."""
        created = []
        if not self.path(CA_NAME, "crt").exists():
            self.save(CA_NAME, create_ca())
            created.append(CA_NAME)
        elif not self.path(CA_NAME, "key").exists():
            raise ValueError(f"{self.path(CA_NAME, 'crt')} has no key next to it ({self.path(CA_NAME, 'key')})")
        names = list(dict.fromkeys([*default_server_names(), *server_names]))
        for name in self.leaf_names():
            if not self.exists(name) or (name == SERVER_NAME and not self._covers(name, names)):
                self.issue_leaf(name, validity=validity, server_names=names)
                created.append(name)
        return created

    @staticmethod
    def leaf_names() -> tuple[str, ...]:
        return (SERVER_NAME, CONTROL_CLIENT_NAME, ADMIN_NAME)

    def issue_leaf(self, name: str, *, validity: dt.timedelta = DEFAULT_VALIDITY,
                   server_names: Sequence[str] = ()) -> CertKey:
        """(Re)issue one of the control service's own leaves with a new key, and save it."""
        ca = self.ca
        if name == SERVER_NAME:
            names = list(server_names) or self._server_names() or default_server_names()
            pair = issue(ca, common_name="sampan-control", validity=validity, client=False, server=True,
                         server_names=names)
        elif name == CONTROL_CLIENT_NAME:
            from control.auth.identity import CONTROL_PLANE_USER, SYSTEM_MASTERS
            pair = issue(ca, common_name=CONTROL_PLANE_USER, organizations=[SYSTEM_MASTERS], validity=validity)
        elif name == ADMIN_NAME:
            from control.auth.identity import SYSTEM_MASTERS
            pair = issue(ca, common_name=ADMIN_USER, organizations=[SYSTEM_MASTERS], validity=validity)
        else:
            raise ValueError(f'unknown certificate "{name}": choose one of {", ".join(self.leaf_names())}')
        self.save(name, pair)
        return pair

    def _server_names(self) -> list[str]:
        if not self.exists(SERVER_NAME):
            return []
        try:
            extension = self.load(SERVER_NAME).cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return []
        return [str(n.value) for n in extension.value]

    def _covers(self, name: str, server_names: Sequence[str]) -> bool:
        have = set(self._server_names())
        return all(str(n) in have for n in server_names)

    def expirations(self) -> list[Expiration]:
        rows = []
        for name in (CA_NAME, *self.leaf_names()):
            if self.path(name, "crt").exists():
                cert = load_cert(self.path(name, "crt").read_bytes())
                rows.append(Expiration(name, cert.not_valid_after_utc, "" if name == CA_NAME else CA_NAME))
        return rows
