"""What only the process runtime promises, beyond the shared contract
(test_runtime_contract.py).

Covered: it says it is not isolated; images are names with stable fake refs
and only malformed names fail to pull; a sandbox is on the host network
(127.0.0.1); a missing executable or an empty command is refused at create
in Kubernetes' words; the environment is not inherited from the agent and
the working directory defaults to the sandbox's; long lines become partial
log records; a container and its shim outlive a SIGKILLed agent and a new
runtime object recovers them; the shim records an exit while no runtime
object exists; a lost shim (or a reused pid) is reported as a lost process,
and its orphaned container is killed on removal; removing a container ends
its whole process group.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import AsyncIterator

import pytest

from agent.runtime.base import (
    EXITED,
    RUNNING,
    ContainerCreateError,
    ContainerSpec,
    ImagePullError,
    RuntimeInfo,
    SandboxSpec,
)
from agent.runtime.process import LOST_MESSAGE, ProcessRuntime
from tests.agent.runtime.test_runtime_contract import TICKER, read_log, wait_for_exit, wait_for_log

REPOSITORY = Path(__file__).resolve().parents[3]
IMAGE = "busybox:1.36"

# An agent that starts a container and dies by SIGKILL without closing anything.
CRASHING_AGENT = """
import asyncio, json, os, signal, sys
from agent.runtime.base import ContainerSpec, SandboxSpec
from agent.runtime.process import ProcessRuntime

