"""A private etcd for integration tests.

``running_etcd(members=N)`` starts an N-member cluster on free loopback ports,
each member with its own data dir, waits until every member reports healthy,
yields an ``EtcdCluster`` and kills it at exit. Data dirs go on /dev/shm when
it exists: etcd fsyncs every write, and on tmpfs that costs nothing.

The cluster is a plain context manager so both fixtures and single tests can
use it; ``stop``/``start`` of one member is there for failover tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Iterator

STARTUP_TIMEOUT = 15.0


@dataclass(frozen=True)
class EtcdMember:
    name: str
    client_port: int
    peer_port: int
    data_dir: str

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


@dataclass
class EtcdCluster:
    binary: str
    members: list[EtcdMember]
    workdir: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def endpoints(self) -> list[str]:
        """'127.0.0.1:PORT' of every member, as EtcdStore.open takes them."""
        return [member.endpoint for member in self.members]

    def start(self, member: EtcdMember) -> None:
        """Start (or restart, keeping its data) one member."""
        initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        log = open(os.path.join(self.workdir, f"{member.name}.log"), "ab")
        with log:
            self.processes[member.name] = subprocess.Popen(
                [
                    self.binary,
                    f"--name={member.name}",
                    f"--data-dir={member.data_dir}",
                    f"--listen-client-urls={member.client_url}",
                    f"--advertise-client-urls={member.client_url}",
                    f"--listen-peer-urls={member.peer_url}",
                    f"--initial-advertise-peer-urls={member.peer_url}",
                    f"--initial-cluster={initial_cluster}",
                    "--initial-cluster-state=new",
                    f"--initial-cluster-token={os.path.basename(self.workdir)}",  # one per cluster
                    "--logger=zap",
                    "--log-level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def stop(self, member: EtcdMember) -> None:
        """Kill one member (SIGKILL, like a crash)."""
        process = self.processes.pop(member.name, None)
        if process is not None:
            process.kill()
            process.wait()

    def wait_healthy(self, member: EtcdMember, *, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            process = self.processes[member.name]
            if process.poll() is not None:
                raise RuntimeError(f"etcd member {member.name} exited ({process.returncode}):\n{self.log_tail(member)}")
            if _healthy(member):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd member {member.name} not healthy after {timeout}s:\n{self.log_tail(member)}")
            time.sleep(0.02)

    def log_tail(self, member: EtcdMember, lines: int = 20) -> str:
        with open(os.path.join(self.workdir, f"{member.name}.log"), "rb") as log:
            return b"\n".join(log.read().splitlines()[-lines:]).decode(errors="replace")


@contextlib.contextmanager
def running_etcd(*, binary: str, members: int = 1) -> Iterator[EtcdCluster]:
    """A fresh etcd cluster of ``members`` members, killed and removed at exit."""
    workdir = tempfile.mkdtemp(prefix="sampan-etcd-", dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
    ports = _free_ports(2 * members)
    cluster = EtcdCluster(
        binary=binary,
        members=[
            EtcdMember(
                name=f"member{i}",
                client_port=ports[2 * i],
                peer_port=ports[2 * i + 1],
                data_dir=os.path.join(workdir, f"member{i}.etcd"),
            )
            for i in range(members)
        ],
        workdir=workdir,
    )
    try:
        for member in cluster.members:
            cluster.start(member)
        for member in cluster.members:
            cluster.wait_healthy(member)
        yield cluster
    finally:
        for member in cluster.members:
            cluster.stop(member)
        shutil.rmtree(workdir, ignore_errors=True)


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an http_proxy


def _healthy(member: EtcdMember) -> bool:
    try:
        with _DIRECT.open(f"{member.client_url}/health", timeout=1) as response:
            return json.load(response).get("health") == "true"
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
