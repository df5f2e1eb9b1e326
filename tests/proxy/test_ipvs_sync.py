"""The IPVS mode's planning and syncing, against a fake kernel.

``FakeKernel`` is a fake of the ``IPVSKernel`` seam (proxy/ipvs_kernel.py):
this machine's kernel has no IPVS, so these tests keep the IPVS table, the
dummy interface's addresses and the nftables scripts in memory. It lets
them pin what a sync asks of the kernel: which changes, how many calls,
and that a sync between full ones lists nothing. The real kernel is
exercised by tests/proxy/test_ipvs.py in a VM.

Covered: the layout computed from a ProxyState (ClusterIP and NodePort
virtual servers, persistence for ClientIP affinity, Local NodePorts,
the scheduler); the plan (adds, changes, removals, only what is Sampan's);
full and incremental syncs (stale state removed, changes behind the mode's
back repaired, one endpoint change costing one kernel call whatever the
number of Services, a failed sync followed by a full one); the nftables
transactions; cleanup.
"""

from __future__ import annotations

import pytest

from proxy.ipvs import (
    SYSCTLS,
    IPVSMode,
    Layout,
    ipvs_available,
    ipvs_unavailable_reason,
    layout_for,
    owned_by_sampan,
    plan_ipvs,
    remove_owned,
)
from proxy.ipvs_kernel import FORWARD_MASQUERADE, TABLE_REF, IPVSError, RealServer, VirtualKey, VirtualServer
from proxy.modes import ModeOptions
from proxy.state import Backend, ProxyState, ServicePortName, VirtualService

NODE = "node-1"
NODE_IP = "192.0.2.10"


class FakeKernel:
    """An in-memory IPVSKernel (see the module docstring for why a fake)."""

    def __init__(self, *, local_addresses: set[str] = frozenset({NODE_IP})) -> None:
        self.servers: dict[VirtualKey, VirtualServer] = {}
        self.interface: set[str] | None = None  # None: sampan-ipvs0 does not exist
        self.local = set(local_addresses)
        self.nft_scripts: list[str] = []
        self.sysctls: dict[str, str] = {}
        self.calls: list[str] = []  # every changing call, in order
        self.listings = 0
        self.fail_next: str = ""  # a method name: that call raises once

    def _record(self, call: str) -> None:
        self.calls.append(call)
        if self.fail_next and call.startswith(self.fail_next):
            self.fail_next = ""
            raise IPVSError(f"{call}: refused")

    def ensure_interface(self) -> None:
        if self.interface is None:
            self.interface = set()

    def delete_interface(self) -> None:
        self.interface = None

    def interface_addresses(self) -> set[str]:
        return set(self.interface or ())

    def add_interface_address(self, address: str) -> None:
        self._record(f"add_address {address}")
        assert self.interface is not None, "address added before the interface exists"
        self.interface.add(address)

    def delete_interface_address(self, address: str) -> None:
        self._record(f"delete_address {address}")
        self.interface.discard(address)

    def local_addresses(self) -> set[str]:
        return set(self.local)

    def virtual_servers(self) -> dict[VirtualKey, VirtualServer]:
        self.listings += 1
        return dict(self.servers)

    def add_virtual_server(self, server: VirtualServer) -> None:
        self._record(f"add_virtual {server.key}")
        assert server.key not in self.servers, f"{server.key} exists"
        self.servers[server.key] = VirtualServer(server.key, server.scheduler, server.persistence)

    def update_virtual_server(self, server: VirtualServer) -> None:
        self._record(f"update_virtual {server.key}")
        reals = self.servers[server.key].real_servers
        self.servers[server.key] = VirtualServer(server.key, server.scheduler, server.persistence, reals)

    def delete_virtual_server(self, key: VirtualKey) -> None:
        self._record(f"delete_virtual {key}")
        del self.servers[key]

    def _set_reals(self, key: VirtualKey, reals: frozenset[RealServer]) -> None:
        server = self.servers[key]
        self.servers[key] = VirtualServer(key, server.scheduler, server.persistence, reals)

    def add_real_server(self, key: VirtualKey, real: RealServer) -> None:
        self._record(f"add_real {key} {real}")
        assert real.endpoint not in {r.endpoint for r in self.servers[key].real_servers}
        self._set_reals(key, self.servers[key].real_servers | {real})

    def update_real_server(self, key: VirtualKey, real: RealServer) -> None:
        self._record(f"update_real {key} {real}")
        others = {r for r in self.servers[key].real_servers if r.endpoint != real.endpoint}
        self._set_reals(key, frozenset(others | {real}))

    def delete_real_server(self, key: VirtualKey, real: RealServer) -> None:
        self._record(f"delete_real {key} {real}")
        self._set_reals(key, frozenset(r for r in self.servers[key].real_servers if r.endpoint != real.endpoint))

    def commit(self) -> None:
        pass  # every change above took effect at once

    def apply_nftables(self, script: str) -> None:
        self._record("nft")
        self.nft_scripts.append(script)

    def delete_nftables_table(self) -> None:
        self.nft_scripts.append(f"delete table {TABLE_REF}")

    def set_sysctl(self, name: str, value: str) -> None:
        self.sysctls[name] = value

    def close(self) -> None:
        pass


