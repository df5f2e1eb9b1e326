"""``get`` tables for Services, Endpoints and EndpointSlices (control/cli/service_cells.py via
printers.COLUMNS), and ``describe`` of a Service: kubectl's headers; a Service's TYPE, CLUSTER-IP
(None when headless), EXTERNAL-IP (<none>, external IPs, a load balancer's ingress or <pending>,
an ExternalName's name) and PORT(S) with node ports; Endpoints' ready ip:port pairs, three at
most and "+ N more..."; a slice's address type, ports and addresses; the Endpoints per port in
a description."""

from __future__ import annotations

from typing import Any

import pytest

from control.api import kinds, manifest
from control.cli import printers
from control.cli.describers import describe
from tests.cli.test_printers import CREATED, NOW


def obj(kind: str, **fields: Any):
    found = kinds.by_kind(kind)
    return manifest.to_message({"apiVersion": found.api_version, "kind": kind,
                                "metadata": {"name": "web", "namespace": "default", "creationTimestamp": CREATED},
                                **fields})


def cells(message, *, wide: bool = False) -> list[str]:
    kind = kinds.by_type_url(kinds.TYPE_URL_PREFIX + message.DESCRIPTOR.full_name)
    return printers.row(kind, message, now=NOW, wide=wide)


@pytest.mark.parametrize(("kind", "headers", "wide"), [
    ("Service", "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE",
     "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE SELECTOR"),
    ("Endpoints", "NAME ENDPOINTS AGE", "NAME ENDPOINTS AGE"),
    ("EndpointSlice", "NAME ADDRESSTYPE PORTS ENDPOINTS AGE", "NAME ADDRESSTYPE PORTS ENDPOINTS AGE"),
])
def test_headers_are_kubectls(kind: str, headers: str, wide: str) -> None:
    found = kinds.by_kind(kind)
    assert printers.headers(found) == headers.split(" ")
    assert " ".join(printers.headers(found, wide=True)) == wide


def test_a_node_port_service_shows_its_node_ports() -> None:
    service = obj("Service", spec={"type": "NodePort", "clusterIP": "10.96.12.34", "selector": {"app": "web"},
                                   "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                                             {"port": 53, "nodePort": 30053, "protocol": "UDP"}]})
    assert cells(service, wide=True) == ["web", "NodePort", "10.96.12.34", "<none>", "80:30080/TCP,53:30053/UDP",
                                         "60s", "app=web"]


def test_a_headless_service_shows_none_and_its_ports() -> None:
    service = obj("Service", spec={"type": "ClusterIP", "clusterIP": "None", "ports": [{"port": 5432}]})
    assert cells(service) == ["web", "ClusterIP", "None", "<none>", "5432/TCP", "60s"]


@pytest.mark.parametrize(("spec", "status", "external"), [
    ({"type": "ClusterIP", "externalIPs": ["192.0.2.7"]}, {}, "192.0.2.7"),
    ({"type": "LoadBalancer"}, {}, "<pending>"),
    ({"type": "LoadBalancer"}, {"loadBalancer": {"ingress": [{"ip": "203.0.113.5"}]}}, "203.0.113.5"),
    ({"type": "ExternalName", "externalName": "db.example.com"}, {}, "db.example.com"),
])
def test_external_ip_is_what_kubectl_prints(spec, status, external) -> None:
    assert cells(obj("Service", spec=spec, status=status))[3] == external


def test_endpoints_list_the_first_three_ready_pairs() -> None:
    endpoints = obj("Endpoints", subsets=[
        {"addresses": [{"ip": f"10.244.0.{i}"} for i in (1, 2)], "notReadyAddresses": [{"ip": "10.244.0.9"}],
         "ports": [{"port": 8080}, {"port": 9090, "name": "m"}]}])
    assert cells(endpoints) == ["web", "10.244.0.1:8080,10.244.0.1:9090,10.244.0.2:8080 + 1 more...", "60s"]
    assert cells(obj("Endpoints"))[1] == "<none>"


def test_an_endpoint_slice_shows_its_ports_and_addresses() -> None:
    slice_ = obj("EndpointSlice", addressType="IPv4", ports=[{"port": 8080}],
                 endpoints=[{"addresses": ["10.244.0.1"]}, {"addresses": ["10.244.0.2"]}])
    assert cells(slice_) == ["web", "IPv4", "8080", "10.244.0.1,10.244.0.2", "60s"]
    assert cells(obj("EndpointSlice", addressType="IPv4"))[2:4] == ["<unset>", "<unset>"]


def test_describe_shows_each_ports_endpoints() -> None:
    service = obj("Service", spec={"type": "NodePort", "clusterIP": "10.96.12.34", "clusterIPs": ["10.96.12.34"],
                                   "selector": {"app": "web"}, "sessionAffinity": "None",
                                   "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080,
                                              "protocol": "TCP"}]})
    endpoints = obj("Endpoints", subsets=[{"addresses": [{"ip": "10.244.0.5"}, {"ip": "10.244.0.6"}],
                                           "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}])

    text = describe(service, events=None, now=NOW, endpoints=endpoints)

    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert "Selector: app=web" in lines and "Type: NodePort" in lines and "IP: 10.96.12.34" in lines
    assert "Port: http 80/TCP" in lines and "TargetPort: 8080/TCP" in lines and "NodePort: http 30080/TCP" in lines
    assert "Endpoints: 10.244.0.5:8080,10.244.0.6:8080" in lines
