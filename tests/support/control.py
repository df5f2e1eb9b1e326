"""Start a real control service (``sampan control``) in a subprocess.

``ControlServer`` owns one process and its store URL; tests can stop it
(SIGTERM), kill it (SIGKILL) and start it again on the same store and port to
check that state survives. The process's log is kept in its directory and
printed when startup fails.

By default it serves plain text (``--insecure-plaintext``: every caller is an
administrator), as most tests need nothing else. ``tls=True`` serves mutual
TLS from a PKI directory in its workdir (``pki_dir``), writes the admin's
client config there (``admin_config``) and offers the admin's credentials
(``admin_credentials``); its health check then speaks TLS too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ControlServer:
    def __init__(self, workdir: Path, *, store_url: str | None = None, extra_args: tuple[str, ...] = (),
                 python_args: tuple[str, ...] = (), tls: bool = False) -> None:
        """python_args go between the interpreter and ``-m control.cli.main`` (``-m cProfile -o FILE``)."""
        self.tls = tls
        self.pki_dir = workdir / "pki"
        self.admin_config = workdir / "admin.config"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.store_url = store_url or f"sqlite:///{workdir}/state.db"
        self.port = free_port()
        self.metrics_port = free_port()
        self.extra_args = extra_args
        self.python_args = python_args
        self.process: subprocess.Popen | None = None
        self.log_path = workdir / "control.log"
        self._started = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, *, timeout: float = 20.0) -> "ControlServer":
        """Start the process and wait until it serves. On a first start whose ports another
        process took meanwhile (free_port only finds ports free a moment ago), new ports are
        chosen; a restart keeps its ports, as tests that restart on the same address need."""
        for attempt in range(3):
            log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
            log = open(self.log_path, "ab")
            self.process = subprocess.Popen(
                [sys.executable, *self.python_args, "-m", "control.cli.main", "control",
                 "--store", self.store_url, "--listen", self.address,
                 "--metrics-listen", f"127.0.0.1:{self.metrics_port}", *self._security_args(), *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            log.close()
            try:
                self._wait_serving(timeout)
            except RuntimeError:
                taken = "Address already in use" in self.log()[log_start:]
                if self._started or not taken or attempt == 2:
                    raise
                self.port, self.metrics_port = free_port(), free_port()
                continue
            self._started = True
            return self
        raise AssertionError("unreachable")

    def _security_args(self) -> list[str]:
        if not self.tls:
            return ["--insecure-plaintext"]
        return ["--pki-dir", str(self.pki_dir), "--admin-config", str(self.admin_config)]

    @property
    def admin_credentials(self):
        """The admin's control.client.ClientCredentials (with tls=True; plain text otherwise)."""
        from control.client import ClientCredentials

        if not self.tls:
            return ClientCredentials()
        read = lambda name: (self.pki_dir / name).read_bytes()  # noqa: E731
        return ClientCredentials(ca=read("ca.crt"), cert=read("admin.crt"), key=read("admin.key"))

    def _channel(self) -> grpc.Channel:
        if not self.tls or not (self.pki_dir / "admin.key").exists():
            return grpc.insecure_channel(self.address)
        credentials = self.admin_credentials
        return grpc.secure_channel(self.address, grpc.ssl_channel_credentials(
            root_certificates=credentials.ca, private_key=credentials.key, certificate_chain=credentials.cert))

    def _wait_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"control service exited with {self.process.returncode}:\n{self.log()}")
            if self.tls and not self.admin_config.exists():
                time.sleep(0.05)  # written once the service serves
                continue
            try:
                with self._channel() as channel:
                    answer = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(service="sampan.api.v1.API"), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"control service not serving after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, *, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> "ControlServer":
        self.stop()
        return self.start()
