"""Service account tokens: signed JWTs that name a service account (and a pod).

A token is a compact JWS (RFC 7515) signed with ES256 (ECDSA P-256 and
SHA-256), written here with ``cryptography`` alone. Its claims are
Kubernetes' bound service account token claims:

- ``iss`` (this cluster's issuer), ``sub`` (system:serviceaccount:NS:NAME),
  ``aud`` (the audiences it was requested for), ``iat``, ``nbf``, ``exp``;
- ``kubernetes.io``: the namespace, the service account's name and uid and,
  for a token bound to a pod, the pod's name and uid.

Tokens are not stored: ``TokenSigner.issue`` makes one on request
(control/server/token_request.py serves TokenRequest), and
``ServiceAccountTokenAuthenticator`` accepts one only while its signature,
audience and lifetime hold *and* the service account (and the bound pod)
still exist with the same uid, so deleting either revokes every token made
for it. The signing key is one PEM file (``sa.key`` in the PKI directory),
created on first start; its public half verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from google.protobuf.message import Message

from control.api import errors
from control.auth.authenticator import Credentials
from control.auth.identity import UserInfo, authenticated, service_account_user
from control.auth.pki import write_private

ISSUER = "https://kubernetes.default.svc.cluster.local"
# The audience the API itself accepts (Kubernetes' default --api-audiences is the issuer).
API_AUDIENCE = ISSUER
SERVICE_ACCOUNT_KEY_NAME = "sa.key"
# TokenRequest's bounds (Kubernetes: at least 10 minutes; default 1 hour).
MIN_EXPIRATION_SECONDS = 600
DEFAULT_EXPIRATION_SECONDS = 3600
MAX_EXPIRATION_SECONDS = 2 ** 32
_ALGORITHM = "ES256"


class InvalidTokenError(Exception):
    """A token this cluster signed (or claims to have) that must be refused, and why."""


@dataclass(frozen=True, slots=True)
class BoundPod:
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token says."""

    namespace: str
    service_account: str
    service_account_uid: str
    audiences: tuple[str, ...]
    issued_at: int
    not_before: int
    expires_at: int
    pod: BoundPod | None = None

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated base64url parts whose header is JSON naming an algorithm."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    try:
        header = json.loads(_b64decode(parts[0]))
    except (ValueError, binascii.Error):
        return False
    return isinstance(header, dict) and "alg" in header


