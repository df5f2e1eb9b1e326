"""Start a real control service (``sampan control``) in a subprocess.

``ControlServer`` owns one process and its store URL; tests can stop it
(SIGTERM), kill it (SIGKILL) and start it again on the same store and port to
check that state survives. The process's log is kept in its directory and
printed when startup fails.
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
                 python_args: tuple[str, ...] = ()) -> None:
        """python_args go between the interpreter and ``-m control.cli.main`` (``-m cProfile -o FILE``)."""
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.store_url = store_url or f"sqlite:///{workdir}/state.db"
        self.port = free_port()
        self.metrics_port = free_port()
        self.extra_args = extra_args
        self.python_args = python_args
        self.process: subprocess.Popen | None = None
        self.log_path = workdir / "control.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, *, timeout: float = 20.0) -> "ControlServer":
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, *self.python_args, "-m", "control.cli.main", "control",
             "--store", self.store_url, "--listen", self.address,
             "--metrics-listen", f"127.0.0.1:{self.metrics_port}", *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        self._wait_serving(timeout)
        return self

    def _wait_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"control service exited with {self.process.returncode}:\n{self.log()}")
            try:
                with grpc.insecure_channel(self.address) as channel:
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
