"""Encryption at rest (control/store/encryption.py) on a real SQLite store.

The database file's bytes never hold an encrypted prefix's plaintext; values
read back (get, list, watch with previous values) as written; the stored
format names its key; a key list decrypts old values and marks them stale
until rewritten; values stored before encryption are read only with the
identity provider; a missing or wrong key, or a value moved to another key,
is a clear ValueTransformError, never garbage.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import AsyncIterator

import pytest

from control.store import EventType, open_store
from control.store.encryption import (
    AESGCMKey,
    AESGCMProvider,
    EncryptedStore,
    IdentityProvider,
    Transformer,
    ValueTransformError,
)

SECRETS = "/registry/secrets/"
PLAINTEXT = b"hunter2-the-password"
OLD = AESGCMKey("old", b"o" * 32)
NEW = AESGCMKey("new", b"n" * 32)


def encrypted(*providers) -> dict[str, Transformer]:
    return {SECRETS: Transformer(list(providers))}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
async def raw(db_path: Path) -> AsyncIterator:
    store = await open_store(f"sqlite://{db_path}")
    yield store
    await store.close()


def file_bytes(db_path: Path) -> bytes:
    return b"".join(path.read_bytes() for path in db_path.parent.glob(db_path.name + "*"))


def stored_value(db_path: Path, key: str) -> bytes:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT value FROM current WHERE key = ?", (key,)).fetchone()[0]


async def test_the_database_file_holds_no_plaintext_of_an_encrypted_prefix(raw, db_path: Path) -> None:
    store = EncryptedStore(raw, encrypted(AESGCMProvider([NEW])))
    await store.create(SECRETS + "default/db", PLAINTEXT)
    await store.create("/registry/configmaps/default/db", b"visible-config-value")
    assert (await store.get(SECRETS + "default/db")).value == PLAINTEXT
    on_disk = file_bytes(db_path)
    assert b"visible-config-value" in on_disk  # the scan sees what is stored as it is
    assert PLAINTEXT not in on_disk
    assert stored_value(db_path, SECRETS + "default/db").startswith(b"k8s:enc:aesgcm:v1:new:")


async def test_list_and_watch_see_decrypted_values_and_previous_values(raw) -> None:
    store = EncryptedStore(raw, encrypted(AESGCMProvider([NEW])))
    created = await store.create(SECRETS + "default/a", b"one")
    updated = await store.update(SECRETS + "default/a", b"two", expected_revision=created.mod_revision)
    deleted = await store.delete(SECRETS + "default/a")
    assert (created.value, updated.value, deleted.value) == (b"one", b"two", b"two")
    await store.create(SECRETS + "default/b", b"three")
    items, _ = await store.list(SECRETS)
    assert [kv.value for kv in items] == [b"three"]
    events = store.watch(SECRETS, start_revision=created.mod_revision)
    seen = [await anext(events) for _ in range(4)]
    await events.aclose()
    assert [(e.type, e.kv.value, e.prev.value if e.prev else None) for e in seen] == [
        (EventType.PUT, b"one", None), (EventType.PUT, b"two", b"one"),
        (EventType.DELETE, b"two", b"two"), (EventType.PUT, b"three", None)]


async def test_each_write_uses_a_fresh_nonce(raw, db_path: Path) -> None:
    store = EncryptedStore(raw, encrypted(AESGCMProvider([NEW])))
    await store.create(SECRETS + "a", PLAINTEXT)
    await store.create(SECRETS + "b", PLAINTEXT)
    assert stored_value(db_path, SECRETS + "a") != stored_value(db_path, SECRETS + "b")


async def test_after_rotation_old_values_read_back_stale_and_a_rewrite_uses_the_new_key(raw, db_path: Path) -> None:
    before = EncryptedStore(raw, encrypted(AESGCMProvider([OLD])))
    written = await before.create(SECRETS + "default/db", PLAINTEXT)
    rotated = EncryptedStore(raw, encrypted(AESGCMProvider([NEW, OLD])))
    read = await rotated.get(SECRETS + "default/db")
    assert (read.value, read.stale) == (PLAINTEXT, True)
    await rotated.update(read.key, read.value, expected_revision=written.mod_revision)
    again = await rotated.get(SECRETS + "default/db")
    assert (again.value, again.stale) == (PLAINTEXT, False)
    assert stored_value(db_path, SECRETS + "default/db").startswith(b"k8s:enc:aesgcm:v1:new:")
    only_new = EncryptedStore(raw, encrypted(AESGCMProvider([NEW])))
    assert (await only_new.get(SECRETS + "default/db")).value == PLAINTEXT


async def test_a_value_under_a_key_no_longer_listed_is_a_clear_error(raw) -> None:
    await EncryptedStore(raw, encrypted(AESGCMProvider([OLD]))).create(SECRETS + "default/db", PLAINTEXT)
    store = EncryptedStore(raw, encrypted(AESGCMProvider([NEW])))
    with pytest.raises(ValueTransformError, match=r"/registry/secrets/default/db.*key 'old'.*does not list"):
        await store.get(SECRETS + "default/db")
    with pytest.raises(ValueTransformError):
        await store.list(SECRETS)


async def test_a_different_key_under_the_same_name_is_refused_not_garbage(raw) -> None:
    await EncryptedStore(raw, encrypted(AESGCMProvider([OLD]))).create(SECRETS + "db", PLAINTEXT)
    impostor = EncryptedStore(raw, encrypted(AESGCMProvider([AESGCMKey("old", b"x" * 32)])))
    with pytest.raises(ValueTransformError, match="does not open it"):
        await impostor.get(SECRETS + "db")


async def test_a_value_copied_to_another_key_does_not_decrypt(raw, db_path: Path) -> None:
    store = EncryptedStore(raw, encrypted(AESGCMProvider([NEW])))
    await store.create(SECRETS + "team-a/db", PLAINTEXT)
    await raw.create(SECRETS + "team-b/db", stored_value(db_path, SECRETS + "team-a/db"))
    with pytest.raises(ValueTransformError, match="team-b/db"):
        await store.get(SECRETS + "team-b/db")


async def test_plaintext_from_before_encryption_needs_the_identity_provider(raw) -> None:
    await raw.create(SECRETS + "default/old", PLAINTEXT)
    strict = EncryptedStore(raw, encrypted(AESGCMProvider([NEW])))
    with pytest.raises(ValueTransformError, match="unencrypted.*no identity provider"):
        await strict.get(SECRETS + "default/old")
    tolerant = EncryptedStore(raw, encrypted(AESGCMProvider([NEW]), IdentityProvider()))
    read = await tolerant.get(SECRETS + "default/old")
    assert (read.value, read.stale) == (PLAINTEXT, True)


async def test_identity_first_writes_plaintext_and_still_reads_encrypted_values(raw, db_path: Path) -> None:
    await EncryptedStore(raw, encrypted(AESGCMProvider([NEW]))).create(SECRETS + "a", PLAINTEXT)
    decrypting = EncryptedStore(raw, encrypted(IdentityProvider(), AESGCMProvider([NEW])))
    assert (await decrypting.get(SECRETS + "a")).stale
    await decrypting.create(SECRETS + "b", b"now-in-the-clear")
    assert stored_value(db_path, SECRETS + "b") == b"now-in-the-clear"


async def test_a_damaged_value_is_refused(raw) -> None:
    await raw.create(SECRETS + "short", b"k8s:enc:aesgcm:v1:new:abc")
    store = EncryptedStore(raw, encrypted(AESGCMProvider([NEW])))
    with pytest.raises(ValueTransformError, match="truncated"):
        await store.get(SECRETS + "short")


def test_keys_must_have_an_aes_length_and_unique_names() -> None:
    with pytest.raises(ValueError, match="16, 24 or 32 bytes"):
        AESGCMKey("k", b"short")
    with pytest.raises(ValueError, match="unique"):
        AESGCMProvider([NEW, AESGCMKey("new", b"z" * 16)])
