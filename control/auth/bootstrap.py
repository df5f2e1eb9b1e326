"""Bootstrap tokens: how a new node proves it may join (Kubernetes' TLS bootstrap).

A bootstrap token is ``ID.SECRET``: a 6-character id and a 16-character
secret of ``[a-z0-9]``. It lives in the Secret ``bootstrap-token-ID`` in
kube-system, of type ``bootstrap.kubernetes.io/token``, with the keys
``token-id``, ``token-secret``, ``expiration`` (RFC 3339),
``usage-bootstrap-authentication`` and ``description``. ``sampan token
create`` makes one and prints the *join token*::

    K10<sha256 of the cluster CA certificate>::ID.SECRET

(the form k3s uses), so the joining agent can check the CA the server
shows it before it sends the secret (agent/certificates.py).

``BootstrapTokenAuthenticator`` accepts ``ID.SECRET`` as a bearer token
while its Secret exists, matches (compared in constant time) and has not
expired: the caller is ``system:bootstrap:ID`` in ``system:bootstrappers``.
An expired, deleted or wrong token is refused UNAUTHENTICATED with the
reason. ``CertificateRequestAuthorizer`` then lets bootstrappers (and nodes,
for their renewals) create, get, list and watch CertificateSigningRequests,
and nothing else; the approver decides what they get signed.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import secrets
from dataclasses import dataclass

from google.protobuf.message import Message

from control.api import errors
from control.auth.authenticator import Credentials
from control.auth.authorizer import ALLOW, NO_OPINION, Attributes, Decision
from control.auth.identity import BOOTSTRAP_PREFIX, BOOTSTRAPPERS_GROUP, NODES_GROUP, UserInfo, authenticated
from control.auth.pki import ca_hash, load_cert
from control.auth.tokens import ObjectLookup
from protos.api.v1 import core_pb2

TOKEN_NAMESPACE = "kube-system"
SECRET_PREFIX = "bootstrap-token-"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
ID_KEY, SECRET_KEY, EXPIRATION_KEY = "token-id", "token-secret", "expiration"
DESCRIPTION_KEY = "description"
AUTHENTICATION_USAGE = "usage-bootstrap-authentication"
JOIN_PREFIX = "K10"
DEFAULT_TTL = dt.timedelta(hours=24)
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
_JOIN = re.compile(r"^K10([0-9a-f]{64})::([a-z0-9]{6})\.([a-z0-9]{16})$")


@dataclass(frozen=True)
class JoinToken:
    """``K10<ca hash>::<id>.<secret>``."""

    ca_hash: str
    token_id: str
    secret: str

    @property
    def bearer(self) -> str:
        return f"{self.token_id}.{self.secret}"

    def __str__(self) -> str:
        return f"{JOIN_PREFIX}{self.ca_hash}::{self.bearer}"

    def __repr__(self) -> str:  # never print the secret by accident
        return f"JoinToken(ca_hash={self.ca_hash[:12]}..., token_id={self.token_id!r})"


def parse_join_token(text: str) -> JoinToken:
    """A join token; ValueError says what form is expected (without echoing the secret)."""
    match = _JOIN.match(text.strip())
    if match is None:
        raise ValueError("--token: expected a join token K10<64 hex digits of the CA's sha256>::<id>.<secret> "
                         "(id 6 and secret 16 characters of a-z and 0-9), as 'sampan token create' prints")
    return JoinToken(*match.groups())


def canonical_ca_hash(ca_pem: bytes) -> str:
    """The hash a join token carries: of the CA certificate in the PEM form this cluster writes
    it, so an operator's CA file with other line breaks or comments gives the same hash."""
    from cryptography.hazmat.primitives import serialization

    return ca_hash(load_cert(ca_pem).public_bytes(serialization.Encoding.PEM))


