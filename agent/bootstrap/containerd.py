"""A private containerd whose CRI works on this kind of machine.

``sampan up`` starts one when no containerd answers and it may (root,
``containerd`` installed); the integration tests start one per session. Both
get the same configuration, written here, with everything of the instance's
own under one directory (``ContainerdLayout``): root, state, the gRPC socket,
runc's state, the CNI config and host-local's IP allocations.

The CRI plugin is configured as these machines need (see the project notes):

- ``restrict_oom_score_adj = true``: a sandbox that refuses to lower
  oom_score_adj below its parent's otherwise fails every pod sandbox with
  "can't get final child's PID from pipe: EOF".
- ``sandbox_image`` is the locally built pause image (``images.PAUSE_IMAGE``),
  imported before the CRI is used: no registry need be reachable.
- CNI plugins from Debian's containernetworking-plugins (/usr/lib/cni) and one
  bridge + host-local conflist on the node's pod CIDR (``PodNetwork``). The
  CRI adds the loopback network itself.
- The snapshotter is overlayfs where an overlay mounts, else native.

``PrivateContainerd.start`` writes the config, starts ``containerd --config``
in its own session (a Ctrl-C meant for its parent must not reach it first),
waits until the CRI reports RuntimeReady and NetworkReady, imports the images
it lacks into namespace ``k8s.io`` and waits until the CRI sees them.
``stop`` ends containerd only: its shims, and the containers they hold, keep
running, and a containerd started again on the same directory adopts them.
Removing pods is the agent's job, not this module's.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from agent.bootstrap.images import (
    BUSYBOX_BINARY,
    BUSYBOX_NAMES,
    PAUSE_IMAGE,
    build_images,
    build_pause_image,
    import_image,
)
from protos.cri.runtime.v1 import api_pb2 as cri
from protos.cri.runtime.v1 import api_pb2_grpc as cri_grpc

DEFAULT_SOCKET = "/run/containerd/containerd.sock"
CNI_BIN_DIR = "/usr/lib/cni"
DEFAULT_BRIDGE = "sampan0"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# A unix socket path is at most 107 bytes; containerd adds ".ttrpc" for its second socket.
MAX_SOCKET_PATH = 107 - len(".ttrpc")
# containerd's default plugins that cannot work here, or are not needed.
DISABLED_PLUGINS = (
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
)


class ContainerdError(RuntimeError):
    """containerd could not be configured, started or readied; says why."""


@dataclass(frozen=True)
class PodNetwork:
    """The pods' network: one Linux bridge, addresses from ``subnet``."""

    subnet: str
    bridge: str = DEFAULT_BRIDGE

    @property
    def gateway(self) -> str:
        """The bridge's own address: the subnet's first host."""
        return str(next(ipaddress.ip_network(self.subnet, strict=False).hosts()))

    def conflist(self, *, ipam_dir: Path) -> dict[str, object]:
        return {
            "cniVersion": "1.0.0",
            "name": self.bridge,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": str(ipaddress.ip_network(self.subnet, strict=False)),
                                     "gateway": self.gateway}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(ipam_dir),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }


@dataclass(frozen=True)
class ContainerdLayout:
    """Where a private containerd keeps everything of its own."""

    workdir: Path

    @property
    def socket(self) -> str:
        return str(self.workdir / "containerd.sock")

    @property
    def address(self) -> str:
        """The gRPC target for grpc.insecure_channel."""
        return f"unix://{self.socket}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.toml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "containerd.log"

    @property
    def runc_root(self) -> Path:
        return self.workdir / "runc"

    @property
    def cni_conf_dir(self) -> Path:
        return self.workdir / "cni" / "net.d"

    @property
    def ipam_dir(self) -> Path:
        return self.workdir / "cni" / "ipam"


