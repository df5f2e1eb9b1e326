"""A private containerd for integration tests, serving the CRI.

``running_containerd()`` starts the product's private containerd
(agent/bootstrap/containerd.py: the CRI configuration this machine needs, the
pause and busybox images imported) with everything of its own under one temp
dir, and yields a ``Containerd`` (``.socket``, ``.ctr(...)``, ``.slot``).
What this module adds is what only tests need: sharing the machine with other
test sessions, and leaving nothing behind.

The bridge and its subnet are the only host-wide names. Each instance takes a
*slot* under an exclusive ``flock`` (released by the kernel even on kill -9),
and slot N owns bridge ``sampan-test<N>`` and subnet 10.244.<77+N>.0/24, so
concurrent test sessions never share a bridge or hand out the same IP.

At exit every sandbox is stopped and removed through the CRI (which tears down
its netns, veth, IP and iptables rules), containerd is stopped, and whatever a
crash may have left is cleaned (``clean_up_after``): containers in our runc
root, shims serving our socket, network namespaces our sandboxes used, mounts
under our temp dir, our slot's bridge. Nothing outside those is touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import grpc

from agent.bootstrap.containerd import CNI_BIN_DIR, ContainerdLayout, PodNetwork, PrivateContainerd
from protos.cri.runtime.v1 import api_pb2 as cri
from protos.cri.runtime.v1 import api_pb2_grpc as cri_grpc
from tests.support.images import CACHE_ROOT

__all__ = ["CNI_BIN_DIR", "Containerd", "NetworkSlot", "clean_up_after", "cri_stubs", "network_slot",
           "remove_all_sandboxes", "running_containerd", "sandbox_netns_path"]

T = TypeVar("T")

SLOT_DIR = Path("/run/sampan-test-containerd")
SLOTS = 16


@dataclass(frozen=True)
class NetworkSlot:
    index: int

    @property
    def bridge(self) -> str:
        return f"sampan-test{self.index}"

    @property
    def subnet(self) -> str:
        return f"10.244.{77 + self.index}.0/24"

    @property
    def gateway(self) -> str:
        return f"10.244.{77 + self.index}.1"

    @property
    def network(self) -> PodNetwork:
        return PodNetwork(subnet=self.subnet, bridge=self.bridge)


@dataclass
class Containerd:
    """A running private containerd; ``socket`` is its gRPC (and CRI) endpoint."""

    binary: str
    ctr_binary: str
    workdir: Path
    slot: NetworkSlot
    daemon: PrivateContainerd
    startup_seconds: float = 0.0
    netns_paths: set[str] = field(default_factory=set)

    @property
    def layout(self) -> ContainerdLayout:
        return self.daemon.layout

    @property
    def snapshotter(self) -> str:
        return self.daemon.snapshotter

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.daemon.process

    @property
    def socket(self) -> str:
        return self.layout.socket

    @property
    def address(self) -> str:
        """The gRPC target for grpc.aio.insecure_channel."""
        return self.layout.address

    @property
    def log_path(self) -> Path:
        return self.layout.log_path

    @property
    def runc_root(self) -> Path:
        return self.layout.runc_root

    def ctr(self, *args: str, check: bool = True) -> str:
        """Run ``ctr --address SOCK -n k8s.io ARGS``; return its stdout."""
        result = subprocess.run(
            [self.ctr_binary, "--address", self.socket, "-n", "k8s.io", *args],
            capture_output=True, text=True, timeout=60,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def log_tail(self, lines: int = 30) -> str:
        return self.daemon.log_tail(lines)


@contextlib.contextmanager
def running_containerd(*, binary: str, ctr_binary: str, runc_binary: str = "runc") -> Iterator[Containerd]:
    """A private containerd with the test images imported; cleaned up at exit."""
    started = time.monotonic()
    with network_slot() as slot:
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # tmpfs: nothing to fsync
        workdir = Path(tempfile.mkdtemp(prefix="sampan-containerd-", dir=base))
        daemon = PrivateContainerd(ContainerdLayout(workdir), binary=binary, ctr_binary=ctr_binary,
                                   network=slot.network, image_cache=CACHE_ROOT, runc_binary=runc_binary)
        containerd = Containerd(binary=binary, ctr_binary=ctr_binary, workdir=workdir, slot=slot, daemon=daemon)
        try:
            _delete_link(slot.bridge)  # left by a crashed session that held this slot
            daemon.start()
            containerd.startup_seconds = time.monotonic() - started
            yield containerd
        finally:
            if daemon.process is not None and daemon.process.poll() is None:
                containerd.netns_paths |= remove_all_sandboxes(containerd.socket)
            daemon.stop()
            clean_up_after(containerd.layout, bridge=slot.bridge, runc_binary=runc_binary,
                           netns_paths=containerd.netns_paths)
            shutil.rmtree(workdir, ignore_errors=True)


def cri_stubs(channel: grpc.Channel) -> tuple[cri_grpc.RuntimeServiceStub, cri_grpc.ImageServiceStub]:
    return cri_grpc.RuntimeServiceStub(channel), cri_grpc.ImageServiceStub(channel)


def sandbox_netns_path(daemon: Containerd | str, sandbox_id: str) -> str:
    """The network namespace file of a sandbox (from the CRI's verbose status);
    daemon is a Containerd or a containerd socket path."""
    address = daemon.address if isinstance(daemon, Containerd) else f"unix://{daemon}"
    with grpc.insecure_channel(address) as channel:
        runtime, _ = cri_stubs(channel)
        status = runtime.PodSandboxStatus(cri.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=True))
    info = json.loads(status.info.get("info", "{}"))
    for namespace in info.get("runtimeSpec", {}).get("linux", {}).get("namespaces", []):
        if namespace.get("type") == "network":
            return namespace.get("path", "")
    return ""


def remove_all_sandboxes(socket: str) -> set[str]:
    """Stop and remove every sandbox through the CRI, so CNI tears its network
    down; returns the network namespace files they used (for clean_up_after)."""
    netns_paths: set[str] = set()
    try:
        with grpc.insecure_channel(f"unix://{socket}") as channel:
            runtime, _ = cri_stubs(channel)
            sandboxes = runtime.ListPodSandbox(cri.ListPodSandboxRequest(), timeout=10).items
            for sandbox in sandboxes:
                path = _quiet(lambda: sandbox_netns_path(socket, sandbox.id))
                if path:
                    netns_paths.add(path)
                _quiet(lambda: runtime.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=sandbox.id), timeout=30))
                _quiet(lambda: runtime.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id),
                                                        timeout=30))
    except grpc.RpcError:
        pass  # containerd is wedged; clean_up_after still runs
    return netns_paths


def clean_up_after(layout: ContainerdLayout, *, bridge: str, runc_binary: str = "runc",
                   netns_paths: Iterable[str] = ()) -> None:
    """After containerd has stopped: remove what it may have left running or
    mounted (only after a crash, or when its pods were not removed)."""
    _kill_leftover_containers(layout, runc_binary=runc_binary)
    _kill_our_shims(layout)
    for path in sorted(netns_paths):
        _unmount(path)
        with contextlib.suppress(OSError):
            os.unlink(path)
    for mountpoint in _mounts_under(layout.workdir):
        _unmount(mountpoint)
    _delete_link(bridge)


@contextlib.contextmanager
def network_slot() -> Iterator[NetworkSlot]:
    """A bridge name and subnet no other test session holds, until exit."""
    SLOT_DIR.mkdir(parents=True, exist_ok=True)
    for index in range(SLOTS):
        lock = open(SLOT_DIR / f"slot-{index}.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        try:
            yield NetworkSlot(index)
        finally:
            lock.close()
        return
    raise RuntimeError(f"all {SLOTS} test network slots under {SLOT_DIR} are taken")


def _kill_leftover_containers(layout: ContainerdLayout, *, runc_binary: str) -> None:
    """Kill and delete containers still in *our* runc root."""
    if not layout.runc_root.exists():
        return
    for namespace_root in layout.runc_root.iterdir():
        listing = subprocess.run([runc_binary, "--root", str(namespace_root), "list", "--format", "json"],
                                 capture_output=True, text=True)
        for container in json.loads(listing.stdout or "null") or []:
            subprocess.run([runc_binary, "--root", str(namespace_root), "delete", "--force", container["id"]],
                           capture_output=True)


def _kill_our_shims(layout: ContainerdLayout) -> None:
    """SIGKILL shims serving our socket: found by their -address argument, never by name."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-address" in argv and layout.socket.encode() in argv:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


def _mounts_under(root: Path) -> list[str]:
    """Mount points below root, deepest first."""
    prefix = str(root) + "/"
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def _unmount(path: str) -> None:
    subprocess.run(["umount", "--lazy", path], capture_output=True)


def _delete_link(name: str) -> None:
    subprocess.run(["ip", "link", "delete", name], capture_output=True)


def _quiet(call: Callable[[], T]) -> T | None:
    """call(), or None if containerd refuses: teardown goes on regardless."""
    try:
        return call()
    except grpc.RpcError:
        return None
