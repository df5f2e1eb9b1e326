"""``sampan control``: the control service process.

Wires the pieces together: the store chosen by URL (wrapped with metrics),
the ResourceService that gives API verbs their meaning, the gRPC server with
the API service, gRPC health checking and server reflection, the Prometheus
``/metrics`` endpoint (with the leader's cluster-state gauges) and HTTP service
discovery at ``/sd`` (control/monitoring/), history compaction, the
controllers, the scheduler and the cluster DNS (control/dns/).
Every replica serves the API; the scheduler, the controllers and the cluster
DNS run only on the replica that holds the leader Lease
(control/leaderelection.py), each term on fresh informers, and stop the
moment the lease may be lost.
Stops cleanly on SIGTERM or SIGINT: the gRPC server drains, background tasks
end, the store closes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from control.api import errors, kinds
from control.client import Client, ClientCredentials
from control.controllers.informers import Informers
from control.controllers.manager import ControllerContext, ControllerOptions, run_controllers
from control.dns.cluster_dns import ClusterDNSConfig, cluster_dns_ip, run_cluster_dns
from control.leaderelection import LeaderElectionConfig, LeaderElector
from control.monitoring.endpoint import MonitoringServer
from control.monitoring.scrape_targets import target_groups
from control.monitoring.state_metrics import SNAPSHOT_KINDS, ClusterSnapshot, ClusterStateCollector
from control.scheduler.config import SchedulerConfiguration, load_config
from control.scheduler.scheduler import run_scheduler
from control.server.metrics import ControlMetrics, InstrumentedStore
from control.server.allocators import (
    DEFAULT_NODE_PORT_RANGE, DEFAULT_REPAIR_INTERVAL_SECONDS, DEFAULT_SERVICE_CIDR, ServiceAllocations,
)
from control.auth.audit import AuditLevel, AuditLog
from control.auth.authenticator import Chain
from control.auth import encryption
from control.auth.encryption import describe as describe_encryption, load_encryption_config
from control.auth.fairness import FairnessConfig, Limiter
from control.auth.bootstrap import BootstrapTokenAuthenticator, CertificateRequestAuthorizer
from control.auth.certificates import CertificateAuthenticator
from control.auth.csr_signing import CertificateSigner, run_csr_signer
from control.auth.pki import (ADMIN_NAME, CONTROL_CLIENT_NAME, DEFAULT_PKI_DIR, DEFAULT_VALIDITY, SERVER_NAME,
                              ClusterPKI, parse_validity)
from control.client_config import write_config
from control.auth.tls import TLSFiles, channel_credentials, server_credentials
from control.auth.authorizer import MastersAuthorizer, Union
from control.auth.node_authorizer import NodeAuthorizer
from control.auth.bootstrap_policy import ensure_bootstrap_policy
from control.auth.rbac import RBACAuthorizer
from control.auth.escalation import EscalationCheck, StoredRoleRules
from control.auth.node_graph import NodeGraph
from control.auth.tokens import SERVICE_ACCOUNT_KEY_NAME, ServiceAccountTokenAuthenticator, TokenSigner
from control.controllers.serviceaccounts import default_account
from control.server.token_request import StoredObjects, TokenRequests
from control.server.gate import RequestGate
from control.server.relay import StreamRelay
from control.server.defaults import DEFAULT_TOLERATION_SECONDS
from control.server.resources import ResourceService
from control.server.servicer import SERVICE_NAME, TRANSPORT_MAX_RECEIVE_BYTES, APIServicer, add_api_service
from control.server.strategy import SYSTEM_NAMESPACES
from control.server.top import Top
from control.store import Store, open_store
from control.store.etcd import EtcdTLS
from control.store.encryption import EncryptedStore
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
    # The scheduler's profiles (--scheduler-config); None: the default profile.
    scheduler_config: SchedulerConfiguration | None = None
    # Who runs the scheduler and controllers: the Lease's holder; None: this replica, always.
    leader_election: LeaderElectionConfig | None = field(default_factory=LeaderElectionConfig)
    # The controllers' wall clock, epoch seconds (tests pass one they move to drive CronJobs and deadlines).
    controller_clock: Callable[[], float] = time.time
    # How long pods tolerate a not-ready or unreachable node by default (--default-toleration-seconds).
    default_toleration_seconds: int = DEFAULT_TOLERATION_SECONDS
    # Where Services' cluster IPs and node ports come from (--service-cidr, --service-node-port-range),
    # and how often leaked or missing allocation records are repaired after the pass at start.
    service_cidr: str = DEFAULT_SERVICE_CIDR
    service_node_port_range: str = DEFAULT_NODE_PORT_RANGE
    allocation_repair_interval: float = DEFAULT_REPAIR_INTERVAL_SECONDS
    # The cluster DNS the leader serves (--cluster-dns-listen, --cluster-domain); None: none.
    # ``sampan control`` turns it on by default; an in-process service (tests) only when given one.
    cluster_dns: ClusterDNSConfig | None = None
    # Mutual TLS (control/auth): the PKI directory and certificate lifetime. None: plain text,
    # every caller an administrator (``sampan control --insecure-plaintext``; in-process tests).
    tls: TLSConfig | None = None
    # The key that signs service account tokens (--service-account-key-file; made if missing).
    # None: sa.key in the PKI directory, or a key held in memory by a plain-text service.
    service_account_key_file: Path | None = None
    # Encryption at rest: the EncryptionConfiguration file (--encryption-provider-config); "": values
    # are stored as they are. ``sampan control`` finds or creates one (control/auth/encryption.py).
    encryption_provider_config: str = ""
    # The audit log (--audit-log-path, --audit-level none|metadata|request); "": none.
    audit_log_path: str = ""
    audit_level: str = "metadata"
    # Bounds on requests in flight per identity and in all (control/auth/fairness.py);
    # applied only when callers are authenticated.
    fairness: FairnessConfig = field(default_factory=FairnessConfig)
    # TLS to an etcd store (--etcd-cafile, --etcd-certfile, --etcd-keyfile); None: plain text.
    etcd_tls: EtcdTLS | None = None


@dataclass(frozen=True)
class TLSConfig:
    """--pki-dir, --cert-validity and --tls-san: where the cluster CA and the service's
    certificates live (created on first start), how long leaves live, extra server names."""

    pki_dir: Path = DEFAULT_PKI_DIR
    cert_validity: datetime.timedelta = DEFAULT_VALIDITY
    server_names: tuple[str, ...] = ()


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
        try:  # at once, rather than when the service account controller first runs
            await resources.create(default_account(name))
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
        self._metrics_server: MonitoringServer | None = None
        self.metrics_port = 0
        # The leader's informers while it leads: the cluster-state metrics read them (control/monitoring/).
        self._state_informers: Informers | None = None
        self.metrics.registry.register(ClusterStateCollector(self._cluster_snapshot))
        self._relay: StreamRelay | None = None
        self._audit: AuditLog | None = None
        self.elector: LeaderElector | None = None
        self.pki: ClusterPKI | None = None
        # Roles and bindings, kept in memory from their watches (with TLS only).
        self._rbac: RBACAuthorizer | None = None
        # Which pods are bound where, for the node authorizer (with TLS only).
        self._node_graph: NodeGraph | None = None
        self.token_signer: TokenSigner | None = None
        self.port = 0

    async def start(self) -> None:
        config = self.config
        self._loop = asyncio.get_running_loop()
        host, port = split_host_port(config.listen)
        connect_host = host if host not in ("0.0.0.0", "::") else "127.0.0.1"
        if config.tls is not None:
            self.pki = ClusterPKI(config.tls.pki_dir)
            created = self.pki.ensure(validity=config.tls.cert_validity,
                                      server_names=[*config.tls.server_names, connect_host])
            if created:
                log.info("created %s in %s", ", ".join(created), config.tls.pki_dir)
        transformers = load_encryption_config(config.encryption_provider_config) \
            if config.encryption_provider_config else None
        self._store = await open_store(config.store_url, etcd_tls=config.etcd_tls)
        if transformers:
            log.info("encrypting at rest: %s", describe_encryption(transformers))
            self._store = EncryptedStore(self._store, transformers)
        self._store = InstrumentedStore(self._store, self.metrics)
        allocations = ServiceAllocations(self._store, service_cidr=config.service_cidr,
                                         node_port_range=config.service_node_port_range)
        resources = ResourceService(self._store, default_toleration_seconds=config.default_toleration_seconds,
                                    allocations=allocations)
        self._resources = resources
        await ensure_system_namespaces(resources)
        await ensure_bootstrap_policy(resources)
        await allocations.repair(report=self._report_allocation_problem)

        server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", TRANSPORT_MAX_RECEIVE_BYTES),
            ("grpc.so_reuseport", 0),
        ])
        gate = self._build_gate(resources)
        if self._rbac is not None:
            await self._rbac.start()  # before serving: the first request already sees every binding
        self._relay = StreamRelay(resources, self.metrics, gate, agent_credentials=self._agent_credentials())
        servicer = APIServicer(resources, self.metrics, gate, tokens=TokenRequests(resources, self.token_signer))
        add_api_service(server, servicer, relay=self._relay,
                        top=Top(resources, self._relay, gate))
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            server)
        if config.tls is not None:
            self.port = server.add_secure_port(f"{host}:{port}", server_credentials(TLSFiles(
                ca=self.pki.path("ca", "crt"), cert=self.pki.path(SERVER_NAME, "crt"),
                key=self.pki.path(SERVER_NAME, "key")), send_ca=True, accept_anonymous=True))
        else:
            log.warning("serving the API in PLAIN TEXT (--insecure-plaintext): no client is authenticated "
                        "and every caller is an administrator")
            self.port = server.add_insecure_port(f"{host}:{port}")
        await server.start()
        for service in ("", SERVICE_NAME):
            await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
        self._server = server

        if config.metrics_listen:
            metrics_host, metrics_port = split_host_port(config.metrics_listen)
            self._metrics_server = MonitoringServer(host=metrics_host, port=metrics_port,
                                                    registry=self.metrics.registry, discover=self._discover)
            self.metrics_port = self._metrics_server.port

        api = Client.connect(f"{connect_host}:{self.port}", credentials=self.own_credentials())
        self._tasks = [
            asyncio.create_task(compact_history(self._store, interval=config.compaction_interval)),
            asyncio.create_task(allocations.run_repairs(interval=config.allocation_repair_interval,
                                                        report=self._report_allocation_problem)),
        ]
        if self._node_graph is not None:
            self._tasks.append(asyncio.create_task(self._node_graph.run()))
        if config.leader_election is None:
            self.metrics.is_leader.set(1)
            self._tasks.append(asyncio.create_task(self._lead(api)))
        else:
            self.elector = LeaderElector(api, config.leader_election, lead=lambda: self._lead(api),
                                         on_change=self.metrics.is_leader.set)
            self._tasks.append(asyncio.create_task(self.elector.run()))
        self._api = api
        log.info("control service listening on %s:%d (store %s, %d kinds)",
                 host, self.port, config.store_url.split("://")[0], len(kinds.KINDS))

    def _build_gate(self, resources: ResourceService) -> RequestGate:
        """The API's gate (control/server/gate.py): who may call, what they may do,
        how many of their requests may be in flight, and the audit log. Every
        part of control/auth is put together here, from the config."""
        authenticators: list = []
        authorizers: list = [MastersAuthorizer()]
        admission = None
        self.token_signer = self._service_account_signer()
        if self.config.tls is not None:
            authenticators.append(CertificateAuthenticator())
            authenticators.append(ServiceAccountTokenAuthenticator(self.token_signer, StoredObjects(resources)))
            authenticators.append(BootstrapTokenAuthenticator(StoredObjects(resources)))
            authorizers.append(CertificateRequestAuthorizer())
            self._node_graph = NodeGraph(resources)
            authorizers.append(NodeAuthorizer(self._node_graph))
            self._rbac = RBACAuthorizer(resources)
            authorizers.append(self._rbac)
            # RBAC writes may not grant more than the writer holds (escalate/bind excepted).
            admission = EscalationCheck(held=self._rbac.index, authorizer=Union(authorizers),
                                        role_rules=StoredRoleRules(resources))
        level = AuditLevel.parse(self.config.audit_level)
        if self.config.audit_log_path and level is not AuditLevel.NONE:
            self._audit = AuditLog.open(self.config.audit_log_path, level=level)
        if not authenticators:
            # No credentials are checked: every caller is an administrator. Nor are requests
            # limited per identity: all callers are one user, so the bound would throttle them all.
            return RequestGate(audit=self._audit)
        return RequestGate(authenticator=Chain(authenticators), authorizer=Union(authorizers),
                           limiter=Limiter(self.config.fairness), audit=self._audit, admission=admission)

    def _service_account_signer(self) -> TokenSigner:
        """The service account token signer, its key from the configured file or the PKI directory."""
        path = self.config.service_account_key_file
        if path is None and self.config.tls is not None:
            path = self.config.tls.pki_dir / SERVICE_ACCOUNT_KEY_NAME
        if path is None:
            return TokenSigner.ephemeral()
        return TokenSigner.from_file(path)

    def own_credentials(self) -> ClientCredentials:
        """The control service's own client identity (system:sampan-control, a master):
        its scheduler, controllers and DNS call the API with it."""
        if self.config.tls is None:
            return ClientCredentials()
        pair = self.pki.load(CONTROL_CLIENT_NAME)
        return ClientCredentials(ca=self.pki.ca_pem, cert=pair.cert_pem, key=pair.key_pem)

    def _agent_credentials(self) -> grpc.ChannelCredentials | None:
        """How the relay dials agents: mutual TLS as the control service (None: plain text)."""
        own = self.own_credentials()
        if not own.tls:
            return None
        return channel_credentials(ca=own.ca, cert=own.cert, key=own.key)

    async def _report_allocation_problem(self, service, reason: str, message: str) -> None:
        await self._resources.record_event(service, type_="Warning", reason=reason, message=message,
                                           component="ipallocator-repair-controller")

    async def _lead(self, api: Client) -> None:
        """The leader's work, until cancelled: the scheduler and the controllers, on new informers
        (shared: one watch of Pods and of Nodes serves both)."""
        options = ControllerOptions(event_ttl=self.config.event_ttl, **self.config.controller_options)
        informers = Informers(api)
        for kind in SNAPSHOT_KINDS:
            informers.get(kind)  # before the scheduler and controllers start them
        self._state_informers = informers
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(run_scheduler(api, config=self.config.scheduler_config, informers=informers))
                if self.config.cluster_dns is not None:
                    group.create_task(run_cluster_dns(api, informers, self.config.cluster_dns))
                group.create_task(run_controllers(ControllerContext(api, informers, options,
                                                                    clock=self.config.controller_clock)))
                if self.pki is not None:
                    signer = CertificateSigner(self.pki, validity=self.config.tls.cert_validity)
                    group.create_task(run_csr_signer(api, informers, signer))
        finally:
            self._state_informers = None

    # ------------------------------------------------------------ monitoring (called on the HTTP server's threads)

    def _on_loop(self, coroutine, *, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def _cluster_snapshot(self) -> ClusterSnapshot | None:
        """The leader's copies of what the cluster-state metrics need; None off the leader or before they sync.

        Taken on the event loop, which alone changes the informers: handed over to it from another
        thread (a scrape), directly on it (a test reading the registry)."""
        if self._state_informers is None:
            return None

        def take() -> ClusterSnapshot | None:
            informers = self._state_informers
            if informers is None or not all(informers.get(kind).synced.is_set() for kind in SNAPSHOT_KINDS):
                return None
            pods, nodes, deployments = (informers.get(kind).list() for kind in SNAPSHOT_KINDS)
            return ClusterSnapshot(pods=pods, nodes=nodes, deployments=deployments)

        async def take_on_loop() -> ClusterSnapshot | None:
            return take()

        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        return take() if on_loop else self._on_loop(take_on_loop())

    def _discover(self, host: str) -> list[dict]:
        """Prometheus HTTP service discovery: this replica (at host, the address asked) and every node's daemons."""
        nodes, _revision = self._on_loop(self._resources.list(kinds.by_kind("Node")))
        return target_groups(nodes, control_address=host, control_node=socket.gethostname(), on_bad=log.warning)

    async def stop(self) -> None:
        # Controllers first, then the watch cache: that ends every open watch
        # (clients re-watch elsewhere or after the restart), so the server's
        # grace period only waits for unary calls, not for endless streams.
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._rbac is not None:
            await self._rbac.close()
        if getattr(self, "_api", None) is not None:
            await self._api.close()
        if getattr(self, "_resources", None) is not None:
            await self._resources.close()
        if self._server is not None:
            await self._server.stop(self.config.shutdown_grace)
        if self._relay is not None:
            await self._relay.close()
        if self._metrics_server is not None:
            self._metrics_server.stop()
        if self._store is not None:
            await self._store.close()
        if self._audit is not None:
            self._audit.close()
        log.info("control service stopped")


