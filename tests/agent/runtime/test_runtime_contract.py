"""The container runtime contract (agent/runtime/base.py), run against every
runtime in conftest's RUNTIME_FACTORIES, as Nomad runs every task driver
through one harness.

Covered: runtime info and image presence; the sandbox lifecycle (run, list
with labels, stop, remove, idempotent stop and remove) and stopping a
sandbox stopping its containers; the container lifecycle (created, running,
exited with exit code, reason and timestamps); the environment reaching the
process; CRI-format logs at log_directory/log_path; stop semantics (SIGTERM
first, SIGKILL after the timeout, exit code 128+9); exec_sync (output, exit
codes, the container's environment, timeout as an error); labels and
annotations coming back from list_containers; recovery by a second runtime
object on the same state while the container keeps running; a missing
executable reported with the command's name; container stats; removing a
running container; unknown container ids as errors.

Only commands that busybox and a Linux host both have are used: sh, sleep,
echo, cat, env, kill and sh's trap.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from agent.runtime.base import (
    CREATED,
    EXITED,
    LABEL_CONTAINER_NAME,
    LABEL_POD_UID,
    RUNNING,
    ContainerCreateError,
    ContainerRuntime,
    ContainerStatus,
    RuntimeError_,
)
from tests.agent.runtime.conftest import TEST_IMAGE, Pod, RuntimeOpener

# How long a container may take to do something quick, on a slow CI machine.
PATIENCE = 10.0
# What an operation with a timeout may take beyond it.
SLACK = 3.0
# containerd stamps a container started when its start call returns, which
# can be a fraction of a millisecond after a quick command has already exited.
CLOCK_SKEW = 1.0
# A container that runs until stopped.
SLEEPER = ("sleep", "30")
TICKER = ("sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done")

CRI_LOG_RECORD = re.compile(rb"(?P<time>\S+) (?P<stream>stdout|stderr) (?P<tag>[FP]) (?P<text>.*)")


@dataclass(frozen=True)
class LogRecord:
    time: datetime
    stream: str
    tag: str
    text: str


def read_log(path: Path) -> list[LogRecord]:
    """The records of a CRI-format log; fails on a line in any other format."""
    records = []
    data = path.read_bytes() if path.exists() else b""
    for line in data.splitlines():
        match = CRI_LOG_RECORD.fullmatch(line)
        assert match, f"not a CRI log line in {path}: {line!r}"
        stamp = match["time"].decode()
        # RFC3339Nano; datetime takes at most microseconds and, before 3.11, no "Z".
        parsed = re.sub(r"(\.\d{6})\d*", r"\1", stamp)
        records.append(LogRecord(time=datetime.fromisoformat(parsed), stream=match["stream"].decode(),
                                 tag=match["tag"].decode(), text=match["text"].decode()))
    return records


async def wait_for_log(path: Path, text: str, *, timeout: float = PATIENCE) -> list[LogRecord]:
    """The log's records once one has exactly this text."""
    deadline = time.monotonic() + timeout
    while True:
        records = read_log(path)
        if any(record.text == text for record in records):
            return records
        assert time.monotonic() < deadline, f"no log record {text!r} in {path} after {timeout}s: {records}"
        await asyncio.sleep(0.05)


async def wait_for_exit(runtime: ContainerRuntime, container_id: str, *,
                        timeout: float = PATIENCE) -> ContainerStatus:
    deadline = time.monotonic() + timeout
    while (status := await runtime.container_status(container_id)).state != EXITED:
        assert time.monotonic() < deadline, f"container still {status.state} after {timeout}s"
        await asyncio.sleep(0.05)
    return status


async def start(runtime: ContainerRuntime, pod: Pod, name: str, *command: str, **spec: object) -> str:
    container_id = await runtime.create_container(pod.id, pod.container_spec(name, *command, **spec), pod.spec)
    await runtime.start_container(container_id)
    return container_id


async def test_info_names_the_runtime(runtime):
    info = await runtime.info()
    assert info.name and info.version
    assert isinstance(info.isolated, bool)


async def test_a_present_image_has_a_ref(runtime, image):
    assert await runtime.image_ref(image)


# Sandboxes


async def test_a_run_sandbox_is_listed_ready_with_its_labels(runtime, new_sandbox_spec):
    spec = new_sandbox_spec(labels={"tier": "harness"}, annotations={"note": "kept"})
    status = await runtime.run_sandbox(spec)
    assert status.ready and status.pod_uid == spec.pod_uid
    listed = {sandbox.id: sandbox for sandbox in await runtime.list_sandboxes()}
    sandbox = listed[status.id]
    assert (sandbox.pod_uid, sandbox.pod_name, sandbox.namespace, sandbox.attempt) == (
        spec.pod_uid, spec.pod_name, spec.namespace, spec.attempt)
    assert sandbox.ready
    assert sandbox.labels.items() >= {"tier": "harness", LABEL_POD_UID: spec.pod_uid}.items()
    assert sandbox.annotations.items() >= {"note": "kept"}.items()
    assert sandbox.created_at > 0


