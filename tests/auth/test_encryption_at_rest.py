"""Secrets encrypted at rest, as the control service runs them.

The EncryptionConfiguration file (control/auth/encryption.py): what it
accepts, errors naming the field, the file ``sampan control`` creates on
SQLite. Then a real service: the SQLite file and (marked etcd) the value
``etcdctl get`` reads hold no Secret plaintext while the API, its watch and
a restarted service read Secrets back; after a key rotation ``sampan secrets
reencrypt`` rewrites every Secret under the new key, so the old key can go;
a Secret whose key is missing is a clear error and the service goes on.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from control.api import errors
from control.auth.encryption import (
    EncryptionConfigError,
    config_for_service,
    load_encryption_config,
    parse_encryption_config,
)
from control.client import Client
from control.service import ControlConfig, ControlService, protection_from_args
from protos.api.v1 import core_pb2
from tests.support.components import require_binary
from tests.support.etcd import running_etcd

PLAINTEXT = b"correct-horse-battery-staple"


def key(name: str, fill: bytes) -> dict:
    return {"name": name, "secret": base64.b64encode(fill * 32).decode()}


def write_config(path: Path, *keys: dict, identity: bool = True) -> Path:
    providers = [{"aesgcm": {"keys": list(keys)}}] + ([{"identity": {}}] if identity else [])
    path.write_text(yaml.safe_dump({"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
                                    "resources": [{"resources": ["secrets"], "providers": providers}]}))
    return path


OLD, NEW = key("old", b"o"), key("new", b"n")


def secret(name: str, namespace: str = "default") -> core_pb2.Secret:
    obj = core_pb2.Secret(api_version="v1", kind="Secret")
    obj.metadata.name, obj.metadata.namespace = name, namespace
    obj.data["password"] = PLAINTEXT + name.encode()
    return obj


async def started(store_url: str, config: Path | None) -> ControlService:
    svc = ControlService(ControlConfig(
        store_url=store_url, listen="127.0.0.1:0", metrics_listen="", shutdown_grace=0.2, leader_election=None,
        encryption_provider_config=str(config) if config else ""))
    await svc.start()
    return svc


def database_bytes(db: Path) -> bytes:
    return b"".join(path.read_bytes() for path in db.parent.glob(db.name + "*"))


def stored_prefixes(db: Path) -> dict[str, bytes]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT key, value FROM current WHERE key LIKE '/registry/secrets/%'").fetchall()
    return {key: bytes(value)[:24] for key, value in rows}


# ------------------------------------------------------------------ the file


def test_the_file_maps_resources_to_their_storage_prefixes(tmp_path) -> None:
    transformers = load_encryption_config(write_config(tmp_path / "enc.yaml", NEW, OLD))
    assert list(transformers) == ["/registry/secrets/"]
    assert [provider.name for provider in transformers["/registry/secrets/"].providers] == ["aesgcm", "identity"]


@pytest.mark.parametrize("document, message", [
    ({"kind": "EncryptionConfiguration", "apiVersion": "v1"}, "apiVersion: Unsupported value"),
    ({"kind": "EncryptionConfiguration", "apiVersion": "apiserver.config.k8s.io/v1", "resources": [
        {"resources": ["secrets"], "providers": [{"aescbc": {}}]}]},
     r"resources\[0\].providers\[0\]: Unsupported value: 'aescbc'"),
    ({"kind": "EncryptionConfiguration", "apiVersion": "apiserver.config.k8s.io/v1", "resources": [
        {"resources": ["secrets"], "providers": [{"aesgcm": {"keys": [{"name": "k", "secret": "c2hvcnQ="}]}}]}]},
     r"resources\[0\].providers\[0\].aesgcm.keys\[0\].secret: Invalid value: must be the base64 encoding of a 16, "
     r"24 or 32 byte key"),
    ({"kind": "EncryptionConfiguration", "apiVersion": "apiserver.config.k8s.io/v1", "resources": [
        {"resources": ["secretz"], "providers": [{"identity": {}}]}]},
     r"resources\[0\].resources\[0\]: Unsupported value: 'secretz'"),
])
def test_a_bad_file_is_refused_naming_the_field(document, message) -> None:
    with pytest.raises(EncryptionConfigError, match=message):
        parse_encryption_config(document)


def test_on_sqlite_the_service_creates_a_private_config_with_a_fresh_key_once(tmp_path) -> None:
    store_url = f"sqlite:///{tmp_path}/data/state.db"
    path = config_for_service(given=None, enabled=True, store_url=store_url)
    assert path == str(tmp_path / "data" / "encryption-config.yaml")
    assert os.stat(path).st_mode & 0o077 == 0
    first = Path(path).read_text()
    assert config_for_service(given=None, enabled=True, store_url=store_url) == path
    assert Path(path).read_text() == first
    assert list(load_encryption_config(path)) == ["/registry/secrets/"]


def test_on_etcd_or_when_turned_off_no_key_is_invented(tmp_path, caplog) -> None:
    assert config_for_service(given=None, enabled=True, store_url="etcd://127.0.0.1:2379") == ""
    assert config_for_service(given=None, enabled=False, store_url=f"sqlite:///{tmp_path}/state.db") == ""
    assert not (tmp_path / "encryption-config.yaml").exists()
    assert "Secrets are stored UNENCRYPTED" in caplog.text


def test_a_given_file_must_exist(tmp_path) -> None:
    args = argparse.Namespace(store=f"sqlite:///{tmp_path}/state.db",
                              encryption_provider_config=str(tmp_path / "missing.yaml"))
    with pytest.raises(ValueError, match="--encryption-provider-config: .*missing.yaml: no such file"):
        protection_from_args(args)


# ------------------------------------------------------------------ the service


async def test_the_sqlite_file_holds_no_secret_plaintext_and_the_api_reads_it_back(tmp_path) -> None:
    db = tmp_path / "state.db"
    svc = await started(f"sqlite:///{db}", write_config(tmp_path / "enc.yaml", NEW))
    try:
        async with Client.connect(f"127.0.0.1:{svc.port}") as api:
            watch = api.watch("Secret", namespace="default")
            watched = asyncio.ensure_future(anext(watch))
            await asyncio.sleep(0.2)
            await api.create(secret("db"))
            config = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap", data={"note": "visible-config-value"})
            config.metadata.name, config.metadata.namespace = "note", "default"
            await api.create(config)
            assert (await api.get("Secret", "db", namespace="default")).data["password"] == PLAINTEXT + b"db"
            event = await asyncio.wait_for(watched, 10)
            assert event.object.data["password"] == PLAINTEXT + b"db"
            await watch.aclose()
    finally:
        await svc.stop()
    on_disk = database_bytes(db)
    assert b"visible-config-value" in on_disk
    assert PLAINTEXT not in on_disk
    assert stored_prefixes(db)["/registry/secrets/default/db"].startswith(b"k8s:enc:aesgcm:v1:new:")


def reencrypt(port: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "control.cli.main", "--server", f"127.0.0.1:{port}",
                           "secrets", "reencrypt"], capture_output=True, text=True, timeout=60)


async def test_after_rotation_reencrypt_moves_every_secret_to_the_new_key(tmp_path) -> None:
    db = tmp_path / "state.db"
    names = [("db", "default"), ("api", "default"), ("cache", "kube-system")]
    svc = await started(f"sqlite:///{db}", write_config(tmp_path / "old.yaml", OLD))
    async with Client.connect(f"127.0.0.1:{svc.port}") as api:
        for name, namespace in names:
            await api.create(secret(name, namespace))
    await svc.stop()
    assert all(value.startswith(b"k8s:enc:aesgcm:v1:old:") for value in stored_prefixes(db).values())

    svc = await started(f"sqlite:///{db}", write_config(tmp_path / "rotated.yaml", NEW, OLD))
    try:
        first = await asyncio.to_thread(reencrypt, svc.port)
        second = await asyncio.to_thread(reencrypt, svc.port)
    finally:
        await svc.stop()
    assert first.returncode == 0, first.stderr
    assert "secret/cache -n kube-system rewritten" in first.stdout
    assert "0 already current" in first.stdout
    assert " 0 rewritten with the current key" in second.stdout, second.stdout
    assert all(value.startswith(b"k8s:enc:aesgcm:v1:new:") for value in stored_prefixes(db).values())

    svc = await started(f"sqlite:///{db}", write_config(tmp_path / "new-only.yaml", NEW, identity=False))
    try:
        async with Client.connect(f"127.0.0.1:{svc.port}") as api:
            for name, namespace in names:
                read = await api.get("Secret", name, namespace=namespace)
                assert read.data["password"] == PLAINTEXT + name.encode()
    finally:
        await svc.stop()


async def test_a_secret_under_a_missing_key_is_a_clear_error_and_the_service_goes_on(tmp_path) -> None:
    db = tmp_path / "state.db"
    svc = await started(f"sqlite:///{db}", write_config(tmp_path / "old.yaml", OLD))
    async with Client.connect(f"127.0.0.1:{svc.port}") as api:
        await api.create(secret("db"))
    await svc.stop()
    svc = await started(f"sqlite:///{db}", write_config(tmp_path / "new.yaml", NEW))
    try:
        async with Client.connect(f"127.0.0.1:{svc.port}") as api:
            with pytest.raises(errors.InternalError, match=r'"/registry/secrets/default/db".*key \'old\''):
                await api.get("Secret", "db", namespace="default")
            with pytest.raises(errors.InternalError, match="does not list"):
                await api.list("Secret", namespace="default")
            assert (await api.get("Namespace", "default")).metadata.name == "default"
            with pytest.raises(errors.InternalError, match="key 'old'"):  # as in Kubernetes: put the key back
                await api.delete("Secret", "db", namespace="default")
    finally:
        await svc.stop()


@pytest.mark.etcd
async def test_etcd_holds_no_secret_plaintext(tmp_path) -> None:
    binary = require_binary("etcd", package="etcd-server")
    etcdctl = require_binary("etcdctl", package="etcd-client")
    with running_etcd(binary=binary) as cluster:
        svc = await started("etcd://" + ",".join(cluster.endpoints), write_config(tmp_path / "enc.yaml", NEW))
        try:
            async with Client.connect(f"127.0.0.1:{svc.port}") as api:
                await api.create(secret("db"))
                assert (await api.get("Secret", "db", namespace="default")).data["password"] == PLAINTEXT + b"db"
        finally:
            await svc.stop()
        raw = subprocess.run([etcdctl, f"--endpoints={cluster.members[0].client_url}", "get",
                              "/registry/secrets/default/db", "--print-value-only"],
                             capture_output=True, timeout=30, check=True).stdout
    assert raw.startswith(b"k8s:enc:aesgcm:v1:new:")
    assert PLAINTEXT not in raw


async def test_sampan_control_on_sqlite_encrypts_secrets_with_a_key_it_creates(control_server) -> None:
    config = control_server.workdir / "encryption-config.yaml"
    assert config.exists() and config.stat().st_mode & 0o077 == 0
    async with Client.connect(control_server.address) as api:
        await api.create(secret("db"))
    assert control_server.stop() == 0
    assert "encrypting at rest: secrets: aesgcm key 'key-" in control_server.log()
    db = control_server.workdir / "state.db"
    assert PLAINTEXT not in database_bytes(db)
    assert stored_prefixes(db)["/registry/secrets/default/db"].startswith(b"k8s:enc:aesgcm:v1:key-")