_LEADER_ELECTION_FLAGS = {
    "lease_duration": "--leader-elect-lease-duration",
    "renew_deadline": "--leader-elect-renew-deadline",
    "retry_period": "--leader-elect-retry-period",
    "identity": "--identity",
}


def leader_election_from_args(args) -> LeaderElectionConfig | None:
    """The --leader-elect* and --identity flags as a LeaderElectionConfig (None: no election).

    A ValueError names the flag at fault.
    """
    if not getattr(args, "leader_elect", True):
        return None
    given = {name: getattr(args, flag.lstrip("-").replace("-", "_"), None)
             for name, flag in _LEADER_ELECTION_FLAGS.items()}
    try:
        return LeaderElectionConfig(**{name: value for name, value in given.items() if value is not None})
    except ValueError as err:
        message = str(err)
        for name, flag in _LEADER_ELECTION_FLAGS.items():
            message = message.replace(name, flag)
        raise ValueError(message) from None


# ``sampan control`` flags for the node lifecycle: ControllerOptions field -> (flag, smallest value, inclusive).
_NODE_LIFECYCLE_FLAGS = {
    "node_monitor_grace_period": ("--node-monitor-grace-period", 0.0, False),
    "node_monitor_period": ("--node-monitor-period", 0.0, False),
    "node_eviction_rate": ("--node-eviction-rate", 0.0, True),
}


