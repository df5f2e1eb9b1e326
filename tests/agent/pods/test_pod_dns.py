"""A pod's resolver settings for each dnsPolicy, as the kubelet forms them:
ClusterFirst (the default) with the cluster DNS, the namespace's search path
and ndots:5; Default with the host's; None with only dnsConfig; hostNetwork
pods (ClusterFirst falls back to the host's, ClusterFirstWithHostNet does
not); dnsConfig merged in; the resolvers' limits; no --cluster-dns; and the
CRI sandbox config that carries it to containerd; the agent's DNS flags."""

from __future__ import annotations

import pytest

from agent.pods import runtime_specs
from agent.pods.dns import ClusterDNS, pod_dns, read_resolv_conf
from agent.runtime.base import DNSConfig
from agent.runtime.cri import sandbox_config
from control.api import manifest
from protos.api.v1 import core_pb2

HOST = DNSConfig(servers=("192.168.1.1", "192.168.1.2"), searches=("corp.example",), options=("ndots:1", "rotate"))
CLUSTER = ClusterDNS(servers=("10.96.0.10",), domain="cluster.local")


def make_pod(namespace: str = "shop", **spec) -> core_pb2.Pod:
    return manifest.to_message({"apiVersion": "v1", "kind": "Pod",
                                "metadata": {"name": "web", "namespace": namespace, "uid": "u-1"},
                                "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}], **spec}})


def test_cluster_first_is_the_default_and_uses_the_cluster_dns_and_search_path():
    for pod in (make_pod(), make_pod(dnsPolicy="ClusterFirst")):
        result = pod_dns(pod, host=HOST, cluster=CLUSTER)
        assert result.config == DNSConfig(
            servers=("10.96.0.10",),
            searches=("shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"),
            options=("ndots:5",))
        assert result.warnings == ()


def test_the_search_path_follows_the_namespace_and_the_cluster_domain():
    config = pod_dns(make_pod("billing"), host=DNSConfig(), cluster=ClusterDNS(("10.0.0.10",), "corp.internal")).config
    assert config.searches == ("billing.svc.corp.internal", "svc.corp.internal", "corp.internal")


def test_default_uses_the_hosts_resolver_settings():
    assert pod_dns(make_pod(dnsPolicy="Default"), host=HOST, cluster=CLUSTER).config == HOST


def test_none_uses_only_the_pods_dns_config():
    pod = make_pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1"], "searches": ["a.example"],
                                                "options": [{"name": "ndots", "value": "2"}]})
    assert pod_dns(pod, host=HOST, cluster=CLUSTER).config == DNSConfig(("1.1.1.1",), ("a.example",), ("ndots:2",))


def test_a_host_network_pod_gets_the_hosts_settings_unless_cluster_first_with_host_net():
    assert pod_dns(make_pod(hostNetwork=True), host=HOST, cluster=CLUSTER).config == HOST
    config = pod_dns(make_pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), host=HOST,
                     cluster=CLUSTER).config
    assert config.servers == ("10.96.0.10",) and config.options == ("ndots:5",)
    # Without the host's network, ClusterFirstWithHostNet is ClusterFirst.
    assert pod_dns(make_pod(dnsPolicy="ClusterFirstWithHostNet"), host=HOST, cluster=CLUSTER).config == pod_dns(
        make_pod(), host=HOST, cluster=CLUSTER).config


def test_dns_config_is_merged_in_with_duplicates_dropped_and_options_replaced_by_name():
    pod = make_pod(dnsConfig={"nameservers": ["10.96.0.10", "8.8.8.8"],
                              "searches": ["cluster.local", "extra.example."],
                              "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]})
    assert pod_dns(pod, host=HOST, cluster=CLUSTER).config == DNSConfig(
        servers=("10.96.0.10", "8.8.8.8"),
        searches=("shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example", "extra.example"),
        options=("ndots:2", "edns0"))


def test_without_cluster_dns_cluster_first_falls_back_to_the_host_with_a_warning():
    result = pod_dns(make_pod(), host=HOST, cluster=ClusterDNS())
    assert result.config == HOST
    assert [reason for reason, _ in result.warnings] == ["MissingClusterDNS"]


def test_more_than_the_resolvers_take_is_cut_with_a_warning():
    pod = make_pod(dnsConfig={"nameservers": ["1.1.1.1", "1.0.0.1", "9.9.9.9"],
                              "searches": [f"d{i}.example" for i in range(40)]})
    result = pod_dns(pod, host=HOST, cluster=CLUSTER)
    assert result.config.servers == ("10.96.0.10", "1.1.1.1", "1.0.0.1")
    assert len(result.config.searches) == 32 and result.config.searches[:3] == (
        "shop.svc.cluster.local", "svc.cluster.local", "cluster.local")
    ((reason, message),) = result.warnings
    assert reason == "DNSConfigForming" and "nameserver line is: 10.96.0.10 1.1.1.1 1.0.0.1" in message


def test_the_hosts_resolv_conf_is_read_with_its_last_search_line_and_no_trailing_dots(tmp_path):
    path = tmp_path / "resolv.conf"
    path.write_text("domain old.example\nsearch corp.example. . lab.example\nnameserver 192.168.1.1\n"
                    "options edns0 ndots:1\n")
    assert read_resolv_conf(str(path)) == DNSConfig(("192.168.1.1",), ("corp.example", "lab.example"),
                                                    ("edns0", "ndots:1"))
    assert read_resolv_conf("") == DNSConfig()


def test_the_sandbox_carries_the_pods_dns_to_the_cri():
    spec = runtime_specs.sandbox_spec(make_pod(), attempt=0, log_directory="/logs", host_dns=HOST,
                                      cluster_dns=CLUSTER)
    dns_config = sandbox_config(spec).dns_config
    assert list(dns_config.servers) == ["10.96.0.10"]
    assert list(dns_config.searches)[:3] == ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    assert list(dns_config.options) == ["ndots:5"]


def test_the_agents_dns_flags_are_checked_naming_the_flag():
    from agent.service import parse_cluster_dns, parse_cluster_domain

    assert parse_cluster_dns("10.96.0.10, 10.96.0.11") == ("10.96.0.10", "10.96.0.11")
    assert parse_cluster_dns("") == ()
    assert parse_cluster_domain("corp.internal.") == "corp.internal"
    for bad, flag in (("kube-dns", "--cluster-dns"), ("1.1.1.1,1.0.0.1,8.8.8.8,9.9.9.9", "--cluster-dns")):
        with pytest.raises(ValueError, match=f"^{flag}: Invalid value"):
            parse_cluster_dns(bad)
    with pytest.raises(ValueError, match="^--cluster-domain: Invalid value"):
        parse_cluster_domain("a..b")
