"""The CRI runtime (agent.runtime.cri) against a private containerd.

What only a real container engine shows: containers of a pod share its network
namespace and CNI IP, containerd's own view (``ctr``) and the host's network
namespaces follow the pod's lifecycle, stop signals and the kill after the
timeout, cgroup limits seen from inside the container, CRI-format logs on the
host, stats, and how containerd reports images it cannot pull and commands
it cannot start. What every runtime must do alike is in
test_runtime_contract.py, which runs against containerd too.

containerd 1.6 on a missing binary: CreateContainer succeeds, StartContainer
fails (ContainerCreateError), and the container stays EXITED with exit code
128, reason "StartError" and runc's message.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import pytest

from agent.runtime.base import (
    EXITED,
    RUNNING,
    ContainerCreateError,
    ContainerSpec,
    ImagePullError,
    Mount,
    Resources,
    SandboxSpec,
)
from agent.runtime.cri import CRIRuntime, cpu_quota, cpu_shares
from protos.cri.runtime.v1 import api_pb2
from tests.support.containerd import Containerd, sandbox_netns_path

IMAGE = "busybox:1.36"
HTTPD = "mkdir -p /www && echo hello-from-the-pod > /www/index.html && exec httpd -f -p 8080 -h /www"
FOREVER = ("sleep", "2147483647")
CRI_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) (stdout|stderr) (F|P) (.*)$")
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an http_proxy


@dataclass
class Pod:
    runtime: CRIRuntime
    spec: SandboxSpec
    id: str
    ip: str

    async def start(self, name: str, *command: str, resources: Resources = Resources(),
                    mounts: tuple[Mount, ...] = ()) -> str:
        container = ContainerSpec(name=name, image=IMAGE, command=command, log_path=f"{name}/0.log",
                                  resources=resources, mounts=mounts, labels={"test": "cri"})
        container_id = await self.runtime.create_container(self.id, container, self.spec)
        await self.runtime.start_container(container_id)
        return container_id

    def log_file(self, name: str) -> Path:
        return Path(self.spec.log_directory) / name / "0.log"


@dataclass
class Pods:
    """Runs pods for one test and removes them (and their containers) afterwards."""

    runtime: CRIRuntime
    root: Path
    ids: list[str] = field(default_factory=list)

    async def run(self, name: str = "pod") -> Pod:
        uid = str(uuid.uuid4())
        log_directory = self.root / uid
        log_directory.mkdir(parents=True)
        spec = SandboxSpec(pod_uid=uid, pod_name=name, namespace="cri-test", log_directory=str(log_directory),
                           labels={"test": "cri"})
        status = await self.runtime.run_sandbox(spec)
        self.ids.append(status.id)
        return Pod(runtime=self.runtime, spec=spec, id=status.id, ip=status.ip)


@pytest.fixture
async def cri_runtime(containerd: Containerd) -> AsyncIterator[CRIRuntime]:
    runtime = CRIRuntime(containerd.socket)
    yield runtime
    await runtime.close()


@pytest.fixture
async def pods(cri_runtime: CRIRuntime, tmp_path: Path) -> AsyncIterator[Pods]:
    pods = Pods(runtime=cri_runtime, root=tmp_path / "pods")
    yield pods
    for sandbox_id in pods.ids:
        await cri_runtime.stop_sandbox(sandbox_id)
        await cri_runtime.remove_sandbox(sandbox_id)


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)


async def wait_exited(runtime: CRIRuntime, container_id: str) -> None:
    async def exited() -> bool:
        return (await runtime.container_status(container_id)).state == EXITED
    await eventually(exited, what=f"container {container_id} exited")


async def web_pod(pods: Pods) -> tuple[Pod, str, str]:
    """A pod running busybox httpd on :8080 in one container and a shell in another."""
    pod = await pods.run("web")
    server = await pod.start("server", "sh", "-c", HTTPD)
    client = await pod.start("client", *FOREVER)

    async def serving() -> bool:
        result = await pod.runtime.exec_sync(client, ("timeout", "2", "wget", "-q", "-O", "-",
                                                      "http://127.0.0.1:8080/"), timeout=5)
        return result.exit_code == 0
    await eventually(serving, what="httpd serving on 127.0.0.1:8080")
    return pod, server, client


def ctr_container_ids(containerd: Containerd) -> set[str]:
    return set(containerd.ctr("containers", "ls", "-q").split())


def netns_names() -> set[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in listing.splitlines() if line.strip()}


# ---- without containerd ---------------------------------------------------------------------------


def test_the_cri_proto_registers_under_a_package_qualified_name():
    # Other libraries register a bare "api.proto"; ours must never clash.
    assert (api_pb2.DESCRIPTOR.name, api_pb2.DESCRIPTOR.package) == ("protos/cri/runtime/v1/api.proto", "runtime.v1")


def test_cpu_translation_follows_the_kubelet():
    assert [cpu_shares(m) for m in (0, 1, 250, 1000, 2500)] == [0, 2, 256, 1024, 2560]
    assert [cpu_quota(m) for m in (0, 5, 500, 1500)] == [0, 1000, 50000, 150000]


# ---- runtime and images ----------------------------------------------------------------------------


async def test_info_names_containerd_and_isolation(cri_runtime: CRIRuntime):
    info = await cri_runtime.info()
    assert info.name == "containerd"
    assert info.version.startswith("containerd://1.")
    assert info.isolated


async def test_image_ref_finds_a_short_name_and_not_a_missing_image(cri_runtime: CRIRuntime):
    # CRI normalizes "busybox:1.36" to docker.io/library/busybox:1.36.
    assert (await cri_runtime.image_ref(IMAGE) or "").startswith("sha256:")
    assert await cri_runtime.image_ref("registry.local/sampan/never-imported:1") is None


async def test_an_unreachable_image_is_an_image_pull_error(cri_runtime: CRIRuntime):
    # Port 1 on loopback refuses at once: no traffic leaves the machine.
    with pytest.raises(ImagePullError, match="127.0.0.1:1/sampan/does-not-exist:1"):
        await cri_runtime.pull_image("127.0.0.1:1/sampan/does-not-exist:1")


async def test_a_malformed_image_name_is_an_image_pull_error(cri_runtime: CRIRuntime):
    with pytest.raises(ImagePullError, match="invalid reference format"):
        await cri_runtime.pull_image("Not//A:Name")


# ---- pod network -----------------------------------------------------------------------------------


async def test_containers_of_a_pod_share_its_network(pods: Pods):
    pod, _, client = await web_pod(pods)
    result = await pod.runtime.exec_sync(
        client, ("timeout", "5", "wget", "-q", "-O", "-", "http://127.0.0.1:8080/"), timeout=10)
    assert (result.exit_code, result.stdout) == (0, b"hello-from-the-pod\n")


async def test_the_pod_ip_answers_http_from_the_host(pods: Pods, containerd: Containerd):
    pod, _, _ = await web_pod(pods)
    assert ipaddress.ip_address(pod.ip) in ipaddress.ip_network(containerd.slot.subnet)
    with _DIRECT.open(f"http://{pod.ip}:8080/", timeout=5) as response:
        assert response.read() == b"hello-from-the-pod\n"


async def test_ctr_lists_the_sandbox_and_both_containers(pods: Pods, containerd: Containerd):
    pod, server, client = await web_pod(pods)
    assert {pod.id, server, client} <= ctr_container_ids(containerd)


async def test_stop_and_remove_leave_no_container_and_no_netns(pods: Pods, containerd: Containerd):
    pod, server, client = await web_pod(pods)
    netns = Path(sandbox_netns_path(containerd, pod.id)).name
    assert netns in netns_names()

    for container_id in (server, client):
        await pod.runtime.stop_container(container_id, timeout=0)
        await pod.runtime.remove_container(container_id)
    await pod.runtime.stop_sandbox(pod.id)
    await pod.runtime.remove_sandbox(pod.id)

    assert not {pod.id, server, client} & ctr_container_ids(containerd)
    assert netns not in netns_names()
    assert pod.id not in {sandbox.id for sandbox in await pod.runtime.list_sandboxes()}
    assert not {server, client} & {container.id for container in await pod.runtime.list_containers()}


async def test_stopping_and_removing_again_is_not_an_error(pods: Pods):
    pod = await pods.run()
    container_id = await pod.start("sleeper", *FOREVER)
    for _ in range(2):
        await pod.runtime.stop_container(container_id, timeout=0)
        await pod.runtime.remove_container(container_id)
        await pod.runtime.stop_sandbox(pod.id)
        await pod.runtime.remove_sandbox(pod.id)


# ---- failures --------------------------------------------------------------------------------------


async def test_a_missing_binary_fails_at_start_and_leaves_a_start_error(pods: Pods):
    pod = await pods.run()
    container = ContainerSpec(name="broken", image=IMAGE, command=("/bin/does-not-exist",), log_path="broken/0.log")
    container_id = await pod.runtime.create_container(pod.id, container, pod.spec)  # containerd accepts it

    with pytest.raises(ContainerCreateError, match="/bin/does-not-exist"):
        await pod.runtime.start_container(container_id)

    status = await pod.runtime.container_status(container_id)
    assert (status.state, status.exit_code, status.reason) == (EXITED, 128, "StartError")
    assert "/bin/does-not-exist" in status.message


async def test_a_container_of_a_missing_image_cannot_be_created(pods: Pods):
    pod = await pods.run()
    container = ContainerSpec(name="ghost", image="registry.local/sampan/never-imported:1", command=FOREVER)
    with pytest.raises(ContainerCreateError, match="never-imported"):
        await pod.runtime.create_container(pod.id, container, pod.spec)


async def test_a_container_over_its_memory_limit_is_oom_killed(pods: Pods):
    pod = await pods.run()
    # dd allocates its 128 MiB block; the cgroup allows 32 MiB.
    container_id = await pod.start("hog", "dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1",
                                   resources=Resources(memory_limit_bytes=32 << 20))
    await wait_exited(pod.runtime, container_id)
    assert (await pod.runtime.container_status(container_id)).exit_code == 137

    # containerd learns of the OOM kill from a cgroup event that can come after
    # the exit: until then the reason is "Error".
    async def oom_killed() -> bool:
        return (await pod.runtime.container_status(container_id)).reason == "OOMKilled"
    await eventually(oom_killed, timeout=5, what="reason OOMKilled")


# ---- stop signals ----------------------------------------------------------------------------------


async def test_stop_sends_sigterm_first(pods: Pods, tmp_path: Path):
    pod = await pods.run()
    out = tmp_path / "out"
    out.mkdir()
    container_id = await pod.start(
        "graceful", "sh", "-c",
        'trap "echo got-term; echo got-term > /out/term; exit 0" TERM; echo ready; while true; do sleep 0.1; done',
        mounts=(Mount(host_path=str(out), container_path="/out"),))
    await eventually(lambda: _log_has(pod.log_file("graceful"), "ready"), what="the trap is set")

    started = time.monotonic()
    await pod.runtime.stop_container(container_id, timeout=10)
    elapsed = time.monotonic() - started

    status = await pod.runtime.container_status(container_id)
    assert (status.state, status.exit_code, status.reason) == (EXITED, 0, "Completed")
    assert elapsed < 5, f"stop waited {elapsed:.1f}s for a container that exits on SIGTERM"
    assert (out / "term").read_text() == "got-term\n"
    assert "got-term" in _log_texts(pod.log_file("graceful"))


async def test_stop_kills_after_the_timeout_when_sigterm_is_ignored(pods: Pods):
    pod = await pods.run()
    container_id = await pod.start("stubborn", "sh", "-c", 'trap "" TERM; echo ready; while true; do sleep 0.1; done')
    await eventually(lambda: _log_has(pod.log_file("stubborn"), "ready"), what="the trap is set")

    started = time.monotonic()
    await pod.runtime.stop_container(container_id, timeout=2)
    elapsed = time.monotonic() - started

    status = await pod.runtime.container_status(container_id)
    assert (status.state, status.exit_code, status.reason) == (EXITED, 137, "Error")
    assert 2 <= elapsed < 6, f"SIGKILL came after {elapsed:.1f}s, expected just after the 2s timeout"


# ---- logs, stats, limits ---------------------------------------------------------------------------


async def test_logs_land_at_log_directory_and_log_path_in_cri_format(pods: Pods):
    pod = await pods.run()
    container_id = await pod.start("talker", "sh", "-c", "echo to-stdout; echo to-stderr >&2")
    await wait_exited(pod.runtime, container_id)

    status = await pod.runtime.container_status(container_id)
    assert status.log_path == str(pod.log_file("talker"))
    lines = [CRI_LOG_LINE.match(line) for line in pod.log_file("talker").read_text().splitlines()]
    assert all(lines), pod.log_file("talker").read_text()
    assert sorted((m.group(2), m.group(3), m.group(4)) for m in lines if m) == [
        ("stderr", "F", "to-stderr"), ("stdout", "F", "to-stdout")]


async def test_stats_report_memory_and_cpu_of_a_running_container(pods: Pods):
    pod = await pods.run()
    container_id = await pod.start("busy", "sh", "-c", "while true; do :; done")
    await asyncio.sleep(0.3)

    stats = {s.container_id: s for s in await pod.runtime.container_stats()}
    assert stats[container_id].memory_working_set_bytes > 0
    assert stats[container_id].cpu_usage_seconds > 0
    assert stats[container_id].timestamp == pytest.approx(time.time(), abs=30)


async def test_memory_limit_cpu_quota_and_shares_reach_the_cgroup(pods: Pods):
    pod = await pods.run()
    container_id = await pod.start("limited", *FOREVER, resources=Resources(
        cpu_request_millis=250, cpu_limit_millis=500, memory_limit_bytes=64 << 20))

    async def read(path: str) -> str:
        result = await pod.runtime.exec_sync(container_id, ("cat", path), timeout=5)
        assert result.exit_code == 0, result.stderr
        return result.stdout.decode().strip()

    # cgroup v1 on this machine; the container sees its own cgroup at the root.
    assert await read("/sys/fs/cgroup/memory/memory.limit_in_bytes") == str(64 << 20)
    assert await read("/sys/fs/cgroup/cpu/cpu.cfs_period_us") == "100000"
    assert await read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") == "50000"
    assert await read("/sys/fs/cgroup/cpu/cpu.shares") == "256"


async def test_exec_sync_reports_the_exit_code_and_output(pods: Pods):
    pod = await pods.run()
    container_id = await pod.start("shell", *FOREVER)
    result = await pod.runtime.exec_sync(container_id, ("sh", "-c", "echo out; echo err >&2; exit 3"), timeout=5)
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"out\n", b"err\n")


async def test_list_containers_reports_sandbox_state_and_labels(pods: Pods):
    pod = await pods.run()
    container_id = await pod.start("listed", *FOREVER)
    listed = {c.id: c for c in await pod.runtime.list_containers()}[container_id]
    assert (listed.sandbox_id, listed.name, listed.state, listed.labels) == (pod.id, "listed", RUNNING, {"test": "cri"})
    # The CRI itself reports docker.io/library/busybox:1.36; the runtime keeps the name asked for.
    assert (listed.image, listed.annotations) == (IMAGE, {})


def _log_texts(path: Path) -> list[str]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [m.group(4) for m in map(CRI_LOG_LINE.match, lines) if m]


async def _log_has(path: Path, text: str) -> bool:
    return text in _log_texts(path)
