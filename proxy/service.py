"""``sampan proxy``: one node's service proxy.

Three reflectors (control/reflector.py) keep local copies of the Services,
the EndpointSlices and this proxy's own Node (``--node-name``: its
addresses serve NodePorts, its name picks the local backends for
``externalTrafficPolicy: Local``). Their handlers only record that
something changed (and, for an endpoint change, when it happened, for the
network programming metric); they never compute or program anything.

One loop does the work (``ServiceProxy.run``). After the first change
following a quiet time it syncs at once; further changes wait until
``min_sync_period`` has passed since the last sync started, so a burst of
changes costs one sync. Each sync computes the desired state from the
copies (proxy/state.py; between full syncs, only the Services that changed
are computed again, proxy/tracker.py) and hands it to the mode
(proxy/modes.py), which applies it. Every ``sync_period`` the sync is
*full*: the state is computed from every object again and the mode rewrites
everything it owns from scratch, which also removes what an earlier run left
(the first sync is full too) or what changed behind its back. A failed sync
is counted, logged and retried in full with back-off. The mode is chosen
once, at start, with its reason logged; other modes' leftovers are removed.

It calls the API with the node's client certificate from the agent's PKI
directory (``--pki-dir``, control/auth/node_pki.py), or in plain text with
``--insecure-plaintext``.

Stopping (SIGTERM, SIGINT) leaves kernel rules in place: Services keep
working while the proxy restarts, and the next start's full sync puts right
whatever changed meanwhile.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from google.protobuf.message import Message
from prometheus_client import start_http_server

from control.api.metrics_endpoints import join_host_port
from control.api.timestamps import parse_time
from control.auth.credential_files import follow_client_credentials
from control.auth.node_pki import DEFAULT_NODE_PKI_DIR, NodeCredentialsMissing, NodePKI
from control.client import PLAINTEXT, Client, ClientCredentials
from control.reflector import Reflector, namespaced_name
from proxy.metrics import ProxyMetrics
from proxy.metrics_annotation import keep_metrics_annotation
from proxy.modes import (
    AUTO,
    ModeOptions,
    ProxyMode,
    choose_mode,
    create_mode,
    gather_facts,
    remove_leftovers,
)
from proxy.state import ProxyState
from proxy.tracker import StateTracker

log = logging.getLogger("sampan.proxy")

LAST_CHANGE_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
DEFAULT_METRICS_LISTEN = "127.0.0.1:10256"
MAX_RETRY_DELAY = 30.0
MAX_PENDING_CHANGES = 10000


@dataclass(frozen=True)
class ProxyConfig:
    server: str
    node_name: str
    mode: str = AUTO
    metrics_listen: str = DEFAULT_METRICS_LISTEN
    min_sync_period: float = 0.1
    sync_period: float = 30.0
    cluster_cidr: str = ""
    ipvs_scheduler: str = ""
    # How it calls the API: the node's client certificate (control/auth/node_pki.py, the
    # agent's PKI directory), or plain text (--insecure-plaintext).
    credentials: ClientCredentials = PLAINTEXT
    # The PKI directory the credentials came from: a renewed certificate there is switched to.
    pki: NodePKI | None = None


class ServiceProxy:
    """Watches the API and keeps one mode's rules equal to the desired state; see the module docstring."""

    def __init__(self, api: Client, mode: ProxyMode, *, node_name: str, metrics: ProxyMetrics,
                 min_sync_period: float = 0.1, sync_period: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time) -> None:
        self.mode = mode
        self.node_name = node_name
        self.metrics = metrics
        self.min_sync_period = min_sync_period
        self.sync_period = sync_period
        self._clock = clock
        self._wall_clock = wall_clock
        self.tracker = StateTracker(node_name=node_name)
        self.services: Reflector = Reflector(api, "Service", on_change=self._service_changed)
        self.slices: Reflector = Reflector(api, "EndpointSlice", on_change=self._endpoints_changed)
        self.node: Reflector = Reflector(api, "Node", field_selector=f"metadata.name={node_name}",
                                         key=lambda node: node.metadata.name, on_change=self._changed)
        self._dirty = asyncio.Event()
        self._endpoint_changes: list[float] = []  # wall-clock times of changes no sync has applied yet
        self.state: ProxyState | None = None  # the state the last good sync applied
        self.syncs = 0
        self.synced = asyncio.Event()  # set by the first good sync

    # ------------------------------------------------------------ watch handlers: record only

    def _changed(self, old: Message | None, new: Message | None) -> None:
        self._dirty.set()

    def _service_changed(self, old: Message | None, new: Message | None) -> None:
        self.tracker.service_changed(old, new)
        self._dirty.set()

    def _endpoints_changed(self, old: Message | None, new: Message | None) -> None:
        current = new if new is not None else old
        assert current is not None
        self.tracker.slice_changed(old, new, key=namespaced_name(current))
        trigger = parse_time(current.metadata.annotations.get(LAST_CHANGE_TRIGGER_TIME, "")) if new else 0.0
        if len(self._endpoint_changes) < MAX_PENDING_CHANGES:  # bounded while syncs keep failing
            self._endpoint_changes.append(trigger or self._wall_clock())
        self._dirty.set()

    # ------------------------------------------------------------ the sync loop

    async def run(self) -> None:
        """Watch and sync until cancelled."""
        reflectors = [self.services, self.slices, self.node]
        watching = [asyncio.create_task(r.run(), name=f"reflector {r.kind}") for r in reflectors]
        try:
            await asyncio.gather(*(r.synced.wait() for r in reflectors))
            await self._sync_loop()
        finally:
            for task in watching:
                task.cancel()
            await asyncio.gather(*watching, return_exceptions=True)

    async def _sync_loop(self) -> None:
        full = True
        failures = 0
        last_start = float("-inf")
        next_full = 0.0
        while True:
            if not full:
                try:
                    await asyncio.wait_for(self._dirty.wait(), max(0.0, next_full - self._clock()))
                except asyncio.TimeoutError:
                    full = True  # the periodic resync
            wait = last_start + self.min_sync_period - self._clock()
            if failures:
                wait = max(wait, min(max(self.min_sync_period, 0.5) * 2 ** (failures - 1), MAX_RETRY_DELAY))
            if wait > 0:
                await asyncio.sleep(wait)
            self._dirty.clear()
            last_start = self._clock()
            if await self.sync(full=full):
                if full:
                    next_full = last_start + self.sync_period
                full, failures = False, 0
            else:
                full, failures = True, failures + 1

    async def sync(self, *, full: bool) -> bool:
        """Compute the whole desired state and have the mode apply it; False if it failed."""
        changes, self._endpoint_changes = self._endpoint_changes, []
        started = time.perf_counter()
        state = self.tracker.state(services=self.services.items, slices=self.slices.items,
                                   node=self.node.get(self.node_name), full=full)
        try:
            await self.mode.sync(state, full=full)
        except Exception as err:  # noqa: BLE001 - any failure of the mode is retried, in full
            self.metrics.sync_errors.inc()
            self._endpoint_changes[:0] = changes  # not applied yet: their latency keeps running
            log.error("%s sync failed (retrying in full): %s", self.mode.name, err)
            return False
        finally:
            self.metrics.sync_duration.observe(time.perf_counter() - started)
        now = self._wall_clock()
        for changed in changes:
            self.metrics.network_programming.observe(max(0.0, now - changed))
        self.metrics.services.set(len(state.services))
        self.metrics.endpoints.set(state.endpoint_count)
        self.metrics.last_sync.set(now)
        log.log(logging.INFO if self.state != state else logging.DEBUG, "%s sync%s: %d service ports, %d backends "
                "(%.1f ms)", self.mode.name, " (full)" if full else "", len(state.services), state.endpoint_count,
                (time.perf_counter() - started) * 1000)
        self.state = state
        self.syncs += 1
        self.synced.set()
        return True


