"""The process runtime: each container a plain local process (Nomad's raw_exec).

The embedded default for machines without containerd. It keeps the runtime
contract (``agent.runtime.base``) wherever a process can, and everything it
knows lives in files under ``state_dir``, so an agent restarted after a crash
recovers by reading them:

    state_dir/sandboxes/<id>/sandbox.json    the pod: ids, labels, ready or not
    state_dir/containers/<id>/config.json    what to run (written once, at create)
    state_dir/containers/<id>/state.json     created / running / exited, pids, exit
    state_dir/containers/<id>/shim.log       the shim's own errors
    state_dir/containers/<id>/container.log  the log of a container without a log_path

Each started container is supervised by a detached shim
(``agent.runtime.process_shim``) that outlives the agent: it writes the CRI
log, forwards stop signals and records the exit in ``state.json``, so a
container keeps running, logging and reporting while no agent is alive.
Processes are named by pid *and* start time (``/proc/<pid>/stat``), so a
reused pid is never mistaken for a container. A running container whose shim
has vanished is reported EXITED, exit code 255, reason "Error", message
"the process runtime lost the process". As containerd reserves names, a
second sandbox for the same pod uid and attempt, or a second container of
the same name and attempt in a sandbox, is refused.

What a process cannot do, by design (``RuntimeInfo.isolated`` is False):

- Host network: every sandbox's IP is 127.0.0.1 and ports are host ports;
  port mappings, hostname and DNS settings are recorded, not applied.
- Images are names only: ``pull_image`` checks that the name is a valid
  reference (else ``ImagePullError``) and needs no network; the image ref is
  the stable fake ``"process://" + image``. The command runs from the host's
  filesystem, so a container needs an explicit command: an image's
  entrypoint cannot be used.
- Mounts, resources (no cgroups), tty and stdin are recorded and not applied:
  the process sees host paths as they are and stdin is /dev/null. (The agent
  tells such a container where its service account files are instead:
  $SAMPAN_SERVICE_ACCOUNT_DIR, agent/pods/service_account.py.)
- A container is its main process's process group: stop kills the group and
  stats add it up, so a process that leaves it (setsid, setpgid) escapes
  both. Memory is resident set size, not a cgroup working set.
- The environment is not inherited from the agent: a container gets
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin and the
  agent user's HOME, then its spec's env. It runs as the agent's user, in its
  spec's working_dir (default: the sandbox's directory).
- ``exec_sync`` runs the command as a new host process with the container's
  env and working directory; it does not die with the container. A timeout
  (``timeout <= 0`` means none) kills it and raises ``RuntimeError_``, as
  CRI's ExecSync fails with an error. Cancelling the call kills it too.
- ``exec_stream`` (``StreamingExec``) starts the command the same way, with
  a stdin pipe or a pseudo-terminal (agent.runtime.process_exec).
- The agent's service manager must leave the shims alone when the agent
  stops (systemd: ``KillMode=process``), as containerd's unit does.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import re
import shutil
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.runtime.base import (
    CREATED,
    EXITED,
    RUNNING,
    ContainerCreateError,
    ContainerSpec,
    ContainerStats,
    ContainerStatus,
    ExecResult,
    ExecSession,
    ImagePullError,
    RuntimeError_,
    RuntimeInfo,
    SandboxSpec,
    SandboxStatus,
)
from agent.runtime.process_exec import PipeExecSession, PtyExecSession, exit_code_of
from agent.runtime.process_shim import (
    KILL_REQUEST_SIGNAL,
    STATE_VERSION,
    write_json_atomically,
)

NAME = "process"
VERSION = "process://0.1"
IMAGE_REF_PREFIX = "process://"
SANDBOX_IP = "127.0.0.1"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LOST_MESSAGE = "the process runtime lost the process"
SHIM_PATH = Path(__file__).with_name("process_shim.py")
# The launcher returns once the shim has started the command; this only
# guards against a wedged shim.
START_TIMEOUT = 30.0
# After the kill request: the shim waits up to 5 s for log pipes to drain.
KILL_TIMEOUT = 10.0

# The image reference grammar of distribution/reference (what containerd accepts).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)(?::{_TAG})?(?:@{_DIGEST})?", re.ASCII)


def is_valid_image_reference(image: str) -> bool:
    match = _REFERENCE.fullmatch(image)
    return match is not None and len(match["name"]) <= 255


def find_executable(name: str, *, search_path: str, working_dir: str) -> str:
    """Resolve a command's executable as execvp would; LookupError says why
    not, in the words Kubernetes users know from runc."""
    if "/" in name:
        candidate = os.path.join(working_dir, name)
        if not os.path.exists(candidate):
            raise LookupError(f'exec: "{name}": stat {name}: no such file or directory')
        if os.path.isdir(candidate):
            raise LookupError(f'exec: "{name}": is a directory')
        if not os.access(candidate, os.X_OK):
            raise LookupError(f'exec: "{name}": permission denied')
        return candidate
    for directory in search_path.split(":"):
        candidate = os.path.join(directory or working_dir, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise LookupError(f'exec: "{name}": executable file not found in $PATH')


@dataclass(frozen=True)
class ProcessIdentity:
    """One process for good: its pid and its start time, so that a reused
    pid is never taken for the process that had it."""

    pid: int
    start_time: int | None

    def is_alive(self) -> bool:
        if self.pid <= 0 or self.start_time is None:
            return False
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            return False
        return fields[0] not in (b"Z", b"X") and int(fields[19]) == self.start_time

    def signal(self, signum: int, *, group: bool = False) -> bool:
        """Send signum to the process (or its process group); False if it is gone."""
        if not self.is_alive():
            return False
        try:
            (os.killpg if group else os.kill)(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    async def wait_for_exit(self, timeout: float) -> bool:
        """Wait up to timeout seconds for the process to exit; True if it did."""
        deadline = time.monotonic() + timeout
        while self.is_alive():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(0.02, remaining))
        return True


def _process_groups() -> dict[int, tuple[int, int]]:
    """CPU ticks (own and reaped children's) and resident bytes per process group."""
    groups: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{entry.name}/status", "rb") as status:
                rss_lines = [line for line in status if line.startswith(b"VmRSS:")]
        except (FileNotFoundError, ProcessLookupError):
            continue
        group = int(fields[2])
        ticks = sum(int(field) for field in fields[11:15])  # utime stime cutime cstime
        rss = int(rss_lines[0].split()[1]) * 1024 if rss_lines else 0
        old_ticks, old_rss = groups.get(group, (0, 0))
        groups[group] = (old_ticks + ticks, old_rss + rss)
    return groups


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


class ProcessRuntime:
    """``ContainerRuntime`` over local processes; see the module docstring."""

    def __init__(self, state_dir: str) -> None:
        self._sandboxes = Path(state_dir) / "sandboxes"
        self._containers = Path(state_dir) / "containers"
        self._sandboxes.mkdir(parents=True, exist_ok=True)
        self._containers.mkdir(parents=True, exist_ok=True)
        # One operation at a time per container (start, stop, remove).
        self._locks: dict[str, asyncio.Lock] = {}

    async def info(self) -> RuntimeInfo:
        return RuntimeInfo(name=NAME, version=VERSION, isolated=False)

    # Images: names only.

    async def image_ref(self, image: str) -> str | None:
        return IMAGE_REF_PREFIX + image if is_valid_image_reference(image) else None

    async def pull_image(self, image: str) -> str:
        if not is_valid_image_reference(image):
            raise ImagePullError(f"invalid image reference {image!r}")
        return IMAGE_REF_PREFIX + image

    # Sandboxes: a directory and a record.

    async def run_sandbox(self, spec: SandboxSpec) -> SandboxStatus:
        for existing in self._sandbox_records():
            if (existing["pod_uid"], existing["attempt"]) == (spec.pod_uid, spec.attempt):
                raise RuntimeError_(f"sandbox for pod {spec.namespace}/{spec.pod_name} (uid {spec.pod_uid}) "
                                    f"attempt {spec.attempt} already exists: {existing['id']}")
        sandbox_id = uuid.uuid4().hex
        record = {
            "version": STATE_VERSION, "id": sandbox_id, "pod_uid": spec.pod_uid, "pod_name": spec.pod_name,
            "namespace": spec.namespace, "attempt": spec.attempt, "hostname": spec.hostname,
            "log_directory": spec.log_directory, "labels": dict(spec.labels),
            "annotations": dict(spec.annotations), "created_at": time.time(), "ready": True,
        }
        directory = self._sandboxes / sandbox_id
        directory.mkdir()
        write_json_atomically(directory / "sandbox.json", record)
        return self._sandbox_status(record)

    async def stop_sandbox(self, sandbox_id: str) -> None:
        record = _read_json(self._sandboxes / sandbox_id / "sandbox.json")
        if record is None:
            return
        # As containerd does: a stopped sandbox's containers are killed at once.
        await asyncio.gather(*(self.stop_container(container_id, timeout=0)
                               for container_id in self._container_ids(sandbox_id)))
        if record["ready"]:
            write_json_atomically(self._sandboxes / sandbox_id / "sandbox.json", {**record, "ready": False})

    async def remove_sandbox(self, sandbox_id: str) -> None:
        await asyncio.gather(*(self.remove_container(container_id)
                               for container_id in self._container_ids(sandbox_id)))
        shutil.rmtree(self._sandboxes / sandbox_id, ignore_errors=True)

    async def list_sandboxes(self) -> list[SandboxStatus]:
        return [self._sandbox_status(record) for record in self._sandbox_records()]

    def _sandbox_records(self) -> list[dict[str, Any]]:
        records = (_read_json(directory / "sandbox.json") for directory in self._sandboxes.iterdir())
        return sorted((record for record in records if record is not None), key=lambda r: r["created_at"])

    @staticmethod
    def _sandbox_status(record: dict[str, Any]) -> SandboxStatus:
        return SandboxStatus(
            id=record["id"], pod_uid=record["pod_uid"], pod_name=record["pod_name"],
            namespace=record["namespace"], attempt=record["attempt"], ready=record["ready"],
            ip=SANDBOX_IP, created_at=record["created_at"], labels=record["labels"],
            annotations=record["annotations"])

    # Containers: a directory, a config, a state and (once started) a shim.

    async def create_container(self, sandbox_id: str, spec: ContainerSpec, sandbox: SandboxSpec) -> str:
        sandbox_record = _read_json(self._sandboxes / sandbox_id / "sandbox.json")
        if sandbox_record is None or not sandbox_record["ready"]:
            raise ContainerCreateError(f"container {spec.name!r}: sandbox {sandbox_id} is not ready")
        if not is_valid_image_reference(spec.image):
            raise ContainerCreateError(f"container {spec.name!r}: invalid image reference {spec.image!r}")
        argv = [*spec.command, *spec.args]
        if not argv:
            raise ContainerCreateError(
                f"container {spec.name!r}: no command: the process runtime cannot use an image's entrypoint")
        env = {"PATH": DEFAULT_PATH, "HOME": _home(), **spec.env}
        working_dir = spec.working_dir or str(self._sandboxes / sandbox_id)
        if not os.path.isdir(working_dir):
            raise ContainerCreateError(f"container {spec.name!r}: working directory {working_dir!r} does not exist")
        try:
            executable = find_executable(argv[0], search_path=env["PATH"], working_dir=working_dir)
        except LookupError as error:
            raise ContainerCreateError(f"container {spec.name!r}: {error}") from None
        for config, _ in self._container_records():
            if (config["sandbox_id"], config["name"], config["attempt"]) == (sandbox_id, spec.name, spec.attempt):
                raise ContainerCreateError(f"container {spec.name!r} attempt {spec.attempt} already exists "
                                           f"in sandbox {sandbox_id}: {config['id']}")
        container_id = uuid.uuid4().hex
        directory = self._containers / container_id
        if spec.log_path:  # relative to the sandbox's log directory, as in the CRI
            log_path = os.path.join(directory, sandbox.log_directory, spec.log_path)
        else:
            log_path = os.path.join(directory, "container.log")
        config = {
            "version": STATE_VERSION, "id": container_id, "sandbox_id": sandbox_id, "name": spec.name,
            "attempt": spec.attempt, "image": spec.image, "image_ref": IMAGE_REF_PREFIX + spec.image,
            "argv": argv, "executable": executable, "env": env, "working_dir": working_dir,
            "log_path": log_path,
            "mounts": [{"host_path": m.host_path, "container_path": m.container_path, "readonly": m.readonly}
                       for m in spec.mounts],
            "resources": {"cpu_request_millis": spec.resources.cpu_request_millis,
                          "cpu_limit_millis": spec.resources.cpu_limit_millis,
                          "memory_limit_bytes": spec.resources.memory_limit_bytes},
            "tty": spec.tty, "stdin": spec.stdin, "labels": dict(spec.labels),
            "annotations": dict(spec.annotations), "created_at": time.time(),
        }
        directory.mkdir()
        write_json_atomically(directory / "config.json", config)
        write_json_atomically(directory / "state.json", {
            "version": STATE_VERSION, "state": CREATED, "shim_pid": 0, "shim_start_time": None, "pid": 0,
            "pid_start_time": None, "started_at": 0.0, "finished_at": 0.0, "exit_code": 0, "reason": "",
            "message": ""})
        return container_id

    async def start_container(self, container_id: str) -> None:
        async with self._lock(container_id):
            _, state = self._observe(container_id)
            if state["state"] != CREATED:
                raise RuntimeError_(f"container {container_id} is {state['state']}, not created: cannot start it")
            directory = self._containers / container_id
            with open(directory / "shim.log", "ab") as shim_log:
                launcher = await asyncio.create_subprocess_exec(
                    sys.executable, "-I", str(SHIM_PATH), str(directory), stdin=asyncio.subprocess.DEVNULL,
                    stdout=shim_log, stderr=shim_log, start_new_session=True)
            try:
                await asyncio.wait_for(launcher.wait(), START_TIMEOUT)
            except TimeoutError:
                launcher.kill()
                raise ContainerCreateError(f"container {container_id}: the shim did not start it "
                                           f"within {START_TIMEOUT:g}s") from None
            _, state = self._observe(container_id)
            if state["state"] == CREATED:  # the shim died before recording anything
                shim_errors = (directory / "shim.log").read_text(errors="replace").strip().splitlines()
                message = f"the process runtime's shim failed: {shim_errors[-1] if shim_errors else 'no output'}"
                now = time.time()
                write_json_atomically(directory / "state.json", {
                    **state, "state": EXITED, "started_at": now, "finished_at": now, "exit_code": 128,
                    "reason": "StartError", "message": message})
                raise ContainerCreateError(f"container {container_id}: {message}")
            if state["reason"] == "StartError":
                raise ContainerCreateError(f"container {container_id}: {state['message']}")

    async def stop_container(self, container_id: str, *, timeout: float) -> None:
        async with self._lock(container_id):
            await self._stop(container_id, timeout)

    async def _stop(self, container_id: str, timeout: float) -> None:
        try:
            _, state = self._observe(container_id)
        except RuntimeError_:
            return  # already gone
        shim = ProcessIdentity(state["shim_pid"], state["shim_start_time"])
        container = ProcessIdentity(state["pid"], state["pid_start_time"])
        if state["state"] == EXITED:
            # A lost shim may have left its container running: end it.
            container.signal(signal.SIGKILL, group=True)
            return
        if state["state"] != RUNNING:
            return
        if timeout > 0 and shim.signal(signal.SIGTERM):  # the shim forwards it
            if await shim.wait_for_exit(timeout):
                return
        if shim.signal(KILL_REQUEST_SIGNAL) and await shim.wait_for_exit(KILL_TIMEOUT):
            return
        # The shim is gone or wedged: end the container ourselves.
        shim.signal(signal.SIGKILL)
        container.signal(signal.SIGKILL, group=True)
        await shim.wait_for_exit(KILL_TIMEOUT)
        self._observe(container_id)

    async def remove_container(self, container_id: str) -> None:
        async with self._lock(container_id):
            await self._stop(container_id, 0)
            shutil.rmtree(self._containers / container_id, ignore_errors=True)
        self._locks.pop(container_id, None)

    async def list_containers(self) -> list[ContainerStatus]:
        return [_container_status(config, state) for config, state in self._container_records()]

    async def container_status(self, container_id: str) -> ContainerStatus:
        return _container_status(*self._observe(container_id))

    def _exec_target(self, container_id: str, command: tuple[str, ...]) -> tuple[dict[str, Any], str]:
        """The running container's config and the command's executable; RuntimeError_ if it cannot run."""
        config, state = self._observe(container_id)
        if state["state"] != RUNNING:
            raise RuntimeError_(f"container {container_id} is {state['state']}: cannot exec in it")
        if not command:
            raise RuntimeError_(f"exec in container {container_id}: empty command")
        try:
            return config, find_executable(command[0], search_path=config["env"].get("PATH", DEFAULT_PATH),
                                           working_dir=config["working_dir"])
        except LookupError as error:
            raise RuntimeError_(f"exec in container {container_id}: {error}") from None

    async def exec_stream(self, container_id: str, command: tuple[str, ...], *,
                          stdin: bool, tty: bool) -> ExecSession:
        config, executable = self._exec_target(container_id, command)
        if tty:
            return await PtyExecSession.start(command, executable=executable, env=config["env"],
                                              cwd=config["working_dir"])
        return await PipeExecSession.start(command, executable=executable, env=config["env"],
                                           cwd=config["working_dir"], stdin=stdin)

    async def exec_sync(self, container_id: str, command: tuple[str, ...], *, timeout: float) -> ExecResult:
        config, executable = self._exec_target(container_id, command)
        process = await asyncio.create_subprocess_exec(
            *command, executable=executable, env=config["env"], cwd=config["working_dir"],
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True)
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout if timeout > 0 else None)
        except TimeoutError:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await process.wait()
            raise RuntimeError_(f"exec {list(command)} in container {container_id}: "
                                f"timed out after {timeout:g}s") from None
        except asyncio.CancelledError:
            # The caller gave up (a cancelled exec): the command must not outlive it.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            raise
        assert process.returncode is not None
        return ExecResult(exit_code=exit_code_of(process.returncode), stdout=stdout, stderr=stderr)

    async def container_stats(self) -> list[ContainerStats]:
        running = [(config, state) for config, state in self._container_records() if state["state"] == RUNNING]
        if not running:
            return []
        groups = await asyncio.to_thread(_process_groups)
        now, ticks_per_second = time.time(), os.sysconf("SC_CLK_TCK")
        stats = []
        for config, state in running:
            # The container's processes are its main process's group.
            ticks, rss = groups.get(state["pid"], (0, 0))
            if ProcessIdentity(state["pid"], state["pid_start_time"]).is_alive():
                stats.append(ContainerStats(container_id=config["id"], timestamp=now,
                                            cpu_usage_seconds=ticks / ticks_per_second,
                                            memory_working_set_bytes=rss))
        return stats

    async def close(self) -> None:
        """Nothing to release: the shims keep the containers, the files the state."""

    def _lock(self, container_id: str) -> asyncio.Lock:
        return self._locks.setdefault(container_id, asyncio.Lock())

    def _container_ids(self, sandbox_id: str) -> list[str]:
        return [config["id"] for config, _ in self._container_records() if config["sandbox_id"] == sandbox_id]

    def _container_records(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        records = []
        for directory in self._containers.iterdir():
            try:
                records.append(self._observe(directory.name))
            except RuntimeError_:
                continue  # being created or removed right now
        return sorted(records, key=lambda record: record[0]["created_at"])

    def _observe(self, container_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """A container's config and current state, recording a lost shim as an exit."""
        directory = self._containers / container_id
        config = _read_json(directory / "config.json")
        state = _read_json(directory / "state.json")
        if config is None or state is None:
            raise RuntimeError_(f"container {container_id} not found")
        shim = ProcessIdentity(state["shim_pid"], state["shim_start_time"])
        if state["state"] == RUNNING and not shim.is_alive():
            # The shim records the exit before it exits: read again.
            state = _read_json(directory / "state.json") or state
            if state["state"] == RUNNING:
                state = {**state, "state": EXITED, "finished_at": time.time(), "exit_code": 255,
                         "reason": "Error", "message": LOST_MESSAGE}
                write_json_atomically(directory / "state.json", state)
        return config, state


def _container_status(config: dict[str, Any], state: dict[str, Any]) -> ContainerStatus:
    return ContainerStatus(
        id=config["id"], sandbox_id=config["sandbox_id"], name=config["name"], attempt=config["attempt"],
        image=config["image"], image_ref=config["image_ref"], state=state["state"],
        created_at=config["created_at"], started_at=state["started_at"], finished_at=state["finished_at"],
        exit_code=state["exit_code"], reason=state["reason"], message=state["message"],
        log_path=config["log_path"], labels=config["labels"], annotations=config["annotations"])


def _home() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return "/"
