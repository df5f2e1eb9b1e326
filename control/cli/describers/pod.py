"""``describe pod``: kubectl's pod description, section for section.

Name, Namespace, Priority, Service Account, Node, Start Time, Labels,
Annotations, Status, IP(s), Controlled By, Init Containers and Containers
(image, ports, command, state, readiness, restarts, resources, probes,
environment, mounts), Conditions, Volumes, QoS Class, Node-Selectors,
Tolerations, Events.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Sequence

from google.protobuf.message import Message

from control.api import quantity
from control.cli import durations
from control.cli.describers import sections
from control.cli.describers.writer import DescriptionWriter

NONE = sections.NONE
# Kubernetes' probe defaults, shown when a probe leaves them unset.
PROBE_DEFAULTS = {"timeout_seconds": 1, "period_seconds": 10, "success_threshold": 1, "failure_threshold": 3}
QOS_RESOURCES = ("cpu", "memory")


def describe_pod(pod: Message, *, events: Sequence[Message] | None, now: datetime) -> str:
    w = DescriptionWriter()
    meta, spec, status = pod.metadata, pod.spec, pod.status
    w.line(0, f"Name:\t{meta.name}")
    w.line(0, f"Namespace:\t{meta.namespace}")
    if spec.HasField("priority"):
        w.line(0, f"Priority:\t{spec.priority}")
    if spec.priority_class_name:
        w.line(0, f"Priority Class Name:\t{spec.priority_class_name}")
    if spec.runtime_class_name:
        w.line(0, f"Runtime Class Name:\t{spec.runtime_class_name}")
    if spec.service_account_name:
        w.line(0, f"Service Account:\t{spec.service_account_name}")
    w.line(0, f"Node:\t{spec.node_name + '/' + status.host_ip if spec.node_name else NONE}")
    if status.start_time:
        w.line(0, f"Start Time:\t{durations.rfc1123z(status.start_time)}")
    sections.labels_multiline(w, meta.labels)
    sections.annotations_multiline(w, meta.annotations)
    if meta.HasField("deletion_timestamp") and status.phase not in ("Failed", "Succeeded"):
        w.line(0, f"Status:\tTerminating (lasts {durations.age(meta.deletion_timestamp, at=now)})")
        w.line(0, f"Termination Grace Period:\t{meta.deletion_grace_period_seconds}s")
    else:
        w.line(0, f"Status:\t{status.phase}")
    if status.reason:
        w.line(0, f"Reason:\t{status.reason}")
    if status.message:
        w.line(0, f"Message:\t{status.message}")
    w.line(0, f"IP:\t{status.pod_ip}")
    if status.pod_ips:
        w.line(0, "IPs:")
        for ip in status.pod_ips:
            w.line(1, f"IP:\t{ip.ip}")
    else:
        w.line(0, f"IPs:\t{NONE}")
    controller = next((ref for ref in meta.owner_references if ref.controller), None)
    if controller is not None:
        w.line(0, f"Controlled By:\t{controller.kind}/{controller.name}")
    if status.nominated_node_name:
        w.line(0, f"NominatedNodeName:\t{status.nominated_node_name}")
    if spec.init_containers:
        describe_containers(w, spec.init_containers, title="Init Containers",
                            statuses=status.init_container_statuses)
    describe_containers(w, spec.containers, title="Containers", statuses=status.container_statuses)
    if spec.readiness_gates:
        w.line(0, "Readiness Gates:")
        w.line(1, "Type\tStatus")
        for gate in spec.readiness_gates:
            found = next((c.status for c in status.conditions if c.type == gate.condition_type), NONE)
            w.line(1, f"{gate.condition_type} \t{found} ")
    sections.conditions_table(w, status.conditions)
    describe_volumes(w, spec.volumes)
    w.line(0, f"QoS Class:\t{status.qos_class or qos_class(pod)}")
    sections.labels_multiline(w, spec.node_selector, title="Node-Selectors")
    sections.tolerations_multiline(w, spec.tolerations)
    if events is not None:
        sections.events_section(w, events, now=now)
    return w.text()


def describe_containers(w: DescriptionWriter, containers: Sequence[Message], *, title: str,
                        statuses: Sequence[Message] = (), space: str = "") -> None:
    """kubectl's describeContainers: a pod's containers with their statuses, or (``space`` "  ",
    no statuses) a pod template's, one level in and their names one space further."""
    by_name = {status.name: status for status in statuses}
    w.line(0, f"{space}{title}:{'' if containers else ' ' + NONE}")
    for container in containers:
        status = by_name.get(container.name)
        w.line(1, f"{' ' if space else ''}{container.name}:")
        if status is not None:
            w.line(2, f"Container ID:\t{status.container_id}")
        w.line(2, f"Image:\t{container.image}")
        if status is not None:
            w.line(2, f"Image ID:\t{status.image_id}")
        ports = ", ".join(f"{p.container_port}/{p.protocol or 'TCP'}" for p in container.ports)
        host_ports = ", ".join(f"{p.host_port}/{p.protocol or 'TCP'}" for p in container.ports)
        w.line(2, f"Ports:\t{ports}" if "," in ports else f"Port:\t{ports or NONE}")
        w.line(2, f"Host Ports:\t{host_ports}" if "," in host_ports else f"Host Port:\t{host_ports or NONE}")
        for heading, words in (("Command", container.command), ("Args", container.args)):
            if words:
                w.line(2, f"{heading}:")
                for word in words:
                    for part in word.split("\n"):
                        w.line(3, part)
        if status is not None:
            _state(w, status.state, title="State")
            if status.last_state.HasField("terminated"):
                _state(w, status.last_state, title="Last State")
            w.line(2, f"Ready:\t{'True' if status.ready else 'False'}")
            w.line(2, f"Restart Count:\t{status.restart_count}")
        sections.resource_requirements(w, container.resources, level=2)
        for heading, field in (("Liveness", "liveness_probe"), ("Readiness", "readiness_probe"),
                               ("Startup", "startup_probe")):
            if container.HasField(field):
                w.line(2, f"{heading}:\t{describe_probe(getattr(container, field))}")
        if container.env_from:
            w.line(2, "Environment Variables from:")
            for source in container.env_from:
                if source.HasField("config_map_ref"):
                    origin, ref = "ConfigMap", source.config_map_ref
                else:
                    origin, ref = "Secret", source.secret_ref
                prefix = f" with prefix '{source.prefix}'" if source.prefix else ""
                w.line(3, f"{ref.name}\t{origin}{prefix}\tOptional: {str(ref.optional).lower()}")
        _environment(w, container.env)
        w.line(2, "Mounts:" + ("" if container.volume_mounts else f"\t{NONE}"))
        for mount in sorted(container.volume_mounts, key=lambda m: m.mount_path):
            flags = ["ro" if mount.read_only else "rw"]
            if mount.sub_path:
                flags.append(f'path="{mount.sub_path}"')
            w.line(3, f"{mount.mount_path} from {mount.name} ({','.join(flags)})")