def service(name: str, cluster_ip: str, *backends: str, port: int = 80, node_port: int = 0, affinity: int = 0,
            local: bool = False, protocol: str = "TCP") -> VirtualService:
    parsed = []
    for text in backends:  # "IP:PORT" or "IP:PORT@NODE"
        address, _, node = text.partition("@")
        ip, _, number = address.partition(":")
        parsed.append(Backend(ip, int(number), node))
    return VirtualService(name=ServicePortName("default", name, str(port), protocol), cluster_ip=cluster_ip,
                          port=port, protocol=protocol, node_port=node_port, backends=tuple(sorted(parsed)),
                          affinity_timeout=affinity, local_external_traffic=local)


def state(*services: VirtualService, node_addresses: tuple[str, ...] = (NODE_IP,)) -> ProxyState:
    return ProxyState(node_name=NODE, node_addresses=node_addresses, services=tuple(services))


def key(text: str) -> VirtualKey:
    protocol, _, address = text.partition(" ")
    ip, _, port = address.partition(":")
    return VirtualKey(protocol, ip, int(port))


def reals(server: VirtualServer) -> list[str]:
    return sorted(str(real) for real in server.real_servers)


WEB = service("web", "10.96.0.10", "10.244.0.1:8080", "10.244.0.2:8080", node_port=30080)
API = service("api", "10.96.0.20", "10.244.0.3:9090", port=90)


@pytest.fixture
def kernel() -> FakeKernel:
    return FakeKernel()


@pytest.fixture
async def mode(kernel):
    ipvs = IPVSMode(ModeOptions(node_name=NODE, cluster_cidr="10.244.0.0/16"), kernel_factory=lambda: kernel)
    yield ipvs
    await ipvs.close()


# ------------------------------------------------------------------ the layout


def test_a_service_port_gets_a_virtual_server_on_its_cluster_ip_and_on_each_node_address_for_its_node_port():
    layout = layout_for(state(WEB, node_addresses=(NODE_IP, "198.51.100.7")))
    assert sorted(map(str, layout.servers)) == [
        "TCP 10.96.0.10:80", f"TCP {NODE_IP}:30080", "TCP 198.51.100.7:30080"]
    for server in layout.servers.values():
        assert reals(server) == ["10.244.0.1:8080", "10.244.0.2:8080"]
        assert {real.forward for real in server.real_servers} == {FORWARD_MASQUERADE}
        assert server.scheduler == "rr" and server.persistence == 0
    assert layout.cluster_ips == {"10.96.0.10"}


def test_client_ip_affinity_becomes_persistence_with_the_services_timeout():
    layout = layout_for(state(service("s", "10.96.0.30", "10.244.0.1:80", affinity=600)))
    assert layout.servers[key("TCP 10.96.0.30:80")].persistence == 600


def test_the_scheduler_is_the_one_the_mode_was_given():
    layout = layout_for(state(API), scheduler="lc")
    assert layout.servers[key("TCP 10.96.0.20:90")].scheduler == "lc"


def test_a_local_node_port_gets_only_this_nodes_backends_and_keeps_the_client_address():
    local = service("local", "10.96.0.40", f"10.244.0.1:80@{NODE}", "10.244.1.1:80@node-2", node_port=30100,
                    local=True)
    layout = layout_for(state(local, WEB))
    assert reals(layout.servers[key(f"TCP {NODE_IP}:30100")]) == ["10.244.0.1:80"]
    assert reals(layout.servers[key("TCP 10.96.0.40:80")]) == ["10.244.0.1:80", "10.244.1.1:80"]
    assert layout.marks.node_ports == {("TCP", 30080)}  # only the Cluster-policy NodePort is masqueraded


def test_udp_ports_are_udp_virtual_servers():
    dns = service("dns", "10.96.0.10", "10.244.0.5:53", port=53, protocol="UDP")
    assert list(layout_for(state(dns)).servers) == [key("UDP 10.96.0.10:53")]