def generate_token() -> tuple[str, str]:
    """A new (id, secret)."""
    return ("".join(secrets.choice(_ALPHABET) for _ in range(6)),
            "".join(secrets.choice(_ALPHABET) for _ in range(16)))


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def token_secret(token_id: str, secret: str, *, ttl: dt.timedelta | None = DEFAULT_TTL, description: str = "",
                 now: dt.datetime | None = None) -> core_pb2.Secret:
    """The Secret that holds a token; ttl None (or zero): it never expires."""
    obj = core_pb2.Secret(api_version="v1", kind="Secret", type=SECRET_TYPE)
    obj.metadata.name, obj.metadata.namespace = SECRET_PREFIX + token_id, TOKEN_NAMESPACE
    obj.data[ID_KEY] = token_id.encode()
    obj.data[SECRET_KEY] = secret.encode()
    obj.data[AUTHENTICATION_USAGE] = b"true"
    if ttl:
        obj.data[EXPIRATION_KEY] = format_time((now or dt.datetime.now(dt.timezone.utc)) + ttl).encode()
    if description:
        obj.data[DESCRIPTION_KEY] = description.encode()
    return obj


def expiration_of(secret: Message) -> dt.datetime | None:
    """When the token expires (None: never); ValueError for an unreadable expiration."""
    raw = secret.data.get(EXPIRATION_KEY, b"").decode()
    return parse_time(raw) if raw else None


def is_expired(secret: Message, now: dt.datetime | None = None) -> bool:
    try:
        expiration = expiration_of(secret)
    except ValueError:
        return True
    return expiration is not None and expiration <= (now or dt.datetime.now(dt.timezone.utc))


class BootstrapTokenAuthenticator:
    """Bearer ``ID.SECRET``: the bootstrapper system:bootstrap:ID while its Secret is valid."""

    def __init__(self, objects: ObjectLookup, *, clock=lambda: dt.datetime.now(dt.timezone.utc)) -> None:
        self.objects = objects
        self.clock = clock

    async def authenticate(self, credentials: Credentials) -> UserInfo | None:
        token = credentials.bearer_token
        match = _TOKEN.match(token or "")
        if match is None:
            return None
        token_id, secret = match.groups()
        stored = await self.objects.get("Secret", namespace=TOKEN_NAMESPACE, name=SECRET_PREFIX + token_id)
        refused = f'Unauthorized: bootstrap token "{token_id}"'
        if stored is None or stored.type != SECRET_TYPE:
            raise errors.UnauthorizedError(f"{refused} does not exist (deleted, or never created)")
        if stored.data.get(ID_KEY, b"").decode() != token_id or not hmac.compare_digest(
                stored.data.get(SECRET_KEY, b""), secret.encode()):
            raise errors.UnauthorizedError(f"{refused}: the secret does not match")
        if stored.data.get(AUTHENTICATION_USAGE, b"").decode() != "true":
            raise errors.UnauthorizedError(f"{refused} may not be used for authentication "
                                           f"({AUTHENTICATION_USAGE} is not \"true\")")
        if stored.metadata.deletion_timestamp or is_expired(stored, self.clock()):
            raise errors.UnauthorizedError(
                f"{refused} has expired (at {stored.data.get(EXPIRATION_KEY, b'').decode() or 'deletion'})")
        return authenticated(BOOTSTRAP_PREFIX + token_id, (BOOTSTRAPPERS_GROUP,))


_CSR_VERBS = frozenset({"create", "get", "list", "watch"})


class CertificateRequestAuthorizer:
    """Bootstrappers and nodes may create, get, list and watch CertificateSigningRequests."""

    async def authorize(self, attrs: Attributes) -> Decision:
        user = attrs.user
        if not (user.in_group(BOOTSTRAPPERS_GROUP) or user.in_group(NODES_GROUP)):
            return NO_OPINION
        if attrs.resource == "certificatesigningrequests" and attrs.api_group == "certificates.k8s.io" \
                and not attrs.subresource and attrs.verb in _CSR_VERBS:
            return ALLOW
        if user.in_group(BOOTSTRAPPERS_GROUP):
            return Decision(False, "a bootstrap token may only create, get, list and watch "
                                   "certificatesigningrequests")
        return NO_OPINION
