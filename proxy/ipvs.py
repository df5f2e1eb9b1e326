"""The IPVS proxy mode: Services as IPVS virtual servers, programmed through netlink.

For every Service port of the ``ProxyState`` the kernel gets one IPVS
virtual server on ClusterIP:port and, for NodePort Services, one on each of
the node's addresses at the NodePort; each ready backend is one real server
(masquerading, weight 1) and the scheduler is ``rr`` unless the proxy was
started with another (``--ipvs-scheduler``). ClientIP session affinity is
IPVS persistence with the Service's timeout; ``externalTrafficPolicy:
Local`` NodePorts get only this node's backends.

IPVS accepts connections only to addresses the host owns, so every
ClusterIP is put (as a /32) on the dummy interface ``sampan-ipvs0``. IPVS
does not masquerade by itself either: as kube-proxy's IPVS mode does with
iptables, the small table ``ip sampan-ipvs`` marks the packets that need it
(NodePort traffic, traffic to a ClusterIP from outside ``--cluster-cidr``)
in its nat prerouting and output chains, and masquerades marked packets and
hairpin packets (a pod reaching itself through its Service: source and
destination are the same backend, and the connection was made to a
Service address, so that the host's own loopback traffic is left alone
when a backend is 127.0.0.1) in postrouting. Its sets hold the addresses
and ports, so the rules themselves never change. The table is replaced
whole in one ``nft -f`` transaction on a full sync;
otherwise only set elements are added and deleted, again in one
transaction. ``net.ipv4.vs.conntrack`` is turned on so netfilter's NAT sees
the connections IPVS makes.

A sync plans first (``plan_ipvs``, pure) and then applies the plan through
the ``IPVSKernel`` seam (proxy/ipvs_kernel.py): the real one,
``NetlinkKernel``, sends IPVS's generic netlink messages many to a write
(proxy/ipvs_netlink.py) and manages the interface through rtnetlink with
pyroute2; no subprocess per rule. On a full sync
the plan compares the desired servers with what the kernel lists, and
removes stale servers only when they are Sampan's: a virtual server whose
address is on ``sampan-ipvs0``, or on one of this node's addresses at a port
of the NodePort range (a range the cluster reserves for Services).
Anything else in the kernel's IPVS table is never touched. Between full
syncs the plan compares with what the previous sync applied and lists
nothing: one changed Service costs a few kernel messages whatever the
number of Services (computing the layout and comparing it stays linear,
some 50 ms for 10,000 Services here).

The kernel calls block: the mode runs them on one worker thread of its
own, keeping the proxy's event loop free.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

from proxy.ipvs_kernel import (
    DEFAULT_SCHEDULER,
    INTERFACE,
    TABLE_REF,
    IPVSKernel,
    NetlinkKernel,
    RealServer,
    VirtualKey,
    VirtualServer,
)
from proxy.modes import ModeOptions
from proxy.state import ProxyState

log = logging.getLogger(__name__)

NAME = "ipvs"
# The schedulers Debian's kernel ships (ip_vs_NAME modules).
SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos")
NODE_PORT_RANGE = range(30000, 32768)
IPVS_PROC_FILE = Path("/proc/net/ip_vs")
# What IPVS in NAT mode needs of the kernel, as kube-proxy sets it.
SYSCTLS = {
    "net/ipv4/vs/conntrack": "1",  # keep conntrack entries, so nftables' masquerade applies
    "net/ipv4/vs/expire_nodest_conn": "1",  # drop connections whose real server was removed
    "net/ipv4/vs/expire_quiescent_template": "1",  # and affinity to it
    "net/ipv4/ip_forward": "1",
}


# ------------------------------------------------------------ the layout


@dataclass(frozen=True)
class MarkSets:
    """The contents of the nftables sets that decide which packets are masqueraded."""

    cluster_ports: frozenset[tuple[str, str, int]] = frozenset()  # ClusterIP, protocol, port
    node_ports: frozenset[tuple[str, int]] = frozenset()  # protocol, NodePort (externalTrafficPolicy: Cluster)
    node_addresses: frozenset[str] = frozenset()
    backend_addresses: frozenset[str] = frozenset()  # for hairpin: a backend reaching itself

    def members(self) -> dict[str, frozenset]:
        """Set name -> its members, as values (``_ELEMENT`` writes them in nft syntax)."""
        return {
            "cluster-ips": self.cluster_ports,
            "node-ports": self.node_ports,
            "node-addresses": self.node_addresses,
            "hairpin": self.backend_addresses,
            "service-addresses": frozenset({ip for ip, _, _ in self.cluster_ports}) | self.node_addresses,
        }

    def elements(self) -> dict[str, frozenset[str]]:
        """Set name -> its elements in nft syntax."""
        return {name: frozenset(map(_ELEMENT[name], members)) for name, members in self.members().items()}


_ELEMENT: dict[str, Callable] = {  # set name -> its element in nft syntax, from a member
    "cluster-ips": lambda member: f"{member[0]} . {member[1].lower()} . {member[2]}",
    "node-ports": lambda member: f"{member[0].lower()} . {member[1]}",
    "node-addresses": str,
    "hairpin": lambda ip: f"{ip} . {ip}",
    "service-addresses": str,
}


@dataclass(frozen=True)
class Layout:
    """Everything the mode programs for one ProxyState."""

    servers: Mapping[VirtualKey, VirtualServer] = field(default_factory=dict)
    cluster_ips: frozenset[str] = frozenset()  # the addresses sampan-ipvs0 holds
    marks: MarkSets = MarkSets()


def layout_for(state: ProxyState, *, scheduler: str = DEFAULT_SCHEDULER) -> Layout:
    """The virtual servers, addresses and mark sets that serve ``state``."""
    servers: dict[VirtualKey, VirtualServer] = {}
    cluster_ports, node_ports, backend_addresses = set(), set(), set()

    def add(key: VirtualKey, backends: Iterable, persistence: int) -> None:
        reals = frozenset(RealServer(backend.ip, backend.port) for backend in backends)
        servers[key] = VirtualServer(key, scheduler, persistence, reals)

    for service in state.services:
        add(VirtualKey(service.protocol, service.cluster_ip, service.port), service.backends, service.affinity_timeout)
        cluster_ports.add((service.cluster_ip, service.protocol, service.port))
        backend_addresses.update(backend.ip for backend in service.backends)
        if service.node_port:
            backends = service.local_backends(state.node_name) if service.local_external_traffic else service.backends
            for address in state.node_addresses:
                add(VirtualKey(service.protocol, address, service.node_port), backends, service.affinity_timeout)
            if not service.local_external_traffic:  # Local keeps the client's address
                node_ports.add((service.protocol, service.node_port))
    return Layout(
        servers=servers,
        cluster_ips=frozenset(service.cluster_ip for service in state.services),
        marks=MarkSets(frozenset(cluster_ports), frozenset(node_ports), frozenset(state.node_addresses),
                       frozenset(backend_addresses)))


# ------------------------------------------------------------ planning (pure)


@dataclass(frozen=True)
class IPVSPlan:
    """The kernel changes that turn the current IPVS table into the desired one."""

    add_addresses: tuple[str, ...] = ()
    delete_addresses: tuple[str, ...] = ()
    add_servers: tuple[VirtualServer, ...] = ()  # with their real servers
    update_servers: tuple[VirtualServer, ...] = ()  # scheduler or persistence changed
    delete_servers: tuple[VirtualKey, ...] = ()
    add_reals: tuple[tuple[VirtualKey, RealServer], ...] = ()
    update_reals: tuple[tuple[VirtualKey, RealServer], ...] = ()
    delete_reals: tuple[tuple[VirtualKey, RealServer], ...] = ()

    def __len__(self) -> int:
        return (len(self.add_addresses) + len(self.delete_addresses) + len(self.add_servers)
                + len(self.update_servers) + len(self.delete_servers) + len(self.add_reals)
                + len(self.update_reals) + len(self.delete_reals))


def plan_ipvs(desired: Layout, *, current_servers: Mapping[VirtualKey, VirtualServer],
              current_addresses: Iterable[str], owned: Callable[[VirtualKey], bool]) -> IPVSPlan:
    """What to add, change and remove so the kernel holds ``desired``.

    ``current_servers`` is everything the kernel (or the last sync) holds;
    of what ``desired`` lacks, only servers ``owned`` says are Sampan's are
    removed. A desired server found in the kernel is taken over whole: its
    real servers become exactly the desired ones.
    """
    current_addresses = frozenset(current_addresses)
    add_servers, update_servers, delete_servers = [], [], []
    add_reals, update_reals, delete_reals = [], [], []
    for key, server in desired.servers.items():
        existing = current_servers.get(key)
        if existing == server:
            continue  # the common case, compared in C
        if existing is None:
            add_servers.append(server)
            continue
        if not server.same_settings(existing):
            update_servers.append(server)
        have = {real.endpoint: real for real in existing.real_servers}
        want = {real.endpoint: real for real in server.real_servers}
        for endpoint, real in sorted(want.items()):
            if endpoint not in have:
                add_reals.append((key, real))
            elif have[endpoint] != real:
                update_reals.append((key, real))
        delete_reals.extend((key, have[endpoint]) for endpoint in sorted(have.keys() - want.keys()))
    for key in sorted(current_servers.keys() - desired.servers.keys()):
        if owned(key):
            delete_servers.append(key)
    return IPVSPlan(
        add_addresses=tuple(sorted(desired.cluster_ips - current_addresses)),
        delete_addresses=tuple(sorted(current_addresses - desired.cluster_ips)),
        # Sorted (the changes only, not the whole table) so a plan reads and applies the same way every time.
        add_servers=tuple(sorted(add_servers)), update_servers=tuple(sorted(update_servers)),
        delete_servers=tuple(delete_servers), add_reals=tuple(sorted(add_reals)),
        update_reals=tuple(sorted(update_reals)), delete_reals=tuple(sorted(delete_reals)))


def owned_by_sampan(*, interface_addresses: Iterable[str],
                    node_addresses: Iterable[str]) -> Callable[[VirtualKey], bool]:
    """Whether a virtual server is Sampan's: on sampan-ipvs0, or a NodePort on a node address."""
    on_interface, on_node = frozenset(interface_addresses), frozenset(node_addresses)
    return lambda key: key.address in on_interface or (key.address in on_node and key.port in NODE_PORT_RANGE)


