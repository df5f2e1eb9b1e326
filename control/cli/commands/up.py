"""``sampan up``: a whole single-node cluster on this machine, in one command.

Starts, as child processes of this one, each in its own session (so a Ctrl-C
in the terminal reaches only ``sampan up``, which then stops them in order):

1. the control service on the embedded SQLite store (DATA_DIR/state.db);
2. when the runtime choice calls for one, a private containerd under
   DATA_DIR/containerd (agent/bootstrap/containerd.py), its pods on bridge
   ``sampan0`` with addresses from ``--pod-cidr``;
3. the agent for this machine, told which runtime to use;
4. the service proxy for this machine (``sampan proxy``, ``--proxy-mode``
   auto by default: it logs, in DATA_DIR/proxy.log, which mode it chose and
   why).

The runtime is chosen once, here, before the agent starts
(agent/bootstrap/runtime_choice.py): the process runtime when asked for;
else the containerd answering at ``--containerd-socket`` (its pause and
busybox images imported if it lacks them); else a private containerd, when
run as root with containerd installed; else the process runtime. The choice
and its reason are printed.

Everything speaks mutual TLS. Before anything starts, ``sampan up`` makes
(first time) or reuses the cluster CA and the control service's certificates
in DATA_DIR/pki, and signs this node's client and serving certificates into
DATA_DIR/agent/pki (control/auth/node_pki.py), which the agent and the proxy
use: one machine holds the CA, so no join is needed. The client config
(``~/.sampan/config``, or $SAMPAN_CONFIG, or ``--config``) gets the server,
the CA and the admin's certificate once the control service listens, so
``sampan get nodes`` works at once in another shell. Ctrl-C or SIGTERM stops the proxy and the agent, then containerd,
then the control service (a second Ctrl-C stops them without waiting); the
proxy's kernel rules stay, as they do when it restarts. Pods keep running:
containerd's shims hold their containers while containerd is down (as the
process runtime's shims hold its processes), and the next ``sampan up`` on the
same data directory starts containerd there again, which reattaches to them,
and its agent adopts them.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Iterator

import grpc

from agent.bootstrap.containerd import (
    ContainerdError,
    ContainerdLayout,
    PodNetwork,
    PrivateContainerd,
    cri_status,
    ensure_images,
    foreign_pod_interfaces,
)
from agent.bootstrap.images import PAUSE_IMAGE
from agent.bootstrap.runtime_choice import CONTAINERD, HostFacts, RuntimeChoice, RuntimeUnavailable, choose_runtime
from agent.node import detect_internal_ip
from control.auth.node_pki import NodePKI, issue_node
from control.auth.pki import ADMIN_NAME, ClusterPKI
from control.cli.errors import CommandError
from control.client_config import write_config

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class _StopRequested(Exception):
    """Ctrl-C or SIGTERM while the cluster starts or runs."""


class _StopSignals:
    """SIGINT and SIGTERM raise _StopRequested, except while a child is being
    started: then they wait until it is tracked (else it could be left running)."""

    def __init__(self) -> None:
        self._requested = False
        self._deferring = False

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self._requested:
            raise _StopRequested()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._requested = True
        if not self._deferring:
            raise _StopRequested()


@dataclass
class _Child:
    name: str
    log: Path
    process: subprocess.Popen | None = None


class _Cluster:
    """The children of one ``sampan up``, stopped in the reverse of their start order."""

    def __init__(self, signals: _StopSignals) -> None:
        self.children: list[_Child] = []
        self.signals = signals
        self._hurry = False

    def start(self, name: str, argv: list[str], *, log: Path) -> _Child:
        child = self.adopt(name, log=log)
        with open(log, "ab") as out, self.signals.deferred():
            child.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             start_new_session=True)
        return child

    def adopt(self, name: str, *, log: Path) -> _Child:
        """Track a child started elsewhere (set its process once there is one)."""
        child = _Child(name, log)
        self.children.append(child)
        return child

    def exited(self) -> _Child | None:
        return next((c for c in self.children if c.process is not None and c.process.poll() is not None), None)

    def stop(self) -> None:
        def hurry(signum: int, frame: FrameType | None) -> None:
            self._hurry = True

        signal.signal(signal.SIGINT, hurry)
        signal.signal(signal.SIGTERM, hurry)
        for child in reversed(self.children):
            self._stop(child)

    def _stop(self, child: _Child) -> None:
        process = child.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while process.poll() is None:
            if self._hurry or time.monotonic() > deadline:
                process.kill()
                process.wait()
                return
            time.sleep(0.05)


def run(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    sampan = [sys.executable, "-m", "control.cli.main"]
    signals = _StopSignals()
    cluster = _Cluster(signals)
    signals.install()
    node_name = args.node_name or socket.gethostname()
    pki, node_pki = _prepare_pki(data_dir, listen=args.listen, node_name=node_name)
    try:
        control = cluster.start("control service", [
            *sampan, "control", "--store", f"sqlite:///{data_dir}/state.db", "--listen", args.listen,
            "--metrics-listen", args.control_metrics_listen, "--pki-dir", str(pki.directory),
            "--admin-config", str(data_dir / "admin.config"),
            # One control replica: no one to share with, and a restart after a
            # crash must not wait out its predecessor's lease.
            "--leader-elect=false",
            # Cluster DNS on every address, off port 53 (a host resolver may hold it): the
            # kube-dns Service (10.96.0.10:53) leads there through the proxy.
            "--cluster-dns-listen", _dns_listen(args.cluster_dns_listen)], log=data_dir / "control.log")
        choice = _prepare_runtime(args, data_dir=data_dir, cluster=cluster)  # while the control service starts
        _wait_for_port(args.listen, child=control)
        admin = pki.load(ADMIN_NAME)
        config = write_config(args.listen, ca=pki.ca_pem, cert=admin.cert_pem, key=admin.key_pem)
        runtime_args = (["--runtime", "containerd", "--containerd-socket", choice.socket]
                        if choice.runtime == CONTAINERD else ["--runtime", "process"])
        cluster.start("agent", [
            *sampan, "agent", "--server", args.listen, "--node-name", node_name,
            "--data-dir", str(data_dir / "agent"), "--pki-dir", str(node_pki.directory), *runtime_args,
            "--pod-cidr", args.pod_cidr,
            "--metrics-listen", args.agent_metrics_listen, "--listen", args.agent_listen],
            log=data_dir / "agent.log")
        cluster.start("proxy", [
            *sampan, "proxy", "--server", args.listen, "--node-name", node_name,
            "--pki-dir", str(node_pki.directory), "--mode", args.proxy_mode, "--metrics-listen", args.proxy_metrics_listen], log=data_dir / "proxy.log")
        print(f"Sampan is up: control service at {args.listen}, this machine's agent and service proxy running.")
        print(f"Client config written to {config}; logs: " + ", ".join(str(c.log) for c in cluster.children) + ".")
        print("Try: sampan get nodes    (Ctrl-C here stops the cluster; pods keep running)", flush=True)
        while (child := cluster.exited()) is None:
            time.sleep(0.2)
        assert child.process is not None
        print(f"error: the {child.name} exited with code {child.process.returncode}; see {child.log}",
              file=sys.stderr)
        return 1
    except _StopRequested:
        return 0
    finally:
        print("Stopping " + ", ".join(c.name for c in reversed(cluster.children) if c.process) + " ...", flush=True)
        cluster.stop()
        print("Sampan stopped.", flush=True)


def _prepare_pki(data_dir: Path, *, listen: str, node_name: str) -> tuple[ClusterPKI, NodePKI]:
    """The cluster CA and the control service's certificates (made the first time), and this
    node's certificates signed afresh, so the agent's serving certificate names today's address."""
    host = listen.rpartition(":")[0].strip("[]")
    host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    pki = ClusterPKI(data_dir / "pki")
    node_pki = NodePKI(data_dir / "agent" / "pki")
    try:
        pki.ensure(server_names=[host])
        issue_node(pki, node_pki, node_name=node_name, addresses=[detect_internal_ip()])
    except (OSError, ValueError) as err:
        raise CommandError(f"error: cannot prepare the cluster's certificates in {pki.directory}: {err}") from None
    return pki, node_pki


