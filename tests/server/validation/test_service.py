"""Service, Endpoints and EndpointSlice validation (control/server/validation/service.py) and Service defaults.

Covers, with Kubernetes' messages: the name rule (DNS-1035), ports (required
unless headless or ExternalName, range, protocol, targetPort number or IANA
name, names required and unique once there are several, no duplicate
port/protocol), nodePort only where a type has node ports and never twice
per protocol, cluster IP shapes and 'None' only where allowed, ExternalName
rules, session affinity and its timeout, traffic policies, the health check
node port, IP families, the cluster IP's immutability on update (and its
exceptions), and the shapes of Endpoints and EndpointSlices. Defaults: type,
protocol, targetPort, session affinity, traffic policies, IP families.
"""

from __future__ import annotations

from typing import Any

import pytest

from control.api.manifest import from_dict, to_dict
from control.api import kinds
from control.server.defaults import apply_defaults
from tests.server.validation.support import errors_of


def a_service(*, name: str = "web", ports: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}] if ports is None else ports, **spec}}


def defaulted(manifest: dict[str, Any]) -> dict[str, Any]:
    kind = kinds.by_kind(manifest["kind"])
    message = from_dict(kind, manifest)
    apply_defaults(kind, message)
    return to_dict(message)


# ------------------------------------------------------------ valid services


def test_a_plain_service_and_its_defaults_are_valid():
    assert errors_of(a_service(), defaulted=True) == []


def test_defaults_fill_in_what_kubernetes_does():
    spec = defaulted(a_service(ports=[{"port": 80}], type="NodePort", sessionAffinity="ClientIP"))["spec"]
    assert spec["ports"] == [{"protocol": "TCP", "port": 80, "targetPort": 80}]
    assert (spec["type"], spec["sessionAffinity"], spec["externalTrafficPolicy"], spec["internalTrafficPolicy"]) == \
        ("NodePort", "ClientIP", "Cluster", "Cluster")
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    assert (spec["ipFamilies"], spec["ipFamilyPolicy"]) == (["IPv4"], "SingleStack")


def test_defaults_keep_a_cluster_ip_and_its_list_in_step():
    assert defaulted(a_service(clusterIP="10.96.0.10"))["spec"]["clusterIPs"] == ["10.96.0.10"]
    assert defaulted(a_service(clusterIPs=["10.96.0.11"]))["spec"]["clusterIP"] == "10.96.0.11"


def test_an_external_name_service_gets_no_ip_family_or_internal_policy():
    spec = defaulted(a_service(ports=[], type="ExternalName", externalName="db.example.com"))["spec"]
    assert "ipFamilies" not in spec and "ipFamilyPolicy" not in spec and "internalTrafficPolicy" not in spec
    assert errors_of(a_service(ports=[], type="ExternalName", externalName="db.example.com."), defaulted=True) == []


def test_a_headless_service_needs_no_ports():
    assert errors_of(a_service(ports=[], clusterIP="None"), defaulted=True) == []


# ------------------------------------------------------------ names and ports


def test_a_service_name_must_start_with_a_letter():
    [error] = errors_of({**a_service(), "metadata": {"name": "1web", "namespace": "default"}})
    assert error.startswith('metadata.name: Invalid value: "1web": a DNS-1035 label must consist of lower case ')


def test_ports_are_required():
    assert errors_of(a_service(ports=[])) == ["spec.ports: Required value"]


@pytest.mark.parametrize("port", [0, 65536])
def test_a_port_is_between_1_and_65535(port):
    assert errors_of(a_service(ports=[{"port": port}])) == [
        f"spec.ports[0].port: Invalid value: {port}: must be between 1 and 65535, inclusive"]


def test_a_protocol_is_tcp_udp_or_sctp():
    assert errors_of(a_service(ports=[{"port": 80, "protocol": "ICMP"}])) == [
        'spec.ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"']


def test_a_target_port_is_a_port_number_or_an_iana_name():
    assert errors_of(a_service(ports=[{"port": 80, "targetPort": 70000}])) == [
        "spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive"]
    assert errors_of(a_service(ports=[{"port": 80, "targetPort": "Web_Port"}])) == [
        'spec.ports[0].targetPort: Invalid value: "Web_Port": must contain only alpha-numeric characters '
        '(a-z, 0-9), and hyphens (-)']
    assert errors_of(a_service(ports=[{"port": 80, "targetPort": "http"}])) == []


