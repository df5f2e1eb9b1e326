"""The control service's monitoring HTTP server: ``/metrics`` and ``/sd``.

prometheus_client's ``start_http_server`` serves one registry and nothing
else; the control service also answers Prometheus' HTTP service discovery on
the same port, so one ``--metrics-listen`` address is all Prometheus needs.
This is that server: a WSGI app in a thread per request (as
prometheus_client's own server), which routes

- ``/sd`` to ``discover(host)`` (host: the ``Host`` the request was sent to),
  answered as JSON, or 503 with the reason when it raises;
- ``/metrics`` and ``/`` to prometheus_client's exposition of the registry;
- anything else to 404.

Handlers run on the server's threads, never on the caller's event loop;
``discover`` and the registry's collectors are responsible for reaching
their data safely from there.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from socketserver import ThreadingMixIn
from typing import Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from control.monitoring.scrape_targets import SD_PATH

log = logging.getLogger(__name__)

Discover = Callable[[str], list[dict]]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _IPv6ThreadingServer(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


def _respond(start_response, status: str, body: bytes, content_type: str) -> Iterable[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def monitoring_app(*, registry: CollectorRegistry, discover: Discover):
    """The WSGI app described in the module docstring."""
    metrics_app = make_wsgi_app(registry)

    def app(environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        if path == SD_PATH:
            host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "localhost")
            if not host.rpartition(":")[2].isdigit():  # no port given: the one it came in on
                host = f"{host}:{environ.get('SERVER_PORT', '80')}"
            try:
                body = json.dumps(discover(host)).encode()
            except Exception as err:
                log.warning("service discovery failed: %s", err or type(err).__name__)
                message = f"service discovery unavailable: {err or type(err).__name__}\n".encode()
                return _respond(start_response, "503 Service Unavailable", message, "text/plain; charset=utf-8")
            return _respond(start_response, "200 OK", body, "application/json")
        if path in ("/", "/metrics"):
            return metrics_app(environ, start_response)
        return _respond(start_response, "404 Not Found", f"no {path} here: try /metrics or {SD_PATH}\n".encode(),
                        "text/plain; charset=utf-8")

    return app


class MonitoringServer:
    """``monitoring_app`` served on host:port (port 0: any free one; ``port`` says which) until ``stop``."""

    def __init__(self, *, host: str, port: int, registry: CollectorRegistry, discover: Discover) -> None:
        server_class = _IPv6ThreadingServer if ":" in host else _ThreadingServer
        self._server = make_server(host, port, monitoring_app(registry=registry, discover=discover),
                                   server_class, handler_class=_QuietHandler)
        self.port: int = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="monitoring-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
