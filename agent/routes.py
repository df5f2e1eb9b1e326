"""Routes between nodes' pod networks: host-gateway, kept from the Node objects.

Each node's pods live in its ``spec.podCIDR`` behind its own bridge; a pod on
another node reaches them when that node's kernel sends the CIDR to the
node's address. ``PodRouteKeeper`` watches every Node and keeps, in this
machine's main routing table, one route ``POD_CIDR via NODE_IP`` for every
other node (flannel's host-gw backend in miniature): the nodes must share a
link (one L2 segment), which the kernel checks (a gateway it cannot reach
directly is refused and the node is logged as unreachable).

The routes Sampan owns carry their own routing protocol number,
``ROUTE_PROTOCOL`` (0x53, shown as ``proto 83`` by ``ip route``): a sync
lists the routes with that number, replaces those that differ from the
desired ones, adds the missing and deletes the rest (a node gone, or left by
an earlier run). Routes with any other protocol are never touched.

``desired_routes`` is the whole policy, pure: for every node but this one,
its IPv4 pod CIDRs via its first IPv4 InternalIP; skipped are nodes without
either, simulated nodes (no real pods), nodes whose address is this
machine's own (several agents on one machine), and a CIDR that overlaps
this node's own or one already routed (the first node by name keeps it).

Watch handlers only wake the loop; one sync applies the whole table, at
start, on every Node change (debounced) and every ``resync_seconds``.
Routes stay when the agent stops: pods keep running and keep their network.
Changing routes needs CAP_NET_ADMIN: without it the keeper says so once and
stops, and the agent goes on without pod routes.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import threading
from dataclasses import dataclass
from typing import Iterable, Protocol

from google.protobuf.message import Message

from control.client import Client
from control.reflector import Reflector

log = logging.getLogger(__name__)

ROUTE_PROTOCOL = 0x53
SIMULATED_LABEL = "sampan.io/simulated"
MAIN_TABLE = 254
NETLINK_ROUTE = 0


@dataclass(frozen=True, order=True)
class PodRoute:
    """One route this machine should have: a node's pod CIDR through that node's address."""

    destination: str  # a CIDR, e.g. 10.244.1.0/24
    gateway: str
    node: str = ""


def node_internal_ip(node: Message) -> str:
    """The node's first IPv4 InternalIP, or ""."""
    for address in node.status.addresses:
        if address.type == "InternalIP" and _ipv4(address.address):
            return address.address
    return ""


def node_pod_cidrs(node: Message) -> list[ipaddress.IPv4Network]:
    """The node's IPv4 pod CIDRs (podCIDRs, else podCIDR); malformed ones are ignored."""
    found = []
    for text in list(node.spec.pod_cidrs) or ([node.spec.pod_cidr] if node.spec.pod_cidr else []):
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
        if isinstance(network, ipaddress.IPv4Network):
            found.append(network)
    return found


