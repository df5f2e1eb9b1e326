"""The cluster DNS's settings: upstream resolvers from resolv.conf (never this
server itself), the DNS Service's address from the service range, the
address kube-dns's endpoints name, and the ``sampan control`` flags, whose
bad values are refused naming the flag."""

from __future__ import annotations

import argparse

import pytest

from control.dns.cluster_dns import ClusterDNSConfig, advertised_ip, cluster_dns_ip, split_listen
from control.dns.upstream import read_nameservers, upstream_servers
from control.service import cluster_dns_from_args


def test_nameservers_are_read_in_order_without_comments_or_zones(tmp_path):
    path = tmp_path / "resolv.conf"
    path.write_text("# generated\nsearch example.org\nnameserver 10.0.0.2 # first\n; old\n"
                    "nameserver fe80::1%eth0\noptions ndots:2\nnameserver 127.0.0.53\n")
    assert read_nameservers(str(path)) == ["10.0.0.2", "fe80::1", "127.0.0.53"]
    assert read_nameservers(str(tmp_path / "absent")) == []


def test_a_loopback_resolver_that_is_not_this_server_is_kept():
    assert upstream_servers(["127.0.0.53", "10.0.0.2"], listen_host="127.0.0.1", listen_port=10053) == [
        "127.0.0.53", "10.0.0.2"]


def test_the_servers_own_address_on_port_53_is_skipped():
    assert upstream_servers(["10.0.0.5", "10.0.0.2"], listen_host="10.0.0.5", listen_port=53) == ["10.0.0.2"]
    # The same address on another port is another server.
    assert upstream_servers(["10.0.0.5"], listen_host="10.0.0.5", listen_port=10053) == ["10.0.0.5"]


def test_a_wildcard_listener_on_port_53_skips_loopback_and_this_machines_addresses():
    assert upstream_servers(["127.0.0.53", "::1", "192.168.1.7", "192.168.1.1", "bogus", "192.168.1.1"],
                            listen_host="0.0.0.0", listen_port=53, local_addresses=["192.168.1.7"]) == [
        "192.168.1.1"]


def test_the_dns_service_address_is_the_tenth_of_the_service_range():
    assert cluster_dns_ip() == "10.96.0.10"
    assert cluster_dns_ip("172.20.0.0/16") == "172.20.0.10"


def control_args(**given) -> argparse.Namespace:
    return argparse.Namespace(**{"cluster_dns_listen": "127.0.0.1:10053", "cluster_domain": "cluster.local",
                                 "cluster_dns_advertise_address": None, **given})


def test_flags_make_the_config_and_an_empty_listen_address_turns_dns_off():
    config = cluster_dns_from_args(control_args(cluster_dns_listen="0.0.0.0:53", cluster_domain="corp.internal",
                                                cluster_dns_advertise_address="192.168.1.7"),
                                   service_cidr="172.20.0.0/16")
    assert config == ClusterDNSConfig(listen="0.0.0.0:53", domain="corp.internal", advertise_address="192.168.1.7",
                                      cluster_ip="172.20.0.10")
    assert cluster_dns_from_args(control_args(cluster_dns_listen=""), service_cidr="10.96.0.0/12") is None


@pytest.mark.parametrize("given, flag", [
    ({"cluster_dns_listen": "localhost:53"}, "--cluster-dns-listen"),
    ({"cluster_dns_listen": "127.0.0.1"}, "--cluster-dns-listen"),
    ({"cluster_dns_listen": "127.0.0.1:70000"}, "--cluster-dns-listen"),
    ({"cluster_domain": "bad..domain"}, "--cluster-domain"),
    ({"cluster_dns_advertise_address": "node-a"}, "--cluster-dns-advertise-address"),
])
def test_bad_flags_are_refused_naming_the_flag(given, flag):
    with pytest.raises(ValueError, match=f"^{flag}: Invalid value"):
        cluster_dns_from_args(control_args(**given), service_cidr="10.96.0.0/12")


def test_the_endpoints_name_the_listen_address_or_for_a_wildcard_this_machines_first_global_ipv4():
    local = ["127.0.0.1", "fe80::1", "192.168.1.7", "10.244.0.1"]
    assert advertised_ip(ClusterDNSConfig(listen="10.0.0.5:53"), "10.0.0.5", local) == "10.0.0.5"
    assert advertised_ip(ClusterDNSConfig(listen="0.0.0.0:53"), "0.0.0.0", local) == "192.168.1.7"
    assert advertised_ip(ClusterDNSConfig(listen="0.0.0.0:53", advertise_address="10.0.0.9"), "0.0.0.0",
                         local) == "10.0.0.9"


def test_listen_addresses_split_ipv6_in_brackets():
    assert split_listen("[::1]:53") == ("::1", 53)
    assert split_listen("0.0.0.0:0") == ("0.0.0.0", 0)
