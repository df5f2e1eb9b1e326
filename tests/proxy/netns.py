"""A node in its own network namespace, so proxy tests program real nftables without touching the host.

``node_namespace()`` holds a slot (an exclusive ``flock``, released by the
kernel even on kill -9, as tests/support/containerd.py's network slots) and
creates, for slot N:

- the network namespace ``sampan-proxy-test<N>`` with loopback up;
- a veth pair joining it to the host: ``spx<N>h`` in the host with
  10.252.N.1/30, ``spx<N>n`` in the node with 10.252.N.2/30, the node's
  address;
- in the node, a route for the service CIDR over the veth, so a connection
  to a ClusterIP has a route before the proxy's rules rewrite it.

Nothing else in the host's namespace is changed: no rule, no route beyond
the veth's own, no sysctl. At exit the namespace is deleted, which removes
the veth pair and everything created inside (rules, bridges, addresses).

``NodeNamespace`` runs commands inside (``nsenter --net``, which keeps the
host's mount namespace, so a containerd or agent started there shares the
host's files and mounts) and makes sockets there for the test process
itself (``setns`` in a short-lived thread; the socket stays in the node's
namespace whichever thread uses it). ``run_in`` runs a whole coroutine on a
thread inside the node: its sockets, and the commands it starts, are the
node's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import json
import os
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Iterator, TypeVar

T = TypeVar("T")
SLOT_DIR = Path("/run/sampan-test-proxy")
SLOTS = 16
SERVICE_CIDR = "10.96.0.0/12"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class NodeNamespace:
    index: int

    @property
    def name(self) -> str:
        return f"sampan-proxy-test{self.index}"

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    @property
    def host_link(self) -> str:
        return f"spx{self.index}h"

    @property
    def node_link(self) -> str:
        return f"spx{self.index}n"

    @property
    def host_ip(self) -> str:
        """The host's end of the veth: what the node reaches the host (the control service) at."""
        return f"10.252.{self.index}.1"

    @property
    def node_ip(self) -> str:
        """The node's address (its Node's InternalIP)."""
        return f"10.252.{self.index}.2"

    def command(self, *argv: str) -> list[str]:
        """argv run inside the node's network namespace (host mounts kept)."""
        return ["nsenter", f"--net={self.path}", "--", *argv]

    def run(self, *argv: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.command(*argv), input=stdin, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} in {self.name} failed: {result.stderr.strip()}")
        return result

    def nft(self, *args: str, stdin: str | None = None) -> str:
        return self.run("nft", *args, stdin=stdin).stdout

    def nft_json(self, *args: str) -> list[dict]:
        """``nft -j ARGS`` parsed: the list of objects (metainfo left out)."""
        result = self.run("nft", "-j", *args, check=False)
        if result.returncode != 0:
            return []
        return [item for item in json.loads(result.stdout)["nftables"] if "metainfo" not in item]

    def enter(self) -> None:
        """Move the calling thread (only it) into the node's network namespace, for good.

        Everything the thread opens afterwards (sockets, and the processes
        it starts) is in the node; use it on a thread of its own.
        """
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, os.strerror(errno))
        finally:
            os.close(fd)

    def socket(self, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket in the node's network namespace, as a process on the node would open it."""
        made: dict[str, object] = {}

        def make() -> None:
            try:
                self.enter()
                made["socket"] = socket.socket(family, kind)
            except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
                made["error"] = err

        thread = threading.Thread(target=make)  # setns changes this thread only, which then ends
        thread.start()
        thread.join()
        if "error" in made:
            raise made["error"]  # type: ignore[misc]
        return made["socket"]  # type: ignore[return-value]


def run_in(node: NodeNamespace, body: Callable[[], Awaitable[T]]) -> T:
    """Run the coroutine function ``body`` on an event loop of its own, on a thread inside the node."""
    outcome: dict[str, object] = {}

    def main() -> None:
        try:
            node.enter()
            outcome["result"] = asyncio.run(body())
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = err

    thread = threading.Thread(target=main)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"]  # type: ignore[return-value]


def http_get(sock: socket.socket, host: str, port: int, *, timeout: float = 3.0) -> str:
    """One HTTP/1.0 GET / over sock (connected here); the body, stripped."""
    with sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    response = b"".join(chunks).decode(errors="replace")
    head, _, body = response.partition("\r\n\r\n")
    if not head.startswith("HTTP/1.") or " 200 " not in head.splitlines()[0]:
        raise ConnectionError(f"unexpected answer: {head.splitlines()[:1]}")
    return body.strip()


@contextlib.contextmanager
def node_namespace() -> Iterator[NodeNamespace]:
    with _slot() as index:
        node = NodeNamespace(index)
        _remove(node)  # left by a crashed session that held this slot
        try:
            _create(node)
            yield node
        finally:
            _remove(node)


def _create(node: NodeNamespace) -> None:
    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True)

    ip("netns", "add", node.name)
    ip("link", "add", node.host_link, "type", "veth", "peer", "name", node.node_link, "netns", node.name)
    ip("address", "add", f"{node.host_ip}/30", "dev", node.host_link)
    ip("link", "set", node.host_link, "up")
    inside = ["ip", "-n", node.name]
    for args in (["link", "set", "lo", "up"], ["address", "add", f"{node.node_ip}/30", "dev", node.node_link],
                 ["link", "set", node.node_link, "up"], ["route", "add", SERVICE_CIDR, "dev", node.node_link]):
        subprocess.run([*inside, *args], check=True, capture_output=True, text=True)


def _remove(node: NodeNamespace) -> None:
    subprocess.run(["ip", "netns", "delete", node.name], capture_output=True)
    subprocess.run(["ip", "link", "delete", node.host_link], capture_output=True)


@contextlib.contextmanager
def _slot() -> Iterator[int]:
    SLOT_DIR.mkdir(parents=True, exist_ok=True)
    for index in range(SLOTS):
        lock = open(SLOT_DIR / f"slot-{index}.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        try:
            yield index
        finally:
            lock.close()
        return
    raise RuntimeError(f"all {SLOTS} proxy test slots under {SLOT_DIR} are taken")