def node_lifecycle_from_args(args) -> dict:
    """ControlConfig fields from the node lifecycle flags that were given. A ValueError names the flag at fault."""
    options = {}
    for name, (flag, least, inclusive) in _NODE_LIFECYCLE_FLAGS.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        if value < least or (value == least and not inclusive):
            raise ValueError(f"{flag}: Invalid value: {value:g}: must be {'>=' if inclusive else '>'} {least:g}")
        options[name] = value
    fields: dict = {"controller_options": options} if options else {}
    seconds = getattr(args, "default_toleration_seconds", None)
    if seconds is not None:
        if seconds < 0:
            raise ValueError(f"--default-toleration-seconds: Invalid value: {seconds}: must be >= 0")
        fields["default_toleration_seconds"] = seconds
    return fields


def cluster_dns_from_args(args, *, service_cidr: str) -> ClusterDNSConfig | None:
    """The --cluster-dns-* and --cluster-domain flags (None: --cluster-dns-listen ''); a ValueError names the flag.

    The DNS Service's cluster IP is the tenth address of the service range."""
    listen = getattr(args, "cluster_dns_listen", ClusterDNSConfig.listen)
    if not listen:
        return None
    try:
        cluster_ip = cluster_dns_ip(service_cidr)
    except ValueError:
        cluster_ip = ClusterDNSConfig.cluster_ip  # the service allocator refuses the range itself, saying why
    return ClusterDNSConfig(listen=listen, domain=getattr(args, "cluster_domain", None) or ClusterDNSConfig.domain,
                            advertise_address=getattr(args, "cluster_dns_advertise_address", None) or "",
                            cluster_ip=cluster_ip)


