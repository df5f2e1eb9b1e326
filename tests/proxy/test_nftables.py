"""The nftables mode against the real kernel, inside a network namespace made for each test.

Every check reads the table back from the kernel (``nft -j``) as structure:
a sync programs what the state says; a later sync changes only what
changed and keeps affinity sets' clients; the first (full) sync removes a
previous run's stale chains, rules, sets and map elements; a table the
mode cannot reconcile is defined anew; other programs' tables are never
touched, by syncs or by cleanup.
"""

from __future__ import annotations

import pytest

from proxy.modes import ModeOptions
from proxy.nftables import NftablesMode
from proxy.state import Backend, ProxyState, ServicePortName, VirtualService
from tests.proxy.netns import NodeNamespace
from tests.proxy.nft_table import read_table, ruleset_text

BYSTANDER = """\
table inet bystander {
  set blocked { type ipv4_addr; elements = { 192.0.2.1 } }
  chain input { type filter hook input priority 0; policy accept; ip saddr @blocked drop; }
}
table ip sampan-lookalike {
  chain output { type nat hook output priority -100; policy accept; ip daddr 10.96.0.10 tcp dport 80 dnat to 10.1.1.1:1; }
}
"""


def web(*backends: str, name: str = "web", ip: str = "10.96.0.10", node_port: int = 0,
        affinity: int = 0) -> VirtualService:
    return VirtualService(name=ServicePortName("default", name, "http", "TCP"), cluster_ip=ip, port=80,
                          protocol="TCP", node_port=node_port, affinity_timeout=affinity,
                          backends=tuple(Backend(address, 8080) for address in backends))


def state(*services: VirtualService) -> ProxyState:
    return ProxyState(node_name="n1", node_addresses=("10.252.0.2",), services=services)


@pytest.fixture
def mode(node: NodeNamespace) -> NftablesMode:
    return NftablesMode(ModeOptions(node_name="n1", nft=tuple(node.command("nft"))))


async def test_a_sync_programs_cluster_ips_node_ports_and_rejections_as_the_state_says(node, mode):
    await mode.sync(state(web("10.244.0.2", "10.244.0.3", node_port=30080), web(name="empty", ip="10.96.0.11")),
                    full=True)
    table = read_table(node)
    assert table is not None
    chain = table.service_chain("10.96.0.10", "tcp", 80)
    assert chain == "service-default/web/tcp/http"
    assert table.backends(chain) == [("10.244.0.2", 8080), ("10.244.0.3", 8080)]
    assert table.numgen_moduli(chain) == [2]  # the first backend half the time, else the second
    assert table.elements["hairpin"] == {("10.244.0.2", "10.244.0.2"), ("10.244.0.3", "10.244.0.3")}
    assert table.maps["service-nodeports"] == {("tcp", 30080): "goto external-default/web/tcp/http"}
    assert table.targets("external-default/web/tcp/http") == ["mark-for-masquerade", chain]
    assert table.maps["no-endpoint-services"] == {("10.96.0.11", "tcp", 80): "goto reject-chain"}
    assert table.hooks["nat-prerouting"] == ("nat", "prerouting", -100)
    assert table.hooks["nat-output"] == ("nat", "output", -100)
    assert table.hooks["nat-postrouting"] == ("nat", "postrouting", 100)
    assert {table.hooks[f"filter-{hook}"][1] for hook in ("input", "forward", "output")} == {
        "input", "forward", "output"}


async def test_a_later_sync_changes_only_what_changed(node, mode):
    await mode.sync(state(web("10.244.0.2", "10.244.0.3"), web("10.244.1.2", name="db", ip="10.96.0.11")), full=True)
    await mode.sync(state(web("10.244.0.2", "10.244.0.4"), web("10.244.1.2", name="db", ip="10.96.0.11")), full=False)
    assert "default/db/" not in mode.last_transaction
    table = read_table(node)
    assert table.backends("service-default/web/tcp/http") == [("10.244.0.2", 8080), ("10.244.0.4", 8080)]
    assert table.backends("service-default/db/tcp/http") == [("10.244.1.2", 8080)]
    assert table.elements["hairpin"] == {("10.244.0.2", "10.244.0.2"), ("10.244.0.4", "10.244.0.4"),
                                         ("10.244.1.2", "10.244.1.2")}