def _dns_listen(listen: str) -> str:
    """The cluster DNS address, with 0.0.0.0 made this machine's address.

    A UDP server bound to 0.0.0.0 answers from whichever address routes
    back to the client (for a pod, its bridge's gateway), not from the one
    the proxy's DNAT sent the query to, so the pod would drop the answer.
    """
    host, _, port = listen.rpartition(":")
    if host in ("0.0.0.0", ""):
        return f"{detect_internal_ip()}:{port}" if listen else listen
    return listen


def _prepare_runtime(args: argparse.Namespace, *, data_dir: Path, cluster: _Cluster) -> RuntimeChoice:
    """Choose the agent's runtime, start or ready containerd for it, and say so."""
    layout = ContainerdLayout(data_dir / "containerd")
    try:
        choice = choose_runtime(HostFacts.gather(
            requested=args.runtime, socket=args.containerd_socket, private_socket=layout.socket))
    except RuntimeUnavailable as err:
        raise CommandError(f"error: {err}") from None
    if choice.runtime != CONTAINERD:
        print(f"Container runtime: process (no isolation; images are names only): {choice.reason}", flush=True)
        return choice
    print(f"Container runtime: containerd: {choice.reason}", flush=True)
    if choice.start_private:
        _start_private_containerd(args, layout=layout, data_dir=data_dir, cluster=cluster)
    else:
        _ensure_images(choice.socket, data_dir=data_dir)
    return choice