# ------------------------------------------------------------ nftables (pure)


def nft_table(marks: MarkSets, *, mark: int, cluster_cidr: str) -> str:
    """The whole table ``ip sampan-ipvs``, replacing any earlier one, as one ``nft -f`` input."""
    declarations = {
        "cluster-ips": "ipv4_addr . inet_proto . inet_service",
        "node-ports": "inet_proto . inet_service",
        "node-addresses": "ipv4_addr",
        "hairpin": "ipv4_addr . ipv4_addr",
        "service-addresses": "ipv4_addr",
    }
    elements = marks.elements()
    lines = [f"table {TABLE_REF}", f"delete table {TABLE_REF}", f"table {TABLE_REF} {{"]
    for name, kind in declarations.items():
        lines.append(f"\tset {name} {{ type {kind}; }}")
    mark_packet = f"meta mark set meta mark | {mark:#x}"
    lines.append("\tchain mark-for-masquerade {")
    if cluster_cidr:
        lines.append(f"\t\tip daddr . meta l4proto . th dport @cluster-ips ip saddr != {cluster_cidr} {mark_packet}")
    lines += [
        f"\t\tip daddr @node-addresses meta l4proto . th dport @node-ports {mark_packet}",
        "\t}",
        "\tchain prerouting { type nat hook prerouting priority dstnat; policy accept; jump mark-for-masquerade; }",
        "\tchain output { type nat hook output priority -100; policy accept; jump mark-for-masquerade; }",
        "\tchain postrouting {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
        # The bit is cleared so a packet is masqueraded once, even if it is routed again.
        f"\t\tmeta mark & {mark:#x} == {mark:#x} meta mark set meta mark ^ {mark:#x} masquerade",
        # Only connections made to a Service: a backend's address may also be the host's
        # own (127.0.0.1), whose other connections must keep their addresses.
        "\t\tip saddr . ip daddr @hairpin ct original ip daddr @service-addresses masquerade",
        "\t}",
        "}",
    ]
    lines += _element_lines("add", {name: sorted(items) for name, items in elements.items()})
    return "\n".join(lines) + "\n"


