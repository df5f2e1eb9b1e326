"""The nftables ruleset as data (proxy/nft_ruleset.py), checked without a kernel.

What the generator promises: one verdict-map entry per ClusterIP and per
NodePort leading to the Service port's chain, which DNATs to a backend
picked by numgen (through per-backend chains only under ClientIP affinity),
reject entries for ports without backends, masquerade marks where they
belong (hairpin through one set), affinity sets; and that a change's
transaction holds only what changed (nothing at all when nothing did), however many other
Services there are. The kernel tests (test_nftables.py) apply these.
"""

from __future__ import annotations

from proxy.nft_ruleset import build_ruleset, full_transaction, partial_transaction, TableObjects
from proxy.state import Backend, ProxyState, ServicePortName, VirtualService

MARK = 0x4000


def virtual(name: str = "web", *, ip: str = "10.96.0.10", backends: tuple[str, ...] = ("10.244.0.2", "10.244.0.3"),
            node_port: int = 0, affinity: int = 0, local: bool = False, protocol: str = "TCP",
            nodes: tuple[str, ...] = ()) -> VirtualService:
    return VirtualService(
        name=ServicePortName("default", name, "http", protocol), cluster_ip=ip, port=80, protocol=protocol,
        node_port=node_port, affinity_timeout=affinity, local_external_traffic=local,
        backends=tuple(Backend(address, 8080, nodes[i] if nodes else "") for i, address in enumerate(backends)))


def state(*services: VirtualService) -> ProxyState:
    return ProxyState(node_name="n1", node_addresses=("192.168.1.5",), services=services)


def test_a_cluster_ip_leads_through_one_map_entry_to_a_chain_that_dnats_to_a_random_backend():
    ruleset = build_ruleset(state(virtual(backends=("10.244.0.2", "10.244.0.3", "10.244.0.4"))), mark=MARK)
    assert ruleset.elements["service-ips"] == {"10.96.0.10 . tcp . 80": "goto service-default/web/tcp/http"}
    # 1/3, then 1/2 of the remaining 2/3, then the rest: a third each.
    assert ruleset.chains["service-default/web/tcp/http"].rules == (
        "numgen random mod 3 == 0 meta l4proto tcp dnat to 10.244.0.2:8080",
        "numgen random mod 2 == 0 meta l4proto tcp dnat to 10.244.0.3:8080",
        "meta l4proto tcp dnat to 10.244.0.4:8080")
    assert not [name for name in ruleset.chains if name.startswith("endpoint-")]  # one chain per Service port
    assert not [name for name, item in ruleset.declarations.items() if item.kind == "set" and name != "hairpin"]


def test_a_single_backend_is_a_plain_dnat():
    ruleset = build_ruleset(state(virtual(backends=("10.244.0.2",))), mark=MARK)
    assert ruleset.chains["service-default/web/tcp/http"].rules == ("meta l4proto tcp dnat to 10.244.0.2:8080",)


def test_every_backend_is_in_the_hairpin_set_once():
    ruleset = build_ruleset(state(virtual(), virtual("db", ip="10.96.0.11", backends=("10.244.0.3", "10.244.0.7"))),
                            mark=MARK)
    assert set(ruleset.elements["hairpin"]) == {"10.244.0.2 . 10.244.0.2", "10.244.0.3 . 10.244.0.3",
                                                "10.244.0.7 . 10.244.0.7"}
    assert ruleset.chains["masquerading"].rules[0] == (
        "ct status dnat ip saddr . ip daddr @hairpin jump mark-for-masquerade")


def test_hooks_cover_arriving_and_local_traffic_and_masquerade_marked_packets():
    chains = build_ruleset(state(), mark=MARK).chains
    assert "hook prerouting" in chains["nat-prerouting"].hook and chains["nat-prerouting"].rules == ("jump services",)
    assert "hook output" in chains["nat-output"].hook and chains["nat-output"].rules == ("jump services",)
    assert "hook postrouting" in chains["nat-postrouting"].hook
    assert chains["masquerading"].rules[-1] == "masquerade fully-random"
    assert chains["mark-for-masquerade"].rules == ("meta mark set meta mark | 0x4000",)


