"""The downward API: pod fields and container resources as strings.

Used by env ``valueFrom.fieldRef`` / ``resourceFieldRef`` and by downwardAPI
volume files. Field paths are the ones Kubernetes accepts; a resource without
a limit reads as the node's allocatable amount, as kubelet does.
"""

from __future__ import annotations

import math
import os
import re

from control.api import quantity
from protos.api.v1 import core_pb2

_SUBSCRIPT = re.compile(r"metadata\.(labels|annotations)\['(.+)'\]")


class DownwardAPIError(Exception):
    """A field path or resource the downward API does not offer."""


def _format_map(values) -> str:
    return "\n".join(f'{key}="{values[key]}"' for key in sorted(values))


def field_value(pod: core_pb2.Pod, path: str, *, host_ip: str, pod_ip: str) -> str:
    meta, spec = pod.metadata, pod.spec
    simple = {
        "metadata.name": meta.name,
        "metadata.namespace": meta.namespace,
        "metadata.uid": meta.uid,
        "spec.nodeName": spec.node_name,
        "spec.serviceAccountName": spec.service_account_name,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
    }
    if path in simple:
        return simple[path]
    if path == "metadata.labels":
        return _format_map(meta.labels)
    if path == "metadata.annotations":
        return _format_map(meta.annotations)
    match = _SUBSCRIPT.fullmatch(path)
    if match:
        source = meta.labels if match.group(1) == "labels" else meta.annotations
        return source.get(match.group(2), "")
    raise DownwardAPIError(f"unsupported fieldPath: {path}")


def node_allocatable() -> dict[str, int]:
    """The machine's CPU (millicores) and memory (bytes): the default for unset limits."""
    memory = 0
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"cpu": (os.cpu_count() or 1) * 1000, "memory": memory, "ephemeral-storage": 0}


def resource_value(container: core_pb2.Container, resource: str, divisor: str = "") -> str:
    """``limits.cpu``, ``requests.memory``... divided by divisor and rounded up (kubelet's rule)."""
    scope, _, name = resource.partition(".")
    if scope not in ("limits", "requests") or name not in ("cpu", "memory", "ephemeral-storage"):
        raise DownwardAPIError(f"unsupported container resource: {resource}")
    values = container.resources.limits if scope == "limits" else container.resources.requests
    text = values.get(name)
    if name == "cpu":
        amount = quantity.cpu_millis(text) if text else (0 if scope == "requests" else node_allocatable()["cpu"])
        per = quantity.cpu_millis(divisor or "1")
    else:
        amount = quantity.bytes_value(text) if text else (
            0 if scope == "requests" else node_allocatable()[name])
        per = quantity.bytes_value(divisor or "1")
    if per <= 0:
        raise DownwardAPIError(f"invalid divisor {divisor!r} for {resource}")
    return str(math.ceil(amount / per))
