"""``get`` table cells for Services, Endpoints and EndpointSlices, with kubectl's columns and wording.

One pure function per kind (registered with their headers in printers.COLUMNS):

- Service: TYPE, CLUSTER-IP (``None`` for a headless Service, ``<none>``
  for an ExternalName), EXTERNAL-IP (the externalIPs; a LoadBalancer's
  ingress addresses, ``<pending>`` until it has one; an ExternalName's
  name), PORT(S) as ``80/TCP`` or ``80:30080/TCP`` with its node port;
  ``-o wide`` adds the SELECTOR;
- Endpoints: ENDPOINTS, the ready ``ip:port`` pairs, the first three and
  ``+ N more...``;
- EndpointSlice: ADDRESSTYPE, PORTS and ENDPOINTS (every endpoint's
  address), each the first three and ``+ N more...``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from google.protobuf.message import Message

from control.cli import durations
from control.cli.workload_cells import format_labels

NONE = "<none>"
UNSET = "<unset>"
PENDING = "<pending>"
_MAX_LISTED = 3


def _first_few(items: Sequence[str], *, empty: str) -> str:
    """kubectl's lists in a cell: the first three, then `` + N more...``."""
    if not items:
        return empty
    text = ",".join(items[:_MAX_LISTED])
    if len(items) > _MAX_LISTED:
        text += f" + {len(items) - _MAX_LISTED} more..."
    return text


def service_external_ip(service: Message) -> str:
    spec = service.spec
    if spec.type == "ExternalName":
        return spec.external_name or NONE
    addresses = list(spec.external_ips)
    if spec.type == "LoadBalancer":
        ingress = [entry.ip or entry.hostname for entry in service.status.load_balancer.ingress]
        addresses = [address for address in ingress if address] + addresses
        return ",".join(addresses) if addresses else PENDING
    return ",".join(addresses) if addresses else NONE


def service_ports(service: Message) -> str:
    ports = []
    for port in service.spec.ports:
        protocol = port.protocol or "TCP"
        ports.append(f"{port.port}:{port.node_port}/{protocol}" if port.node_port else f"{port.port}/{protocol}")
    return ",".join(ports) or NONE


def service_cells(service: Message, *, now: datetime, wide: bool) -> list[str]:
    spec = service.spec
    cells = [service.metadata.name, spec.type or "ClusterIP", spec.cluster_ip or NONE,
             service_external_ip(service), service_ports(service),
             durations.age(service.metadata.creation_timestamp, at=now)]
    if wide:
        cells.append(format_labels(spec.selector))
    return cells


def endpoints_addresses(endpoints: Message) -> list[str]:
    """The ready addresses as kubectl lists them: ip:port for every port of their subset (ip without ports)."""
    listed = []
    for subset in endpoints.subsets:
        for address in subset.addresses:
            if subset.ports:
                listed.extend(f"{address.ip}:{port.port}" for port in subset.ports)
            else:
                listed.append(address.ip)
    return listed


def endpoints_cells(endpoints: Message, *, now: datetime, wide: bool) -> list[str]:
    return [endpoints.metadata.name, _first_few(endpoints_addresses(endpoints), empty=NONE),
            durations.age(endpoints.metadata.creation_timestamp, at=now)]


def endpoint_slice_cells(slice_: Message, *, now: datetime, wide: bool) -> list[str]:
    ports = [str(port.port) if port.HasField("port") else UNSET for port in slice_.ports]
    addresses = [address for endpoint in slice_.endpoints for address in endpoint.addresses]
    return [slice_.metadata.name, slice_.address_type, _first_few(ports, empty=UNSET),
            _first_few(addresses, empty=UNSET), durations.age(slice_.metadata.creation_timestamp, at=now)]
