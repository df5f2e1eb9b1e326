"""The process runtime's streaming exec: a host process with pipes or a pty.

``ProcessRuntime.exec_stream`` starts the command as ``exec_sync`` does (the
container's env and working directory, a new session so that it can be
killed as a group) and hands back a ``PipeExecSession`` or, with a tty, a
``PtyExecSession``:

- pipes: stdin, stdout and stderr are three pipes; closing stdin is EOF.
- pty: the command's stdin, stdout and stderr are the slave of a new
  pseudo-terminal that is also its controlling terminal (so Ctrl-C typed by
  the user reaches it as SIGINT through the line discipline); we hold the
  master. Output ends when every holder of the slave has closed it (the
  master then reads EIO). EOF is the terminal's EOF character, Ctrl-D.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import signal
import struct
import termios
from typing import AsyncIterator, Mapping

from agent.runtime.base import STDERR, STDOUT

READ_BYTES = 64 * 1024
TTY_EOF = b"\x04"  # VEOF, Ctrl-D


def exit_code_of(returncode: int) -> int:
    """A Popen return code as a shell reports it: 128 + N for signal N."""
    return returncode if returncode >= 0 else 128 - returncode


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class PipeExecSession:
    """``ExecSession`` over a process with stdin, stdout and stderr pipes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._output: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self._readers = [asyncio.create_task(self._read(name, stream))
                         for name, stream in ((STDOUT, process.stdout), (STDERR, process.stderr))
                         if stream is not None]

    @classmethod
    async def start(cls, command: tuple[str, ...], *, executable: str, env: Mapping[str, str], cwd: str,
                    stdin: bool) -> "PipeExecSession":
        process = await asyncio.create_subprocess_exec(
            *command, executable=executable, env=dict(env), cwd=cwd,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
        return cls(process)

    async def _read(self, name: str, stream: asyncio.StreamReader) -> None:
        try:
            while data := await stream.read(READ_BYTES):
                await self._output.put((name, data))
        finally:
            await self._output.put(None)

    async def write_stdin(self, data: bytes) -> None:
        if self._process.stdin is None or self._process.stdin.is_closing():
            return
        try:
            self._process.stdin.write(data)
            await self._process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the command stopped reading: its input is lost, as with a shell pipe

    async def close_stdin(self) -> None:
        if self._process.stdin is not None and not self._process.stdin.is_closing():
            self._process.stdin.close()

    async def output(self) -> AsyncIterator[tuple[str, bytes]]:
        open_streams = len(self._readers)
        while open_streams:
            item = await self._output.get()
            if item is None:
                open_streams -= 1
            else:
                yield item

    async def wait(self) -> int:
        return exit_code_of(await self._process.wait())

    async def resize(self, *, width: int, height: int) -> None:
        """No terminal, nothing to resize."""

    async def close(self) -> None:
        if self._process.returncode is None:
            _kill_group(self._process.pid)
        for reader in self._readers:
            reader.cancel()
        await self._process.wait()


class PtyExecSession:
    """``ExecSession`` over a process whose stdin, stdout and stderr are a pty."""

    def __init__(self, process: asyncio.subprocess.Process, master: int) -> None:
        self._process = process
        self._master = master
        self._output: asyncio.Queue[bytes] = asyncio.Queue()
        os.set_blocking(master, False)
        asyncio.get_running_loop().add_reader(master, self._readable)
        self._reading = True

    @classmethod
    async def start(cls, command: tuple[str, ...], *, executable: str, env: Mapping[str, str],
                    cwd: str) -> "PtyExecSession":
        master, slave = os.openpty()
        try:
            process = await asyncio.create_subprocess_exec(
                *command, executable=executable, env={"TERM": "xterm", **env}, cwd=cwd,
                stdin=slave, stdout=slave, stderr=slave, preexec_fn=_become_terminal_leader)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)  # the command holds it now; ours would keep the output open
        return cls(process, master)

    def _readable(self) -> None:
        try:
            data = os.read(self._master, READ_BYTES)
        except BlockingIOError:
            return
        except OSError as error:  # EIO: no one holds the slave any more
            if error.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self._stop_reading()
        self._output.put_nowait(data)

    def _stop_reading(self) -> None:
        if self._reading:
            asyncio.get_running_loop().remove_reader(self._master)
            self._reading = False

    async def write_stdin(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._master, view):]
            except BlockingIOError:
                await asyncio.sleep(0.01)  # the terminal's input buffer is full: the command is not reading
            except OSError:
                return  # closed: the command is gone

    async def close_stdin(self) -> None:
        await self.write_stdin(TTY_EOF)

    async def output(self) -> AsyncIterator[tuple[str, bytes]]:
        while data := await self._output.get():
            yield STDOUT, data

    async def wait(self) -> int:
        return exit_code_of(await self._process.wait())

    async def resize(self, *, width: int, height: int) -> None:
        fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    async def close(self) -> None:
        if self._process.returncode is None:
            _kill_group(self._process.pid)
        await self._process.wait()
        if self._master >= 0:
            self._stop_reading()
            os.close(self._master)
            self._master = -1


def _become_terminal_leader() -> None:
    """In the child: a new session whose controlling terminal is stdin (the pty)."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