def protection_from_args(args) -> dict:
    """ControlConfig fields from the encryption, audit and fairness flags; a ValueError names the flag."""
    fields: dict = {"encryption_provider_config": encryption.config_for_service(
        given=getattr(args, "encryption_provider_config", None),
        enabled=getattr(args, "secrets_encryption", True), store_url=args.store)}
    if getattr(args, "audit_log_path", None):
        fields["audit_log_path"] = args.audit_log_path
        fields["audit_level"] = AuditLevel.parse(getattr(args, "audit_level", None) or "metadata").value
    per_user = getattr(args, "max_requests_inflight_per_user", None)
    total = getattr(args, "max_requests_inflight", None)
    if per_user is not None or total is not None:
        defaults = FairnessConfig()
        total = total if total is not None else defaults.max_total
        fields["fairness"] = FairnessConfig(max_per_user=per_user if per_user is not None else defaults.max_per_user,
                                            max_total=total, max_system_total=total)
    return fields


def etcd_tls_from_args(args) -> EtcdTLS | None:
    """--etcd-cafile, --etcd-certfile and --etcd-keyfile as an EtcdTLS; None without a CA file.
    A ValueError names the flag at fault."""
    cafile = getattr(args, "etcd_cafile", None) or ""
    certfile = getattr(args, "etcd_certfile", None) or ""
    keyfile = getattr(args, "etcd_keyfile", None) or ""
    if not cafile:
        if certfile or keyfile:
            raise ValueError("--etcd-certfile and --etcd-keyfile need --etcd-cafile (the CA of etcd's certificates)")
        return None
    if not args.store.startswith("etcd://"):
        raise ValueError("--etcd-cafile: only an etcd:// --store speaks TLS to etcd")
    tls = EtcdTLS(cafile=cafile, certfile=certfile, keyfile=keyfile)
    tls.credentials()  # reads the files now, so a bad path is an error at start naming its flag
    return tls