async def test_a_stopped_sandbox_is_not_ready_and_a_removed_one_is_gone(runtime, new_sandbox_spec):
    status = await runtime.run_sandbox(new_sandbox_spec())
    await runtime.stop_sandbox(status.id)
    listed = {sandbox.id: sandbox for sandbox in await runtime.list_sandboxes()}
    assert not listed[status.id].ready
    await runtime.remove_sandbox(status.id)
    assert status.id not in {sandbox.id for sandbox in await runtime.list_sandboxes()}


async def test_stopping_or_removing_a_gone_sandbox_is_not_an_error(runtime, new_sandbox_spec):
    status = await runtime.run_sandbox(new_sandbox_spec())
    await runtime.stop_sandbox(status.id)
    await runtime.stop_sandbox(status.id)
    await runtime.remove_sandbox(status.id)
    await runtime.remove_sandbox(status.id)
    await runtime.stop_sandbox(status.id)


async def test_stopping_a_sandbox_stops_its_containers(runtime, pod):
    container_id = await start(runtime, pod, "sleeper", *SLEEPER)
    began = time.monotonic()
    await runtime.stop_sandbox(pod.id)
    assert time.monotonic() - began < PATIENCE
    assert (await runtime.container_status(container_id)).state == EXITED


# Containers


async def test_a_created_container_is_created_until_started(runtime, pod):
    container_id = await runtime.create_container(pod.id, pod.container_spec("idle", *SLEEPER), pod.spec)
    status = await runtime.container_status(container_id)
    assert (status.state, status.name, status.sandbox_id, status.image) == (CREATED, "idle", pod.id, TEST_IMAGE)
    await runtime.start_container(container_id)
    status = await runtime.container_status(container_id)
    assert status.state == RUNNING
    assert status.started_at >= status.created_at > 0


async def test_a_container_that_exits_zero_is_exited_completed(runtime, pod):
    container_id = await start(runtime, pod, "done", "sh", "-c", "exit 0")
    status = await wait_for_exit(runtime, container_id)
    assert (status.exit_code, status.reason) == (0, "Completed")
    assert 0 < status.created_at <= status.started_at <= status.finished_at + CLOCK_SKEW


async def test_a_container_that_exits_three_is_exited_with_an_error(runtime, pod):
    container_id = await start(runtime, pod, "failing", "sh", "-c", "exit 3")
    status = await wait_for_exit(runtime, container_id)
    assert (status.exit_code, status.reason) == (3, "Error")
    assert status.finished_at + CLOCK_SKEW >= status.started_at > 0


async def test_the_environment_reaches_the_process(runtime, pod):
    container_id = await start(runtime, pod, "env", "sh", "-c", "env; echo done",
                               env={"GREETING": "hello world", "EMPTY": ""})
    await wait_for_exit(runtime, container_id)
    texts = {record.text for record in await wait_for_log(pod.log_file("env"), "done")}
    assert {"GREETING=hello world", "EMPTY="} <= texts


async def test_output_is_logged_in_cri_format_at_the_log_path(runtime, pod):
    container_id = await start(runtime, pod, "talker", "sh", "-c",
                               "echo to-stdout; echo to-stderr >&2; echo '  spaced  out  '")
    status = await wait_for_exit(runtime, container_id)
    assert Path(status.log_path) == pod.log_file("talker")
    records = await wait_for_log(pod.log_file("talker"), "  spaced  out  ")
    assert {(record.stream, record.tag, record.text) for record in records} == {
        ("stdout", "F", "to-stdout"), ("stderr", "F", "to-stderr"), ("stdout", "F", "  spaced  out  ")}
    assert all(record.time.tzinfo is not None for record in records)


async def test_stop_sends_sigterm_first(runtime, pod):
    container_id = await start(runtime, pod, "graceful", "sh", "-c",
                               "trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done")
    await wait_for_log(pod.log_file("graceful"), "ready")
    await runtime.stop_container(container_id, timeout=PATIENCE)
    status = await runtime.container_status(container_id)
    assert (status.state, status.exit_code, status.reason) == (EXITED, 0, "Completed")
    await wait_for_log(pod.log_file("graceful"), "got TERM")


async def test_stop_kills_a_container_that_ignores_sigterm_after_the_timeout(runtime, pod):
    container_id = await start(runtime, pod, "stubborn", "sh", "-c", "trap '' TERM; echo ready; sleep 30")
    await wait_for_log(pod.log_file("stubborn"), "ready")
    began = time.monotonic()
    await runtime.stop_container(container_id, timeout=1)
    took = time.monotonic() - began
    assert 0.9 <= took < 1 + SLACK
    status = await runtime.container_status(container_id)
    assert (status.state, status.exit_code, status.reason) == (EXITED, 137, "Error")