def foreign_pod_interfaces(layout: ContainerdLayout, network: PodNetwork, *,
                           sys_class_net: Path = Path("/sys/class/net")) -> list[str]:
    """The interfaces on the pods' bridge that another instance's pods hold.

    host-local hands out addresses from the allocations in this instance's
    own directory. Pods of an earlier instance with another directory (an
    earlier ``sampan up`` with another data dir) still on the bridge hold
    addresses this one would hand out again: two pods with one address. When
    this instance has allocated nothing yet, every interface on the bridge is
    another's.
    """
    ports = sys_class_net / network.bridge / "brif"
    if not ports.is_dir():
        return []
    allocations = layout.ipam_dir / network.bridge
    if allocations.is_dir() and any(_is_address(entry.name) for entry in allocations.iterdir()):
        return []
    return sorted(entry.name for entry in ports.iterdir())


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class CRIStatus:
    """What a containerd's CRI says of itself (``status``)."""

    runtime_ready: bool
    network_ready: bool
    sandbox_image: str
    snapshotter: str


def cri_status(socket: str, *, timeout: float = 2.0) -> CRIStatus | None:
    """The CRI's status at socket, or None when nothing answers there."""
    if not os.path.exists(socket):
        return None
    try:
        with grpc.insecure_channel(f"unix://{socket}") as channel:
            reply = cri_grpc.RuntimeServiceStub(channel).Status(cri.StatusRequest(verbose=True), timeout=timeout)
    except grpc.RpcError:
        return None
    conditions = {c.type: c.status for c in reply.status.conditions}
    try:
        config = json.loads(reply.info.get("config", "{}"))
    except ValueError:
        config = {}
    return CRIStatus(
        runtime_ready=bool(conditions.get("RuntimeReady")), network_ready=bool(conditions.get("NetworkReady")),
        sandbox_image=config.get("sandboxImage", ""),
        snapshotter=(config.get("containerd") or {}).get("snapshotter", ""))


def missing_images(socket: str, names: list[str], *, timeout: float = 5.0) -> list[str]:
    """The names the CRI at socket does not hold."""
    with grpc.insecure_channel(f"unix://{socket}") as channel:
        images = cri_grpc.ImageServiceStub(channel)
        return [name for name in names
                if not images.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image=name)),
                                          timeout=timeout).image.id]


def ensure_images(socket: str, *, ctr_binary: str, cache_dir: Path, sandbox_image: str = PAUSE_IMAGE,
                  snapshotter: str = "", busybox: str = BUSYBOX_BINARY) -> list[str]:
    """Import the pause image (as ``sandbox_image``) and busybox where the CRI
    lacks them; never replaces an image it has. Returns what was imported."""
    archives = {}
    if missing_images(socket, [sandbox_image]):
        archives[sandbox_image] = build_pause_image(name=sandbox_image, cache_dir=cache_dir, busybox=busybox)
    if missing_images(socket, list(BUSYBOX_NAMES)):
        archives[BUSYBOX_NAMES[0]] = build_images(cache_dir=cache_dir, busybox=busybox).busybox
    for archive in archives.values():
        import_image(ctr_binary, socket, archive, snapshotter=snapshotter)
    return list(archives)


def probe_snapshotter(scratch: Path) -> str:
    """overlayfs if an overlay mounts under scratch (not on every filesystem
    nor in every VM), else native."""
    probe = scratch / "overlay-probe"
    shutil.rmtree(probe, ignore_errors=True)
    dirs = {name: probe / name for name in ("lower", "upper", "work", "merged")}
    for path in dirs.values():
        path.mkdir(parents=True)
    options = f"lowerdir={dirs['lower']},upperdir={dirs['upper']},workdir={dirs['work']}"
    mounted = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(dirs["merged"])],
                             capture_output=True).returncode == 0
    if mounted:
        subprocess.run(["umount", str(dirs["merged"])], capture_output=True)
    shutil.rmtree(probe, ignore_errors=True)
    return "overlayfs" if mounted else "native"