async def main():
    state_dir, log_directory, command = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    runtime = ProcessRuntime(state_dir)
    sandbox = SandboxSpec(pod_uid="crash", pod_name="crash", namespace="test", log_directory=log_directory)
    status = await runtime.run_sandbox(sandbox)
    spec = ContainerSpec(name="ticker", image="busybox:1.36", command=tuple(command), log_path="ticker.log")
    container_id = await runtime.create_container(status.id, spec, sandbox)
    await runtime.start_container(container_id)
    print(json.dumps({"sandbox_id": status.id, "container_id": container_id}), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
async def runtime(state_dir: Path) -> AsyncIterator[ProcessRuntime]:
    """A process runtime (in place of the harness's runtime per factory); at
    teardown everything under its state is removed."""
    runtime = ProcessRuntime(str(state_dir))
    yield runtime
    # Whoever created them (this object, a crashed agent), end them all.
    janitor = ProcessRuntime(str(state_dir))
    for sandbox in await janitor.list_sandboxes():
        await janitor.remove_sandbox(sandbox.id)
    for container in await janitor.list_containers():
        await janitor.remove_container(container.id)


@pytest.fixture
def sandbox_spec(tmp_path: Path) -> SandboxSpec:
    return SandboxSpec(pod_uid="uid-1", pod_name="local", namespace="test", log_directory=str(tmp_path / "logs"))


async def start(runtime: ProcessRuntime, spec: SandboxSpec, name: str, *command: str, **fields: object) -> str:
    sandbox = next((s for s in await runtime.list_sandboxes() if s.pod_uid == spec.pod_uid), None)
    sandbox_id = sandbox.id if sandbox else (await runtime.run_sandbox(spec)).id
    container_spec = ContainerSpec(name=name, image=IMAGE, command=command, log_path=f"{name}.log", **fields)
    container_id = await runtime.create_container(sandbox_id, container_spec, spec)
    await runtime.start_container(container_id)
    return container_id


def recorded_state(state_dir: Path, container_id: str) -> dict:
    return json.loads((state_dir / "containers" / container_id / "state.json").read_text())


def is_running(pid: int) -> bool:
    """Whether pid is a live process (not gone, not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")


async def wait_until_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while is_running(pid):
        assert time.monotonic() < deadline, f"process {pid} still running after {timeout}s"
        await asyncio.sleep(0.02)


async def test_it_says_it_is_not_isolated(runtime):
    assert await runtime.info() == RuntimeInfo(name="process", version="process://0.1", isolated=False)


async def test_images_have_stable_fake_refs_without_a_pull(runtime):
    assert await runtime.image_ref("busybox:1.36") == "process://busybox:1.36"
    assert await runtime.pull_image("registry.example:5000/team/app@sha256:" + "a" * 64) == (
        "process://registry.example:5000/team/app@sha256:" + "a" * 64)


@pytest.mark.parametrize("image", ["", "Busybox", "busybox:", "bad image", "busybox:1.36:extra"])
async def test_a_malformed_image_name_cannot_be_pulled(runtime, image):
    assert await runtime.image_ref(image) is None
    with pytest.raises(ImagePullError, match="invalid image reference"):
        await runtime.pull_image(image)


async def test_a_sandbox_is_on_the_host_network(runtime, sandbox_spec):
    assert (await runtime.run_sandbox(sandbox_spec)).ip == "127.0.0.1"


async def test_a_missing_executable_is_refused_at_create(runtime, sandbox_spec):
    sandbox = await runtime.run_sandbox(sandbox_spec)
    spec = ContainerSpec(name="app", image=IMAGE, command=("sampan-no-such-command", "--flag"))
    with pytest.raises(ContainerCreateError) as error:
        await runtime.create_container(sandbox.id, spec, sandbox_spec)
    assert 'exec: "sampan-no-such-command": executable file not found in $PATH' in str(error.value)
    assert await runtime.list_containers() == []


async def test_a_container_needs_a_command(runtime, sandbox_spec):
    sandbox = await runtime.run_sandbox(sandbox_spec)
    with pytest.raises(ContainerCreateError, match="no command: the process runtime cannot use an image's entrypoint"):
        await runtime.create_container(sandbox.id, ContainerSpec(name="app", image=IMAGE), sandbox_spec)


async def test_args_alone_are_the_command(runtime, sandbox_spec):
    await start(runtime, sandbox_spec, "args", args=("echo", "from args"))
    await wait_for_log(Path(sandbox_spec.log_directory) / "args.log", "from args")


async def test_the_environment_is_not_inherited_from_the_agent(runtime, sandbox_spec, monkeypatch):
    monkeypatch.setenv("SAMPAN_AGENT_SECRET", "leaked")
    await start(runtime, sandbox_spec, "env", "env", env={"GREETING": "hi"})
    log = Path(sandbox_spec.log_directory) / "env.log"
    texts = {record.text for record in await wait_for_log(log, "GREETING=hi")}
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in texts
    assert not any(text.startswith("SAMPAN_AGENT_SECRET=") for text in texts)


async def test_the_working_directory_defaults_to_the_sandbox_directory(runtime, sandbox_spec, state_dir):
    container_id = await start(runtime, sandbox_spec, "pwd", "sh", "-c", "pwd")
    status = await wait_for_exit(runtime, container_id)
    await wait_for_log(Path(status.log_path), str(state_dir / "sandboxes" / status.sandbox_id))


async def test_long_lines_become_partial_records(runtime, sandbox_spec):
    container_id = await start(runtime, sandbox_spec, "long", "sh", "-c",
                               "head -c 40000 /dev/zero | tr '\\0' a; echo; printf end")
    status = await wait_for_exit(runtime, container_id)
    records = await wait_for_log(Path(status.log_path), "end")
    assert [(record.tag, len(record.text)) for record in records] == [
        ("P", 16384), ("P", 16384), ("F", 40000 - 2 * 16384), ("F", 3)]


async def test_a_container_outlives_a_killed_agent_and_is_recovered(state_dir, tmp_path, runtime):
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHING_AGENT, str(state_dir), str(tmp_path / "logs"), json.dumps(TICKER),
        cwd=REPOSITORY, stdout=asyncio.subprocess.PIPE)
    output, _ = await agent.communicate()
    assert agent.returncode == -signal.SIGKILL
    ids = json.loads(output)
    log = tmp_path / "logs" / "ticker.log"
    await wait_for_log(log, "tick 3")  # still logging with no agent alive

    recovered = ProcessRuntime(str(state_dir))
    status = await recovered.container_status(ids["container_id"])
    assert (status.state, status.sandbox_id) == (RUNNING, ids["sandbox_id"])
    assert is_running(recorded_state(state_dir, ids["container_id"])["pid"])
    await wait_for_log(log, f"tick {len(read_log(log)) + 2}")
    await recovered.stop_container(ids["container_id"], timeout=5)
    assert (await recovered.container_status(ids["container_id"])).state == EXITED


async def test_the_shim_records_an_exit_while_no_runtime_exists(state_dir, sandbox_spec):
    agent = ProcessRuntime(str(state_dir))
    container_id = await start(agent, sandbox_spec, "brief", "sh", "-c", "sleep 0.3; exit 7")
    del agent
    deadline = time.monotonic() + 10
    while (state := recorded_state(state_dir, container_id))["state"] != EXITED:
        assert time.monotonic() < deadline, "the shim recorded no exit"
        await asyncio.sleep(0.05)
    assert (state["exit_code"], state["reason"]) == (7, "Error")
    status = await ProcessRuntime(str(state_dir)).container_status(container_id)
    assert (status.state, status.exit_code, status.reason) == (EXITED, 7, "Error")
    assert status.finished_at >= status.started_at + 0.3


async def test_a_lost_shim_is_reported_and_its_orphan_killed_on_remove(runtime, sandbox_spec, state_dir):
    container_id = await start(runtime, sandbox_spec, "orphan", "sleep", "30")
    recorded = recorded_state(state_dir, container_id)
    os.kill(recorded["shim_pid"], signal.SIGKILL)
    await wait_until_gone(recorded["shim_pid"])
    status = await runtime.container_status(container_id)
    assert (status.state, status.exit_code, status.reason, status.message) == (EXITED, 255, "Error", LOST_MESSAGE)
    assert is_running(recorded["pid"])
    await runtime.remove_container(container_id)
    await wait_until_gone(recorded["pid"])


async def test_a_reused_shim_pid_is_not_taken_for_the_shim(runtime, sandbox_spec, state_dir):
    container_id = await start(runtime, sandbox_spec, "reused", "sleep", "30")
    state_file = state_dir / "containers" / container_id / "state.json"
    recorded = json.loads(state_file.read_text())
    # Same pid, another start time: what a reused pid looks like.
    state_file.write_text(json.dumps({**recorded, "shim_start_time": recorded["shim_start_time"] + 1}))
    status = await runtime.container_status(container_id)
    assert (status.state, status.message) == (EXITED, LOST_MESSAGE)


async def test_removing_a_container_ends_its_whole_process_group(runtime, sandbox_spec):
    container_id = await start(runtime, sandbox_spec, "family", "sh", "-c", "sleep 30 & echo $!; wait")
    status = await runtime.container_status(container_id)
    records = []
    deadline = time.monotonic() + 10
    while not (records := read_log(Path(status.log_path))):
        assert time.monotonic() < deadline, "the container printed no pid"
        await asyncio.sleep(0.05)
    background = int(records[0].text)
    assert is_running(background)
    await runtime.remove_container(container_id)
    await wait_until_gone(background)
