"""A private containerd for integration tests, serving the CRI.

``running_containerd()`` starts ``containerd --config FILE`` with everything of
its own under one temp dir: root, state, the gRPC socket, runc's state, the CNI
config and host-local IPAM data. The CRI plugin is configured as this machine
needs (see /work/shared/NOTES.md): ``restrict_oom_score_adj = true`` (the VM
refuses to lower oom_score_adj), the locally built pause image as
``sandbox_image`` (no registry is reachable), CNI plugins from Debian's
/usr/lib/cni and a bridge + host-local conflist. It waits until the CRI
reports RuntimeReady and NetworkReady, imports the test images
(tests/support/images.py) into namespace ``k8s.io`` and waits until the CRI
sees them, then yields a ``Containerd`` (``.socket``, ``.ctr(...)``).

The bridge and its subnet are the only host-wide names. Each instance takes a
*slot* under an exclusive ``flock`` (released by the kernel even on kill -9),
and slot N owns bridge ``sampan-test<N>`` and subnet 10.244.<77+N>.0/24, so
concurrent test sessions never share a bridge or hand out the same IP.

At exit every sandbox is stopped and removed through the CRI (which tears down
its netns, veth, IP and iptables rules), containerd is stopped, and whatever a
crash may have left is cleaned: containers in our runc root, shims serving our
socket, network namespaces our sandboxes used, mounts under our temp dir, our
slot's bridge. Nothing outside those is touched.
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
from typing import Callable, Iterator, TypeVar

import grpc

from protos.cri.runtime.v1 import api_pb2 as cri
from protos.cri.runtime.v1 import api_pb2_grpc as cri_grpc
from tests.support.images import BUSYBOX_NAMES, PAUSE_IMAGE, build_test_images, import_image

T = TypeVar("T")

STARTUP_TIMEOUT = 30.0
CNI_BIN_DIR = "/usr/lib/cni"
SLOT_DIR = Path("/run/sampan-test-containerd")
SLOTS = 16
# containerd's default snapshotters that cannot work here (or are not needed).
DISABLED_PLUGINS = (
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
)


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


@dataclass
class Containerd:
    """A running private containerd; ``socket`` is its gRPC (and CRI) endpoint."""

    binary: str
    ctr_binary: str
    workdir: Path
    slot: NetworkSlot
    snapshotter: str
    process: subprocess.Popen[bytes] | None = None
    startup_seconds: float = 0.0
    netns_paths: set[str] = field(default_factory=set)

    @property
    def socket(self) -> str:
        return str(self.workdir / "containerd.sock")

    @property
    def address(self) -> str:
        """The gRPC target for grpc.aio.insecure_channel."""
        return f"unix://{self.socket}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "containerd.log"

    @property
    def runc_root(self) -> Path:
        return self.workdir / "runc"

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
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextlib.contextmanager
def running_containerd(*, binary: str, ctr_binary: str, runc_binary: str = "runc") -> Iterator[Containerd]:
    """A private containerd with the test images imported; cleaned up at exit."""
    started = time.monotonic()
    with _network_slot() as slot:
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # tmpfs: nothing to fsync
        workdir = Path(tempfile.mkdtemp(prefix="sampan-containerd-", dir=base))
        daemon = Containerd(binary=binary, ctr_binary=ctr_binary, workdir=workdir, slot=slot,
                            snapshotter="overlayfs" if _overlay_works(workdir) else "native")
        try:
            _delete_link(slot.bridge)  # left by a crashed session that held this slot
            _write_config(daemon, runc_binary=runc_binary)
            log = open(daemon.log_path, "ab")
            with log:
                daemon.process = subprocess.Popen(
                    [binary, "--config", str(workdir / "config.toml")],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True,  # a Ctrl-C in pytest must not reach it first
                )
            _wait_until_ready(daemon)
            images = build_test_images()
            for archive in images.all():
                import_image(ctr_binary, daemon.socket, archive, snapshotter=daemon.snapshotter)
            _wait_for_images(daemon, [*BUSYBOX_NAMES, PAUSE_IMAGE])
            daemon.startup_seconds = time.monotonic() - started
            yield daemon
        finally:
            _shut_down(daemon, runc_binary=runc_binary)
            shutil.rmtree(workdir, ignore_errors=True)


def cri_stubs(channel: grpc.Channel) -> tuple[cri_grpc.RuntimeServiceStub, cri_grpc.ImageServiceStub]:
    return cri_grpc.RuntimeServiceStub(channel), cri_grpc.ImageServiceStub(channel)


def sandbox_netns_path(daemon: Containerd, sandbox_id: str) -> str:
    """The network namespace file of a sandbox (from the CRI's verbose status)."""
    with grpc.insecure_channel(daemon.address) as channel:
        runtime, _ = cri_stubs(channel)
        status = runtime.PodSandboxStatus(cri.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=True))
    info = json.loads(status.info.get("info", "{}"))
    for namespace in info.get("runtimeSpec", {}).get("linux", {}).get("namespaces", []):
        if namespace.get("type") == "network":
            return namespace.get("path", "")
    return ""


# ---- setup ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _network_slot() -> Iterator[NetworkSlot]:
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


def _overlay_works(workdir: Path) -> bool:
    """Whether overlayfs mounts here (it does not on every filesystem or in every VM)."""
    probe = workdir / "overlay-probe"
    dirs = {name: probe / name for name in ("lower", "upper", "work", "merged")}
    for path in dirs.values():
        path.mkdir(parents=True)
    options = f"lowerdir={dirs['lower']},upperdir={dirs['upper']},workdir={dirs['work']}"
    mounted = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(dirs["merged"])],
                             capture_output=True).returncode == 0
    if mounted:
        subprocess.run(["umount", str(dirs["merged"])], capture_output=True)
    shutil.rmtree(probe, ignore_errors=True)
    return mounted


