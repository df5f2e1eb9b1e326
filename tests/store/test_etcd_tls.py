"""EtcdStore over TLS (--etcd-cafile, --etcd-certfile, --etcd-keyfile).

A real etcd member serving https with --client-cert-auth: the store works
with the CA and a client certificate; without a client certificate, or
trusting another CA, it cannot connect; unreadable files are refused up front,
naming the flag.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from control.auth import pki
from control.store import StoreUnavailableError, open_store
from control.store.etcd import EtcdTLS
from tests.support.components import require_binary
from tests.support.etcd import _free_ports

pytestmark = pytest.mark.etcd


def _write_pair(directory: Path, name: str, cert_key: pki.CertKey) -> None:
    (directory / f"{name}.crt").write_bytes(cert_key.cert_pem)
    if cert_key.key is not None:
        (directory / f"{name}.key").write_bytes(cert_key.key_pem)


@contextlib.contextmanager
def _tls_etcd(directory: Path) -> Iterator[str]:
    """A one-member etcd on https with client-certificate authentication; yields its endpoint."""
    binary = require_binary("etcd", package="etcd-server")
    ca = pki.create_ca(common_name="etcd-ca")
    _write_pair(directory, "ca", ca)
    _write_pair(directory, "server", pki.issue(ca, common_name="etcd", server=True,
                                               server_names=["127.0.0.1", "localhost"]))
    _write_pair(directory, "client", pki.issue(ca, common_name="sampan-control"))
    _write_pair(directory, "other-ca", pki.create_ca(common_name="other"))
    client_port, peer_port = _free_ports(2)
    log = open(directory / "etcd.log", "wb")
    process = subprocess.Popen(
        [binary, "--name=tls", f"--data-dir={directory / 'data'}",
         f"--listen-client-urls=https://127.0.0.1:{client_port}",
         f"--advertise-client-urls=https://127.0.0.1:{client_port}",
         f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
         f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
         f"--initial-cluster=tls=http://127.0.0.1:{peer_port}",
         f"--cert-file={directory / 'server.crt'}", f"--key-file={directory / 'server.key'}",
         f"--trusted-ca-file={directory / 'ca.crt'}", "--client-cert-auth",
         "--logger=zap", "--log-level=warn"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield f"127.0.0.1:{client_port}"
    finally:
        process.kill()
        process.wait()
        log.close()


@pytest.fixture
def tls_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="sampan-etcd-tls-", dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


async def _open_with_retry(url: str, tls: EtcdTLS):
    """etcd takes a moment to listen; the store's own open waits per endpoint, so retry briefly."""
    deadline = time.monotonic() + 15
    while True:
        try:
            return await open_store(url, etcd_tls=tls)
        except StoreUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_store_works_over_tls_with_a_client_certificate(tls_dir: Path) -> None:
    with _tls_etcd(tls_dir) as endpoint:
        tls = EtcdTLS(cafile=str(tls_dir / "ca.crt"), certfile=str(tls_dir / "client.crt"),
                      keyfile=str(tls_dir / "client.key"))
        store = await _open_with_retry(f"etcd://{endpoint}", tls)
        try:
            created = await store.create("/tls/key", b"value")
            got = await store.get("/tls/key")
            assert got is not None and got.value == b"value" and got == created
        finally:
            await store.close()


async def test_store_cannot_connect_without_its_certificate_or_trusting_another_ca(tls_dir: Path) -> None:
    with _tls_etcd(tls_dir) as endpoint:
        good = EtcdTLS(cafile=str(tls_dir / "ca.crt"), certfile=str(tls_dir / "client.crt"),
                       keyfile=str(tls_dir / "client.key"))
        await (await _open_with_retry(f"etcd://{endpoint}", good)).close()  # etcd is up
        for tls in (EtcdTLS(cafile=str(tls_dir / "ca.crt")),
                    EtcdTLS(cafile=str(tls_dir / "other-ca.crt"), certfile=str(tls_dir / "client.crt"),
                            keyfile=str(tls_dir / "client.key"))):
            with pytest.raises(StoreUnavailableError):
                store = await open_store(f"etcd://{endpoint}", etcd_tls=tls)
                try:  # a TLS 1.3 server may refuse the missing client certificate only at the first call
                    await store.get("/tls/key")
                finally:
                    await store.close()


def test_unreadable_files_are_refused_naming_the_flag(tls_dir: Path) -> None:
    with pytest.raises(ValueError, match="--etcd-keyfile: cannot read"):
        EtcdTLS(cafile="/dev/null", certfile="/dev/null", keyfile=str(tls_dir / "nope.key")).credentials()
    with pytest.raises(ValueError, match="--etcd-certfile and --etcd-keyfile go together"):
        EtcdTLS(cafile="/dev/null", certfile="/dev/null").credentials()
