"""Which container runtime ``sampan up`` gives its agent, and why.

Decided in one place, from facts gathered first (``HostFacts.gather``), by a
pure function (``choose_runtime``), in this order:

1. ``--runtime process``: the process runtime.
2. A containerd answers at the given socket (the system's, by default): use it.
3. A containerd answers at the private socket (DATA_DIR/containerd): an
   earlier ``sampan up`` left it running; use it.
4. Root, and a private containerd's needs installed (containerd, runc, the CNI
   plugins, busybox-static for the pause image): start a private one.
5. Otherwise the process runtime; ``--runtime containerd`` fails instead.

The reason is a sentence for the user: the path not taken is named with what
would have made it possible.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from agent.bootstrap.containerd import CNI_BIN_DIR, cri_status
from agent.bootstrap.images import BUSYBOX_BINARY, ImageBuildError, require_static_busybox

PROCESS = "process"
CONTAINERD = "containerd"
# The CNI plugins a private containerd's conflist uses (Debian's containernetworking-plugins).
_CNI_PLUGINS = ("bridge", "host-local", "portmap", "loopback")


@dataclass(frozen=True)
class RuntimeChoice:
    runtime: str  # CONTAINERD or PROCESS
    socket: str = ""  # containerd's, when runtime is CONTAINERD
    start_private: bool = False  # sampan up starts the containerd at socket
    reason: str = ""


class RuntimeUnavailable(RuntimeError):
    """``--runtime containerd`` asked for, and no containerd can be had."""


@dataclass(frozen=True)
class HostFacts:
    """What the choice depends on, gathered from this machine."""

    requested: str  # auto, containerd or process
    socket: str
    socket_answers: bool
    private_socket: str
    private_socket_answers: bool
    is_root: bool
    containerd_installed: bool
    missing_for_private: tuple[str, ...]  # Debian packages a private containerd still needs

    @classmethod
    def gather(cls, *, requested: str, socket: str, private_socket: str, cni_bin_dir: str = CNI_BIN_DIR,
               busybox: str = BUSYBOX_BINARY) -> "HostFacts":
        if requested == PROCESS:  # nothing to probe
            return cls(requested=requested, socket=socket, socket_answers=False, private_socket=private_socket,
                       private_socket_answers=False, is_root=os.geteuid() == 0, containerd_installed=False,
                       missing_for_private=())
        missing = [package for binary, package in (("containerd", "containerd"), ("ctr", "containerd"),
                                                    ("runc", "runc"))
                   if shutil.which(binary) is None]
        if not all(Path(cni_bin_dir, plugin).exists() for plugin in _CNI_PLUGINS):
            missing.append("containernetworking-plugins")
        if not _static_busybox(busybox):
            missing.append("busybox-static")
        return cls(
            requested=requested, socket=socket, socket_answers=cri_status(socket) is not None,
            private_socket=private_socket,
            private_socket_answers=private_socket != socket and cri_status(private_socket) is not None,
            is_root=os.geteuid() == 0, containerd_installed=shutil.which("containerd") is not None,
            missing_for_private=tuple(dict.fromkeys(missing)))


def choose_runtime(facts: HostFacts) -> RuntimeChoice:
    """The runtime for these facts; RuntimeUnavailable when containerd was
    required and cannot be had."""
    if facts.requested == PROCESS:
        return RuntimeChoice(PROCESS, reason="--runtime process")
    if facts.socket_answers:
        return RuntimeChoice(CONTAINERD, socket=facts.socket, reason=f"containerd answers at {facts.socket}")
    if facts.private_socket_answers:
        return RuntimeChoice(CONTAINERD, socket=facts.private_socket,
                             reason=f"a containerd left by an earlier sampan up answers at {facts.private_socket}"
                                    " (this sampan up will not stop it)")
    nothing = f"no containerd answers at {facts.socket}"
    if not facts.containerd_installed:
        why_not = "containerd is not installed (Debian package 'containerd')"
    elif not facts.is_root:
        why_not = "starting a private containerd needs root"
    elif facts.missing_for_private:
        why_not = "a private containerd also needs the Debian packages " + ", ".join(facts.missing_for_private)
    else:
        return RuntimeChoice(CONTAINERD, socket=facts.private_socket, start_private=True,
                             reason=f"{nothing}; starting a private containerd at {facts.private_socket}")
    if facts.requested == CONTAINERD:
        raise RuntimeUnavailable(f"--runtime containerd: {nothing} and {why_not}")
    return RuntimeChoice(PROCESS, reason=f"{nothing} and {why_not}")


def _static_busybox(path: str) -> bool:
    try:
        require_static_busybox(path)
    except ImageBuildError:
        return False
    return True