async def test_a_service_losing_its_backends_is_rejected_and_its_chains_go(node, mode):
    await mode.sync(state(web("10.244.0.2", node_port=30080)), full=True)
    await mode.sync(state(web(node_port=30080)), full=False)
    table = read_table(node)
    assert table.maps["service-ips"] == {} and table.maps["service-nodeports"] == {}
    assert table.maps["no-endpoint-services"] == {("10.96.0.10", "tcp", 80): "goto reject-chain"}
    assert table.maps["no-endpoint-nodeports"] == {("tcp", 30080): "goto reject-chain"}
    assert not [name for name in table.chains if "default/web" in name]


async def test_deleting_a_service_leaves_nothing_of_it(node, mode):
    await mode.sync(state(web("10.244.0.2", node_port=30080, affinity=60)), full=True)
    await mode.sync(state(), full=False)
    text = ruleset_text(node)
    assert "default/web" not in text and "10.96.0.10" not in text and "30080" not in text
    assert read_table(node).chains.keys() >= {"services", "nat-prerouting"}  # the table itself stays


async def test_client_ip_affinity_goes_through_a_chain_and_a_client_set_per_backend(node, mode):
    await mode.sync(state(web("10.244.0.2", "10.244.0.3", affinity=60)), full=True)
    table = read_table(node)
    chain = table.service_chain("10.96.0.10", "tcp", 80)
    assert table.backends(chain) == [("10.244.0.2", 8080), ("10.244.0.3", 8080)]
    for backend in ("10.244.0.2", "10.244.0.3"):
        client_set = table.sets[f"affinity-60s-default/web/tcp/http__{backend}/8080"]
        assert client_set["timeout"] == 60 and "timeout" in client_set["flags"]


async def test_affinity_sets_keep_their_clients_when_other_services_change(node, mode):
    await mode.sync(state(web("10.244.0.2", affinity=60)), full=True)
    client_set = "affinity-60s-default/web/tcp/http__10.244.0.2/8080"
    node.nft("add", "element", "ip", "sampan", client_set, "{ 192.0.2.7 }")
    await mode.sync(state(web("10.244.0.2", affinity=60), web("10.244.1.2", name="db", ip="10.96.0.11")),
                    full=False)
    assert read_table(node).elements[client_set] == {("192.0.2.7",)}


async def test_the_first_sync_removes_what_an_earlier_run_left(node, mode):
    node.nft("-f", "-", stdin="""\
table ip sampan {
  set stale-set { type ipv4_addr; }
  map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }
  chain stale-chain { ip daddr 10.96.99.99 drop; }
  chain services { ip daddr 10.96.99.98 goto stale-chain; }
  chain nat-prerouting { type nat hook prerouting priority dstnat; policy accept; jump services; }
}
add element ip sampan service-ips { 10.96.99.97 . tcp . 80 : goto stale-chain }
""")
    await mode.sync(state(web("10.244.0.2")), full=True)
    table = read_table(node)
    assert "stale-chain" not in table.chains and "stale-set" not in table.sets
    assert table.maps["service-ips"] == {("10.96.0.10", "tcp", 80): "goto service-default/web/tcp/http"}
    assert "10.96.99" not in ruleset_text(node)


async def test_a_table_that_cannot_be_reconciled_is_defined_anew(node, mode, caplog):
    # An earlier (or foreign) base chain of ours with another priority: it cannot be redeclared in place.
    node.nft("-f", "-", stdin="table ip sampan {\n  chain nat-prerouting { type nat hook prerouting priority 50; }\n}\n")
    await mode.sync(state(web("10.244.0.2")), full=True)
    assert "defining it anew" in caplog.text
    table = read_table(node)
    assert table.hooks["nat-prerouting"] == ("nat", "prerouting", -100)
    assert table.service_chain("10.96.0.10", "tcp", 80) == "service-default/web/tcp/http"


async def test_tables_of_other_programs_are_never_touched(node, mode):
    node.nft("-f", "-", stdin=BYSTANDER)
    before = {table: node.nft("list", "table", *table.split()) for table in ("inet bystander", "ip sampan-lookalike")}
    await mode.sync(state(web("10.244.0.2")), full=True)
    await mode.sync(state(web("10.244.0.3")), full=False)
    await mode.sync(state(), full=True)
    await mode.cleanup()
    after = {table: node.nft("list", "table", *table.split()) for table in before}
    assert after == before
    assert read_table(node) is None  # cleanup removed ours, and only ours
