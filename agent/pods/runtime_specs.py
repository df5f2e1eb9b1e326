"""From a Pod to what the runtime is asked for: sandbox and container specs.

Pure translation, no I/O (a pod's DNS settings are formed in dns.py). The labels
written here are how the agent recognises its own sandboxes and containers
after a restart: the pod's uid, name and namespace, the container's name,
its kind (init or app) and a hash of its spec (a changed spec, e.g. a new
image, means a new container).
"""

from __future__ import annotations

import hashlib
from typing import Mapping

from agent.pods.dns import ClusterDNS, pod_dns, read_resolv_conf  # noqa: F401 (re-exported)
from agent.runtime.base import (
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    ContainerSpec,
    DNSConfig,
    Mount,
    PortMapping,
    Resources,
    SandboxSpec,
)
from control.api import quantity
from protos.api.v1 import core_pb2

LABEL_CONTAINER_HASH = "io.sampan.container.hash"
LABEL_CONTAINER_KIND = "io.sampan.container.kind"  # "init" or "app"
# Kept on sandboxes so an orphaned pod (gone from the API) is stopped with its own grace period.
LABEL_GRACE_PERIOD = "io.sampan.pod.terminationGracePeriod"
INIT, APP = "init", "app"
# No cluster DNS: ClusterFirst pods get the host's resolvers.
NO_CLUSTER_DNS = ClusterDNS()
_MAX_HOSTNAME = 63


def describe_pod(pod: core_pb2.Pod) -> str:
    """kubelet's way of naming a pod in messages: web_default(uid)."""
    return f"{pod.metadata.name}_{pod.metadata.namespace}({pod.metadata.uid})"


def pod_labels(pod: core_pb2.Pod) -> dict[str, str]:
    return {LABEL_POD_UID: pod.metadata.uid, LABEL_POD_NAME: pod.metadata.name,
            LABEL_POD_NAMESPACE: pod.metadata.namespace}


def grace_period(pod: core_pb2.Pod) -> int:
    """Seconds the pod's containers get to stop: the deletion's grace, else the spec's."""
    if pod.metadata.HasField("deletion_grace_period_seconds"):
        return pod.metadata.deletion_grace_period_seconds
    if pod.spec.HasField("termination_grace_period_seconds"):
        return pod.spec.termination_grace_period_seconds
    return 30


def dns_config(pod: core_pb2.Pod, host: DNSConfig, cluster: ClusterDNS = NO_CLUSTER_DNS) -> DNSConfig:
    """The pod's resolver settings (agent/pods/dns.py forms them, with the warnings that raises)."""
    return pod_dns(pod, host=host, cluster=cluster).config


def sandbox_spec(pod: core_pb2.Pod, *, attempt: int, log_directory: str, host_dns: DNSConfig,
                 cluster_dns: ClusterDNS = NO_CLUSTER_DNS) -> SandboxSpec:
    spec = pod.spec
    ports = tuple(
        PortMapping(container_port=port.container_port, host_port=port.host_port,
                    protocol=port.protocol or "TCP", host_ip=port.host_ip)
        for container in spec.containers for port in container.ports if port.host_port)
    labels = {**pod.metadata.labels, **pod_labels(pod), LABEL_GRACE_PERIOD: str(grace_period(pod))}
    return SandboxSpec(
        pod_uid=pod.metadata.uid, pod_name=pod.metadata.name, namespace=pod.metadata.namespace,
        attempt=attempt, hostname=(spec.hostname or pod.metadata.name)[:_MAX_HOSTNAME],
        host_network=spec.host_network, log_directory=log_directory, dns=dns_config(pod, host_dns, cluster_dns),
        port_mappings=ports, labels=labels, annotations=dict(pod.metadata.annotations))


def container_hash(container: core_pb2.Container) -> str:
    return hashlib.sha256(container.SerializeToString(deterministic=True)).hexdigest()[:16]


def resources_of(container: core_pb2.Container) -> Resources:
    requests, limits = container.resources.requests, container.resources.limits
    return Resources(
        cpu_request_millis=quantity.cpu_millis(requests["cpu"]) if "cpu" in requests else 0,
        cpu_limit_millis=quantity.cpu_millis(limits["cpu"]) if "cpu" in limits else 0,
        memory_limit_bytes=quantity.bytes_value(limits["memory"]) if "memory" in limits else 0)


def log_path(container_name: str, attempt: int) -> str:
    """Relative to the sandbox's log directory, as kubelet lays logs out."""
    return f"{container_name}/{attempt}.log"


def container_spec(
    pod: core_pb2.Pod,
    container: core_pb2.Container,
    *,
    kind: str,
    attempt: int,
    command: tuple[str, ...],
    args: tuple[str, ...],
    env: Mapping[str, str],
    mounts: tuple[Mount, ...],
) -> ContainerSpec:
    labels = {**pod_labels(pod), LABEL_CONTAINER_NAME: container.name,
              LABEL_CONTAINER_HASH: container_hash(container), LABEL_CONTAINER_KIND: kind}
    return ContainerSpec(
        name=container.name, image=container.image, attempt=attempt, command=command, args=args,
        env=dict(env), working_dir=container.working_dir, mounts=mounts, resources=resources_of(container),
        log_path=log_path(container.name, attempt), tty=container.tty, stdin=container.stdin, labels=labels)