def test_an_unknown_scheduler_is_refused_naming_the_flag():
    with pytest.raises(ValueError, match=r"--ipvs-scheduler: unknown scheduler 'fastest'"):
        IPVSMode(ModeOptions(node_name=NODE), scheduler="fastest")


# ------------------------------------------------------------------ the plan


def test_the_plan_for_an_unchanged_kernel_is_empty():
    layout = layout_for(state(WEB, API))
    plan = plan_ipvs(layout, current_servers=layout.servers, current_addresses=layout.cluster_ips,
                     owned=lambda key: True)
    assert len(plan) == 0


def test_the_plan_adds_changes_and_removes_only_the_difference():
    old = layout_for(state(WEB, API))
    web = service("web", "10.96.0.10", "10.244.0.1:8080", "10.244.0.9:8080", node_port=30080)
    new = layout_for(state(web), scheduler="wrr")
    plan = plan_ipvs(new, current_servers=old.servers, current_addresses=old.cluster_ips, owned=lambda key: True)
    assert [str(s.key) for s in plan.update_servers] == ["TCP 10.96.0.10:80", f"TCP {NODE_IP}:30080"]
    assert [(str(k), str(r)) for k, r in plan.add_reals] == [
        ("TCP 10.96.0.10:80", "10.244.0.9:8080"), (f"TCP {NODE_IP}:30080", "10.244.0.9:8080")]
    assert [(str(k), str(r)) for k, r in plan.delete_reals] == [
        ("TCP 10.96.0.10:80", "10.244.0.2:8080"), (f"TCP {NODE_IP}:30080", "10.244.0.2:8080")]
    assert [str(k) for k in plan.delete_servers] == ["TCP 10.96.0.20:90"]
    assert plan.delete_addresses == ("10.96.0.20",) and plan.add_addresses == ()
    assert plan.add_servers == ()


def test_a_real_server_whose_weight_or_forwarding_changed_is_updated_in_place():
    desired = layout_for(state(API))
    k = key("TCP 10.96.0.20:90")
    tampered = VirtualServer(k, "rr", 0, frozenset({RealServer("10.244.0.3", 9090, weight=5, forward=3)}))
    plan = plan_ipvs(desired, current_servers={k: tampered}, current_addresses={"10.96.0.20"},
                     owned=lambda key: True)
    assert plan.update_reals == ((k, RealServer("10.244.0.3", 9090)),)
    assert len(plan) == 1


def test_the_plan_removes_only_servers_that_are_sampans():
    owned = owned_by_sampan(interface_addresses={"10.96.0.99"}, node_addresses={NODE_IP})
    current = {k: VirtualServer(k) for k in map(key, [
        "TCP 10.96.0.99:80",  # on sampan-ipvs0: stale, Sampan's
        f"TCP {NODE_IP}:31999",  # a NodePort on a node address: stale, Sampan's
        f"TCP {NODE_IP}:8000",  # on a node address, outside the NodePort range: foreign
        "TCP 10.1.2.3:30080",  # NodePort number, but not a node address: foreign
        "UDP 10.0.0.53:53",  # foreign
    ])}
    plan = plan_ipvs(Layout(), current_servers=current, current_addresses={"10.96.0.99"}, owned=owned)
    assert sorted(map(str, plan.delete_servers)) == ["TCP 10.96.0.99:80", f"TCP {NODE_IP}:31999"]


# ------------------------------------------------------------------ syncing


async def test_a_full_sync_programs_servers_addresses_sysctls_and_the_table(mode, kernel):
    await mode.sync(state(WEB, API), full=True)
    assert sorted(map(str, kernel.servers)) == ["TCP 10.96.0.10:80", "TCP 10.96.0.20:90", f"TCP {NODE_IP}:30080"]
    assert reals(kernel.servers[key("TCP 10.96.0.10:80")]) == ["10.244.0.1:8080", "10.244.0.2:8080"]
    assert kernel.interface == {"10.96.0.10", "10.96.0.20"}
    assert kernel.sysctls == SYSCTLS
    script = kernel.nft_scripts[-1]
    assert script.startswith(f"table {TABLE_REF}\ndelete table {TABLE_REF}\n")  # replaced whole, atomically
    assert "add element ip sampan-ipvs cluster-ips { 10.96.0.10 . tcp . 80, 10.96.0.20 . tcp . 90 }" in script
    assert "add element ip sampan-ipvs node-ports { tcp . 30080 }" in script
    assert "ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x4000" in script


