"""``sampan exec POD -- COMMAND [ARGS...]``: run a command in a container, as ``kubectl exec``.

The control service relays the command to the agent of the pod's node,
which runs it in the container (agent/exec.py). The command's stdout and
stderr go to ours; its exit code becomes ours, after kubectl's
``command terminated with exit code N`` on stderr.

``-i`` streams our stdin to the command (our EOF is its EOF) and ``-t``
gives it a terminal; when our stdin is a terminal too, ``-t`` puts it in raw
mode for the command's lifetime, so keys (Ctrl-C, Ctrl-D, arrows) go to the
remote terminal as typed, and restores it on the way out. With ``-t`` the
command's stderr comes back merged into its stdout, as with kubectl. A node
whose runtime cannot stream exec refuses -i and -t with a one-line reason.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import termios
import threading
import tty
from typing import AsyncIterator, Iterator

from control.cli.connection import connect, namespace_of
from control.cli.errors import CommandError, UsageError
from control.cli.targets import pod_name

STDIN_CHUNK_BYTES = 64 * 1024


async def stdin_chunks() -> AsyncIterator[bytes]:
    """Our stdin as it comes, read by a daemon thread (a blocked read must not
    keep the process alive once the command is over)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    def pump() -> None:
        while True:
            try:
                data = sys.stdin.buffer.read1(STDIN_CHUNK_BYTES)
            except (OSError, ValueError):
                data = b""
            try:
                loop.call_soon_threadsafe(queue.put_nowait, data)
            except RuntimeError:  # the loop is closed: nobody is reading any more
                return
            if not data:
                return

    threading.Thread(target=pump, name="sampan-exec-stdin", daemon=True).start()
    while data := await queue.get():
        yield data


@contextlib.contextmanager
def raw_terminal(enabled: bool) -> Iterator[None]:
    """Our stdin's terminal in raw mode while inside, when enabled and stdin is a terminal."""
    if not enabled or not sys.stdin.isatty():
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def run(args: argparse.Namespace) -> int:
    if not args.command_argv:
        raise UsageError("error: you must specify at least one command for the container "
                         f"(sampan exec {args.pod} -- COMMAND [ARGS...])")
    exit_code: int | None = None
    async with connect(args) as api:
        with raw_terminal(args.tty and args.stdin):
            async for output in api.exec(
                    pod_name(args.pod), args.command_argv, namespace=namespace_of(args), container=args.container,
                    stdin=stdin_chunks() if args.stdin else None, tty=args.tty):
                if output.exit_code is not None:
                    exit_code = output.exit_code
                for data, stream in ((output.stdout, sys.stdout.buffer), (output.stderr, sys.stderr.buffer)):
                    if data:
                        stream.write(data)
                        stream.flush()
    if exit_code is None:
        raise CommandError("error: the exec ended without the command's exit code")
    if exit_code:
        print(f"command terminated with exit code {exit_code}", file=sys.stderr)
    return exit_code
