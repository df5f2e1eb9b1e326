"""``describe`` for Services, laid out as kubectl's.

Selector, type, IP families, cluster IPs, external addresses, then per port
its port, target port, node port and the ready endpoints behind it (from the
Service's Endpoints object, ``ip:port`` pairs; ``<none>`` when there are
none), then session affinity and traffic policies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from google.protobuf.message import Message

from control.cli import durations
from control.cli.describers import sections
from control.cli.describers.writer import DescriptionWriter
from control.cli.service_cells import service_external_ip
from control.cli.workload_cells import format_labels

NONE = "<none>"
UNSET = "<unset>"


def describe_service(service: Message, *, events: Sequence[Message] | None, now: datetime,
                     endpoints: Message | None = None) -> str:
    w = DescriptionWriter()
    meta, spec = service.metadata, service.spec
    w.line(0, f"Name:\t{meta.name}")
    w.line(0, f"Namespace:\t{meta.namespace}")
    sections.labels_multiline(w, meta.labels)
    sections.annotations_multiline(w, meta.annotations)
    w.line(0, f"CreationTimestamp:\t{durations.rfc1123z(meta.creation_timestamp)}")
    w.line(0, f"Selector:\t{format_labels(spec.selector)}")
    w.line(0, f"Type:\t{spec.type or 'ClusterIP'}")
    if spec.ip_family_policy:
        w.line(0, f"IP Family Policy:\t{spec.ip_family_policy}")
    if spec.ip_families:
        w.line(0, f"IP Families:\t{','.join(spec.ip_families)}")
    if spec.type != "ExternalName":
        w.line(0, f"IP:\t{spec.cluster_ip or NONE}")
        w.line(0, f"IPs:\t{','.join(spec.cluster_ips) or NONE}")
    if spec.external_ips:
        w.line(0, f"External IPs:\t{','.join(spec.external_ips)}")
    if spec.type == "ExternalName":
        w.line(0, f"External Name:\t{spec.external_name}")
    if spec.type == "LoadBalancer":
        w.line(0, f"LoadBalancer Ingress:\t{service_external_ip(service)}")
    for port in spec.ports:
        name = port.name or UNSET
        protocol = port.protocol or "TCP"
        w.line(0, f"Port:\t{name}\t{port.port}/{protocol}")
        target = port.target_port
        shown = target.str_value if target.WhichOneof("value") == "str_value" else str(target.int_value or port.port)
        w.line(0, f"TargetPort:\t{shown}/{protocol}")
        if port.node_port:
            w.line(0, f"NodePort:\t{name}\t{port.node_port}/{protocol}")
        w.line(0, f"Endpoints:\t{port_endpoints(endpoints, port.name, protocol)}")
    if not spec.ports and endpoints is not None:
        w.line(0, f"Endpoints:\t{port_endpoints(endpoints, '', '')}")
    w.line(0, f"Session Affinity:\t{spec.session_affinity or 'None'}")
    if spec.session_affinity == "ClientIP" and spec.session_affinity_config.client_ip.HasField("timeout_seconds"):
        w.line(0, f"Session Affinity Timeout:\t{spec.session_affinity_config.client_ip.timeout_seconds}s")
    if spec.external_traffic_policy:
        w.line(0, f"External Traffic Policy:\t{spec.external_traffic_policy}")
    if spec.health_check_node_port:
        w.line(0, f"HealthCheck NodePort:\t{spec.health_check_node_port}")
    if spec.internal_traffic_policy:
        w.line(0, f"Internal Traffic Policy:\t{spec.internal_traffic_policy}")
    if events is not None:
        sections.events_section(w, events, now=now)
    return w.text()


def port_endpoints(endpoints: Message | None, port_name: str, protocol: str) -> str:
    """The ready ``ip:port`` pairs serving one Service port (matched by name and protocol), or <none>."""
    if endpoints is None:
        return NONE
    pairs = []
    for subset in endpoints.subsets:
        if not subset.ports and not port_name:
            pairs.extend(address.ip for address in subset.addresses)
        for port in subset.ports:
            if port.name == port_name and (port.protocol or "TCP") == protocol:
                pairs.extend(f"{address.ip}:{port.port}" for address in subset.addresses)
    return ",".join(pairs) or NONE
