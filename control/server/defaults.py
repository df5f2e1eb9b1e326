"""Defaulting: the values Kubernetes fills in for fields a manifest leaves out.

The API service calls ``apply_defaults(kind, obj)`` on every create and update,
before validation, exactly as Kubernetes' defaulting runs before its
validation. Every kind gets apiVersion and kind from its Kind; the rest is one
function per kind in ``DEFAULTERS``. Defaulting never overwrites a value the
client set (the one exception, as in Kubernetes, is the namespace label that
mirrors a namespace's name), so applying it twice changes nothing.

Where Kubernetes cannot tell an explicit zero from an absent field (probe
periods and thresholds are plain int32 in Go) a zero is defaulted too, so a
manifest means the same here as in Kubernetes.
"""

from __future__ import annotations

from typing import Callable

from google.protobuf.message import Message

from control.api.kinds import Kind

DEFAULT_FILE_MODE = 0o644
DEFAULT_TOLERATION_SECONDS = 300
# Kubernetes' DefaultTolerationSeconds admission: pods survive a node going
# not-ready or unreachable for five minutes before they are evicted.
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
_PROBE_DEFAULTS = (("timeout_seconds", 1), ("period_seconds", 10), ("success_threshold", 1), ("failure_threshold", 3))


def _default(message: Message, field: str, value: object) -> None:
    """Set ``field`` unless the client set it. An empty string counts as unset:
    Go strings have no presence, so Kubernetes defaults "" too."""
    if not message.HasField(field) or getattr(message, field) == "":
        setattr(message, field, value)


def image_pull_policy(image: str) -> str:
    """Always for ``:latest`` or an untagged image, IfNotPresent for a tag or digest."""
    if "@" in image:
        return "IfNotPresent"
    last_part = image.rsplit("/", 1)[-1]
    tag = last_part.partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def default_pod(pod: Message) -> None:
    spec = pod.spec
    _default(spec, "restart_policy", "Always")
    _default(spec, "termination_grace_period_seconds", 30)
    _default(spec, "dns_policy", "ClusterFirst")
    _default(spec, "scheduler_name", "default-scheduler")
    # The deprecated serviceAccount field still names the account when it is the only one given.
    _default(spec, "service_account_name", spec.service_account or "default")
    _default(spec, "enable_service_links", True)
    for container in (*spec.init_containers, *spec.containers):
        _default_container(container, host_network=spec.host_network)
    for volume in spec.volumes:
        _default_volume(volume)
    _default_tolerations(spec)


def _default_container(container: Message, *, host_network: bool) -> None:
    _default(container, "image_pull_policy", image_pull_policy(container.image))
    _default(container, "termination_message_path", "/dev/termination-log")
    _default(container, "termination_message_policy", "File")
    for port in container.ports:
        _default(port, "protocol", "TCP")
        if host_network:
            # With the host's network the container port is the host port.
            if not port.host_port:
                port.host_port = port.container_port
    for probe_field in ("liveness_probe", "readiness_probe", "startup_probe"):
        if container.HasField(probe_field):
            _default_probe(getattr(container, probe_field))
    for handler_field in ("post_start", "pre_stop"):
        handler = getattr(container.lifecycle, handler_field)
        if container.lifecycle.HasField(handler_field) and handler.HasField("http_get"):
            _default_http_get(handler.http_get)
    for var in container.env:
        if var.value_from.HasField("field_ref"):
            _default(var.value_from.field_ref, "api_version", "v1")
    # A limit without a request requests the limit.
    requests, limits = container.resources.requests, container.resources.limits
    for name, limit in limits.items():
        if name not in requests:
            requests[name] = limit


def _default_probe(probe: Message) -> None:
    for field, value in _PROBE_DEFAULTS:
        if not getattr(probe, field):
            setattr(probe, field, value)
    if probe.HasField("http_get"):
        _default_http_get(probe.http_get)


def _default_http_get(action: Message) -> None:
    if not action.path:
        action.path = "/"
    if not action.scheme:
        action.scheme = "HTTP"


def _default_volume(volume: Message) -> None:
    sources = ("host_path", "empty_dir", "secret", "config_map", "persistent_volume_claim", "nfs",
               "downward_api", "projected")
    if not any(volume.HasField(source) for source in sources):
        volume.empty_dir.SetInParent()  # Kubernetes' default volume source
    for source in ("secret", "config_map", "downward_api", "projected"):
        if volume.HasField(source):
            _default(getattr(volume, source), "default_mode", DEFAULT_FILE_MODE)
    for item in (*volume.downward_api.items, *(
            item for source in volume.projected.sources for item in source.downward_api.items)):
        if item.HasField("field_ref"):
            _default(item.field_ref, "api_version", "v1")


def _default_tolerations(spec: Message) -> None:
    for taint in (NOT_READY_TAINT, UNREACHABLE_TAINT):
        if not any(_tolerates_no_execute(toleration, taint) for toleration in spec.tolerations):
            spec.tolerations.add(key=taint, operator="Exists", effect="NoExecute",
                                 toleration_seconds=DEFAULT_TOLERATION_SECONDS)


def _tolerates_no_execute(toleration: Message, taint: str) -> bool:
    matches_key = toleration.key == taint or (not toleration.key and toleration.operator == "Exists")
    return matches_key and toleration.effect in ("", "NoExecute")


def default_secret(secret: Message) -> None:
    _default(secret, "type", "Opaque")
    # stringData is write-only: it lands in data, overriding keys given there too.
    for key, value in secret.string_data.items():
        secret.data[key] = value.encode()
    secret.ClearField("string_data")


def default_namespace(namespace: Message) -> None:
    # Kubernetes labels every namespace with its own name, for selectors.
    if namespace.metadata.name:
        namespace.metadata.labels["kubernetes.io/metadata.name"] = namespace.metadata.name
    _default(namespace.status, "phase", "Active")


Defaulter = Callable[[Message], None]

# One defaulter per kind that has defaults.
DEFAULTERS: dict[str, Defaulter] = {
    "Pod": default_pod,
    "Secret": default_secret,
    "Namespace": default_namespace,
}


def apply_defaults(kind: Kind, obj: Message) -> None:
    """Fill in, in place, every default Kubernetes would for ``kind``."""
    _default(obj, "api_version", kind.api_version)
    _default(obj, "kind", kind.kind)
    defaulter = DEFAULTERS.get(kind.kind)
    if defaulter is not None:
        defaulter(obj)