def test_a_port_without_backends_is_rejected_and_has_no_chain():
    ruleset = build_ruleset(state(virtual(backends=(), node_port=30080)), mark=MARK)
    assert ruleset.elements["no-endpoint-services"] == {"10.96.0.10 . tcp . 80": "goto reject-chain"}
    assert ruleset.elements["no-endpoint-nodeports"] == {"tcp . 30080": "goto reject-chain"}
    assert ruleset.elements["service-ips"] == {} and ruleset.elements["service-nodeports"] == {}
    assert not any("default/web" in name for name in ruleset.chains)


def test_a_node_port_with_cluster_policy_is_masqueraded_and_reaches_every_backend():
    ruleset = build_ruleset(state(virtual(node_port=30080)), mark=MARK)
    assert ruleset.elements["service-nodeports"] == {"tcp . 30080": "goto external-default/web/tcp/http"}
    assert ruleset.chains["external-default/web/tcp/http"].rules == (
        "jump mark-for-masquerade", "goto service-default/web/tcp/http")


def test_a_node_port_with_local_policy_keeps_the_client_address_and_uses_local_backends():
    ruleset = build_ruleset(state(virtual(node_port=30080, local=True, nodes=("n1", "n2"))), mark=MARK)
    external = ruleset.chains["external-default/web/tcp/http"].rules
    assert external[-1] == "goto local-default/web/tcp/http"
    assert all(rule.startswith("fib saddr type local") for rule in external[:-1])  # only the node's own traffic
    assert ruleset.chains["local-default/web/tcp/http"].rules == ("meta l4proto tcp dnat to 10.244.0.2:8080",)


def test_a_node_without_local_backends_drops_external_traffic_under_local_policy():
    ruleset = build_ruleset(state(virtual(node_port=30080, local=True, nodes=("n2", "n3"))), mark=MARK)
    assert ruleset.elements["no-endpoint-nodeports"] == {"tcp . 30080": "drop"}
    assert "local-default/web/tcp/http" not in ruleset.chains


def test_client_ip_affinity_sends_known_clients_back_and_remembers_new_ones():
    ruleset = build_ruleset(state(virtual(affinity=60)), mark=MARK)
    first = "affinity-60s-default/web/tcp/http__10.244.0.2/8080"
    assert ruleset.declarations[first].spec == "type ipv4_addr; flags dynamic,timeout; timeout 60s;"
    rules = ruleset.chains["service-default/web/tcp/http"].rules
    assert rules[0] == f"ip saddr @{first} goto endpoint-default/web/tcp/http__10.244.0.2/8080"
    assert rules[-1] == ("numgen random mod 2 vmap { 0 : goto endpoint-default/web/tcp/http__10.244.0.2/8080, "
                         "1 : goto endpoint-default/web/tcp/http__10.244.0.3/8080 }")
    assert ruleset.chains["endpoint-default/web/tcp/http__10.244.0.2/8080"].rules == (
        f"update @{first} {{ ip saddr }}", "meta l4proto tcp dnat to 10.244.0.2:8080")


def test_a_cluster_cidr_masquerades_traffic_from_outside_it():
    ruleset = build_ruleset(state(virtual()), mark=MARK, cluster_cidr="10.244.0.0/16")
    assert ruleset.chains["service-default/web/tcp/http"].rules[0] == (
        "ip saddr != 10.244.0.0/16 jump mark-for-masquerade")


def test_udp_ports_dnat_udp():
    ruleset = build_ruleset(state(virtual(protocol="UDP", backends=("10.244.0.2",))), mark=MARK)
    assert ruleset.elements["service-ips"] == {"10.96.0.10 . udp . 80": "goto service-default/web/udp/http"}
    assert ruleset.chains["service-default/web/udp/http"].rules == ("meta l4proto udp dnat to 10.244.0.2:8080",)


def many(count: int) -> list[VirtualService]:
    return [virtual(f"svc{i}", ip=f"10.96.{i // 250}.{i % 250 + 1}") for i in range(count)]


def test_an_unchanged_state_needs_no_transaction():
    before = build_ruleset(state(*many(20)), mark=MARK)
    assert partial_transaction(before, build_ruleset(state(*many(20)), mark=MARK)) == ""


