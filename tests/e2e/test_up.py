"""``sampan up`` end to end, as a user runs it: one command brings up a
single-node cluster whose Node turns Ready, writes the client config (the server, the CA and the
admin's certificate: everything speaks mutual TLS) that a plain ``sampan get
nodes`` in another shell uses, and on Ctrl-C (SIGINT)
stops every process it started.

On the process runtime this needs nothing but Python. The containerd variant
(root, Debian's containerd, runc, containernetworking-plugins and
busybox-static) gives ``sampan up`` a containerd socket that does not exist,
so it starts its private containerd; the sample app's pod, bound to the node,
then runs there and serves its page on its pod IP. Its bridge and subnet come
from a test network slot (tests/support/containerd.py), so it never collides
with a real ``sampan up`` or another test session. Traffic goes only to
loopback and to the pod IP on that private bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Iterator, TypeVar

import yaml

from agent.bootstrap.containerd import CNI_BIN_DIR, ContainerdLayout, PodNetwork, PrivateContainerd, cri_status
from control.api import errors
from control.client import Client
from control.client_config import credentials_from_config, server_from_config
from protos.api.v1 import core_pb2
from tests.support.components import require, require_binary
from tests.support.containerd import NetworkSlot, clean_up_after, network_slot, remove_all_sandboxes
from tests.support.control import free_port

REPO = Path(__file__).resolve().parents[2]
SAMPLE_APP = REPO / "examples" / "sample-app.yaml"
T = TypeVar("T")


@dataclass
class SampanUp:
    """One ``sampan up`` process and where it keeps things."""

    data_dir: Path
    config: Path
    listen: str
    process: subprocess.Popen[str]
    output: Path

    @property
    def env(self) -> dict[str, str]:
        return shell_env(self.config)

    def printed(self) -> str:
        return self.output.read_text(errors="replace")

    async def client(self, *, timeout: float = 30.0) -> Client:
        """A client with the credentials of the config sampan up writes (waiting until it is there)."""
        deadline = time.monotonic() + timeout
        while (credentials := credentials_from_config(self.listen, self.config)) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no client config at {self.config}:\n{self.logs()}")
            await asyncio.sleep(0.1)
        return Client.connect(self.listen, credentials=credentials)

    def logs(self) -> str:
        """What sampan up printed and the end of each child's log, for failure messages."""
        parts = [f"--- sampan up\n{self.printed()}"]
        for log in sorted(self.data_dir.glob("*.log")) + sorted(self.data_dir.glob("containerd/*.log")):
            parts.append(f"--- {log}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:]))
        return "\n".join(parts)

    def sampan(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """The CLI as another shell runs it: no --server, no $SAMPAN_SERVER."""
        return subprocess.run([sys.executable, "-m", "control.cli.main", *args], input=stdin, cwd=REPO,
                              env=self.env, capture_output=True, text=True, timeout=60)

    def interrupt(self, *, timeout: float = 60.0) -> int:
        """Ctrl-C: SIGINT to sampan up alone; its exit code."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"sampan up did not stop {timeout}s after SIGINT:\n{self.logs()}") from None


def shell_env(config: Path) -> dict[str, str]:
    """A shell's environment that has only the config file to find the cluster by."""
    env = {key: value for key, value in os.environ.items() if key != "SAMPAN_SERVER"}
    return {**env, "SAMPAN_CONFIG": str(config), "PYTHONUNBUFFERED": "1"}


def start_up(data_dir: Path, *extra: str) -> SampanUp:
    config = data_dir.parent / f"{data_dir.name}-config" / "config"
    output = data_dir.parent / f"{data_dir.name}-up.out"
    listen = f"127.0.0.1:{free_port()}"
    with open(output, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "control.cli.main", "up", "--data-dir", str(data_dir), "--listen", listen,
             "--control-metrics-listen", f"127.0.0.1:{free_port()}",
             "--agent-metrics-listen", f"127.0.0.1:{free_port()}", "--agent-listen", "127.0.0.1:0",
             # The userspace proxy: a test must not write nftables rules into the host's namespace.
             "--proxy-mode", "userspace", "--proxy-metrics-listen", f"127.0.0.1:{free_port()}",
             "--cluster-dns-listen", f"127.0.0.1:{free_port()}", *extra],
            cwd=REPO, env=shell_env(config), stdout=out, stderr=subprocess.STDOUT, text=True)
    return SampanUp(data_dir=data_dir, config=config, listen=listen, process=process, output=output)


def processes_mentioning(text: str) -> dict[int, str]:
    """pid -> command line of every process whose command line contains text."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            if text in argv:
                found[int(proc.name)] = argv
    return found


async def eventually(probe: Callable[[], Awaitable[T]], predicate: Callable[[T], bool], *, timeout: float,
                     what: str, up: SampanUp) -> T:
    """Poll probe() until predicate holds for its value; fail with sampan up's logs if it never does."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = await probe()
            if predicate(last):  # type: ignore[arg-type]
                return last  # type: ignore[return-value]
        except (errors.NotFoundError, errors.UnavailableError) as err:
            last = err
        if up.process.poll() is not None:
            raise AssertionError(f"sampan up exited ({up.process.returncode}) while waiting for {what}:\n"
                                 f"{up.logs()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout}s; last: {last}\n{up.logs()}")
        await asyncio.sleep(0.1)


def condition(obj: core_pb2.Node | core_pb2.Pod, kind: str) -> str:
    return next((c.status for c in obj.status.conditions if c.type == kind), "")


async def ready_node(up: SampanUp, *, timeout: float) -> core_pb2.Node:
    async with await up.client() as api:
        return await eventually(lambda: api.get("Node", socket.gethostname()),
                                lambda node: condition(node, "Ready") == "True",
                                timeout=timeout, what="Ready node", up=up)


def assert_clients_find_the_cluster(up: SampanUp, node: str) -> None:
    assert server_from_config(up.config) == up.listen
    credentials = credentials_from_config(up.listen, up.config)
    assert credentials is not None and credentials.tls and credentials.cert, "the config has no TLS credentials"
    nodes = up.sampan("get", "nodes")
    assert nodes.returncode == 0, nodes.stderr
    assert [line.split()[:2] for line in nodes.stdout.splitlines()[1:]] == [[node, "Ready"]]


def assert_stops_everything_on_ctrl_c(up: SampanUp) -> None:
    started = processes_mentioning(str(up.data_dir))
    assert up.interrupt() == 0, up.logs()
    assert "Sampan stopped." in up.printed()
    assert processes_mentioning(str(up.data_dir)) == {}, f"left running after Ctrl-C (were {started})"


async def test_up_on_the_process_runtime_brings_up_a_ready_node_and_stops_every_child_on_ctrl_c(tmp_path):
    up = start_up(tmp_path / "data", "--runtime", "process")
    try:
        node = await ready_node(up, timeout=30)
        assert node.status.node_info.container_runtime_version.startswith("process://")
        assert "Container runtime: process" in up.printed()
        assert_clients_find_the_cluster(up, node.metadata.name)
        children = processes_mentioning(str(up.data_dir))
        assert any(" control " in argv for argv in children.values()), children
        assert any(" agent " in argv for argv in children.values()), children
        assert_stops_everything_on_ctrl_c(up)
    finally:
        _kill(up)


# ---- containerd ------------------------------------------------------------------------------------


def require_private_containerd_prerequisites() -> None:
    require_binary("containerd", package="containerd")
    require_binary("ctr", package="containerd")
    require_binary("runc", package="runc")
    require_binary("busybox", package="busybox-static")
    for needed, message in (
            (Path(CNI_BIN_DIR, "bridge").exists(),
             f"no CNI plugins in {CNI_BIN_DIR}: install the Debian package 'containernetworking-plugins'"),
            (os.geteuid() == 0, "a private containerd needs root")):
        require(needed, message)


@contextlib.contextmanager
def short_data_dir() -> Iterator[Path]:
    """A data dir short enough for containerd's socket path (pytest's tmp_path is not)."""
    root = Path(tempfile.mkdtemp(prefix="sampan-up-", dir="/tmp"))
    try:
        yield root / "data"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def sample_app_on(node: str) -> str:
    """examples/sample-app.yaml with its pod bound to node (there is no scheduler yet)."""
    documents = list(yaml.safe_load_all(SAMPLE_APP.read_text()))
    for document in documents:
        if document["kind"] == "Pod":
            document["spec"]["nodeName"] = node
    return yaml.safe_dump_all(documents)


async def test_up_as_root_starts_a_private_containerd_that_runs_the_sample_app():
    require_private_containerd_prerequisites()
    with short_data_dir() as data_dir, network_slot() as slot:
        up = start_up(data_dir, "--runtime", "auto", "--containerd-socket", str(data_dir.parent / "absent.sock"),
                      "--pod-cidr", slot.subnet, "--pod-bridge", slot.bridge)
        try:
            node = await ready_node(up, timeout=90)
            assert node.status.node_info.container_runtime_version.startswith("containerd://"), up.logs()
            assert "starting a private containerd" in up.printed()
            assert_clients_find_the_cluster(up, node.metadata.name)

            applied = up.sampan("apply", "-f", "-", stdin=sample_app_on(node.metadata.name))
            assert applied.returncode == 0, applied.stderr
            async with await up.client() as api:
                pod = await eventually(
                    lambda: api.get("Pod", "web", namespace="sample"),
                    lambda pod: pod.status.phase == "Running" and condition(pod, "Ready") == "True",
                    timeout=60, what="sample pod Running and Ready", up=up)
                assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(slot.subnet)
                with urllib.request.urlopen(f"http://{pod.status.pod_ip}:8080/", timeout=5) as page:
                    assert "Hello from Sampan" in page.read().decode()

                # Pods outlive sampan up by design; removing this one first lets Ctrl-C leave nothing.
                await api.delete("Pod", "web", namespace="sample", grace_period_seconds=1)
                await eventually(lambda: _pod_absent(api), bool, timeout=60, what="sample pod deleted", up=up)
            await eventually(lambda: _no_shims(up), bool, timeout=30, what="containerd shims gone", up=up)
            assert_stops_everything_on_ctrl_c(up)
        finally:
            _kill(up)
            _clean_up_private_containerd(data_dir, slot)


async def _pod_absent(api: Client) -> bool:
    try:
        await api.get("Pod", "web", namespace="sample")
    except errors.NotFoundError:
        return True
    return False


async def _no_shims(up: SampanUp) -> bool:
    return not any("containerd-shim" in argv for argv in processes_mentioning(str(up.data_dir)).values())


def _kill(up: SampanUp) -> None:
    """After a failure: SIGKILL sampan up and every process started under its
    data dir, but containerd's shims (_clean_up_private_containerd ends their pods)."""
    if up.process.poll() is None:
        up.process.kill()
        up.process.wait()
    for pid, argv in processes_mentioning(str(up.data_dir)).items():
        if "containerd-shim" not in argv:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _clean_up_private_containerd(data_dir: Path, slot: NetworkSlot) -> None:
    """Remove whatever pods a failed test left in its private containerd (through
    the CRI, so CNI releases their network), then anything still mounted or running."""
    layout = ContainerdLayout(data_dir / "containerd")
    netns_paths: set[str] = set()
    shims_left = any("containerd-shim" in argv for argv in processes_mentioning(layout.socket).values())
    if shims_left and layout.config_path.exists() and cri_status(layout.socket) is None:
        daemon = PrivateContainerd(layout, binary="containerd", ctr_binary="ctr", network=PodNetwork(
            subnet=slot.subnet, bridge=slot.bridge), image_cache=data_dir / "images")
        with contextlib.suppress(Exception):
            daemon.start()
            netns_paths |= remove_all_sandboxes(layout.socket)
        daemon.stop()
    clean_up_after(layout, bridge=slot.bridge, netns_paths=netns_paths)