# ------------------------------------------------------------ the process


async def serve(config: ProxyConfig, options: ModeOptions, mode_name: str) -> None:
    """Run the proxy in the chosen mode until SIGTERM or SIGINT."""
    await asyncio.to_thread(remove_leftovers, mode_name, options)
    mode = create_mode(mode_name, options)
    metrics = ProxyMetrics()
    metrics.mode.labels(mode_name).set(1)
    metrics_server = None
    if config.metrics_listen:
        host, _, port = config.metrics_listen.rpartition(":")
        metrics_server = start_http_server(int(port), host or "0.0.0.0", registry=metrics.registry)
    api = Client.connect(config.server, credentials=config.credentials)
    proxy = ServiceProxy(api, mode, node_name=config.node_name, metrics=metrics,
                         min_sync_period=config.min_sync_period, sync_period=config.sync_period)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("proxy for node %s started (%s mode, control service %s)", config.node_name, mode_name, config.server)
    running = asyncio.create_task(proxy.run())
    stopping = asyncio.create_task(stop.wait())
    annotating = []
    if metrics_server is not None:
        # The Node's sampan.io/proxy-metrics annotation: how Prometheus' service discovery finds this proxy.
        address = join_host_port(host or "0.0.0.0", metrics_server[0].server_port)
        annotating.append(asyncio.create_task(keep_metrics_annotation(api, node_name=config.node_name,
                                                                      address=address)))
    if config.pki is not None:
        # The agent renews the node's certificate; follow it (control/auth/credential_files.py).
        annotating.append(asyncio.create_task(follow_client_credentials(api, config.pki)))
    try:
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if running.done():
            running.result()
    finally:
        running.cancel()
        stopping.cancel()
        for task in annotating:
            task.cancel()
        await asyncio.gather(running, stopping, *annotating, return_exceptions=True)
        await mode.close()
        await api.close()
        if metrics_server is not None:
            server, _thread = metrics_server
            server.shutdown()
    log.info("proxy stopped")