def load_or_create_key(path: str | Path) -> ec.EllipticCurvePrivateKey:
    """The signing key in path (PEM), made (0600, directory 0700) when the file is missing."""
    path = Path(path)
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError(f"{path}: the service account signing key must be an EC P-256 private key")
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return key


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """A stable id for a public key (the JWS ``kid``): a digest of its DER form."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64encode(hashlib.sha256(der).digest())


class TokenSigner:
    """Issues and verifies this cluster's service account tokens."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, *, issuer: str = ISSUER,
                 clock: Callable[[], float] = time.time) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)
        self.issuer = issuer
        self.clock = clock

    @classmethod
    def from_file(cls, path: str | Path, **options) -> "TokenSigner":
        return cls(load_or_create_key(path), **options)

    @classmethod
    def ephemeral(cls, **options) -> "TokenSigner":
        """A signer whose key lives in memory only (its tokens die with the process)."""
        return cls(ec.generate_private_key(ec.SECP256R1()), **options)

    def issue(self, *, namespace: str, service_account: str, service_account_uid: str,
              audiences: Sequence[str], expiration_seconds: int, pod: BoundPod | None = None) -> tuple[str, int]:
        """A signed token and its expiry (epoch seconds)."""
        now = int(self.clock())
        expires = now + int(expiration_seconds)
        scope: dict = {"namespace": namespace,
                       "serviceaccount": {"name": service_account, "uid": service_account_uid}}
        if pod is not None:
            scope["pod"] = {"name": pod.name, "uid": pod.uid}
        claims = {"iss": self.issuer, "sub": f"system:serviceaccount:{namespace}:{service_account}",
                  "aud": list(audiences), "iat": now, "nbf": now, "exp": expires, "kubernetes.io": scope}
        header = {"alg": _ALGORITHM, "typ": "JWT", "kid": self.key_id}
        signing_input = (_b64encode(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         _b64encode(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()))
        der = self._key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input}.{_b64encode(signature)}", expires

    def is_ours(self, token: str) -> bool:
        """Whether token claims to come from this issuer (others' JWTs are not this verifier's to refuse)."""
        try:
            claims = json.loads(_b64decode(token.split(".")[1]))
        except (ValueError, IndexError, binascii.Error):
            return False
        return isinstance(claims, dict) and claims.get("iss") == self.issuer

    def verify(self, token: str, *, audiences: Sequence[str]) -> TokenClaims:
        """The claims of a token with a good signature, one of audiences, and a current lifetime.
        Raises InvalidTokenError naming what is wrong."""
        try:
            header_part, claims_part, signature_part = token.split(".")
            header = json.loads(_b64decode(header_part))
            claims = json.loads(_b64decode(claims_part))
            signature = _b64decode(signature_part)
        except (ValueError, binascii.Error):
            raise InvalidTokenError("malformed token") from None
        if not isinstance(header, dict) or header.get("alg") != _ALGORITHM:
            raise InvalidTokenError(f"unsupported signing algorithm (want {_ALGORITHM})")
        if len(signature) != 64:
            raise InvalidTokenError("invalid signature")
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        try:
            self.public_key.verify(der, f"{header_part}.{claims_part}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise InvalidTokenError("invalid signature") from None
        return self._check_claims(claims, audiences)

    def _check_claims(self, claims: object, audiences: Sequence[str]) -> TokenClaims:
        if not isinstance(claims, dict) or claims.get("iss") != self.issuer:
            raise InvalidTokenError("token issued by another issuer")
        token_audiences = claims.get("aud")
        if isinstance(token_audiences, str):
            token_audiences = [token_audiences]
        if not isinstance(token_audiences, list) or not set(token_audiences) & set(audiences):
            raise InvalidTokenError("token audiences do not include this server's audience")
        try:
            issued, not_before, expires = int(claims["iat"]), int(claims["nbf"]), int(claims["exp"])
            scope = claims["kubernetes.io"]
            namespace, account = scope["namespace"], scope["serviceaccount"]
            pod = scope.get("pod")
            bound = BoundPod(str(pod["name"]), str(pod["uid"])) if pod else None
            result = TokenClaims(namespace=str(namespace), service_account=str(account["name"]),
                                 service_account_uid=str(account["uid"]), audiences=tuple(map(str, token_audiences)),
                                 issued_at=issued, not_before=not_before, expires_at=expires, pod=bound)
        except (KeyError, TypeError, ValueError):
            raise InvalidTokenError("token lacks the service account claims") from None
        if claims.get("sub") != result.subject:
            raise InvalidTokenError("token subject does not match its service account")
        now = self.clock()
        if now >= expires:
            raise InvalidTokenError("token has expired")
        if now < not_before:
            raise InvalidTokenError("token is not valid yet")
        return result


class ObjectLookup(Protocol):
    async def get(self, kind: str, *, namespace: str, name: str) -> Message | None:
        """The stored object, or None when there is none."""
        ...


class ServiceAccountTokenAuthenticator:
    """Bearer tokens this cluster signed: the service account's identity, while the
    account (and the pod a token is bound to) still exists with the uid in the token."""

    def __init__(self, signer: TokenSigner, objects: ObjectLookup, *,
                 audiences: Sequence[str] = (API_AUDIENCE,)) -> None:
        self.signer = signer
        self.objects = objects
        self.audiences = tuple(audiences)

    async def authenticate(self, credentials: Credentials) -> UserInfo | None:
        token = credentials.bearer_token
        if not token or not looks_like_jwt(token) or not self.signer.is_ours(token):
            return None
        try:
            claims = self.signer.verify(token, audiences=self.audiences)
            await self._check_still_bound(claims)
        except InvalidTokenError as err:
            raise errors.UnauthorizedError(f"Unauthorized: invalid bearer token: {err}") from None
        user = service_account_user(claims.namespace, claims.service_account)
        return authenticated(user.name, user.groups)

    async def _check_still_bound(self, claims: TokenClaims) -> None:
        account = await self.objects.get("ServiceAccount", namespace=claims.namespace, name=claims.service_account)
        if account is None or account.metadata.uid != claims.service_account_uid:
            raise InvalidTokenError(
                f'service account "{claims.namespace}/{claims.service_account}" no longer exists')
        if claims.pod is not None:
            pod = await self.objects.get("Pod", namespace=claims.namespace, name=claims.pod.name)
            if pod is None or pod.metadata.uid != claims.pod.uid:
                raise InvalidTokenError(f'pod "{claims.namespace}/{claims.pod.name}" no longer exists')
