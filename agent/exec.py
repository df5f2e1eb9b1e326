"""Running a command in a container for ``sampan exec``.

Two paths, chosen by what the user asked for and what the runtime offers:

- Without stdin and tty, the command runs through the runtime's
  ``exec_sync`` (CRI's ExecSync), the one exec every runtime offers: it runs
  to its end (or ``EXEC_TIMEOUT``) and its output comes back whole, then goes
  out as stdout chunks, stderr chunks and the exit code.
- With stdin (``-i``) or a tty (``-t``), the runtime must have the optional
  ``StreamingExec`` capability (agent.runtime.base); else the request is
  refused (UNIMPLEMENTED, reason MethodNotAllowed). The ExecInput stdin
  chunks after the start message go to the command as they come, and the
  client half-closing its stream is EOF (with a tty: the terminal's EOF,
  Ctrl-D); an empty chunk carries nothing. Output goes back as the command
  writes it, then the exit code. There is no timeout: an interactive command
  runs until it exits or the client goes away (the stream is cancelled), which
  kills it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from agent.runtime.base import STDERR, ContainerRuntime, ExecSession, RuntimeError_, StreamingExec
from control.api import errors
from protos.agent.v1 import agent_pb2

# ExecSync takes a deadline (the CRI runtime turns 0 into one second); a
# command running longer is killed and the exec fails.
EXEC_TIMEOUT = 3600.0
# Output goes out in chunks well below gRPC's 4 MiB message limit.
OUTPUT_CHUNK_BYTES = 1024 * 1024

log = logging.getLogger(__name__)


def check_exec_start(start: agent_pb2.ExecStart, runtime: ContainerRuntime) -> None:
    """Refuse what this agent cannot run: no command at all, or stdin or a
    tty on a runtime without streaming exec."""
    if (start.stdin or start.tty) and not isinstance(runtime, StreamingExec):
        wanted = " and ".join(name for name, on in (("stdin", start.stdin), ("a tty", start.tty)) if on)
        raise errors.MethodNotAllowedError(
            f"exec with {wanted} is not supported by this node's container runtime: it has only ExecSync, "
            "which has no input stream; run the command without -i and -t")
    if not start.command:
        raise errors.BadRequestError("you must specify at least one command for the container")


def wants_stream(start: agent_pb2.ExecStart) -> bool:
    return start.stdin or start.tty


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


async def exec_stream_output(
    runtime: StreamingExec, container_id: str, start: agent_pb2.ExecStart,
    inputs: AsyncIterator[agent_pb2.ExecInput],
) -> AsyncIterator[agent_pb2.ExecOutput]:
    """Run command with streamed stdin (the stdin messages of inputs) and
    output, then its exit code; the command is killed if we are cancelled."""
    try:
        session = await runtime.exec_stream(container_id, tuple(start.command), stdin=start.stdin, tty=start.tty)
    except RuntimeError_ as err:
        raise errors.InternalError(f"error executing command in container: {err}") from None
    feeding = asyncio.create_task(_feed_stdin(session, inputs, stdin=start.stdin))
    try:
        async for stream, data in session.output():
            yield agent_pb2.ExecOutput(stderr=data) if stream == STDERR else agent_pb2.ExecOutput(stdout=data)
        try:
            exit_code = await session.wait()
        except RuntimeError_ as err:
            raise errors.InternalError(f"error executing command in container: {err}") from None
        yield agent_pb2.ExecOutput(exit_code=exit_code)
    finally:
        feeding.cancel()
        await session.close()


async def _feed_stdin(session: ExecSession, inputs: AsyncIterator[agent_pb2.ExecInput], *, stdin: bool) -> None:
    """Pass stdin chunks on; the end of inputs (the client's half-close) is EOF."""
    try:
        async for message in inputs:
            if stdin and message.WhichOneof("input") == "stdin" and message.stdin:
                await session.write_stdin(message.stdin)
        if stdin:
            await session.close_stdin()
    except asyncio.CancelledError:
        raise
    except Exception:  # the client went away or the command is gone: the output side ends the exec
        log.debug("exec stdin ended early", exc_info=True)
