"""``sampan agent``: one node's agent process.

Wires the pieces: the container runtime (containerd through CRI when its
socket answers, else the process runtime, and the log says which and why),
the agent's gRPC server for logs and exec (agent.server; its port goes into
the Node's status for the control service to find), the Node registration,
the heartbeat Lease, the node status reporter, the pod manager (recovering
what the runtime still runs before it starts; pods' DNS from ``--cluster-dns``),
the routes to other nodes' pods (agent/routes.py), and the Prometheus endpoint.
With TLS it first joins the cluster when its PKI directory holds no valid
client certificate (``--token``), and renews its certificates as they age
(agent/certificates.py).
Stops on SIGTERM/SIGINT without touching running pods: pods outlive the
agent, and the next agent adopts them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
from datetime import datetime, timezone
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from prometheus_client import start_http_server

from agent.certificates import DEFAULT_RENEW_FRACTION, CertificateRotator, ensure_credentials
from agent.metrics import AgentMetrics, InstrumentedRuntime, sample_container_stats
from agent.node import MachineFacts, NodeIdentity, NodeLease, NodeStatusReporter, register_node
from agent.pods.dns import ClusterDNS
from agent.image_import import image_store_for
from agent.pod_containers import APIPodLookup
from agent.runtime.base import ContainerRuntime
from agent.server import DEFAULT_LISTEN, AgentServer, AgentServicer
from control.api import errors
from control.api.metrics_endpoints import join_host_port
from control.auth.bootstrap import JoinToken, parse_join_token
from control.auth.node_pki import DEFAULT_NODE_PKI_DIR, SERVING, NodePKI
from control.client import PLAINTEXT, Client

log = logging.getLogger("sampan.agent")

DEFAULT_CONTAINERD_SOCKET = "/run/containerd/containerd.sock"


@dataclass(frozen=True)
class AgentConfig:
    server: str
    node_name: str
    data_dir: str = "/var/lib/sampan/agent"
    runtime: str = "auto"  # auto, containerd, process
    containerd_socket: str = DEFAULT_CONTAINERD_SOCKET
    pod_cidr: str = ""
    node_ip: str = ""
    node_labels: Mapping[str, str] = field(default_factory=dict)
    metrics_listen: str = "127.0.0.1:10250"
    # The logs/exec gRPC server (agent.server).
    listen: str = DEFAULT_LISTEN
    # The node's credentials (control/auth/node_pki.py): its client certificate for the API, its
    # serving certificate for the agent's server. None: plain text both ways (--insecure-plaintext).
    tls: NodePKI | None = None
    # Joining (agent/certificates.py): the bootstrap token used when tls holds no valid client
    # certificate; and when, as a fraction of their lifetime, the node's certificates are renewed.
    join_token: JoinToken | None = None
    cert_renew_fraction: float = DEFAULT_RENEW_FRACTION
    lease_interval: float = 10.0
    status_interval: float = 10.0
    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    backoff_reset: float = 600.0
    # Pods' DNS (agent/pods/dns.py): the cluster DNS's addresses (none: the host's), the cluster
    # domain, and the host's resolver file.
    cluster_dns: tuple[str, ...] = ("10.96.0.10",)
    cluster_domain: str = "cluster.local"
    resolv_conf: str = "/etc/resolv.conf"
    # Keep routes to the other nodes' pod CIDRs (agent/routes.py).
    pod_routes: bool = True


async def choose_runtime(config: AgentConfig) -> tuple[ContainerRuntime, str]:
    """The runtime to use and why (logged at start)."""
    if config.runtime in ("auto", "containerd"):
        reason = f"no containerd socket at {config.containerd_socket}"
        if os.path.exists(config.containerd_socket):
            from agent.runtime.cri import CRIRuntime

            runtime = CRIRuntime(config.containerd_socket)
            try:
                info = await runtime.info()
                return runtime, f"containerd answers at {config.containerd_socket} ({info.version})"
            except Exception as err:
                await runtime.close()
                reason = f"containerd at {config.containerd_socket} does not answer: {err}"
        if config.runtime == "containerd":
            raise SystemExit(f"--runtime containerd: {reason}")
    else:
        reason = "--runtime process"
    from agent.runtime.process import ProcessRuntime

    return ProcessRuntime(os.path.join(config.data_dir, "process-runtime")), (
        f"process runtime (no isolation): {reason}")


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.metrics = AgentMetrics()
        self._tasks: list[asyncio.Task] = []
        self._api: Client | None = None
        self._runtime: ContainerRuntime | None = None
        self._metrics_server = None
        self._server: AgentServer | None = None
        self.rotator: CertificateRotator | None = None

    async def start(self) -> None:
        config = self.config
        os.makedirs(config.data_dir, exist_ok=True)
        if config.tls is not None:
            # Join first (when there is no valid client certificate yet): a refused token ends here.
            await ensure_credentials(config.tls, server=config.server, node_name=config.node_name,
                                     token=config.join_token)
        runtime, why = await choose_runtime(config)
        log.info("container runtime: %s", why)
        info = await runtime.info()
        self._runtime = InstrumentedRuntime(runtime, self.metrics)
        if config.tls is None:
            log.warning("talking to the control service in PLAIN TEXT and serving the agent API unauthenticated "
                        "(--insecure-plaintext)")
        credentials = PLAINTEXT if config.tls is None else config.tls.client_credentials()
        serving = None if config.tls is None else config.tls.files(SERVING)
        self._api = Client.connect(config.server, credentials=credentials)
        servicer = AgentServicer(
            self._runtime, APIPodLookup(self._api, config.node_name),
            images=image_store_for(runtime, node_name=config.node_name),
            spool_dir=Path(config.data_dir, "image-imports"))
        self._server = AgentServer(servicer, listen=config.listen, tls=serving)
        agent_port = await self._server.start()
        metrics_address = ""
        if config.metrics_listen:
            # Before registering: the Node's sampan.io/agent-metrics annotation names the port it got.
            host, _, port = config.metrics_listen.rpartition(":")
            self._metrics_server = start_http_server(int(port), host or "0.0.0.0", registry=self.metrics.registry)
            metrics_address = join_host_port(host or "0.0.0.0", self._metrics_server[0].server_port)
        identity = NodeIdentity(
            name=config.node_name, labels=dict(config.node_labels), pod_cidr=config.pod_cidr,
            runtime_version=info.version, runtime_isolated=info.isolated, agent_port=agent_port,
            metrics_address=metrics_address)
        facts = await asyncio.to_thread(MachineFacts.read, data_dir=config.data_dir, node_ip=config.node_ip)
        await self._register(identity, facts)

        from agent.pods import PodManager, RestartBackoff

        pods = PodManager(
            api=self._api, runtime=self._runtime, node_name=config.node_name, data_dir=config.data_dir,
            host_ip=facts.internal_ip,
            backoff=RestartBackoff(initial=config.backoff_initial, maximum=config.backoff_max,
                                   reset_after=config.backoff_reset),
            on_pod_started=self._observe_pod_start,
            cluster_dns=ClusterDNS(servers=config.cluster_dns, domain=config.cluster_domain),
            resolv_conf=config.resolv_conf)
        await pods.recover()
        self._tasks = [
            asyncio.create_task(NodeLease(self._api, config.node_name, interval=config.lease_interval).run()),
            asyncio.create_task(NodeStatusReporter(
                self._api, identity, data_dir=config.data_dir, node_ip=config.node_ip,
                interval=config.status_interval).run()),
            asyncio.create_task(pods.run()),
            asyncio.create_task(sample_container_stats(self._runtime, self.metrics)),
        ]
        if config.pod_routes:
            from agent.routes import NetlinkRouteTable, PodRouteKeeper

            keeper = PodRouteKeeper(self._api, node_name=config.node_name, table=NetlinkRouteTable())
            self._tasks.append(asyncio.create_task(keeper.run()))
        if config.tls is not None:
            self.rotator = CertificateRotator(self._api, config.tls, node_name=config.node_name,
                                              fraction=config.cert_renew_fraction, server_names=self._serving_names)
            self._tasks.append(asyncio.create_task(self.rotator.run()))
        log.info("agent for node %s started (data in %s)", config.node_name, config.data_dir)

    async def _serving_names(self) -> list[str]:
        """The names the agent's serving certificate carries: the Node's name and addresses."""
        node = await self._api.get("Node", self.config.node_name)
        return list(dict.fromkeys([self.config.node_name, *(a.address for a in node.status.addresses)]))

    def _observe_pod_start(self, pod) -> None:
        """kubelet_pod_start_duration_seconds: creation to first reported Running."""
        try:
            created = datetime.fromisoformat(pod.metadata.creation_timestamp.replace("Z", "+00:00"))
        except ValueError:
            return
        self.metrics.pod_start_duration.observe(max(0.0, (datetime.now(timezone.utc) - created).total_seconds()))

    async def _register(self, identity: NodeIdentity, facts: MachineFacts) -> None:
        """Register, retrying while the control service is unreachable."""
        delay = 0.5
        while True:
            try:
                await register_node(self._api, identity, facts)
                return
            except errors.UnavailableError as err:
                log.warning("control service unreachable, retrying in %.1fs: %s", delay, err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.stop()
        if self._metrics_server is not None:
            server, _thread = self._metrics_server
            server.shutdown()
        if self._api is not None:
            await self._api.close()
        if self._runtime is not None:
            await self._runtime.close()
        log.info("agent stopped; pods keep running")

    async def wait(self) -> None:
        """Until a background task fails (which ends the agent)."""
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()


async def serve(config: AgentConfig) -> None:
    agent = Agent(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await agent.start()
    waiting = asyncio.create_task(agent.wait())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if waiting.done():
            waiting.result()
    finally:
        waiting.cancel()
        stopping.cancel()
        await agent.stop()


def parse_labels(text: str) -> dict[str, str]:
    labels = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ValueError(f"--node-labels: expected KEY=VALUE, got {part!r}")
        labels[key] = value
    return labels


def parse_cluster_dns(text: str) -> tuple[str, ...]:
    """--cluster-dns: comma-separated IP addresses ('' for none); a ValueError names the flag."""
    servers = tuple(part.strip() for part in (text or "").split(",") if part.strip())
    for server in servers:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise ValueError(f"--cluster-dns: Invalid value: {server!r}: must be a valid IP address") from None
    if len(servers) > 3:
        raise ValueError(f"--cluster-dns: Invalid value: {text!r}: must not have more than 3 nameservers")
    return servers


def parse_cluster_domain(text: str) -> str:
    """--cluster-domain: a DNS domain name; a ValueError names the flag."""
    domain = (text or "").strip(".")
    if not domain or any(not label or len(label) > 63 for label in domain.split(".")):
        raise ValueError(f"--cluster-domain: Invalid value: {text!r}: must be a DNS domain name")
    return domain


def run(args) -> int:
    """Entry point of ``sampan agent`` (args from the CLI's parser)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from control.client import resolve_server

    try:
        config = AgentConfig(
            server=resolve_server(args.server), node_name=args.node_name or os.uname().nodename,
            data_dir=args.data_dir, runtime=args.runtime, containerd_socket=args.containerd_socket,
            pod_cidr=args.pod_cidr or "", node_ip=args.node_ip or "",
            node_labels=parse_labels(args.node_labels), metrics_listen=args.metrics_listen,
            listen=args.listen,
            backoff_initial=args.restart_backoff, backoff_max=args.restart_backoff_max,
            cluster_dns=parse_cluster_dns(getattr(args, "cluster_dns", "10.96.0.10")),
            cluster_domain=parse_cluster_domain(getattr(args, "cluster_domain", "cluster.local")),
            resolv_conf=getattr(args, "resolv_conf", AgentConfig.resolv_conf),
            pod_routes=getattr(args, "pod_routes", True),
            tls=None if getattr(args, "insecure_plaintext", False)
            else NodePKI(Path(getattr(args, "pki_dir", None) or DEFAULT_NODE_PKI_DIR)),
            join_token=parse_join_token(args.token) if getattr(args, "token", None) else None)
        asyncio.run(serve(config))
    except ValueError as err:
        log.error("%s", err)
        return 1
    except OSError as err:
        log.error("cannot start: %s", err)
        return 1
    return 0