def tls_from_args(args) -> TLSConfig | None:
    """--pki-dir, --cert-validity and --tls-san as a TLSConfig; None with --insecure-plaintext.
    A ValueError names the flag at fault."""
    if getattr(args, "insecure_plaintext", False):
        return None
    try:
        validity = parse_validity(getattr(args, "cert_validity", None) or "1y")
    except ValueError as err:
        raise ValueError(f"--cert-validity: {err}") from None
    names = tuple(name.strip() for name in getattr(args, "tls_san", None) or () if name.strip())
    return TLSConfig(pki_dir=Path(getattr(args, "pki_dir", None) or DEFAULT_PKI_DIR), cert_validity=validity,
                     server_names=names)


def write_admin_config(service: ControlService, path: Path) -> None:
    """The administrator's client config for this service: its address, the CA, the admin certificate."""
    host, _port = split_host_port(service.config.listen)
    host = host if host not in ("0.0.0.0", "::") else "127.0.0.1"
    server = f"[{host}]:{service.port}" if ":" in host else f"{host}:{service.port}"
    admin = service.pki.load(ADMIN_NAME)
    write_config(server, path=path, ca=service.pki.ca_pem, cert=admin.cert_pem, key=admin.key_pem)
    log.info("administrator's client config written to %s (use it: sampan --config %s get nodes, or "
             "export SAMPAN_CONFIG=%s)", path, path, path)