def _start_private_containerd(args: argparse.Namespace, *, layout: ContainerdLayout, data_dir: Path,
                              cluster: _Cluster) -> None:
    network = PodNetwork(subnet=args.pod_cidr, bridge=args.pod_bridge)
    foreign = foreign_pod_interfaces(layout, network)
    if foreign:
        raise CommandError(
            f"error: bridge {args.pod_bridge} already has {len(foreign)} pod interface(s) ({', '.join(foreign[:3])}"
            f"{', ...' if len(foreign) > 3 else ''}) of a cluster with another data dir; this one would hand out "
            f"their addresses again. Delete that cluster's pods first, or give this one another "
            f"--pod-bridge and --pod-cidr")
    daemon = PrivateContainerd(layout, binary="containerd", ctr_binary="ctr", image_cache=data_dir / "images",
                               network=network)
    child = cluster.adopt("containerd", log=layout.log_path)
    try:
        with cluster.signals.deferred():  # a Ctrl-C waits for start() to return (at most its timeout)
            try:
                daemon.start()
            finally:
                child.process = daemon.process
    except (ContainerdError, OSError, ValueError) as err:
        raise CommandError(f"error: cannot start a private containerd: {err}") from None
    print(f"  private containerd ready (snapshotter {daemon.snapshotter}, pods on bridge {args.pod_bridge} "
          f"in {args.pod_cidr}); log: {layout.log_path}", flush=True)


def _ensure_images(socket_path: str, *, data_dir: Path) -> None:
    """The containerd we did not start: import its sandbox image (and busybox,
    for the sample app) when it lacks them, so pods start without a registry."""
    status = cri_status(socket_path)
    sandbox_image = (status.sandbox_image if status else "") or PAUSE_IMAGE
    ctr = shutil.which("ctr")
    try:
        if ctr is None:
            raise RuntimeError("ctr (Debian package containerd) is not installed")
        imported = ensure_images(socket_path, ctr_binary=ctr, cache_dir=data_dir / "images",
                                 sandbox_image=sandbox_image, snapshotter=status.snapshotter if status else "")
    except (RuntimeError, OSError, subprocess.SubprocessError, grpc.RpcError) as err:
        print(f"  warning: could not make sure the images are present ({err}); pods need the sandbox image "
              f"{sandbox_image} to start", flush=True)
        return
    if imported:
        print(f"  imported into containerd: {', '.join(imported)}", flush=True)


def _wait_for_port(address: str, *, child: _Child) -> None:
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + STARTUP_TIMEOUT
    assert child.process is not None
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise CommandError(f"error: the {child.name} exited with code {child.process.returncode}; "
                               f"see {child.log}")
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise CommandError(f"error: the {child.name} did not listen on {address} within {STARTUP_TIMEOUT:.0f}s; "
                       f"see {child.log}")
