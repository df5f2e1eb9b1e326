"""The IPVS proxy mode on a kernel that has IPVS: Debian's stock kernel in a qemu VM.

This machine's kernel has no IPVS, so the module boots a VM once
(tests/support/qemu_vm.py: the host's files, Python and virtualenv, shared
read-only), runs tests/proxy/ipvs_scenario.py inside it as root, and reads
back its report: what ``ipvsadm -Ln``, sampan-ipvs0 and the nftables sets
held after each step (three Services programmed; an endpoint removed; a
Service removed; a restart over stale state; cleanup; the removal of an
earlier run's leftovers) and which backend answered each connection, from
which client address it saw it. Each test checks one behaviour in that
report. Under CI=true a missing qemu or kernel fails the tests instead of
skipping them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.proxy.ipvs_scenario import (
    BACKENDS,
    MANY,
    MANY_BACKENDS,
    HOST_BACKEND,
    HOSTNET_IP,
    HOSTNET_PORT,
    NODE_IP,
    POD_GATEWAY,
    STICKY_IP,
    STICKY_PORT,
    STICKY_TIMEOUT,
    WEB_IP,
    WEB_NODE_PORT,
    WEB_PORT,
    ipvs_table,
)
from tests.support.components import require_binary
from tests.support.qemu_vm import Kernel, require_vm, run_in_vm

REPO = Path(__file__).resolve().parents[2]
HOSTNET_TABLE = {f"TCP {HOSTNET_IP}:{HOSTNET_PORT}": ("rr", (f"{HOST_BACKEND[0]}:{HOST_BACKEND[1]} Masq 1",))}
FOREIGN_TABLE = {  # what the scenario's foreign IPVS services look like in ipvsadm -Ln
    "TCP 10.250.9.9:80": ("wlc", ("10.250.1.1:8080 Masq 1",)),
    f"TCP {NODE_IP}:8000": ("rr", ()),
}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    require_binary("ipvsadm", package="ipvsadm")
    require_binary("nft", package="nftables")
    kernel = require_vm()
    share = tmp_path_factory.mktemp("ipvs-vm")
    return vm_report("scenario", kernel=kernel, share=share)


def vm_report(which: str, *, kernel: Kernel, share: Path) -> dict:
    """Boot the VM, run ipvs_scenario's ``which`` in it, and return its report."""
    run_in_vm(f"cd {REPO}\nexec {sys.executable} -m tests.proxy.ipvs_scenario {which} {share}/report.json\n",
              kernel=kernel, workdir=share).check()
    return json.loads((share / "report.json").read_text())


def real_line(name: str, weight: int = 1) -> str:
    address, port = BACKENDS[name]
    return f"{address}:{port} Masq {weight}"


WEB_ONE_BACKEND = {
    f"TCP {WEB_IP}:{WEB_PORT}": ("rr", (real_line("web-a"),)),
    f"TCP {NODE_IP}:{WEB_NODE_PORT}": ("rr", (real_line("web-a"),)),
}
STICKY_TABLE = {
    f"TCP {STICKY_IP}:{STICKY_PORT}": (f"rr persistent {STICKY_TIMEOUT}",
                                        (real_line("sticky-a"), real_line("sticky-b"))),
}


def test_virtual_and_real_servers_are_exactly_those_of_the_services(report):
    assert ipvs_table(report["initial"]["ipvsadm"]) == {
        f"TCP {WEB_IP}:{WEB_PORT}": ("rr", (real_line("web-a"), real_line("web-b"))),
        f"TCP {NODE_IP}:{WEB_NODE_PORT}": ("rr", (real_line("web-a"), real_line("web-b"))),
        **STICKY_TABLE, **HOSTNET_TABLE, **FOREIGN_TABLE,
    }


def test_the_probe_finds_ipvs_in_the_vm(report):
    assert report["ipvs_available"] is True


def test_cluster_ips_are_bound_on_the_dummy_interface(report):
    assert report["initial"]["interface"] == [f"{WEB_IP}/32", f"{STICKY_IP}/32", f"{HOSTNET_IP}/32"]


def test_connections_to_the_cluster_ip_reach_both_backends(report):
    answers = report["initial"]["traffic"]["web"]["answers"]
    assert set(answers) == {"web-a", "web-b"}
    assert sum(answers.values()) == 20
    assert abs(answers["web-a"] - answers["web-b"]) <= 1  # round robin


def test_the_node_port_answers_a_client_outside_on_the_node_address(report):
    traffic = report["initial"]["traffic"]["node-port from outside"]
    assert traffic["answers"] == {"web-a": 5, "web-b": 5}
    assert traffic["peers"] == [POD_GATEWAY]  # masqueraded: the backend answers the node, not the client


def test_traffic_to_a_cluster_ip_from_outside_the_cluster_cidr_is_masqueraded(report):
    traffic = report["initial"]["traffic"]
    assert traffic["web from outside"]["answers"] == {"web-a": 2, "web-b": 2}
    assert traffic["web from outside"]["peers"] == [POD_GATEWAY]
    assert traffic["web"]["peers"] == [POD_GATEWAY]  # the node's own connections too