def _state(w: DescriptionWriter, state: Message, *, title: str) -> None:
    if state.HasField("running"):
        w.line(2, f"{title}:\tRunning")
        w.line(3, f"Started:\t{durations.rfc1123z(state.running.started_at)}")
    elif state.HasField("waiting"):
        w.line(2, f"{title}:\tWaiting")
        if state.waiting.reason:
            w.line(3, f"Reason:\t{state.waiting.reason}")
    elif state.HasField("terminated"):
        terminated = state.terminated
        w.line(2, f"{title}:\tTerminated")
        if terminated.reason:
            w.line(3, f"Reason:\t{terminated.reason}")
        if terminated.message:
            w.line(3, f"Message:\t{terminated.message}")
        w.line(3, f"Exit Code:\t{terminated.exit_code}")
        if terminated.signal > 0:
            w.line(3, f"Signal:\t{terminated.signal}")
        w.line(3, f"Started:\t{durations.rfc1123z(terminated.started_at)}")
        w.line(3, f"Finished:\t{durations.rfc1123z(terminated.finished_at)}")
    else:
        w.line(2, f"{title}:\tWaiting")


def _environment(w: DescriptionWriter, env: Sequence[Message]) -> None:
    w.line(2, "Environment:" + ("" if env else f"\t{NONE}"))
    for var in env:
        if not var.HasField("value_from"):
            for index, part in enumerate(var.value.split("\n")):
                w.line(3, f"{var.name}:\t{part}" if index == 0 else f"\t{part}")
            continue
        source = var.value_from
        if source.HasField("field_ref"):
            ref = source.field_ref
            w.line(3, f"{var.name}:\t ({ref.api_version or 'v1'}:{ref.field_path})")
        elif source.HasField("resource_field_ref"):
            w.line(3, f"{var.name}:\t ({source.resource_field_ref.resource})")
        elif source.HasField("secret_key_ref"):
            ref = source.secret_key_ref
            w.line(3, f"{var.name}:\t<set to the key '{ref.key}' in secret '{ref.name}'>\t"
                      f"Optional: {str(ref.optional).lower()}")
        elif source.HasField("config_map_key_ref"):
            ref = source.config_map_key_ref
            w.line(3, f"{var.name}:\t<set to the key '{ref.key}' of config map '{ref.name}'>\t"
                      f"Optional: {str(ref.optional).lower()}")


def describe_probe(probe: Message) -> str:
    """kubectl's DescribeProbe: the action, then delay, timeout, period and thresholds."""
    def setting(name: str) -> int:
        return getattr(probe, name) if probe.HasField(name) else PROBE_DEFAULTS.get(name, 0)

    attrs = (f"delay={setting('initial_delay_seconds')}s timeout={setting('timeout_seconds')}s "
             f"period={setting('period_seconds')}s #success={setting('success_threshold')} "
             f"#failure={setting('failure_threshold')}")
    if probe.HasField("exec"):
        return f"exec [{' '.join(probe.exec.command)}] {attrs}"
    if probe.HasField("http_get"):
        action = probe.http_get
        port = _int_or_string(action.port)
        host = f"[{action.host}]" if ":" in action.host else action.host
        return f"http-get {(action.scheme or 'HTTP').lower()}://{host}:{port}{action.path} {attrs}"
    if probe.HasField("tcp_socket"):
        return f"tcp-socket {probe.tcp_socket.host}:{_int_or_string(probe.tcp_socket.port)} {attrs}"
    if probe.HasField("grpc"):
        return f"grpc <pod>:{probe.grpc.port} {probe.grpc.service} {attrs}"
    return f"unknown {attrs}"


