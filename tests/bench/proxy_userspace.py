"""The userspace part of the proxy benchmark: a backend, the forwarder, and the client's measures.

Three processes, all on loopback: the benchmark (the client), a backend
(``python -m tests.bench.proxy_userspace backend``: a thread per
connection) and the forwarder (``... forwarder BACKEND_PORT NODE_PORT``:
the userspace mode, as ``sampan proxy --mode userspace`` runs it, serving
one NodePort Service on 127.0.0.1 whose only backend is the backend). Each
prints ``ready PORT`` when it listens. The client's connections go either
to the backend directly or to the forwarder's NodePort; the measures are
the same for both:

- **throughput**: one connection sends 64 KiB writes for a while, then
  half-closes; the backend answers with the byte count it read; bytes over
  the time from the first write to that answer;
- **round trip**: 64-byte messages echoed back, one at a time, on one
  connection;
- **connect + round trip**: a new connection for each 64-byte echo.

A connection's first byte tells the backend what to do: ``S`` sink and
count, ``E`` echo.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import socketserver
import struct
import sys
import time

CHUNK = 64 * 1024
MESSAGE = 64


class _Backend(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        kind = sock.recv(1)
        if kind == b"S":
            total = 0
            while data := sock.recv(CHUNK * 4):
                total += len(data)
            sock.sendall(struct.pack("!Q", total))
        elif kind == b"E":
            while data := sock.recv(CHUNK):
                sock.sendall(data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def backend() -> int:
    server = _Server(("127.0.0.1", 0), _Backend)
    print(f"ready {server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


def forwarder(backend_port: int, node_port: int) -> int:
    from proxy.modes import ModeOptions
    from proxy.state import Backend, ProxyState, ServicePortName, VirtualService
    from proxy.userspace import UserspaceMode

    async def serve() -> None:
        # The Service's ClusterIP is not on this host: the mode's warning about it is expected here.
        logging.getLogger("proxy.userspace").setLevel(logging.ERROR)
        mode = UserspaceMode(ModeOptions(node_name="bench-node"))
        service = VirtualService(ServicePortName("bench", "backend", "tcp", "TCP"), cluster_ip="10.96.0.10", port=80,
                                 protocol="TCP", node_port=node_port, backends=(Backend("127.0.0.1", backend_port),))
        await mode.sync(ProxyState(node_name="bench-node", services=(service,)), full=True)
        print(f"ready {node_port}", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
        await mode.close()

    asyncio.run(serve())
    return 0


# ------------------------------------------------------------ the client's measures (blocking)


def _connect(port: int, kind: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(kind)
    return sock


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def throughput(port: int, seconds: float) -> float:
    """Bytes per second through one connection."""
    payload = b"x" * CHUNK
    with _connect(port, b"S") as sock:
        sent = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            sock.sendall(payload)
            sent += len(payload)
        sock.shutdown(socket.SHUT_WR)
        (received,) = struct.unpack("!Q", _exactly(sock, 8))
        elapsed = time.perf_counter() - started
    if received != sent:
        raise ConnectionError(f"the backend read {received} of {sent} bytes")
    return received / elapsed


def round_trips(port: int, count: int) -> list[float]:
    """Seconds for each of ``count`` 64-byte echoes on one connection."""
    message = b"m" * MESSAGE
    found = []
    with _connect(port, b"E") as sock:
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(message)
            _exactly(sock, MESSAGE)
            found.append(time.perf_counter() - started)
    return found


def connect_round_trips(port: int, count: int) -> list[float]:
    """Seconds for each of ``count`` new connections carrying one 64-byte echo."""
    message = b"m" * MESSAGE
    found = []
    for _ in range(count):
        started = time.perf_counter()
        with _connect(port, b"E") as sock:
            sock.sendall(message)
            _exactly(sock, MESSAGE)
        found.append(time.perf_counter() - started)
    return found


if __name__ == "__main__":
    if sys.argv[1:2] == ["backend"]:
        sys.exit(backend())
    if sys.argv[1:2] == ["forwarder"]:
        sys.exit(forwarder(int(sys.argv[2]), int(sys.argv[3])))
    sys.exit("usage: python -m tests.bench.proxy_userspace backend | forwarder BACKEND_PORT NODE_PORT")