def _ipv4(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
    except ValueError:
        return False


def desired_routes(nodes: Iterable[Message], *, node_name: str, local_addresses: Iterable[str] = ()) -> list[PodRoute]:
    """The routes this node should have to the other nodes' pods; see the module docstring."""
    local = set(local_addresses)
    nodes = sorted(nodes, key=lambda node: node.metadata.name)
    taken: list[ipaddress.IPv4Network] = []
    for node in nodes:
        if node.metadata.name == node_name:
            taken.extend(node_pod_cidrs(node))
    routes = []
    for node in nodes:
        name = node.metadata.name
        if name == node_name or node.metadata.labels.get(SIMULATED_LABEL) == "true":
            continue
        gateway = node_internal_ip(node)
        if not gateway or gateway in local:
            continue
        for network in node_pod_cidrs(node):
            if any(network.overlaps(other) for other in taken):
                log.warning("node %s: pod CIDR %s overlaps one already routed or this node's own; not routed",
                            name, network)
                continue
            taken.append(network)
            routes.append(PodRoute(str(network), gateway, name))
    return sorted(routes)


class RouteTable(Protocol):
    """The routes of one protocol number in one routing table (the kernel's, or a test's namespace's)."""

    async def owned(self) -> list[PodRoute]:
        """The routes carrying our protocol number (node unset)."""

    async def replace(self, route: PodRoute) -> None:
        """Add the route, or change the one to the same destination; OSError-like NetlinkError on refusal."""

    async def delete(self, route: PodRoute) -> None:
        """Remove the route (gone already: no error)."""

    async def local_addresses(self) -> list[str]:
        """The IPv4 addresses of this machine (of the table's network namespace)."""

    async def close(self) -> None: ...


class NetlinkRouteTable:
    """RouteTable over rtnetlink (pyroute2), in this network namespace or a named one."""

    def __init__(self, *, netns: str | None = None, protocol: int = ROUTE_PROTOCOL, table: int = MAIN_TABLE) -> None:
        from pyroute2 import AsyncIPRoute

        # The socket of this namespace opens on first use; another's is made at once.
        self._ipr = AsyncIPRoute(fileno=_netlink_socket_in(netns)) if netns else AsyncIPRoute()
        self._protocol = protocol
        self._table = table

    async def owned(self) -> list[PodRoute]:
        found = []
        dump = await self._ipr.route("dump", family=socket.AF_INET, proto=self._protocol, table=self._table)
        async for message in dump:
            if message.get("proto") != self._protocol or message.get("table") != self._table:
                continue
            destination = f"{message.get('dst') or '0.0.0.0'}/{message['dst_len']}"
            found.append(PodRoute(destination, message.get("gateway") or ""))
        return sorted(found)

    async def replace(self, route: PodRoute) -> None:
        await self._ipr.route("replace", dst=route.destination, gateway=route.gateway, proto=self._protocol,
                        table=self._table)

    async def delete(self, route: PodRoute) -> None:
        try:
            await self._ipr.route("del", dst=route.destination, proto=self._protocol, table=self._table)
        except Exception as err:
            if getattr(err, "code", None) != errno.ESRCH:
                raise

    async def local_addresses(self) -> list[str]:
        return [message.get("address") async for message in await self._ipr.addr("dump", family=socket.AF_INET)]

    async def close(self) -> None:
        self._ipr.close()


def _netlink_socket_in(netns: str) -> int:
    """An rtnetlink socket of the named network namespace, as a file descriptor.

    A short-lived thread enters the namespace (setns changes only the calling
    thread's) and makes the socket, which stays in that namespace for life.
    (pyroute2's own way forks a child, which is unsafe next to gRPC's threads.)
    """
    from pyroute2 import netns as namespaces

    made: dict[str, object] = {}

    def make() -> None:
        try:
            namespaces.setns(netns, flags=0, fork=False)
            made["fd"] = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE).detach()
        except BaseException as err:  # handed to the caller below
            made["error"] = err

    thread = threading.Thread(target=make, name=f"netlink socket in {netns}")
    thread.start()
    thread.join()
    if "error" in made:
        raise OSError(f"cannot open a netlink socket in network namespace {netns}: {made['error']}")
    return made["fd"]  # type: ignore[return-value]


class PodRouteKeeper:
    """Keeps the table's Sampan routes equal to ``desired_routes`` of the Node cache; see the module docstring.

    ``run`` closes the table when it ends."""

    def __init__(self, api: Client, *, node_name: str, table: RouteTable, debounce: float = 0.1,
                 resync_seconds: float = 30.0) -> None:
        self.node_name = node_name
        self.table = table
        self.debounce = debounce
        self.resync_seconds = resync_seconds
        self.nodes: Reflector[Message] = Reflector(api, "Node", on_change=self._changed)
        self._wake = asyncio.Event()
        self._failures: dict[PodRoute, str] = {}  # routes the kernel refused, and why (logged once each)

    def _changed(self, old: Message | None, new: Message | None) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled, or until the kernel says this process may not change routes."""
        watching = asyncio.create_task(self.nodes.run(), name="node reflector")
        try:
            await self.nodes.synced.wait()
            while True:
                self._wake.clear()
                try:
                    await self.sync()
                except PermissionError as err:
                    log.error("pod routes: not permitted to change routes (%s); run the agent as root to route "
                              "to other nodes' pods. Going on without pod routes.", err)
                    return
                except Exception:
                    log.exception("pod routes: sync failed; trying again in %.0fs", self.resync_seconds)
                try:
                    await asyncio.wait_for(self._wake.wait(), self.resync_seconds)
                    await asyncio.sleep(self.debounce)  # let a burst of node changes settle into one sync
                except asyncio.TimeoutError:
                    pass
        finally:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
            await self.table.close()

    async def sync(self) -> None:
        """Make the table's routes match the Nodes: replace what differs, add what lacks, delete the rest."""
        wanted = {route.destination: route for route in desired_routes(
            self.nodes.items.values(), node_name=self.node_name, local_addresses=await self.table.local_addresses())}
        present = {route.destination: route for route in await self.table.owned()}
        for destination, route in present.items():
            if destination not in wanted:
                await self.table.delete(route)
                log.info("pod route removed: %s via %s", route.destination, route.gateway)
        for destination, route in wanted.items():
            current = present.get(destination)
            if current is not None and current.gateway == route.gateway:
                self._failures.pop(route, None)
                continue
            try:
                await self.table.replace(route)
            except Exception as err:
                if getattr(err, "code", None) == errno.EPERM:
                    raise PermissionError(str(err)) from err
                if self._failures.get(route) != str(err):
                    self._failures[route] = str(err)
                    log.warning("pod route %s via %s (node %s) refused: %s", route.destination, route.gateway,
                                route.node, err)
                continue
            self._failures.pop(route, None)
            log.info("pod route: %s via %s (node %s)", route.destination, route.gateway, route.node)