async def test_stopping_an_exited_container_is_not_an_error(runtime, pod):
    container_id = await start(runtime, pod, "short", "sh", "-c", "exit 0")
    await wait_for_exit(runtime, container_id)
    await runtime.stop_container(container_id, timeout=1)
    assert (await runtime.container_status(container_id)).exit_code == 0


async def test_exec_sync_returns_output_and_exit_code(runtime, pod):
    container_id = await start(runtime, pod, "target", *SLEEPER, env={"GREETING": "hi"})
    result = await runtime.exec_sync(
        container_id, ("sh", "-c", 'echo "out $GREETING"; echo err >&2; exit 4'), timeout=PATIENCE)
    assert (result.exit_code, result.stdout, result.stderr) == (4, b"out hi\n", b"err\n")
    result = await runtime.exec_sync(container_id, ("echo", "fine"), timeout=PATIENCE)
    assert (result.exit_code, result.stdout) == (0, b"fine\n")


async def test_exec_sync_past_its_timeout_is_an_error(runtime, pod):
    container_id = await start(runtime, pod, "target", *SLEEPER)
    began = time.monotonic()
    with pytest.raises(RuntimeError_):
        await runtime.exec_sync(container_id, ("sleep", "20"), timeout=1)
    assert time.monotonic() - began < 1 + SLACK


async def test_labels_and_annotations_come_back_from_list_containers(runtime, pod):
    container_id = await start(runtime, pod, "labelled", *SLEEPER,
                               labels={"app": "harness"}, annotations={"io.sampan.restart-count": "2"})
    listed = {container.id: container for container in await runtime.list_containers()}
    container = listed[container_id]
    assert (container.name, container.sandbox_id, container.state) == ("labelled", pod.id, RUNNING)
    assert container.labels.items() >= {
        "app": "harness", LABEL_CONTAINER_NAME: "labelled", LABEL_POD_UID: pod.spec.pod_uid}.items()
    assert container.annotations.items() >= {"io.sampan.restart-count": "2"}.items()


async def test_a_reopened_runtime_recovers_running_containers(runtime, reopen_runtime: RuntimeOpener, pod):
    container_id = await start(runtime, pod, "ticker", *TICKER, labels={"app": "recovered"})
    await wait_for_log(pod.log_file("ticker"), "tick 1")
    started_at = (await runtime.container_status(container_id)).started_at
    await runtime.close()  # the agent goes away

    again = await reopen_runtime()
    assert pod.id in {sandbox.id for sandbox in await again.list_sandboxes()}
    listed = {container.id: container for container in await again.list_containers()}
    container = listed[container_id]
    assert (container.state, container.started_at) == (RUNNING, started_at)
    assert container.labels.items() >= {"app": "recovered", LABEL_CONTAINER_NAME: "ticker"}.items()
    ticks = len(read_log(pod.log_file("ticker")))
    await wait_for_log(pod.log_file("ticker"), f"tick {ticks + 2}")
    result = await again.exec_sync(container_id, ("echo", "still here"), timeout=PATIENCE)
    assert result.stdout == b"still here\n"
    await again.stop_container(container_id, timeout=0)
    assert (await again.container_status(container_id)).state == EXITED


async def test_a_missing_executable_is_reported_with_its_name(runtime, pod):
    command = "sampan-no-such-command"
    try:
        container_id = await start(runtime, pod, "missing", command)
    except ContainerCreateError as error:
        assert command in str(error)
        return
    status = await wait_for_exit(runtime, container_id)
    assert status.exit_code != 0
    assert command in status.reason + status.message


async def test_a_running_container_has_stats(runtime, pod):
    container_id = await start(runtime, pod, "measured", *SLEEPER)
    deadline = time.monotonic() + PATIENCE
    while not (stats := {stat.container_id: stat for stat in await runtime.container_stats()}).get(container_id):
        assert time.monotonic() < deadline, "no stats for a running container"
        await asyncio.sleep(0.1)
    stat = stats[container_id]
    assert stat.memory_working_set_bytes > 0
    assert stat.cpu_usage_seconds >= 0 and stat.timestamp > 0


async def test_removing_a_running_container_stops_it(runtime, pod):
    container_id = await start(runtime, pod, "doomed", *SLEEPER)
    began = time.monotonic()
    await runtime.remove_container(container_id)
    assert time.monotonic() - began < PATIENCE
    assert container_id not in {container.id for container in await runtime.list_containers()}
    await runtime.remove_container(container_id)  # gone already: not an error


async def test_an_unknown_container_is_an_error(runtime):
    with pytest.raises(RuntimeError_):
        await runtime.container_status("0" * 64)
