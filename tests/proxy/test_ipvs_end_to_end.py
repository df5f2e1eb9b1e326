"""``sampan control`` and ``sampan proxy --mode auto`` in the IPVS test VM.

The same VM and network as tests/proxy/test_ipvs.py (see there and
tests/proxy/ipvs_scenario.py), booted once for this module, with the whole
path instead of the mode alone: the control service and the proxy run as
processes; a Service (without a selector) and its EndpointSlice are
created through the API; the proxy must pick the ipvs mode by itself,
program the Service with the scheduler given by ``--ipvs-scheduler``,
follow an endpoint change and remove the Service's virtual servers when it
is deleted. Under CI=true a missing qemu or kernel fails the tests.
"""

from __future__ import annotations

import pytest

from tests.proxy.ipvs_scenario import NODE_IP, ipvs_table
from tests.proxy.test_ipvs import real_line, vm_report
from tests.support.components import require_binary
from tests.support.qemu_vm import require_vm


@pytest.fixture(scope="module")
def e2e(tmp_path_factory) -> dict:
    require_binary("ipvsadm", package="ipvsadm")
    require_binary("nft", package="nftables")
    return vm_report("end-to-end", kernel=require_vm(), share=tmp_path_factory.mktemp("ipvs-e2e-vm"))


def test_sampan_proxy_in_auto_mode_chooses_ipvs_where_the_kernel_has_it(e2e):
    assert "proxy mode: ipvs" in e2e["proxy_log"]


def test_sampan_proxy_programs_a_service_created_through_the_api(e2e):
    table = ipvs_table(e2e["programmed"]["ipvsadm"])
    both = ("wrr", (real_line("web-a"), real_line("web-b")))  # --ipvs-scheduler wrr
    assert table[f"TCP {e2e['cluster_ip']}:80"] == both
    assert table[f"TCP {NODE_IP}:{e2e['node_port']}"] == both
    assert e2e["programmed"]["traffic"]["cluster-ip"]["answers"] == {"web-a": 5, "web-b": 5}
    assert e2e["programmed"]["traffic"]["node-port from outside"]["answers"] == {"web-a": 2, "web-b": 2}


def test_sampan_proxy_follows_an_endpoint_change_and_a_deletion(e2e):
    table = ipvs_table(e2e["endpoint-removed"]["ipvsadm"])
    assert table[f"TCP {e2e['cluster_ip']}:80"] == ("wrr", (real_line("web-a"),))
    assert e2e["endpoint-removed"]["traffic"]["cluster-ip"]["answers"] == {"web-a": 4}
    remaining = ipvs_table(e2e["service-deleted"]["ipvsadm"])
    assert f"TCP {e2e['cluster_ip']}:80" not in remaining
    assert f"TCP {NODE_IP}:{e2e['node_port']}" not in remaining
