"""Prometheus HTTP service discovery: every Sampan component's metrics address.

Prometheus' ``http_sd_configs`` fetch a JSON list of target groups,
``[{"targets": ["HOST:PORT"], "labels": {...}}, ...]``, and scrape each target.
``target_groups`` builds that list from the Nodes and this control replica:

- the control replica itself, at the address the request reached it by
  (the SD answer comes from the same HTTP server as its ``/metrics``, so
  that address is one Prometheus can reach), labelled ``role="control"`` and
  ``node`` = the machine's hostname;
- for every Node, its agent and its proxy, from the Node's
  ``sampan.io/agent-metrics`` and ``sampan.io/proxy-metrics`` annotations
  (control/api/metrics_endpoints.py), labelled ``role="agent"`` or
  ``role="proxy"`` and ``node`` = the Node's name. A wildcard listen host
  becomes the Node's InternalIP. A Node without an annotation (a daemon
  with metrics off, a simulated node) has no such target; an annotation
  that is not ``HOST:PORT`` is skipped and reported to ``on_bad``.

One group per target, since each has its own labels; the order is stable
(control first, then nodes by name, agent before proxy), so an unchanged
cluster gives an identical answer.
"""

from __future__ import annotations

from typing import Callable, Iterable

from control.api.metrics_endpoints import AGENT_METRICS, PROXY_METRICS, join_host_port, scrape_host, split_host_port
from protos.api.v1 import core_pb2

SD_PATH = "/sd"
ROLE_ANNOTATIONS = (("agent", AGENT_METRICS), ("proxy", PROXY_METRICS))


def node_ip(node: core_pb2.Node) -> str:
    """The address to reach the node by: its InternalIP, else its first address, else its name."""
    addresses = node.status.addresses
    for wanted in ("InternalIP", "ExternalIP"):
        found = next((a.address for a in addresses if a.type == wanted and a.address), "")
        if found:
            return found
    return next((a.address for a in addresses if a.address), node.metadata.name)


def node_targets(node: core_pb2.Node, *, on_bad: Callable[[str], None] = lambda message: None) -> list[dict]:
    """The target groups of one Node's daemons."""
    groups = []
    for role, annotation in ROLE_ANNOTATIONS:
        value = node.metadata.annotations.get(annotation)
        if value is None:
            continue
        try:
            host, port = split_host_port(value)
        except ValueError as err:
            on_bad(f"node {node.metadata.name}: annotation {annotation}: {err}")
            continue
        address = join_host_port(scrape_host(host, node_ip=node_ip(node)), port)
        groups.append({"targets": [address], "labels": {"role": role, "node": node.metadata.name}})
    return groups


def target_groups(nodes: Iterable[core_pb2.Node], *, control_address: str, control_node: str,
                  on_bad: Callable[[str], None] = lambda message: None) -> list[dict]:
    """The HTTP SD answer: this control replica, then every node's agent and proxy."""
    groups = [{"targets": [control_address], "labels": {"role": "control", "node": control_node}}]
    for node in sorted(nodes, key=lambda n: n.metadata.name):
        groups.extend(node_targets(node, on_bad=on_bad))
    return groups
