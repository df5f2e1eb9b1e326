"""``sampan control``: the control service process.

Wires the pieces together: the store chosen by URL (wrapped with metrics),
the ResourceService that gives API verbs their meaning, the gRPC server with
the API service, gRPC health checking and server reflection, the Prometheus
``/metrics`` endpoint, history compaction, the controllers and the scheduler.
Stops cleanly on SIGTERM or SIGINT: the gRPC server drains, background tasks
end, the store closes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from control.api import errors, kinds
from control.client import Client
from control.controllers.informers import Informers
from control.controllers.manager import ControllerContext, ControllerOptions, run_controllers
from control.scheduler.scheduler import run_scheduler
from control.server.metrics import ControlMetrics, InstrumentedStore
from control.server.relay import StreamRelay
from control.server.resources import ResourceService
from control.server.servicer import SERVICE_NAME, TRANSPORT_MAX_RECEIVE_BYTES, APIServicer, add_api_service
from control.server.strategy import SYSTEM_NAMESPACES
from control.server.top import Top
from control.store import Store, open_store
from protos.api.v1 import core_pb2

log = logging.getLogger("sampan.control")


@dataclass(frozen=True)
class ControlConfig:
    store_url: str = "sqlite:///var/lib/sampan/state.db"
    listen: str = "127.0.0.1:6443"
    metrics_listen: str = "127.0.0.1:10249"
    # History older than one interval is compacted every interval (Kubernetes: 5 min).
    compaction_interval: float = 300.0
    # Events are deleted this long after they last happened (Kubernetes: 1 h).
    event_ttl: float = 3600.0
    shutdown_grace: float = 5.0
    # ControllerOptions fields to override (tests shorten the node grace period).
    controller_options: dict = field(default_factory=dict)


def split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


async def ensure_system_namespaces(resources: ResourceService) -> None:
    for name in SYSTEM_NAMESPACES:
        ns = core_pb2.Namespace(api_version="v1", kind="Namespace")
        ns.metadata.name = name
        try:
            await resources.create(ns)
        except errors.AlreadyExistsError:
            pass


async def compact_history(store: Store, *, interval: float) -> None:
    """Every interval, discard the history written before the previous tick."""
    previous = await store.current_revision()
    while True:
        await asyncio.sleep(interval)
        current = await store.current_revision()
        if previous > await store.compacted_revision():
            try:
                await store.compact(previous)
                log.info("compacted store history up to revision %d", previous)
            except Exception:
                log.exception("compaction failed")
        previous = current


class ControlService:
    """One running control service; ``start`` then ``wait`` or ``stop``."""

    def __init__(self, config: ControlConfig) -> None:
        self.config = config
        self.metrics = ControlMetrics()
        self._server: grpc.aio.Server | None = None
        self._store: Store | None = None
        self._tasks: list[asyncio.Task] = []
        self._metrics_server = None
        self._relay: StreamRelay | None = None
        self.port = 0

    async def start(self) -> None:
        config = self.config
        self._store = InstrumentedStore(await open_store(config.store_url), self.metrics)
        resources = ResourceService(self._store)
        self._resources = resources
        await ensure_system_namespaces(resources)

        server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", TRANSPORT_MAX_RECEIVE_BYTES),
            ("grpc.so_reuseport", 0),
        ])
        self._relay = StreamRelay(resources, self.metrics)
        add_api_service(server, APIServicer(resources, self.metrics), relay=self._relay,
                        top=Top(resources, self._relay))
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            server)
        host, port = split_host_port(config.listen)
        self.port = server.add_insecure_port(f"{host}:{port}")
        await server.start()
        for service in ("", SERVICE_NAME):
            await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
        self._server = server

        if config.metrics_listen:
            metrics_host, metrics_port = split_host_port(config.metrics_listen)
            self._metrics_server = start_http_server(metrics_port, metrics_host, registry=self.metrics.registry)

        api = Client.connect(f"{host if host not in ('0.0.0.0', '::') else '127.0.0.1'}:{self.port}")
        self._tasks = [
            asyncio.create_task(compact_history(self._store, interval=config.compaction_interval)),
            asyncio.create_task(run_scheduler(api)),
            asyncio.create_task(run_controllers(ControllerContext(
                api, Informers(api), ControllerOptions(event_ttl=config.event_ttl, **config.controller_options)))),
        ]
        self._api = api
        log.info("control service listening on %s:%d (store %s, %d kinds)",
                 host, self.port, config.store_url.split("://")[0], len(kinds.KINDS))

    async def stop(self) -> None:
        # Controllers first, then the watch cache: that ends every open watch
        # (clients re-watch elsewhere or after the restart), so the server's
        # grace period only waits for unary calls, not for endless streams.
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if getattr(self, "_api", None) is not None:
            await self._api.close()
        if getattr(self, "_resources", None) is not None:
            await self._resources.close()
        if self._server is not None:
            await self._server.stop(self.config.shutdown_grace)
        if self._relay is not None:
            await self._relay.close()
        if self._metrics_server is not None:
            server, _thread = self._metrics_server
            server.shutdown()
        if self._store is not None:
            await self._store.close()
        log.info("control service stopped")


async def serve(config: ControlConfig) -> None:
    service = ControlService(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    try:
        await stop.wait()
    finally:
        await service.stop()


def run(args) -> int:
    """Entry point of ``sampan control`` (args from the CLI's parser)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ControlConfig(
        store_url=args.store,
        listen=args.listen,
        metrics_listen=args.metrics_listen,
        compaction_interval=getattr(args, "compaction_interval", None) or ControlConfig.compaction_interval,
        event_ttl=getattr(args, "event_ttl", None) or ControlConfig.event_ttl,
    )
    try:
        asyncio.run(serve(config))
    except ValueError as err:
        log.error("%s", err)
        return 1
    except OSError as err:
        log.error("cannot start: %s", err)
        return 1
    return 0