def test_one_backend_change_touches_only_that_service_however_many_there_are():
    sizes = {}
    for count in (10, 1000):
        services = many(count)
        changed = list(services)
        changed[3] = virtual("svc3", ip=services[3].cluster_ip, backends=("10.244.0.2", "10.244.0.9"))
        script = partial_transaction(build_ruleset(state(*services), mark=MARK),
                                     build_ruleset(state(*changed), mark=MARK))
        assert script.splitlines() == [
            "flush chain ip sampan service-default/svc3/tcp/http",
            "add rule ip sampan service-default/svc3/tcp/http numgen random mod 2 == 0 meta l4proto tcp "
            "dnat to 10.244.0.2:8080",
            "add rule ip sampan service-default/svc3/tcp/http meta l4proto tcp dnat to 10.244.0.9:8080",
            "add element ip sampan hairpin { 10.244.0.9 . 10.244.0.9 }",  # 10.244.0.3 still backs the others
        ]
        sizes[count] = len(script)
    assert sizes[10] == sizes[1000]  # the same small transaction at 10 and at 1000 Services


def test_an_affinity_backend_change_adds_and_deletes_its_chain_and_set():
    before = build_ruleset(state(virtual(affinity=60)), mark=MARK)
    after = build_ruleset(state(virtual(affinity=60, backends=("10.244.0.2", "10.244.0.9"))), mark=MARK)
    lines = partial_transaction(before, after).splitlines()
    assert "add chain ip sampan endpoint-default/web/tcp/http__10.244.0.9/8080" in lines
    assert "add set ip sampan affinity-60s-default/web/tcp/http__10.244.0.9/8080 { type ipv4_addr; " \
           "flags dynamic,timeout; timeout 60s; }" in lines
    assert "delete chain ip sampan endpoint-default/web/tcp/http__10.244.0.3/8080" in lines
    assert lines[-1] == "delete set ip sampan affinity-60s-default/web/tcp/http__10.244.0.3/8080"
    assert "delete element ip sampan hairpin { 10.244.0.3 . 10.244.0.3 }" in lines


def test_removing_a_service_deletes_its_map_entries_chains_and_sets():
    before = build_ruleset(state(virtual(node_port=30080, affinity=60),
                                 virtual("db", ip="10.96.0.11", backends=("10.244.1.2",))), mark=MARK)
    after = build_ruleset(state(virtual("db", ip="10.96.0.11", backends=("10.244.1.2",))), mark=MARK)
    lines = partial_transaction(before, after).splitlines()
    assert "delete element ip sampan service-ips { 10.96.0.10 . tcp . 80 }" in lines
    assert "delete element ip sampan hairpin { 10.244.0.2 . 10.244.0.2, 10.244.0.3 . 10.244.0.3 }" in lines
    assert "delete element ip sampan service-nodeports { tcp . 30080 }" in lines
    deleted = {line.split()[-1] for line in lines if line.startswith("delete chain") or line.startswith("delete set")}
    assert deleted == {name for name in before.chains.keys() | before.declarations.keys() if "default/web/" in name}
    # Every chain is flushed before any is deleted: they refer to each other.
    assert max(i for i, l in enumerate(lines) if l.startswith("flush")) < min(
        i for i, l in enumerate(lines) if l.startswith("delete chain"))


def test_a_full_transaction_flushes_what_exists_and_deletes_what_is_not_wanted():
    kept = "affinity-60s-default/web/tcp/http__10.244.0.2/8080"
    ruleset = build_ruleset(state(virtual(affinity=60)), mark=MARK)
    existing = TableObjects(chains=frozenset({"services", "stale-chain"}),
                            sets=frozenset({"stale-set", "hairpin", kept}), maps=frozenset({"service-ips"}))
    lines = full_transaction(ruleset, existing).splitlines()
    assert lines[0] == "add table ip sampan"
    assert {"flush chain ip sampan services", "flush chain ip sampan stale-chain", "flush map ip sampan service-ips",
            "flush set ip sampan hairpin", "delete chain ip sampan stale-chain",
            "delete set ip sampan stale-set"} <= set(lines)
    assert "delete chain ip sampan services" not in lines
    assert not [line for line in lines if kept in line and line.split()[0] in ("flush", "delete")]  # clients stay
