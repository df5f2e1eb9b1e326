"""Prometheus HTTP service discovery (control/monitoring/scrape_targets.py):
the control replica, then every Node's agent and proxy from their metrics
annotations, a wildcard listen address turned into the Node's InternalIP."""

from __future__ import annotations

from control.api.metrics_endpoints import AGENT_METRICS, PROXY_METRICS
from control.monitoring.scrape_targets import target_groups
from protos.api.v1 import core_pb2


def node(name: str, annotations: dict[str, str], *, internal_ip: str = "10.0.0.5") -> core_pb2.Node:
    obj = core_pb2.Node(api_version="v1", kind="Node")
    obj.metadata.name = name
    obj.metadata.annotations.update(annotations)
    obj.status.addresses.add(type="Hostname", address=name)
    if internal_ip:
        obj.status.addresses.add(type="InternalIP", address=internal_ip)
    return obj


def test_control_comes_first_then_each_nodes_agent_and_proxy_sorted_by_node():
    nodes = [node("b", {AGENT_METRICS: "10.0.0.9:10250"}, internal_ip="10.0.0.9"),
             node("a", {AGENT_METRICS: "127.0.0.1:10250", PROXY_METRICS: "127.0.0.1:10256"})]
    assert target_groups(nodes, control_address="cp:10249", control_node="cp") == [
        {"targets": ["cp:10249"], "labels": {"role": "control", "node": "cp"}},
        {"targets": ["127.0.0.1:10250"], "labels": {"role": "agent", "node": "a"}},
        {"targets": ["127.0.0.1:10256"], "labels": {"role": "proxy", "node": "a"}},
        {"targets": ["10.0.0.9:10250"], "labels": {"role": "agent", "node": "b"}},
    ]


def test_a_wildcard_listen_address_is_scraped_at_the_nodes_internal_ip():
    groups = target_groups([node("a", {AGENT_METRICS: "0.0.0.0:10250", PROXY_METRICS: "[::]:10256"})],
                           control_address="cp:10249", control_node="cp")
    assert [group["targets"] for group in groups[1:]] == [["10.0.0.5:10250"], ["10.0.0.5:10256"]]


def test_an_ipv6_address_is_bracketed():
    groups = target_groups([node("a", {AGENT_METRICS: "0.0.0.0:10250"}, internal_ip="fd00::5")],
                           control_address="cp:10249", control_node="cp")
    assert groups[1]["targets"] == ["[fd00::5]:10250"]


def test_a_node_without_annotations_has_no_targets():
    assert target_groups([node("hollow-0", {})], control_address="cp:10249", control_node="cp") == [
        {"targets": ["cp:10249"], "labels": {"role": "control", "node": "cp"}}]


def test_a_malformed_annotation_is_skipped_and_reported_naming_node_and_annotation():
    reported: list[str] = []
    groups = target_groups([node("a", {AGENT_METRICS: "no-port", PROXY_METRICS: "127.0.0.1:10256"})],
                           control_address="cp:10249", control_node="cp", on_bad=reported.append)
    assert [group["labels"]["role"] for group in groups] == ["control", "proxy"]
    assert reported == [f"node a: annotation {AGENT_METRICS}: 'no-port': must be HOST:PORT with a port from 1 to 65535"]