def cleanup() -> int:
    """``sampan proxy --cleanup``: remove what any mode left, and exit."""
    remove_leftovers("", ModeOptions(node_name=""))
    log.info("removed the rules of every proxy mode")
    return 0


def flag_problem(args) -> str:
    """'' when the flags make sense, else one line naming the flag and the rule it broke."""
    if args.sync_period <= 0:
        return f"--sync-period: must be more than 0 seconds, got {args.sync_period:g}"
    if args.min_sync_period < 0:
        return f"--min-sync-period: must be 0 or more seconds, got {args.min_sync_period:g}"
    if args.cluster_cidr:
        try:
            ipaddress.IPv4Network(args.cluster_cidr, strict=False)
        except ValueError as err:
            return f"--cluster-cidr: must be an IPv4 CIDR such as 10.244.0.0/16: {err}"
    return ""


def run(args) -> int:
    """Entry point of ``sampan proxy`` (args from the CLI's parser, checked by ``flag_problem``).

    ModeUnavailable when the requested mode cannot run here.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.cleanup:
        return cleanup()
    from control.client import resolve_server

    config = ProxyConfig(
        server=resolve_server(args.server), node_name=args.node_name or os.uname().nodename, mode=args.mode,
        metrics_listen=args.metrics_listen, min_sync_period=args.min_sync_period, sync_period=args.sync_period,
        cluster_cidr=args.cluster_cidr or "", ipvs_scheduler=args.ipvs_scheduler or "")
    options = ModeOptions(node_name=config.node_name, cluster_cidr=config.cluster_cidr,
                          ipvs_scheduler=config.ipvs_scheduler)
    choice = choose_mode(config.mode, gather_facts(options))
    log.info("proxy mode: %s (%s)", choice.name, choice.reason)
    if getattr(args, "insecure_plaintext", False):
        log.warning("talking to the control service in PLAIN TEXT (--insecure-plaintext)")
    else:
        try:
            pki = NodePKI(Path(getattr(args, "pki_dir", None) or DEFAULT_NODE_PKI_DIR))
            credentials = pki.client_credentials()
        except NodeCredentialsMissing as err:
            log.error("%s", err)
            return 1
        config = dataclasses.replace(config, credentials=credentials, pki=pki)
    try:
        asyncio.run(serve(config, options, choice.name))
    except OSError as err:
        log.error("cannot start: %s", err)
        return 1
    return 0
