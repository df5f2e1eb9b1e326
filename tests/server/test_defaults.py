"""Defaulting (control/server/defaults.py), one default per test.

Covered: apiVersion and kind from the Kind; pod-level defaults (restart,
grace period, DNS, scheduler, service account, service links); container
defaults (image pull policy by tag, termination message, port protocol,
requests from limits, host ports under hostNetwork); probe and HTTP handler
defaults; the not-ready/unreachable tolerations; volume file modes and the
default volume source; Secret type and stringData; Namespace phase and name
label. Defaults never overwrite what the client set, and applying them twice
changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.message import Message

from control.api import kinds
from control.api.manifest import from_dict, to_dict
from control.server.defaults import DEFAULTERS, apply_defaults, image_pull_policy

POD = kinds.by_kind("Pod")


def defaulted(obj: dict[str, Any]) -> Message:
    kind = kinds.by_api_version_kind(obj["apiVersion"], obj["kind"])
    message = from_dict(kind, obj)
    apply_defaults(kind, message)
    return message


def a_pod(*, containers: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {"containers": containers or [{"name": "web", "image": "nginx:1.25"}], **spec},
    }


def defaulted_container(**fields: Any) -> Message:
    return defaulted(a_pod(containers=[{"name": "web", "image": "nginx:1.25", **fields}])).spec.containers[0]


def test_api_version_and_kind_come_from_the_kind() -> None:
    lease = kinds.by_kind("Lease").new()
    apply_defaults(kinds.by_kind("Lease"), lease)
    assert (lease.api_version, lease.kind) == ("coordination.k8s.io/v1", "Lease")


def test_only_kinds_with_defaults_have_a_defaulter() -> None:
    assert set(DEFAULTERS) == {"Pod", "Secret", "Namespace", "ReplicaSet", "Deployment", "DaemonSet",
                               "StatefulSet", "Job", "CronJob", "HorizontalPodAutoscaler", "Service", "Endpoints",
                               "EndpointSlice", "RoleBinding", "ClusterRoleBinding"}


def test_applying_defaults_twice_changes_nothing() -> None:
    once = defaulted(a_pod(volumes=[{"name": "a", "secret": {"secretName": "s"}}]))
    twice = type(once)()
    twice.CopyFrom(once)
    apply_defaults(POD, twice)
    assert twice == once


# --------------------------------------------------------------------- pod


@pytest.mark.parametrize(("field", "value"), [
    ("restart_policy", "Always"),
    ("termination_grace_period_seconds", 30),
    ("dns_policy", "ClusterFirst"),
    ("scheduler_name", "default-scheduler"),
    ("service_account_name", "default"),
    ("enable_service_links", True),
])
def test_a_pod_spec_field_gets_kubernetes_default(field: str, value: Any) -> None:
    assert getattr(defaulted(a_pod()).spec, field) == value


def test_pod_defaults_do_not_overwrite_set_values() -> None:
    spec = defaulted(a_pod(restartPolicy="Never", terminationGracePeriodSeconds=0, enableServiceLinks=False)).spec
    kept = (spec.restart_policy, spec.termination_grace_period_seconds, spec.enable_service_links)
    assert kept == ("Never", 0, False)


def test_an_empty_string_is_defaulted_as_in_kubernetes() -> None:
    assert defaulted(a_pod(restartPolicy="")).spec.restart_policy == "Always"


def test_the_deprecated_service_account_field_names_the_account() -> None:
    assert defaulted(a_pod(serviceAccount="builder")).spec.service_account_name == "builder"


@pytest.mark.parametrize(("image", "policy"), [
    ("nginx", "Always"),
    ("nginx:latest", "Always"),
    ("registry.example.com:5000/team/nginx", "Always"),
    ("nginx:1.25", "IfNotPresent"),
    ("registry.example.com:5000/team/nginx:1.25", "IfNotPresent"),
    ("nginx@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31", "IfNotPresent"),
])
def test_image_pull_policy_follows_the_tag(image: str, policy: str) -> None:
    assert image_pull_policy(image) == policy
    assert defaulted_container(image=image).image_pull_policy == policy


def test_a_set_image_pull_policy_is_kept() -> None:
    assert defaulted_container(image="nginx", imagePullPolicy="Never").image_pull_policy == "Never"


def test_termination_message_path_and_policy_are_defaulted() -> None:
    container = defaulted_container()
    assert (container.termination_message_path, container.termination_message_policy) == (
        "/dev/termination-log", "File")


def test_init_containers_are_defaulted_too() -> None:
    pod = defaulted(a_pod(initContainers=[{"name": "setup", "image": "busybox"}]))
    assert pod.spec.init_containers[0].image_pull_policy == "Always"


def test_a_port_protocol_defaults_to_tcp() -> None:
    assert defaulted_container(ports=[{"containerPort": 80}]).ports[0].protocol == "TCP"


def test_a_host_network_pod_publishes_its_container_ports_on_the_host() -> None:
    pod = defaulted(a_pod(hostNetwork=True, containers=[{"name": "a", "image": "x", "ports": [{"containerPort": 53}]}]))
    assert pod.spec.containers[0].ports[0].host_port == 53


def test_requests_default_to_limits() -> None:
    container = defaulted_container(resources={"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "250m"}})
    assert dict(container.resources.requests) == {"cpu": "250m", "memory": "1Gi"}


def test_probe_timings_and_thresholds_are_defaulted() -> None:
    probe = defaulted_container(livenessProbe={"exec": {"command": ["true"]}}).liveness_probe
    assert (probe.timeout_seconds, probe.period_seconds, probe.success_threshold, probe.failure_threshold) == (
        1, 10, 1, 3)


def test_a_zero_probe_period_is_defaulted_as_in_kubernetes() -> None:
    probe = defaulted_container(readinessProbe={"tcpSocket": {"port": 80}, "periodSeconds": 0}).readiness_probe
    assert probe.period_seconds == 10


def test_set_probe_timings_are_kept() -> None:
    probe = defaulted_container(startupProbe={"tcpSocket": {"port": 80}, "failureThreshold": 30}).startup_probe
    assert probe.failure_threshold == 30


def test_an_http_probe_defaults_to_path_slash_and_scheme_http() -> None:
    action = defaulted_container(livenessProbe={"httpGet": {"port": 8080}}).liveness_probe.http_get
    assert (action.path, action.scheme) == ("/", "HTTP")


def test_an_http_lifecycle_handler_is_defaulted_like_a_probe() -> None:
    action = defaulted_container(lifecycle={"preStop": {"httpGet": {"port": 8080}}}).lifecycle.pre_stop.http_get
    assert (action.path, action.scheme) == ("/", "HTTP")


def test_a_field_ref_api_version_defaults_to_v1() -> None:
    env = defaulted_container(env=[{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]).env
    assert env[0].value_from.field_ref.api_version == "v1"


def no_execute(key: str, seconds: int) -> dict[str, Any]:
    return {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}


def test_not_ready_and_unreachable_tolerations_are_added() -> None:
    tolerations = to_dict(defaulted(a_pod()))["spec"]["tolerations"]
    assert tolerations == [no_execute("node.kubernetes.io/not-ready", 300),
                           no_execute("node.kubernetes.io/unreachable", 300)]


def test_an_existing_unreachable_toleration_is_kept_and_not_duplicated() -> None:
    mine = no_execute("node.kubernetes.io/unreachable", 10)
    tolerations = to_dict(defaulted(a_pod(tolerations=[mine])))["spec"]["tolerations"]
    assert tolerations == [mine, no_execute("node.kubernetes.io/not-ready", 300)]


def test_a_toleration_of_everything_needs_no_defaults() -> None:
    tolerations = to_dict(defaulted(a_pod(tolerations=[{"operator": "Exists"}])))["spec"]["tolerations"]
    assert tolerations == [{"operator": "Exists"}]


@pytest.mark.parametrize(("source", "field"), [
    ({"secret": {"secretName": "s"}}, "secret"),
    ({"configMap": {"name": "c"}}, "config_map"),
    ({"downwardAPI": {"items": []}}, "downward_api"),
    ({"projected": {"sources": []}}, "projected"),
])
def test_file_volumes_default_to_mode_0644(source: dict[str, Any], field: str) -> None:
    volume = defaulted(a_pod(volumes=[{"name": "a", **source}])).spec.volumes[0]
    assert getattr(volume, field).default_mode == 420


def test_a_set_default_mode_is_kept() -> None:
    pod = defaulted(a_pod(volumes=[{"name": "a", "secret": {"secretName": "s", "defaultMode": 0o400}}]))
    assert pod.spec.volumes[0].secret.default_mode == 0o400


def test_an_empty_dir_gets_nothing() -> None:
    volume = defaulted(a_pod(volumes=[{"name": "a", "emptyDir": {}}])).spec.volumes[0]
    assert to_dict(volume) == {"name": "a", "emptyDir": {}}


def test_a_volume_without_a_source_becomes_an_empty_dir() -> None:
    volume = defaulted(a_pod(volumes=[{"name": "a"}])).spec.volumes[0]
    assert volume.HasField("empty_dir")


# ------------------------------------------------------ Secret and Namespace


def test_a_secret_type_defaults_to_opaque() -> None:
    assert defaulted({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}).type == "Opaque"


def test_string_data_is_merged_into_data_and_cleared() -> None:
    secret = defaulted({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mysecret"},
                        "data": {"username": "YWRtaW4=", "password": "MWYyZDFlMmU2N2Rm"},
                        "stringData": {"username": "administrator"}})
    assert dict(secret.data) == {"username": b"administrator", "password": b"1f2d1e2e67df"}
    assert not secret.string_data


def test_a_namespace_starts_active() -> None:
    assert defaulted({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}).status.phase == "Active"


def test_a_namespace_is_labelled_with_its_name() -> None:
    namespace = defaulted({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    assert namespace.metadata.labels["kubernetes.io/metadata.name"] == "team"


def test_a_namespace_gets_no_finalizers() -> None:
    assert not defaulted({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}).spec.finalizers