async def serve(config: ControlConfig, *, admin_config: Path | None = None) -> None:
    service = ControlService(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    if admin_config is not None and service.pki is not None:
        try:
            write_admin_config(service, admin_config)
        except OSError as err:
            log.error("cannot write the administrator's client config (--admin-config %s): %s", admin_config, err)
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
        service_cidr=getattr(args, "service_cidr", None) or ControlConfig.service_cidr,
        service_node_port_range=getattr(args, "service_node_port_range", None) or ControlConfig.service_node_port_range,
    )
    try:
        config = dataclasses.replace(config, **node_lifecycle_from_args(args))
        config = dataclasses.replace(config, leader_election=leader_election_from_args(args))
        if getattr(args, "scheduler_config", None):
            config = dataclasses.replace(config, scheduler_config=load_config(args.scheduler_config))
        config = dataclasses.replace(config, cluster_dns=cluster_dns_from_args(args, service_cidr=config.service_cidr))
        config = dataclasses.replace(config, tls=tls_from_args(args))
        config = dataclasses.replace(config, **protection_from_args(args))
        config = dataclasses.replace(config, etcd_tls=etcd_tls_from_args(args))
        admin_config = getattr(args, "admin_config", None)
        asyncio.run(serve(config, admin_config=Path(admin_config) if admin_config else None))
    except ValueError as err:
        log.error("%s", err)
        return 1
    except OSError as err:
        log.error("cannot start: %s", err)
        return 1
    return 0