def _write_config(daemon: Containerd, *, runc_binary: str) -> None:
    workdir, slot = daemon.workdir, daemon.slot
    cni_conf = workdir / "cni" / "net.d"
    cni_conf.mkdir(parents=True)
    (cni_conf / "10-sampan-test.conflist").write_text(json.dumps(_conflist(slot, workdir / "cni" / "ipam"), indent=2))
    disabled = ", ".join(f'"{name}"' for name in DISABLED_PLUGINS)
    # The CRI adds the loopback plugin itself (go-cni's WithLoNetwork), so the
    # conflist holds only the pod network.
    config = f"""\
version = 2
root = "{workdir}/root"
state = "{workdir}/state"
disabled_plugins = [{disabled}]

[grpc]
  address = "{daemon.socket}"

[ttrpc]
  address = "{daemon.socket}.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{workdir}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "{daemon.snapshotter}"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{shutil.which(runc_binary) or runc_binary}"
        Root = "{daemon.runc_root}"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cni_conf}"
    max_conf_num = 1
"""
    (workdir / "config.toml").write_text(config)


def _conflist(slot: NetworkSlot, ipam_dir: Path) -> dict[str, object]:
    return {
        "cniVersion": "1.0.0",
        "name": slot.bridge,
        "plugins": [
            {
                "type": "bridge",
                "bridge": slot.bridge,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": slot.subnet, "gateway": slot.gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def _wait_until_ready(daemon: Containerd) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not os.path.exists(daemon.socket):
        _check_alive(daemon, deadline, "socket")
        time.sleep(0.02)
    with grpc.insecure_channel(daemon.address) as channel:
        runtime, _ = cri_stubs(channel)
        while True:
            try:
                status = runtime.Status(cri.StatusRequest(), timeout=2)
                conditions = {c.type: c.status for c in status.status.conditions}
                if conditions.get("RuntimeReady") and conditions.get("NetworkReady"):
                    return
            except grpc.RpcError:
                pass  # the CRI plugin registers a moment after the socket appears
            _check_alive(daemon, deadline, "CRI RuntimeReady and NetworkReady")
            time.sleep(0.05)


def _wait_for_images(daemon: Containerd, names: list[str]) -> None:
    # The CRI learns of imported images from containerd's events, a moment later.
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with grpc.insecure_channel(daemon.address) as channel:
        _, images = cri_stubs(channel)
        for name in names:
            while not images.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image=name)), timeout=5).image.id:
                _check_alive(daemon, deadline, f"image {name} visible to the CRI")
                time.sleep(0.02)


def _check_alive(daemon: Containerd, deadline: float, waiting_for: str) -> None:
    assert daemon.process is not None
    if daemon.process.poll() is not None:
        raise RuntimeError(f"containerd exited ({daemon.process.returncode}):\n{daemon.log_tail()}")
    if time.monotonic() > deadline:
        raise RuntimeError(f"containerd: no {waiting_for} after {STARTUP_TIMEOUT}s:\n{daemon.log_tail()}")


# ---- teardown -------------------------------------------------------------------------------------


def _shut_down(daemon: Containerd, *, runc_binary: str) -> None:
    if daemon.process is not None and daemon.process.poll() is None:
        _remove_all_sandboxes(daemon)
        daemon.process.send_signal(signal.SIGTERM)
        try:
            daemon.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.process.kill()
            daemon.process.wait()
    _kill_leftover_containers(daemon, runc_binary=runc_binary)
    _kill_our_shims(daemon)
    for path in sorted(daemon.netns_paths):
        _unmount(path)
        with contextlib.suppress(OSError):
            os.unlink(path)
    for mountpoint in _mounts_under(daemon.workdir):
        _unmount(mountpoint)
    _delete_link(daemon.slot.bridge)


def _remove_all_sandboxes(daemon: Containerd) -> None:
    """Stop and remove every sandbox through the CRI, so CNI tears its network down."""
    try:
        with grpc.insecure_channel(daemon.address) as channel:
            runtime, _ = cri_stubs(channel)
            sandboxes = runtime.ListPodSandbox(cri.ListPodSandboxRequest(), timeout=10).items
            for sandbox in sandboxes:
                path = _quiet(lambda: sandbox_netns_path(daemon, sandbox.id))
                if path:
                    daemon.netns_paths.add(path)
                _quiet(lambda: runtime.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=sandbox.id), timeout=30))
                _quiet(lambda: runtime.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id),
                                                        timeout=30))
    except grpc.RpcError:
        pass  # containerd is wedged; the crash cleanup below still runs


def _kill_leftover_containers(daemon: Containerd, *, runc_binary: str) -> None:
    """Kill and delete containers still in *our* runc root (only after a crash)."""
    if not daemon.runc_root.exists():
        return
    for namespace_root in daemon.runc_root.iterdir():
        listing = subprocess.run([runc_binary, "--root", str(namespace_root), "list", "--format", "json"],
                                 capture_output=True, text=True)
        for container in json.loads(listing.stdout or "null") or []:
            subprocess.run([runc_binary, "--root", str(namespace_root), "delete", "--force", container["id"]],
                           capture_output=True)


def _kill_our_shims(daemon: Containerd) -> None:
    """SIGKILL shims serving our socket: found by their -address argument, never by name."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-address" in argv and daemon.socket.encode() in argv:
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