async def test_a_full_sync_removes_stale_servers_and_addresses_but_not_foreign_ones(mode, kernel):
    kernel.interface = {"10.96.0.99"}
    foreign = {k: VirtualServer(k, "wlc") for k in map(key, ["TCP 10.0.0.1:80", f"TCP {NODE_IP}:8000"])}
    stale = {k: VirtualServer(k) for k in map(key, ["TCP 10.96.0.99:80", f"TCP {NODE_IP}:31000"])}
    kernel.servers = {**foreign, **stale}
    await mode.sync(state(API), full=True)
    assert set(kernel.servers) == {*foreign, key("TCP 10.96.0.20:90")}
    assert kernel.servers[key("TCP 10.0.0.1:80")] == foreign[key("TCP 10.0.0.1:80")]
    assert kernel.interface == {"10.96.0.20"}


async def test_a_full_sync_repairs_what_changed_behind_the_modes_back(mode, kernel):
    await mode.sync(state(WEB), full=True)
    k = key("TCP 10.96.0.10:80")
    kernel.delete_real_server(k, RealServer("10.244.0.1", 8080))
    await mode.sync(state(WEB), full=False)  # trusts its memory: sees nothing to do
    assert reals(kernel.servers[k]) == ["10.244.0.2:8080"]
    await mode.sync(state(WEB), full=True)
    assert reals(kernel.servers[k]) == ["10.244.0.1:8080", "10.244.0.2:8080"]


async def test_an_unchanged_state_costs_no_kernel_call(mode, kernel):
    await mode.sync(state(WEB, API), full=True)
    kernel.calls.clear()
    await mode.sync(state(WEB, API), full=False)
    assert kernel.calls == []


@pytest.mark.parametrize("services", [10, 1000])
async def test_one_endpoint_change_costs_the_same_few_calls_whatever_the_number_of_services(kernel, services):
    mode = IPVSMode(ModeOptions(node_name=NODE), kernel_factory=lambda: kernel)
    many = [service(f"s{i}", f"10.97.{i // 250}.{i % 250 + 1}", f"10.244.{i // 250}.{i % 250 + 1}:80")
            for i in range(services)]
    await mode.sync(state(*many), full=True)
    kernel.calls.clear()
    listings = kernel.listings
    many[0] = service("s0", many[0].cluster_ip, "10.244.200.1:80")  # its one backend replaced
    await mode.sync(state(*many), full=False)
    await mode.close()
    assert kernel.calls == [
        "nft",  # the hairpin set: one element out, one in
        "add_real TCP 10.97.0.1:80 10.244.200.1:80",
        "delete_real TCP 10.97.0.1:80 10.244.0.1:80",
    ]
    assert kernel.listings == listings  # nothing listed between full syncs
    assert kernel.nft_scripts[-1] == (
        f"delete element {TABLE_REF} hairpin {{ 10.244.0.1 . 10.244.0.1 }}\n"
        f"add element {TABLE_REF} hairpin {{ 10.244.200.1 . 10.244.200.1 }}\n")


async def test_after_a_failed_sync_the_next_one_rereads_the_kernel(mode, kernel):
    await mode.sync(state(WEB), full=True)
    kernel.fail_next = "add_virtual"
    with pytest.raises(IPVSError):
        await mode.sync(state(WEB, API), full=False)
    listings = kernel.listings
    await mode.sync(state(WEB, API), full=False)
    assert kernel.listings == listings + 1
    assert key("TCP 10.96.0.20:90") in kernel.servers


async def test_cleanup_removes_sampans_servers_interface_and_table_only(mode, kernel):
    foreign = VirtualServer(key("TCP 10.0.0.1:80"), "wlc")
    kernel.servers[foreign.key] = foreign
    await mode.sync(state(WEB, API), full=True)
    await mode.cleanup()
    assert kernel.servers == {foreign.key: foreign}
    assert kernel.interface is None
    assert kernel.nft_scripts[-1] == f"delete table {TABLE_REF}"


def test_removing_leftovers_without_ipvs_loaded_still_removes_the_interface_and_table(kernel):
    kernel.interface = {"10.96.0.10"}
    assert remove_owned(kernel, ipvs=False) == 0
    assert kernel.interface is None and kernel.nft_scripts == [f"delete table {TABLE_REF}"]
    assert kernel.listings == 0


def test_the_probe_agrees_with_itself_and_says_why_not():
    # On this machine's kernel (no IPVS) the reason names IPVS; in the VM, test_ipvs.py sees True.
    reason = ipvs_unavailable_reason()
    assert ipvs_available() == (reason == "")
    assert reason == "" or "IPVS" in reason