def _int_or_string(value: Message) -> str:
    return value.str_value if value.WhichOneof("value") == "str_value" else str(value.int_value)


def describe_volumes(w: DescriptionWriter, volumes: Sequence[Message], *, space: str = "") -> None:
    """kubectl's describeVolumes; ``space`` "  " for a pod template's, as with containers."""
    if not volumes:
        w.line(0, f"{space}Volumes:\t{NONE}")
        return
    w.line(0, f"{space}Volumes:")
    for volume in volumes:
        w.line(1, f"{' ' if space else ''}{volume.name}:")
        if volume.HasField("host_path"):
            w.line(2, "Type:\tHostPath (bare host directory volume)")
            w.line(2, f"Path:\t{volume.host_path.path}")
            w.line(2, f"HostPathType:\t{volume.host_path.type}")
        elif volume.HasField("empty_dir"):
            w.line(2, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)")
            w.line(2, f"Medium:\t{volume.empty_dir.medium}")
            w.line(2, f"SizeLimit:\t{volume.empty_dir.size_limit or '<unset>'}")
        elif volume.HasField("secret"):
            w.line(2, "Type:\tSecret (a volume populated by a Secret)")
            w.line(2, f"SecretName:\t{volume.secret.secret_name}")
            w.line(2, f"Optional:\t{str(volume.secret.optional).lower()}")
        elif volume.HasField("config_map"):
            w.line(2, "Type:\tConfigMap (a volume populated by a ConfigMap)")
            w.line(2, f"Name:\t{volume.config_map.name}")
            w.line(2, f"Optional:\t{str(volume.config_map.optional).lower()}")
        elif volume.HasField("persistent_volume_claim"):
            claim = volume.persistent_volume_claim
            w.line(2, "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)")
            w.line(2, f"ClaimName:\t{claim.claim_name}")
            w.line(2, f"ReadOnly:\t{str(claim.read_only).lower()}")
        elif volume.HasField("nfs"):
            w.line(2, "Type:\tNFS (an NFS mount that lasts the lifetime of a pod)")
            w.line(2, f"Server:\t{volume.nfs.server}")
            w.line(2, f"Path:\t{volume.nfs.path}")
            w.line(2, f"ReadOnly:\t{str(volume.nfs.read_only).lower()}")
        elif volume.HasField("downward_api"):
            w.line(2, "Type:\tDownwardAPI (a volume populated by information about the pod)")
            w.line(2, "Items:")
            for item in volume.downward_api.items:
                what = item.field_ref.field_path if item.HasField("field_ref") else item.resource_field_ref.resource
                w.line(3, f"{what} -> {item.path}")
        elif volume.HasField("projected"):
            w.line(2, "Type:\tProjected (a volume that contains injected data from multiple sources)")
            for projection in volume.projected.sources:
                if projection.HasField("secret"):
                    w.line(2, f"SecretName:\t{projection.secret.name}")
                    w.line(2, f"Optional:\t{str(projection.secret.optional).lower()}")
                elif projection.HasField("config_map"):
                    w.line(2, f"ConfigMapName:\t{projection.config_map.name}")
                    w.line(2, f"Optional:\t{str(projection.config_map.optional).lower()}")
                elif projection.HasField("downward_api"):
                    w.line(2, "DownwardAPI:\ttrue")
                elif projection.HasField("service_account_token"):
                    w.line(2, f"TokenExpirationSeconds:\t{projection.service_account_token.expiration_seconds}")
        else:
            w.line(2, "<unknown>")


def qos_class(pod: Message) -> str:
    """Kubernetes' QoS class: BestEffort, Guaranteed or Burstable.

    Requests left unset default to the limits, as the API server defaults them.
    """
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    for container in [*pod.spec.init_containers, *pod.spec.containers]:
        resources = container.resources
        limited = set()
        for name in QOS_RESOURCES:
            limit = _positive(resources.limits.get(name, ""))
            request = _positive(resources.requests.get(name, "")) or limit
            if request:
                requests[name] = requests.get(name, Decimal(0)) + request
            if limit:
                limits[name] = limits.get(name, Decimal(0)) + limit
                limited.add(name)
        if limited != set(QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests == limits:
        return "Guaranteed"
    return "Burstable"


def _positive(text: str) -> Decimal:
    try:
        value = quantity.parse_quantity(text) if text else Decimal(0)
    except ValueError:
        return Decimal(0)
    return value if value > 0 else Decimal(0)
