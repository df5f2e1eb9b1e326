"""Running a command in a container for ``sampan exec``.

Commands run through the runtime's ``exec_sync`` (CRI's ExecSync), the one
exec every runtime offers: the command runs to its end (or ``EXEC_TIMEOUT``)
and its output comes back whole, then goes out as stdout chunks, stderr
chunks and the exit code. So the output of a long command arrives when it
ends, not as it is written, and stdout and stderr are not interleaved.

stdin and tty are refused (UNIMPLEMENTED, reason MethodNotAllowed): CRI's
ExecSync has no input, and its streaming Exec answers with the URL of the
runtime's own streaming server (SPDY or WebSocket), which the agent does not
speak yet. Faking stdin (writing it to a file and wrapping the command in a
shell) would change the command the user gave and need a shell and a shared
path in every image, so it is not done.
"""

from __future__ import annotations

from typing import AsyncIterator

from agent.runtime.base import ContainerRuntime, RuntimeError_
from control.api import errors
from protos.agent.v1 import agent_pb2

# ExecSync takes a deadline (the CRI runtime turns 0 into one second); a
# command running longer is killed and the exec fails.
EXEC_TIMEOUT = 3600.0
# Output goes out in chunks well below gRPC's 4 MiB message limit.
OUTPUT_CHUNK_BYTES = 1024 * 1024


def check_exec_start(start: agent_pb2.ExecStart) -> None:
    """Refuse what this agent cannot run: stdin, a tty, or no command at all."""
    if start.stdin or start.tty:
        wanted = " and ".join(name for name, on in (("stdin", start.stdin), ("a tty", start.tty)) if on)
        raise errors.MethodNotAllowedError(
            f"exec with {wanted} is not supported: the agent runs commands through the runtime's "
            "ExecSync, which has no input stream; run the command without -i and -t")
    if not start.command:
        raise errors.BadRequestError("you must specify at least one command for the container")


async def exec_output(
    runtime: ContainerRuntime, container_id: str, command: tuple[str, ...], *, timeout: float = EXEC_TIMEOUT,
) -> AsyncIterator[agent_pb2.ExecOutput]:
    """Run command in the container: its stdout, its stderr, then its exit code."""
    try:
        result = await runtime.exec_sync(container_id, command, timeout=timeout)
    except RuntimeError_ as err:
        raise errors.InternalError(f"error executing command in container: {err}") from None
    for start in range(0, len(result.stdout), OUTPUT_CHUNK_BYTES):
        yield agent_pb2.ExecOutput(stdout=result.stdout[start:start + OUTPUT_CHUNK_BYTES])
    for start in range(0, len(result.stderr), OUTPUT_CHUNK_BYTES):
        yield agent_pb2.ExecOutput(stderr=result.stderr[start:start + OUTPUT_CHUNK_BYTES])
    yield agent_pb2.ExecOutput(exit_code=result.exit_code)
