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

A pod spec is defaulted in two layers, as in Kubernetes: ``default_pod_spec``
is what every pod spec gets, a Pod's own and a workload's pod template alike
(policies, grace period, scheduler, container, probe and volume defaults);
``default_pod`` adds what only a Pod gets (requests from limits, service
links, host ports under hostNetwork, and the service account and
not-ready/unreachable tolerations that Kubernetes' admission adds to pods),
so a template says no more than its author wrote plus the per-spec defaults,
and the pods made from it get the rest when they are created.

The workload kinds get the apps/v1, batch/v1 and autoscaling/v2 defaults:
replicas, update strategies (rolling updates with Kubernetes' surge and
unavailability), history limits, the Job's completions and policies, the
CronJob's concurrency and history limits, and the autoscaler's minimum and
its default CPU target. The selector and labels a Job generates from its uid
are not defaults: they need the uid, and are set in strategy.py.

A Service gets core/v1's: type ClusterIP, TCP ports whose targetPort is
their port, sessionAffinity None (ClientIP's timeout 3 hours), Cluster
traffic policies, single-stack IPv4. Its cluster IP and node ports are not
defaults but allocations (allocators.py).
"""

from __future__ import annotations

from typing import Callable

from google.protobuf.message import Message

from control.api.kinds import Kind

DEFAULT_FILE_MODE = 0o644
DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"
DEFAULT_REVISION_HISTORY_LIMIT = 10
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
DEFAULT_BACKOFF_LIMIT = 6
DEFAULT_SUCCESSFUL_JOBS_HISTORY_LIMIT = 3
DEFAULT_FAILED_JOBS_HISTORY_LIMIT = 1
DEFAULT_CPU_UTILIZATION = 80
# Kubernetes' default scaling rules, filled in when an autoscaler gives a behavior:
# (stabilization window, [(policy type, value, period seconds)]).
SCALE_UP_RULES = (0, (("Pods", 4, 15), ("Percent", 100, 15)))
SCALE_DOWN_RULES = (300, (("Percent", 100, 15),))
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


def default_pod(pod: Message, *, toleration_seconds: int = DEFAULT_TOLERATION_SECONDS) -> None:
    spec = pod.spec
    default_pod_spec(spec)
    _default(spec, "service_account_name", "default")
    _default(spec, "enable_service_links", True)
    for container in (*spec.init_containers, *spec.containers):
        # A limit without a request requests the limit.
        requests, limits = container.resources.requests, container.resources.limits
        for name, limit in limits.items():
            if name not in requests:
                requests[name] = limit
        if spec.host_network:
            # With the host's network the container port is the host port.
            for port in container.ports:
                if not port.host_port:
                    port.host_port = port.container_port
    _default_tolerations(spec, toleration_seconds)


def default_pod_spec(spec: Message) -> None:
    """The defaults of every pod spec: a Pod's, and a workload's pod template's."""
    _default(spec, "restart_policy", "Always")
    _default(spec, "termination_grace_period_seconds", 30)
    _default(spec, "dns_policy", "ClusterFirst")
    _default(spec, "scheduler_name", "default-scheduler")
    if spec.service_account:
        # The deprecated serviceAccount field still names the account when it is the only one given.
        _default(spec, "service_account_name", spec.service_account)
    for container in (*spec.init_containers, *spec.containers):
        _default_container(container)
    for volume in spec.volumes:
        _default_volume(volume)


def _default_container(container: Message) -> None:
    _default(container, "image_pull_policy", image_pull_policy(container.image))
    _default(container, "termination_message_path", "/dev/termination-log")
    _default(container, "termination_message_policy", "File")
    for port in container.ports:
        _default(port, "protocol", "TCP")
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


def _default_tolerations(spec: Message, seconds: int) -> None:
    for taint in (NOT_READY_TAINT, UNREACHABLE_TAINT):
        if not any(_tolerates_no_execute(toleration, taint) for toleration in spec.tolerations):
            spec.tolerations.add(key=taint, operator="Exists", effect="NoExecute", toleration_seconds=seconds)


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


# ------------------------------------------------------------- workloads


def _default_int_or_string(message: Message, field: str, value: int | str) -> None:
    """Set an IntOrString field (maxSurge, maxUnavailable) unless the client gave it."""
    if message.HasField(field):
        return
    target = getattr(message, field)
    if isinstance(value, int):
        target.int_value = value
    else:
        target.str_value = value


def default_replica_set(rs: Message) -> None:
    _default(rs.spec, "replicas", 1)
    default_pod_spec(rs.spec.template.spec)


def default_deployment(deployment: Message) -> None:
    spec = deployment.spec
    _default(spec, "replicas", 1)
    _default(spec.strategy, "type", "RollingUpdate")
    if spec.strategy.type == "RollingUpdate":
        rolling = spec.strategy.rolling_update
        _default_int_or_string(rolling, "max_unavailable", DEFAULT_MAX_UNAVAILABLE)
        _default_int_or_string(rolling, "max_surge", DEFAULT_MAX_SURGE)
    _default(spec, "revision_history_limit", DEFAULT_REVISION_HISTORY_LIMIT)
    _default(spec, "progress_deadline_seconds", DEFAULT_PROGRESS_DEADLINE_SECONDS)
    default_pod_spec(spec.template.spec)


def default_daemon_set(ds: Message) -> None:
    spec = ds.spec
    _default(spec.update_strategy, "type", "RollingUpdate")
    if spec.update_strategy.type == "RollingUpdate":
        rolling = spec.update_strategy.rolling_update
        _default_int_or_string(rolling, "max_unavailable", 1)
        _default_int_or_string(rolling, "max_surge", 0)
    _default(spec, "revision_history_limit", DEFAULT_REVISION_HISTORY_LIMIT)
    default_pod_spec(spec.template.spec)


def default_stateful_set(sts: Message) -> None:
    spec = sts.spec
    _default(spec, "replicas", 1)
    _default(spec, "pod_management_policy", "OrderedReady")
    strategy = spec.update_strategy
    if not strategy.type:
        # Only an absent strategy gets an empty rollingUpdate, for its partition below.
        strategy.type = "RollingUpdate"
        strategy.rolling_update.SetInParent()
    if strategy.type == "RollingUpdate" and strategy.HasField("rolling_update"):
        _default(strategy.rolling_update, "partition", 0)
    _default(spec, "revision_history_limit", DEFAULT_REVISION_HISTORY_LIMIT)
    default_pod_spec(spec.template.spec)


def default_job(job: Message) -> None:
    spec = job.spec
    # A job that names neither runs one pod to one completion; a parallelism
    # alone leaves completions unset: a work queue, done when any pod succeeds.
    if not spec.HasField("completions") and not spec.HasField("parallelism"):
        spec.completions = 1
    _default(spec, "parallelism", 1)
    _default(spec, "backoff_limit", DEFAULT_BACKOFF_LIMIT)
    _default(spec, "completion_mode", "NonIndexed")
    _default(spec, "suspend", False)
    _default(spec, "manual_selector", False)
    _default(spec, "pod_replacement_policy", "TerminatingOrFailed")
    # A job without labels of its own is labelled like its pods.
    if not job.metadata.labels:
        job.metadata.labels.update(spec.template.metadata.labels)
    default_pod_spec(spec.template.spec)


def default_cron_job(cron_job: Message) -> None:
    spec = cron_job.spec
    _default(spec, "concurrency_policy", "Allow")
    _default(spec, "suspend", False)
    _default(spec, "successful_jobs_history_limit", DEFAULT_SUCCESSFUL_JOBS_HISTORY_LIMIT)
    _default(spec, "failed_jobs_history_limit", DEFAULT_FAILED_JOBS_HISTORY_LIMIT)
    # The job template's own spec gets the Job defaults only when a Job is made from it.
    default_pod_spec(spec.job_template.spec.template.spec)


def default_horizontal_pod_autoscaler(hpa: Message) -> None:
    spec = hpa.spec
    _default(spec, "min_replicas", 1)
    if not spec.metrics:
        metric = spec.metrics.add(type="Resource")
        metric.resource.name = "cpu"
        metric.resource.target.type = "Utilization"
        metric.resource.target.average_utilization = DEFAULT_CPU_UTILIZATION
    if spec.HasField("behavior"):
        # A behavior given at all is completed with the default rules for what it leaves out.
        _default_scaling_rules(spec.behavior.scale_up, SCALE_UP_RULES)
        _default_scaling_rules(spec.behavior.scale_down, SCALE_DOWN_RULES)


def _default_scaling_rules(rules: Message, default: tuple[int, tuple[tuple[str, int, int], ...]]) -> None:
    window, policies = default
    _default(rules, "stabilization_window_seconds", window)
    _default(rules, "select_policy", "Max")
    if not rules.policies:
        for policy_type, value, period in policies:
            rules.policies.add(type=policy_type, value=value, period_seconds=period)


# ---------------------------------------------------------------- Services

DEFAULT_CLIENT_IP_TIMEOUT_SECONDS = 10800


def default_service(service: Message) -> None:
    """core/v1 Service defaults; clusterIP and clusterIPs are kept in step (either may be given)."""
    spec = service.spec
    _default(spec, "type", "ClusterIP")
    _default(spec, "session_affinity", "None")
    if spec.session_affinity == "ClientIP":
        _default(spec.session_affinity_config.client_ip, "timeout_seconds", DEFAULT_CLIENT_IP_TIMEOUT_SECONDS)
    for port in spec.ports:
        _default(port, "protocol", "TCP")
        if not port.target_port.int_value and not port.target_port.str_value:  # unset, 0 or ""
            port.target_port.int_value = port.port
    if spec.type in ("NodePort", "LoadBalancer") or (spec.type == "ClusterIP" and spec.external_ips):
        _default(spec, "external_traffic_policy", "Cluster")
    if spec.type == "LoadBalancer":
        _default(spec, "allocate_load_balancer_node_ports", True)
    if spec.cluster_ip and not spec.cluster_ips:
        spec.cluster_ips.append(spec.cluster_ip)
    elif spec.cluster_ips and not spec.cluster_ip:
        spec.cluster_ip = spec.cluster_ips[0]
    if spec.type != "ExternalName":
        _default(spec, "internal_traffic_policy", "Cluster")
        if not spec.ip_families:
            spec.ip_families.append("IPv4")
        _default(spec, "ip_family_policy", "SingleStack")


def default_endpoints(endpoints: Message) -> None:
    for subset in endpoints.subsets:
        for port in subset.ports:
            _default(port, "protocol", "TCP")


def default_endpoint_slice(slice_: Message) -> None:
    for port in slice_.ports:
        _default(port, "protocol", "TCP")


def default_role_binding(binding: Message) -> None:
    """rbac/v1: User and Group subjects are in the rbac.authorization.k8s.io group."""
    for subject in binding.subjects:
        if subject.kind in ("User", "Group"):
            _default(subject, "api_group", "rbac.authorization.k8s.io")


Defaulter = Callable[[Message], None]

# One defaulter per kind that has defaults.
DEFAULTERS: dict[str, Defaulter] = {
    "Pod": default_pod,
    "Secret": default_secret,
    "Namespace": default_namespace,
    "ReplicaSet": default_replica_set,
    "Deployment": default_deployment,
    "DaemonSet": default_daemon_set,
    "StatefulSet": default_stateful_set,
    "Job": default_job,
    "CronJob": default_cron_job,
    "HorizontalPodAutoscaler": default_horizontal_pod_autoscaler,
    "Service": default_service,
    "Endpoints": default_endpoints,
    "RoleBinding": default_role_binding,
    "ClusterRoleBinding": default_role_binding,
    "EndpointSlice": default_endpoint_slice,
}


def apply_defaults(kind: Kind, obj: Message, *, toleration_seconds: int = DEFAULT_TOLERATION_SECONDS) -> None:
    """Fill in, in place, every default Kubernetes would for ``kind``. toleration_seconds is the one
    a control service may be told (``sampan control --default-toleration-seconds``)."""
    _default(obj, "api_version", kind.api_version)
    _default(obj, "kind", kind.kind)
    defaulter = DEFAULTERS.get(kind.kind)
    if defaulter is default_pod:
        default_pod(obj, toleration_seconds=toleration_seconds)
    elif defaulter is not None:
        defaulter(obj)
