"""The CRI runtime's streaming exec: the Kubernetes remotecommand WebSocket protocol.

CRI's ``Exec`` does not run anything itself: it answers with the URL of the
runtime's streaming server (containerd's, on ``stream_server_address`` and
``stream_server_port``, 127.0.0.1 and a random port by default), where the
command runs once a client connects. That server is the kubelet's: it speaks
SPDY/3.1 and, when the request carries ``Sec-WebSocket-Protocol``, WebSocket
with the ``channel.k8s.io`` subprotocols. We speak WebSocket:

- every binary message is one channel byte then data: 0 stdin (ours to
  send), 1 stdout, 2 stderr, 3 status, 4 terminal size (JSON
  ``{"Width": w, "Height": h}``). The server first sends an empty message
  to say the streams are open.
- ``v4.channel.k8s.io``: the status is a metav1.Status in JSON, ``Success``,
  or ``Failure`` with reason ``NonZeroExitCode`` and the code in
  ``details.causes[{reason: ExitCode, message: "3"}]``; another failure is
  the command not starting, and its message says why.
- ``v5.channel.k8s.io`` adds a close message (255, then the channel), the
  only way to end stdin and keep reading. containerd 1.6 does not have v5;
  we offer it first so that a runtime that has it is used well.

So, without v5, ending stdin can only close the whole connection: without a
tty, ``close_stdin`` does that, the command sees EOF, and its later output
and its exit code are lost (``wait`` raises ``RuntimeError_`` saying so).
With a tty, EOF is the terminal's Ctrl-D and the connection stays up.
Closing the session closes the connection; the CRI has no call to kill an
exec, so the runtime only ends the command's streams (a command that ignores
EOF keeps running in the container until it exits).
"""

from __future__ import annotations

import asyncio
import json
from typing import AsyncIterator

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from agent.runtime.base import STDERR, STDOUT, RuntimeError_

V5_PROTOCOL = "v5.channel.k8s.io"
V4_PROTOCOL = "v4.channel.k8s.io"
STDIN_CHANNEL, STDOUT_CHANNEL, STDERR_CHANNEL, STATUS_CHANNEL, RESIZE_CHANNEL = 0, 1, 2, 3, 4
CLOSE_MESSAGE = 255  # v5: close the channel in the next byte
TTY_EOF = b"\x04"  # VEOF, Ctrl-D
CONNECT_TIMEOUT = 30.0


def websocket_url(url: str) -> str:
    """The streaming server's http(s) URL as a ws(s) one."""
    for http, ws in (("http://", "ws://"), ("https://", "wss://")):
        if url.startswith(http):
            return ws + url[len(http):]
    return url


def exit_code_from_status(status: dict) -> int:
    """The exit code in a v4 status message; RuntimeError_ for any other failure."""
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in status.get("details", {}).get("causes", []):
            if cause.get("reason") == "ExitCode":
                return int(cause["message"])
    raise RuntimeError_(status.get("message") or f"exec failed: {status}")


class WebSocketExecSession:
    """``ExecSession`` over a connection to the CRI streaming server."""

    def __init__(self, connection: ClientConnection, *, tty: bool) -> None:
        self._connection = connection
        self._tty = tty
        self._status: dict | None = None
        self._stdin_closed_connection = False
        self._output: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str, *, tty: bool) -> "WebSocketExecSession":
        try:
            connection = await asyncio.wait_for(connect(
                websocket_url(url), subprotocols=[V5_PROTOCOL, V4_PROTOCOL],  # type: ignore[list-item]
                compression=None, max_size=None, ping_interval=None), CONNECT_TIMEOUT)
        except (OSError, TimeoutError, WebSocketException) as error:
            raise RuntimeError_(f"cannot connect to the runtime's streaming server at {url}: {error}") from None
        if connection.subprotocol not in (V5_PROTOCOL, V4_PROTOCOL):
            await connection.close()
            raise RuntimeError_(f"the runtime's streaming server at {url} speaks neither {V5_PROTOCOL} "
                                f"nor {V4_PROTOCOL} (it chose {connection.subprotocol!r})")
        return cls(connection, tty=tty)

    async def _read(self) -> None:
        try:
            async for message in self._connection:
                if isinstance(message, str) or not message:
                    continue
                channel, data = message[0], message[1:]
                if channel == STDOUT_CHANNEL and data:
                    await self._output.put((STDOUT, data))
                elif channel == STDERR_CHANNEL and data:
                    await self._output.put((STDERR, data))
                elif channel == STATUS_CHANNEL and data:
                    self._status = json.loads(data)
        except ConnectionClosed:
            pass
        finally:
            await self._output.put(None)

    async def _send(self, channel: int, data: bytes) -> None:
        try:
            await self._connection.send(bytes([channel]) + data)
        except ConnectionClosed:
            pass  # the command is over: its input is lost

    async def write_stdin(self, data: bytes) -> None:
        await self._send(STDIN_CHANNEL, data)

    async def close_stdin(self) -> None:
        if self._tty:
            await self.write_stdin(TTY_EOF)
        elif self._connection.subprotocol == V5_PROTOCOL:
            await self._send(CLOSE_MESSAGE, bytes([STDIN_CHANNEL]))
        else:  # v4 has no half-close: see the module docstring
            self._stdin_closed_connection = True
            await self._connection.close()

    async def output(self) -> AsyncIterator[tuple[str, bytes]]:
        while item := await self._output.get():
            yield item

    async def wait(self) -> int:
        await self._reader
        if self._status is not None:
            return exit_code_from_status(self._status)
        if self._stdin_closed_connection:
            raise RuntimeError_(
                f"the command's exit code is unknown: ending stdin closed the connection to the runtime's "
                f"streaming server, which has no {V5_PROTOCOL} to end stdin alone; use -t, or a command "
                "that does not wait for the end of its input")
        raise RuntimeError_("the runtime's streaming server closed the connection without the command's status")

    async def resize(self, *, width: int, height: int) -> None:
        if self._tty:
            await self._send(RESIZE_CHANNEL, json.dumps({"Width": width, "Height": height}).encode())

    async def close(self) -> None:
        await self._connection.close()
        self._reader.cancel()