def nft_set_changes(old: MarkSets, new: MarkSets) -> str:
    """The element additions and deletions from ``old`` to ``new`` ('' when none), as one ``nft -f`` input.

    Members are compared as values, and only the differences written out.
    """
    before, after = old.members(), new.members()
    deletions = {name: sorted(map(_ELEMENT[name], before[name] - after[name])) for name in after}
    additions = {name: sorted(map(_ELEMENT[name], after[name] - before[name])) for name in after}
    lines = _element_lines("delete", deletions) + _element_lines("add", additions)
    return "\n".join(lines) + "\n" if lines else ""


def _element_lines(verb: str, elements: Mapping[str, list[str]]) -> list[str]:
    return [f"{verb} element {TABLE_REF} {name} {{ {', '.join(items)} }}" for name, items in elements.items() if items]


# ------------------------------------------------------------ the mode


class IPVSMode:
    """A ProxyMode (proxy/modes.py) programming IPVS; see the module docstring."""

    name = NAME

    def __init__(self, options: ModeOptions, *, scheduler: str = DEFAULT_SCHEDULER,
                 kernel_factory: Callable[[], IPVSKernel] | None = None) -> None:
        if scheduler not in SCHEDULERS:
            raise ValueError(f"--ipvs-scheduler: unknown scheduler {scheduler!r} (one of {', '.join(SCHEDULERS)})")
        self._options = options
        self.scheduler = scheduler
        self._kernel_factory = kernel_factory or (lambda: NetlinkKernel(nft=options.nft))
        self._kernel: IPVSKernel | None = None
        self._applied: Layout | None = None  # what the last good sync left in the kernel
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ipvs-netlink")

    async def sync(self, state: ProxyState, *, full: bool) -> None:
        await self._in_worker(self.sync_blocking, state, full)

    async def cleanup(self) -> None:
        await self._in_worker(self.cleanup_blocking)

    async def close(self) -> None:
        """Stop; the virtual servers, the interface and the table stay and keep serving."""
        await self._in_worker(self._close_kernel)
        self._executor.shutdown(wait=True)

    async def _in_worker(self, function: Callable, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def _kernel_now(self) -> IPVSKernel:
        if self._kernel is None:
            self._kernel = self._kernel_factory()
        return self._kernel

    def _close_kernel(self) -> None:
        if self._kernel is not None:
            self._kernel.close()
            self._kernel = None

    def sync_blocking(self, state: ProxyState, full: bool) -> IPVSPlan:
        """``sync`` itself, run on the worker thread."""
        kernel = self._kernel_now()
        desired = layout_for(state, scheduler=self.scheduler)
        applied, self._applied = self._applied, None  # until this sync succeeds, nothing is known
        if full or applied is None:
            for name, value in SYSCTLS.items():
                kernel.set_sysctl(name, value)
            kernel.ensure_interface()
            addresses = kernel.interface_addresses()
            owned = owned_by_sampan(interface_addresses=addresses,
                                    node_addresses=kernel.local_addresses() | set(state.node_addresses))
            current = kernel.virtual_servers()
            kernel.apply_nftables(nft_table(desired.marks, mark=self._options.masquerade_mark,
                                            cluster_cidr=self._options.cluster_cidr))
        else:
            addresses, current = applied.cluster_ips, applied.servers
            owned = lambda key: True  # noqa: E731 - everything the last sync applied is ours
            changes = nft_set_changes(applied.marks, desired.marks)
            if changes:
                kernel.apply_nftables(changes)
        plan = plan_ipvs(desired, current_servers=current, current_addresses=addresses, owned=owned)
        apply_plan(kernel, plan)
        self._applied = desired
        if plan:
            log.info("ipvs: %d changes (%d virtual servers added, %d removed; %d real servers added, %d removed)",
                     len(plan), len(plan.add_servers), len(plan.delete_servers), len(plan.add_reals),
                     len(plan.delete_reals))
        return plan

    def cleanup_blocking(self) -> None:
        kernel = self._kernel_now()
        remove_owned(kernel)
        self._applied = None


def apply_plan(kernel: IPVSKernel, plan: IPVSPlan) -> None:
    """Make the plan's changes: addresses and servers first, removals last."""
    for address in plan.add_addresses:
        kernel.add_interface_address(address)
    for server in plan.add_servers:
        kernel.add_virtual_server(server)
        for real in sorted(server.real_servers):
            kernel.add_real_server(server.key, real)
    for server in plan.update_servers:
        kernel.update_virtual_server(server)
    for key, real in plan.add_reals:
        kernel.add_real_server(key, real)
    for key, real in plan.update_reals:
        kernel.update_real_server(key, real)
    for key, real in plan.delete_reals:
        kernel.delete_real_server(key, real)
    for key in plan.delete_servers:
        kernel.delete_virtual_server(key)
    kernel.commit()
    for address in plan.delete_addresses:
        kernel.delete_interface_address(address)


def remove_owned(kernel: IPVSKernel, *, ipvs: bool = True) -> int:
    """Remove every virtual server, the interface and the table that are Sampan's; returns the servers removed.

    Without ``ipvs`` (the kernel has not loaded IPVS, so it holds no virtual
    servers) only the interface and the table are removed.
    """
    owned = owned_by_sampan(interface_addresses=kernel.interface_addresses(), node_addresses=kernel.local_addresses())
    stale = [key for key in sorted(kernel.virtual_servers()) if owned(key)] if ipvs else []
    for key in stale:
        kernel.delete_virtual_server(key)
    kernel.commit()
    kernel.delete_interface()
    kernel.delete_nftables_table()
    return len(stale)


# ------------------------------------------------------------ what proxy/modes.py calls


def ipvs_unavailable_reason() -> str:
    """'' when this kernel has IPVS (its generic netlink family answers), else why not.

    Asking for the family makes the kernel load the ip_vs module if it has
    one. Blocks (pyroute2): call it outside a running event loop.
    """
    try:
        from pyroute2 import NetlinkError
        from pyroute2.netlink.generic import GenericNetlinkSocket
    except ImportError:
        return "pyroute2 is not installed"
    probe = GenericNetlinkSocket()
    try:
        probe.bind("IPVS", None)
    except NetlinkError as err:
        return f"the kernel has no IPVS (generic netlink family IPVS: {os.strerror(err.code)})"
    except OSError as err:
        return f"cannot ask the kernel for IPVS: {err}"
    finally:
        probe.close()
    return ""


def ipvs_available() -> bool:
    return ipvs_unavailable_reason() == ""


def create_mode(options: ModeOptions) -> IPVSMode:
    return IPVSMode(options, scheduler=options.ipvs_scheduler or DEFAULT_SCHEDULER)


def remove_leftovers(options: ModeOptions) -> None:
    """Remove what an earlier ipvs-mode proxy left (another mode runs now)."""
    interface_exists = Path("/sys/class/net", INTERFACE).exists()
    try:
        table_exists = subprocess.run([*options.nft, "list", "table", TABLE_REF], capture_output=True,
                                      timeout=30).returncode == 0
    except OSError:
        table_exists = False  # no nft here: no table of ours either
    if not interface_exists and not table_exists and not IPVS_PROC_FILE.exists():
        return  # no IPVS loaded and nothing of ours: nothing to remove
    kernel = NetlinkKernel(nft=options.nft)
    try:
        removed = remove_owned(kernel, ipvs=IPVS_PROC_FILE.exists())
    finally:
        kernel.close()
    if removed or interface_exists or table_exists:
        log.info("removed what an earlier ipvs-mode proxy left (%d virtual servers, %s, table %s)",
                 removed, INTERFACE, TABLE_REF)
