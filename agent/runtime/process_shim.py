"""The process runtime's per-container shim: one small daemon per container.

``ProcessRuntime.start_container`` runs ``python -I process_shim.py DIR``
(by file path, standard library only, so it needs nothing from the agent's
environment). Like containerd-shim or conmon, the shim lets a container
outlive the agent that started it:

1. It forks; the parent (the *launcher*, the agent's child) exits as soon as
   the shim has started the container or failed to, so the agent learns the
   outcome by waiting for the launcher. The shim itself is reparented to init
   and never becomes the agent's zombie.
2. It starts the container's command from ``DIR/config.json`` in a process
   group of its own, stdin ``/dev/null``, stdout and stderr on pipes.
3. It writes every output line to the container's log file in the CRI format
   (``<RFC3339Nano> <stdout|stderr> <F|P> <text>``), splitting lines longer
   than 16 KiB into partial (``P``) records as containerd does.
4. It forwards SIGTERM, SIGINT, SIGHUP and SIGQUIT to the container's main
   process; SIGUSR1 asks it to SIGKILL the container's whole process group
   (SIGKILL cannot be forwarded, and the shim must live to record the exit).
5. When the main process exits it kills what is left of its process group
   (a container's processes die with its init), waits for the log pipes to
   drain, writes the exit to ``DIR/state.json`` and exits.

``state.json`` is only ever replaced whole (write a temporary file, rename),
so a reader never sees half a record. The shim is its only writer from the
moment it starts until it exits; the runtime writes it before (``created``)
and after (a shim that died without recording an exit).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

STATE_VERSION = 1
# containerd's default max_container_log_line_size.
MAX_LOG_LINE = 16 * 1024
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
KILL_REQUEST_SIGNAL = signal.SIGUSR1
# How long to wait for the log pipes to close once the container's process
# group is dead; only processes that left the group can hold them longer.
DRAIN_TIMEOUT = 5.0


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks after boot); with the pid it
    names one process for good, even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return int(fields[19])


def write_json_atomically(path: Path, record: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(record, indent=1, sort_keys=True))
    os.replace(temporary, path)


def cri_timestamp(nanoseconds: int) -> bytes:
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z").encode()


class CRILogWriter:
    """Appends CRI-format records to one log file from several streams."""

    def __init__(self, log: IO[bytes]) -> None:
        self._log = log
        self._lock = threading.Lock()

    def write(self, stream: bytes, text: bytes, *, partial: bool = False) -> None:
        tag = b"P" if partial else b"F"
        record = b"%s %s %s %s\n" % (cri_timestamp(time.time_ns()), stream, tag, text)
        with self._lock:
            self._log.write(record)
            self._log.flush()

    def copy(self, pipe: IO[bytes], stream: bytes) -> None:
        """Copy one pipe into the log until EOF, a record per line."""
        pending = b""
        while chunk := os.read(pipe.fileno(), 65536):
            pending += chunk
            while True:
                end = pending.find(b"\n")
                if 0 <= end <= MAX_LOG_LINE:
                    self.write(stream, pending[:end])
                    pending = pending[end + 1:]
                elif end > MAX_LOG_LINE or len(pending) > MAX_LOG_LINE:
                    self.write(stream, pending[:MAX_LOG_LINE], partial=True)
                    pending = pending[MAX_LOG_LINE:]
                else:
                    break
        if pending:
            self.write(stream, pending)
        pipe.close()


class Shim:
    def __init__(self, container_dir: Path) -> None:
        self.container_dir = container_dir
        self.state_path = container_dir / "state.json"
        self.config = json.loads((container_dir / "config.json").read_text())
        self.child: subprocess.Popen[bytes] | None = None
        self.reaped = False
        self.pending_signals: list[int] = []
        self.running: dict[str, Any] = {}

    def on_signal(self, signum: int, _frame: object) -> None:
        if self.child is None:
            self.pending_signals.append(signum)
        elif not self.reaped:
            self.deliver(signum)

    def deliver(self, signum: int) -> None:
        assert self.child is not None
        try:
            if signum == KILL_REQUEST_SIGNAL:
                os.killpg(self.child.pid, signal.SIGKILL)
            else:
                os.kill(self.child.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def write_state(self, **fields: Any) -> None:
        write_json_atomically(self.state_path, {
            "version": STATE_VERSION,
            "shim_pid": os.getpid(),
            "shim_start_time": process_start_time(os.getpid()),
            **fields,
        })

    def start(self) -> CRILogWriter | None:
        """Start the container's process; None (exit recorded) if it cannot start."""
        config = self.config
        for signum in (*FORWARDED_SIGNALS, KILL_REQUEST_SIGNAL):
            signal.signal(signum, self.on_signal)
        started_at = time.time()
        try:
            log_path = Path(config["log_path"])
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log = CRILogWriter(open(log_path, "ab"))
        except OSError as error:
            self.record_start_error(f"cannot open the log file {config['log_path']}: {error.strerror}")
            return None
        try:
            self.child = subprocess.Popen(
                config["argv"], executable=config["executable"], env=config["env"],
                cwd=config["working_dir"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, process_group=0, close_fds=True)
        except OSError as error:
            self.record_start_error(f'exec: "{config["argv"][0]}": {error.strerror}')
            return None
        self.running = {"pid": self.child.pid, "pid_start_time": process_start_time(self.child.pid),
                        "started_at": started_at}
        self.write_state(state="running", finished_at=0.0, exit_code=0, reason="", message="",
                         **self.running)
        for signum in self.pending_signals:
            self.deliver(signum)
        return log

    def record_start_error(self, message: str) -> None:
        # Kubernetes reports a container that could not start as exit code
        # 128, reason StartError.
        now = time.time()
        self.write_state(state="exited", pid=0, pid_start_time=None, started_at=now, finished_at=now,
                         exit_code=128, reason="StartError", message=message)

    def supervise(self, log: CRILogWriter) -> None:
        """Log the container's output until it exits, then record the exit."""
        assert self.child is not None and self.child.stdout and self.child.stderr
        copiers = [threading.Thread(target=log.copy, args=(pipe, stream), daemon=True)
                   for pipe, stream in ((self.child.stdout, b"stdout"), (self.child.stderr, b"stderr"))]
        for copier in copiers:
            copier.start()
        returncode = self.child.wait()
        self.reaped = True
        try:
            # The group's id cannot be reused while any member lives.
            os.killpg(self.child.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        deadline = time.monotonic() + DRAIN_TIMEOUT
        for copier in copiers:
            copier.join(max(0.0, deadline - time.monotonic()))
        # Like Docker and the CRI: death by signal N is exit code 128+N.
        exit_code = returncode if returncode >= 0 else 128 - returncode
        self.write_state(state="exited", finished_at=time.time(), exit_code=exit_code,
                         reason="Completed" if exit_code == 0 else "Error", message="", **self.running)


def main(argv: list[str]) -> int:
    container_dir = Path(argv[1])
    started_r, started_w = os.pipe()
    if os.fork() > 0:
        # The launcher: return once the shim closes its end, i.e. has
        # recorded the container running, or failed to start it, or died.
        os.close(started_w)
        while os.read(started_r, 1):
            pass
        return 0
    os.close(started_r)
    os.setsid()
    shim = Shim(container_dir)
    log = shim.start()
    os.close(started_w)
    if log is not None:
        shim.supervise(log)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