def test_a_pod_reaching_a_service_keeps_its_address(report):
    traffic = report["initial"]["traffic"]["web from a pod"]
    assert traffic["answers"] == {"web-a": 2, "web-b": 2}
    assert traffic["peers"] == [BACKENDS["sticky-a"][0]]


def test_a_pod_reaching_itself_through_its_service_is_masqueraded(report):
    traffic = report["endpoint-removed"]["traffic"]["web from its own backend"]
    assert traffic["answers"] == {"web-a": 4}  # without hairpin masquerade its own reply would bypass IPVS
    assert traffic["peers"] == [POD_GATEWAY]


def test_a_backend_on_the_hosts_loopback_serves_and_the_hosts_own_connections_survive(report):
    assert report["initial"]["traffic"]["hostnet"]["answers"] == {"host": 3}
    assert report["initial"]["loopback_alive"] is True


def test_client_ip_affinity_keeps_a_client_on_one_backend(report):
    answers = report["initial"]["traffic"]["sticky"]["answers"]
    assert len(answers) == 1 and set(answers) <= {"sticky-a", "sticky-b"}
    assert sum(answers.values()) == 8


def test_the_masquerade_table_holds_the_services_addresses_and_ports(report):
    sets = report["initial"]["nft_sets"]
    cluster_ips = [json.loads(element)["concat"] for element in sets["cluster-ips"]]
    assert sorted(cluster_ips) == [[WEB_IP, "tcp", WEB_PORT], [STICKY_IP, "tcp", STICKY_PORT],
                                   [HOSTNET_IP, "tcp", HOSTNET_PORT]]
    assert [json.loads(element)["concat"] for element in sets["node-ports"]] == [["tcp", WEB_NODE_PORT]]
    assert sets["node-addresses"] == [json.dumps(NODE_IP)]
    assert len(sets["hairpin"]) == len(BACKENDS) + 1


def test_removing_an_endpoint_removes_only_its_real_servers(report):
    step = report["endpoint-removed"]
    assert ipvs_table(step["ipvsadm"]) == {**WEB_ONE_BACKEND, **STICKY_TABLE, **HOSTNET_TABLE, **FOREIGN_TABLE}
    assert step["traffic"]["web"]["answers"] == {"web-a": 20}


def test_removing_a_service_removes_only_its_virtual_server_and_address(report):
    step = report["service-removed"]
    assert ipvs_table(step["ipvsadm"]) == {**WEB_ONE_BACKEND, **HOSTNET_TABLE, **FOREIGN_TABLE}
    assert step["interface"] == [f"{WEB_IP}/32", f"{HOSTNET_IP}/32"]
    assert not any(name.startswith("sticky") for name in step["traffic"]["sticky"]["answers"])
    assert step["traffic"]["web"]["answers"] == {"web-a": 20}


def test_a_restarted_proxy_removes_stale_state_and_keeps_foreign_services(report):
    before = ipvs_table(report["before-restart"]["ipvsadm"])
    assert "TCP 10.96.0.99:80" in before and f"TCP {NODE_IP}:31999" in before  # the stale state was there
    assert real_line("web-a", weight=5) in before[f"TCP {WEB_IP}:{WEB_PORT}"][1]
    after = report["restart"]
    # Restarted with --ipvs-scheduler wrr: the servers it keeps are changed in place.
    kept = {key: ("wrr", reals) for key, (_scheduler, reals) in {**WEB_ONE_BACKEND, **HOSTNET_TABLE}.items()}
    assert ipvs_table(after["ipvsadm"]) == {**kept, **FOREIGN_TABLE}
    assert after["interface"] == [f"{WEB_IP}/32", f"{HOSTNET_IP}/32"]
    assert not any("10.96.0.99" in element for element in after["nft_sets"]["cluster-ips"])
    assert after["traffic"]["web"]["answers"] == {"web-a": 20}


@pytest.mark.parametrize(("step", "before"), [("cleanup", "restart"),
                                              ("leftovers-removed", "before-leftovers-removed")])
def test_cleanup_removes_everything_of_sampan_and_nothing_else(report, step, before):
    assert ipvs_table(report[before]["ipvsadm"]).keys() > FOREIGN_TABLE.keys()  # Sampan's servers were there
    after = report[step]
    assert ipvs_table(after["ipvsadm"]) == FOREIGN_TABLE
    assert after["interface"] is None  # sampan-ipvs0 is gone
    assert after["nft_sets"] is None  # and so is the table


def test_many_services_at_once_are_all_programmed_and_all_removed(report):
    many = {key: value for key, value in ipvs_table(report["many"]).items() if key.startswith("TCP 10.97.")}
    assert len(many) == MANY
    assert all(len(reals) == MANY_BACKENDS and scheduler == "rr" for scheduler, reals in many.values())
    assert ipvs_table(report["many-removed"]) == FOREIGN_TABLE


def test_a_refused_change_is_named_and_the_rest_of_its_batch_applies(report):
    refused, applied = report["refused"].split(" | ")
    assert refused.startswith("adding real server 10.250.1.1:8080 to TCP 10.96.0.77:80: ")
    assert applied == "the other change applied: True"
