"""Encryption at rest: a Store that encrypts the values under chosen prefixes.

``EncryptedStore`` sits between the API's ResourceService and a backend
driver (SQLite, etcd). Values under its prefixes (``/registry/secrets/``) are
encrypted on every write and decrypted on every read, list and watch event,
so everything above it (the watch cache, the API, compaction, which never
looks at values) sees plain objects, and the driver's bytes (the database
file, ``etcdctl get``) never hold them. Other keys pass through untouched.

The stored format is Kubernetes' own::

    k8s:enc:aesgcm:v1:<key name>:<12-byte nonce><ciphertext and 16-byte tag>

AES-GCM with a random nonce per write; the storage key is the authenticated
data, so a value copied to another key fails to decrypt instead of reading
as someone else's Secret. The key name in the prefix says which key to
decrypt with, so a key list can hold old keys next to the new one:
``Transformer``'s ``write`` provider (the first one configured) encrypts,
and every provider may decrypt. The ``identity`` provider reads values
written before encryption was turned on (plain bytes, which never start with
``k8s:enc:``); placed first, it writes plain bytes (turning encryption off).

A value that no provider can read raises ``ValueTransformError`` naming the
key and the reason (an unknown key name, a wrong key, plain bytes without
the identity provider); nothing ever returns garbage. A value read with
anything but the write provider comes back with ``KeyValue.stale`` set, so
an update that changes nothing still rewrites it with the current key (how
``sampan secrets reencrypt`` works after a key rotation).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import AsyncIterator, Mapping, Protocol, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from control.store.base import KeyValue, Store, StoreError, StoreEvent

ENVELOPE = b"k8s:enc:"
AESGCM_PREFIX = b"k8s:enc:aesgcm:v1:"
NONCE_BYTES = 12
KEY_BYTES = (16, 24, 32)


class ValueTransformError(StoreError):
    """A stored value that cannot be decrypted with the configured providers."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f'unable to decrypt the stored value of "{key}": {reason}')
        self.key = key
        self.reason = reason


class Provider(Protocol):
    """One way values are stored. ``name`` appears in error messages."""

    name: str

    def can_read(self, value: bytes) -> bool:
        """Whether value is in this provider's format (not whether it decrypts)."""
        ...

    def encrypt(self, key: str, plaintext: bytes) -> bytes:
        ...

    def decrypt(self, key: str, stored: bytes) -> bytes:
        """The plaintext; ValueTransformError when value is this provider's but unreadable."""
        ...


class IdentityProvider:
    """Plain bytes: values written before encryption was turned on."""

    name = "identity"

    def can_read(self, value: bytes) -> bool:
        return not value.startswith(ENVELOPE)

    def encrypt(self, key: str, plaintext: bytes) -> bytes:
        return plaintext

    def decrypt(self, key: str, stored: bytes) -> bytes:
        return stored


@dataclass(frozen=True)
class AESGCMKey:
    name: str
    secret: bytes = dataclasses.field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) not in KEY_BYTES:
            raise ValueError(f"key {self.name!r}: an AES-GCM key is 16, 24 or 32 bytes, not {len(self.secret)}")
        if not self.name or ":" in self.name:
            raise ValueError(f"key name {self.name!r}: must be non-empty and contain no ':'")


class AESGCMProvider:
    """AES-GCM with a key list: the first key encrypts, any of them decrypts."""

    name = "aesgcm"

    def __init__(self, keys: Sequence[AESGCMKey]) -> None:
        if not keys:
            raise ValueError("aesgcm: at least one key is needed")
        names = [key.name for key in keys]
        if len(set(names)) != len(names):
            raise ValueError(f"aesgcm: key names must be unique, got {names}")
        self.keys = list(keys)
        self._ciphers = {key.name.encode(): AESGCM(key.secret) for key in keys}

    @property
    def write_key(self) -> str:
        return self.keys[0].name

    def can_read(self, value: bytes) -> bool:
        return value.startswith(AESGCM_PREFIX)

    def encrypt(self, key: str, plaintext: bytes) -> bytes:
        name = self.keys[0].name.encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[name].encrypt(nonce, plaintext, key.encode())
        return AESGCM_PREFIX + name + b":" + nonce + sealed

    def key_name(self, stored: bytes) -> bytes:
        name, sep, _ = stored[len(AESGCM_PREFIX):].partition(b":")
        return name if sep else b""

    def decrypt(self, key: str, stored: bytes) -> bytes:
        name, sep, rest = stored[len(AESGCM_PREFIX):].partition(b":")
        if not sep:
            raise ValueTransformError(key, "the aesgcm envelope names no key")
        cipher = self._ciphers.get(name)
        if cipher is None:
            raise ValueTransformError(
                key, f"it was encrypted with the key {name.decode(errors='replace')!r}, which the encryption "
                     f"configuration does not list (it has {', '.join(repr(k.name) for k in self.keys)})")
        if len(rest) < NONCE_BYTES + 16:
            raise ValueTransformError(key, "the aesgcm value is truncated")
        try:
            return cipher.decrypt(rest[:NONCE_BYTES], rest[NONCE_BYTES:], key.encode())
        except InvalidTag:
            raise ValueTransformError(
                key, f"the key {name.decode(errors='replace')!r} does not open it (a different key under "
                     f"the same name, or a damaged value)") from None