def test_several_ports_need_unique_names():
    assert errors_of(a_service(ports=[{"port": 80}, {"port": 443, "name": "https"}])) == [
        "spec.ports[0].name: Required value"]
    assert errors_of(a_service(ports=[{"port": 80, "name": "http"}, {"port": 81, "name": "http"}])) == [
        'spec.ports[1].name: Duplicate value: "http"']


def test_a_port_and_protocol_appear_once():
    ports = [{"port": 80, "name": "a", "protocol": "TCP"}, {"port": 80, "name": "b", "protocol": "TCP"}]
    assert errors_of(a_service(ports=ports)) == ['spec.ports[1]: Duplicate value: {"port": 80, "protocol": "TCP"}']
    ports[1]["protocol"] = "UDP"
    assert errors_of(a_service(ports=ports)) == []


def test_a_node_port_needs_a_type_with_node_ports():
    assert errors_of(a_service(ports=[{"port": 80, "nodePort": 30080}]), defaulted=True) == [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
    assert errors_of(a_service(ports=[{"port": 80, "nodePort": 30080}], type="NodePort"), defaulted=True) == []


def test_a_node_port_is_used_once_per_protocol():
    ports = [{"port": 80, "name": "a", "nodePort": 30080}, {"port": 81, "name": "b", "nodePort": 30080}]
    assert errors_of(a_service(ports=ports, type="NodePort"), defaulted=True) == [
        "spec.ports[1].nodePort: Duplicate value: 30080"]
    ports[1]["protocol"] = "UDP"
    assert errors_of(a_service(ports=ports, type="NodePort"), defaulted=True) == []


# ------------------------------------------------------------ addresses and types


def test_a_cluster_ip_is_an_address_or_none():
    assert errors_of(a_service(clusterIPs=["10.96.0.300"])) == [
        'spec.clusterIPs[0]: Invalid value: "10.96.0.300": must be a valid IP address, '
        '(e.g. 10.9.8.7 or 2001:db8::ffff)']
    assert errors_of(a_service(clusterIP="None", clusterIPs=["None"])) == []


def test_cluster_ip_and_the_first_cluster_ips_agree():
    assert errors_of(a_service(clusterIP="10.96.0.5", clusterIPs=["10.96.0.6"])) == [
        'spec.clusterIPs[0]: Invalid value: "10.96.0.6": must match `clusterIP`']


def test_node_port_and_load_balancer_services_cannot_be_headless():
    for type_ in ("NodePort", "LoadBalancer"):
        assert errors_of(a_service(type=type_, clusterIP="None"), defaulted=True) == [
            f"spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for {type_} services"]


def test_an_external_name_service_needs_a_name_and_no_cluster_ip():
    assert errors_of(a_service(ports=[], type="ExternalName")) == ["spec.externalName: Required value"]
    assert errors_of(a_service(ports=[], type="ExternalName", externalName="db.example.com",
                               clusterIP="10.96.0.5")) == [
        "spec.clusterIPs: Forbidden: may not be set for ExternalName services"]
    [error] = errors_of(a_service(ports=[], type="ExternalName", externalName="DB.example.com"))
    assert error.startswith('spec.externalName: Invalid value: "DB.example.com": a lowercase RFC 1123 subdomain')


def test_the_type_is_one_kubernetes_knows():
    assert errors_of(a_service(type="Magic")) == [
        'spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", "LoadBalancer", '
        '"NodePort"']


# ------------------------------------------------------------ affinity and policies


def test_session_affinity_is_client_ip_or_none():
    assert errors_of(a_service(sessionAffinity="Cookie")) == [
        'spec.sessionAffinity: Unsupported value: "Cookie": supported values: "ClientIP", "None"']


@pytest.mark.parametrize("timeout", [0, 86401])
def test_client_ip_affinity_times_out_within_a_day(timeout):
    service = a_service(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": timeout}})
    assert errors_of(service) == [
        f"spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: {timeout}: "
        "must be greater than 0 and less than 86400"]


def test_affinity_config_needs_client_ip_affinity():
    service = a_service(sessionAffinity="None", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    assert errors_of(service) == [
        "spec.sessionAffinityConfig: Invalid value: must not be set when session affinity is None"]


def test_external_traffic_policy_is_only_for_externally_reachable_services():
    assert errors_of(a_service(externalTrafficPolicy="Local"), defaulted=True) == [
        'spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services']
    assert errors_of(a_service(type="NodePort", externalTrafficPolicy="Local"), defaulted=True) == []
    assert errors_of(a_service(externalIPs=["192.0.2.7"], externalTrafficPolicy="Local"), defaulted=True) == []
    assert errors_of(a_service(type="NodePort", externalTrafficPolicy="Nearest"), defaulted=True) == [
        'spec.externalTrafficPolicy: Unsupported value: "Nearest": supported values: "Cluster", "Local"']


def test_a_health_check_node_port_needs_a_local_load_balancer():
    assert errors_of(a_service(type="NodePort", healthCheckNodePort=30100), defaulted=True) == [
        "spec.healthCheckNodePort: Invalid value: 30100: may only be set when `type` is 'LoadBalancer' and "
        "`externalTrafficPolicy` is 'Local'"]
    assert errors_of(a_service(type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=30100),
                     defaulted=True) == []


def test_ip_families_take_kubernetes_values():
    assert errors_of(a_service(ipFamilies=["IPv5"])) == [
        'spec.ipFamilies[0]: Unsupported value: "IPv5": supported values: "IPv4", "IPv6"']
    assert errors_of(a_service(ipFamilyPolicy="SingleStack", ipFamilies=["IPv4", "IPv6"])) == [
        'spec.ipFamilies: Invalid value: "IPv4, IPv6": must hold one value when ipFamilyPolicy is SingleStack']


# ------------------------------------------------------------ updates


def test_a_cluster_ip_may_not_change_once_set():
    old = a_service(clusterIP="10.96.0.20", clusterIPs=["10.96.0.20"])
    new = a_service(clusterIP="10.96.0.21", clusterIPs=["10.96.0.21"])
    assert errors_of(new, old=old) == ['spec.clusterIPs[0]: Invalid value: "10.96.0.21": may not change once set']
    assert errors_of(a_service(clusterIP="None", clusterIPs=["None"]), old=old) == [
        'spec.clusterIPs[0]: Invalid value: "None": may not change once set']


def test_a_type_change_to_external_name_may_drop_the_cluster_ip():
    old = a_service(clusterIP="10.96.0.20", clusterIPs=["10.96.0.20"])
    new = a_service(ports=[], type="ExternalName", externalName="db.example.com")
    assert errors_of(new, old=old) == []


# ------------------------------------------------------------ Endpoints and EndpointSlices


def an_endpoints(**subset: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "default"},
            "subsets": [subset]}


def test_endpoints_hold_addresses_and_valid_ports():
    assert errors_of(an_endpoints(addresses=[{"ip": "10.244.0.5"}], ports=[{"port": 8080}])) == []
    assert errors_of(an_endpoints(addresses=[{"ip": "ten"}], ports=[{"port": 0}])) == [
        'subsets[0].addresses[0].ip: Invalid value: "ten": must be a valid IP address, '
        '(e.g. 10.9.8.7 or 2001:db8::ffff)',
        "subsets[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"]
    assert errors_of(an_endpoints(addresses=[{"ip": "10.244.0.5"}], ports=[{"port": 80}, {"port": 81}])) == [
        "subsets[0].ports[0].name: Required value", "subsets[0].ports[1].name: Required value"]


def an_endpoint_slice(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abcde", "namespace": "default"}, **fields}


def test_an_endpoint_slice_needs_an_address_type_and_matching_addresses():
    assert errors_of(an_endpoint_slice()) == ["addressType: Required value"]
    assert errors_of(an_endpoint_slice(addressType="IPv4", endpoints=[{"addresses": ["10.244.0.5"]}],
                                       ports=[{"name": "http", "port": 8080}])) == []
    assert errors_of(an_endpoint_slice(addressType="IPv4", endpoints=[{"addresses": ["fd00::5"]}])) == [
        'endpoints[0].addresses[0]: Invalid value: "fd00::5": must be an IPv4 address']
    assert errors_of(an_endpoint_slice(addressType="IPv4", endpoints=[{"addresses": []}])) == [
        "endpoints[0].addresses: Required value: must contain at least 1 address"]