def write_config(layout: ContainerdLayout, *, network: PodNetwork, snapshotter: str, runc_binary: str = "runc",
                 sandbox_image: str = PAUSE_IMAGE, cni_bin_dir: str = CNI_BIN_DIR) -> None:
    """Write config.toml and the CNI conflist (replacing any earlier ones)."""
    if len(layout.socket.encode()) > MAX_SOCKET_PATH:
        raise ContainerdError(f"the socket path {layout.socket} is longer than {MAX_SOCKET_PATH} bytes, "
                              "too long for a unix socket: use a shorter data directory")
    workdir = layout.workdir
    layout.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    for old in layout.cni_conf_dir.glob("*.conflist"):
        old.unlink()
    (layout.cni_conf_dir / f"10-{network.bridge}.conflist").write_text(
        json.dumps(network.conflist(ipam_dir=layout.ipam_dir), indent=2))
    disabled = ", ".join(f'"{name}"' for name in DISABLED_PLUGINS)
    config = f"""\
version = 2
root = "{workdir}/root"
state = "{workdir}/state"
disabled_plugins = [{disabled}]

[grpc]
  address = "{layout.socket}"

[ttrpc]
  address = "{layout.socket}.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{workdir}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "{snapshotter}"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{shutil.which(runc_binary) or runc_binary}"
        Root = "{layout.runc_root}"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin_dir}"
    conf_dir = "{layout.cni_conf_dir}"
    max_conf_num = 1
"""
    layout.config_path.write_text(config)


class PrivateContainerd:
    """One containerd process on a layout: ``start`` readies it with the
    images imported, ``stop`` ends containerd and leaves its shims running."""

    def __init__(self, layout: ContainerdLayout, *, binary: str, ctr_binary: str, network: PodNetwork,
                 image_cache: Path, runc_binary: str = "runc", busybox: str = BUSYBOX_BINARY,
                 cni_bin_dir: str = CNI_BIN_DIR, timeout: float = STARTUP_TIMEOUT) -> None:
        self.layout = layout
        self.network = network
        self.snapshotter = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._binary = binary
        self._ctr_binary = ctr_binary
        self._runc_binary = runc_binary
        self._image_cache = image_cache
        self._busybox = busybox
        self._cni_bin_dir = cni_bin_dir
        self._timeout = timeout

    @property
    def socket(self) -> str:
        return self.layout.socket

    def start(self) -> None:
        """Configure, start and ready containerd; ContainerdError if it cannot be."""
        if self.process is not None:
            raise ContainerdError("this containerd was started already")
        self.layout.workdir.mkdir(parents=True, exist_ok=True)
        if cri_status(self.socket) is not None:
            raise ContainerdError(f"a containerd already serves {self.socket}")
        for stale in (Path(self.socket), Path(f"{self.socket}.ttrpc")):
            stale.unlink(missing_ok=True)  # left by a containerd that was killed
        self.snapshotter = probe_snapshotter(self.layout.workdir)
        write_config(self.layout, network=self.network, snapshotter=self.snapshotter,
                     runc_binary=self._runc_binary, cni_bin_dir=self._cni_bin_dir)
        with open(self.layout.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [self._binary, "--config", str(self.layout.config_path)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self._timeout
        self._wait_until_ready(deadline)
        try:
            ensure_images(self.socket, ctr_binary=self._ctr_binary, cache_dir=self._image_cache,
                          snapshotter=self.snapshotter, busybox=self._busybox)
        except (RuntimeError, OSError, subprocess.SubprocessError) as err:
            raise ContainerdError(f"containerd: cannot import the pause and busybox images: {err}") from None
        self._wait_for_images([PAUSE_IMAGE, *BUSYBOX_NAMES], deadline)

    def stop(self, *, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM containerd (SIGKILL after timeout). Shims and containers stay."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.layout.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _wait_until_ready(self, deadline: float) -> None:
        while True:
            status = cri_status(self.socket)
            # The CRI plugin registers a moment after the socket appears.
            if status is not None and status.runtime_ready and status.network_ready:
                return
            self._check_alive(deadline, "CRI RuntimeReady and NetworkReady")
            time.sleep(0.05)

    def _wait_for_images(self, names: list[str], deadline: float) -> None:
        # The CRI learns of imported images from containerd's events, a moment later.
        while missing := missing_images(self.socket, names):
            self._check_alive(deadline, f"image {missing[0]} visible to the CRI")
            time.sleep(0.02)

    def _check_alive(self, deadline: float, waiting_for: str) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise ContainerdError(f"containerd exited ({self.process.returncode}); the end of "
                                  f"{self.layout.log_path}:\n{self.log_tail()}")
        if time.monotonic() > deadline:
            raise ContainerdError(f"containerd: no {waiting_for} after {self._timeout:.0f}s; the end of "
                                  f"{self.layout.log_path}:\n{self.log_tail()}")