class Transformer:
    """The providers of one prefix, in order: the first writes, all read."""

    def __init__(self, providers: Sequence[Provider]) -> None:
        if not providers:
            raise ValueError("at least one provider is needed")
        self.providers = list(providers)

    @property
    def writer(self) -> Provider:
        return self.providers[0]

    def write(self, key: str, plaintext: bytes) -> bytes:
        return self.writer.encrypt(key, plaintext)

    def read(self, key: str, stored: bytes) -> tuple[bytes, bool]:
        """(plaintext, stale): stale when the write provider would store it differently."""
        for provider in self.providers:
            if provider.can_read(stored):
                plaintext = provider.decrypt(key, stored)
                return plaintext, not self._written_by_writer(provider, stored)
        if stored.startswith(ENVELOPE):
            kind = stored[len(ENVELOPE):].split(b":", 1)[0].decode(errors="replace")
            raise ValueTransformError(key, f"it is stored by the {kind!r} provider, which the encryption "
                                           f"configuration does not list")
        raise ValueTransformError(key, "it is stored unencrypted and the encryption configuration has no "
                                       "identity provider to read it")

    def _written_by_writer(self, provider: Provider, stored: bytes) -> bool:
        writer = self.writer
        if provider is not writer:
            return False
        if isinstance(writer, AESGCMProvider):
            return writer.key_name(stored) == writer.write_key.encode()
        return True


class EncryptedStore:
    """A Store whose values under the given prefixes are encrypted (see module doc)."""

    def __init__(self, inner: Store, transformers: Mapping[str, Transformer]) -> None:
        self.inner = inner
        # Longest prefix first, so a more specific prefix wins.
        self._transformers = sorted(transformers.items(), key=lambda item: -len(item[0]))

    def _transformer(self, key: str) -> Transformer | None:
        for prefix, transformer in self._transformers:
            if key.startswith(prefix):
                return transformer
        return None

    def _seal(self, key: str, value: bytes) -> bytes:
        transformer = self._transformer(key)
        return value if transformer is None else transformer.write(key, value)

    def _open(self, kv: KeyValue | None) -> KeyValue | None:
        if kv is None:
            return None
        transformer = self._transformer(kv.key)
        if transformer is None:
            return kv
        plaintext, stale = transformer.read(kv.key, kv.value)
        return dataclasses.replace(kv, value=plaintext, stale=stale)

    def _opened_event(self, event: StoreEvent) -> StoreEvent:
        if self._transformer(event.kv.key) is None:
            return event
        return StoreEvent(event.type, self._open(event.kv), self._open(event.prev))

    async def get(self, key: str) -> KeyValue | None:
        return self._open(await self.inner.get(key))

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        kvs, revision = await self.inner.list(prefix)
        return [self._open(kv) for kv in kvs], revision

    async def create(self, key: str, value: bytes) -> KeyValue:
        kv = await self.inner.create(key, self._seal(key, value))
        return dataclasses.replace(kv, value=value)

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> KeyValue:
        kv = await self.inner.update(key, self._seal(key, value), expected_revision=expected_revision)
        return dataclasses.replace(kv, value=value)

    async def delete(self, key: str, *, expected_revision: int | None = None) -> KeyValue:
        gone = await self.inner.delete(key, expected_revision=expected_revision)
        try:
            return self._open(gone)
        except ValueTransformError:
            # Deleted all the same: an unreadable value must not stop its removal.
            return dataclasses.replace(gone, value=b"")

    async def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[StoreEvent]:
        events = self.inner.watch(prefix, start_revision=start_revision)
        try:
            async for event in events:
                yield self._opened_event(event)
        finally:
            await events.aclose()

    async def current_revision(self) -> int:
        return await self.inner.current_revision()

    async def compacted_revision(self) -> int:
        return await self.inner.compacted_revision()

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)

    async def close(self) -> None:
        await self.inner.close()
