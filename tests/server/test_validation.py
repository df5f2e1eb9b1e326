"""Server-side validation (control/server/validation/), rule by rule.

Every rule has a failing case, checked against Kubernetes' message, and a
passing case. Covered: object metadata for every kind (names, namespaces,
labels, annotations, finalizers, owner references, immutable fields on
update); pods (containers, sidecar restart policies, ports, env, envFrom,
resources, volume mounts, volumes, probes, lifecycle handlers, policies, the
OS, seccomp profiles, tolerations, affinity, node selector, and the narrow set
of fields a pod update may change, binding included); ConfigMaps and Secrets
(keys, size, immutability, types); Nodes (taints, pod CIDRs); Events; Leases;
Namespaces. The real manifests under tests/api/manifests/ are valid, before
and after defaulting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from control.api import kinds
from control.api.manifest import from_dict, kind_of, load_documents, to_message
from control.server.defaults import apply_defaults
from control.server.validation import VALIDATORS, validate

MANIFESTS = Path(__file__).parent.parent / "api" / "manifests"
SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
QUALIFIED_NAME_PART_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
UPDATE_FORBIDDEN = (
    "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`, "
    "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to "
    "existing tolerations), `spec.terminationGracePeriodSeconds`"
)


def errors_of(obj: dict[str, Any], *, old: dict[str, Any] | None = None) -> list[str]:
    kind = kind_of(obj)
    previous = None if old is None else from_dict(kind, old)
    return [str(error) for error in validate(kind, from_dict(kind, obj), old=previous)]


def a_container(**fields: Any) -> dict[str, Any]:
    return {"name": "web", "image": "nginx:1.25", **fields}


def a_pod(*, containers: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"containers": [a_container()] if containers is None else containers, **spec},
    }


def container_errors(**fields: Any) -> list[str]:
    return errors_of(a_pod(containers=[a_container(**fields)]))


def with_metadata(obj: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {**obj, "metadata": {**obj["metadata"], **metadata}}


def manifest_documents() -> list[Any]:
    return [
        pytest.param(document, id=f"{path.name}[{i}]")
        for path in sorted(MANIFESTS.iterdir())
        for i, document in enumerate(load_documents(path.read_text()))
    ]


def test_every_kind_has_a_validator() -> None:
    assert set(VALIDATORS) == {kind.kind for kind in kinds.all_kinds()}


@pytest.mark.parametrize("document", manifest_documents())
def test_real_manifests_are_valid_before_and_after_defaulting(document: dict[str, Any]) -> None:
    message = to_message(document)
    kind = kind_of(document)
    assert validate(kind, message) == []
    apply_defaults(kind, message)
    assert validate(kind, message) == []


# ---------------------------------------------------------------- metadata


def test_a_name_is_required() -> None:
    pod = a_pod()
    del pod["metadata"]["name"]
    assert errors_of(pod) == ["metadata.name: Required value: name or generateName is required"]


def test_generate_name_stands_in_for_a_name_on_create() -> None:
    pod = a_pod()
    pod["metadata"] = {"generateName": "web-", "namespace": "default"}
    assert errors_of(pod) == []


def test_generate_name_does_not_stand_in_for_a_name_on_update() -> None:
    pod = a_pod()
    nameless = {**pod, "metadata": {"generateName": "web-", "namespace": "default"}}
    assert "metadata.name: Required value: name or generateName is required" in errors_of(nameless, old=pod)


def test_an_invalid_generate_name_is_rejected() -> None:
    pod = {**a_pod(), "metadata": {"generateName": "Web-", "namespace": "default"}}
    assert errors_of(pod) == [f'metadata.generateName: Invalid value: "Web-": {SUBDOMAIN_MESSAGE}']


def test_a_name_must_be_a_dns_subdomain() -> None:
    assert errors_of(with_metadata(a_pod(), name="Web")) == [
        f'metadata.name: Invalid value: "Web": {SUBDOMAIN_MESSAGE}']


def test_a_dotted_name_is_a_valid_subdomain() -> None:
    assert errors_of(with_metadata(a_pod(), name="web.v2")) == []


def test_a_name_longer_than_253_characters_is_rejected() -> None:
    assert errors_of(with_metadata(a_pod(), name="a" * 254)) == [
        f'metadata.name: Invalid value: "{"a" * 254}": must be no more than 253 characters']


def test_a_namespace_name_must_be_a_dns_label() -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team.a"}}
    assert errors_of(namespace) == ['metadata.name: Invalid value: "team.a": must not contain dots']


def test_a_namespace_name_with_capitals_gets_the_label_message() -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Team"}}
    assert errors_of(namespace) == [f'metadata.name: Invalid value: "Team": {LABEL_MESSAGE}']


def test_a_namespace_name_of_63_characters_is_valid() -> None:
    assert errors_of({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a" * 63}}) == []


def test_the_namespace_of_an_object_must_be_a_dns_label() -> None:
    assert errors_of(with_metadata(a_pod(), namespace="my.ns")) == [
        'metadata.namespace: Invalid value: "my.ns": must not contain dots']


def test_a_cluster_scoped_object_may_not_have_a_namespace() -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "namespace": "default"}}
    assert errors_of(node) == ["metadata.namespace: Forbidden: not allowed on this type"]


def test_label_keys_must_be_qualified_names() -> None:
    pod = with_metadata(a_pod(), labels={"-app": "web"})
    assert errors_of(pod) == [f'metadata.labels: Invalid value: "-app": {QUALIFIED_NAME_PART_MESSAGE}']


def test_a_label_key_prefix_must_be_a_dns_subdomain() -> None:
    pod = with_metadata(a_pod(), labels={"Example.com/app": "web"})
    assert errors_of(pod) == [f'metadata.labels: Invalid value: "Example.com/app": prefix part {SUBDOMAIN_MESSAGE}']


def test_a_label_key_name_part_is_limited_to_63_characters() -> None:
    key = "example.com/" + "a" * 64
    assert errors_of(with_metadata(a_pod(), labels={key: "x"})) == [
        f'metadata.labels: Invalid value: "{key}": name part must be no more than 63 characters']


def test_label_values_must_be_valid() -> None:
    errors = errors_of(with_metadata(a_pod(), labels={"app": "web server"}))
    assert len(errors) == 1 and errors[0].startswith(
        'metadata.labels: Invalid value: "web server": a valid label must be an empty string or consist of')


def test_valid_labels_pass_including_an_empty_value() -> None:
    labels = {"app.kubernetes.io/name": "web", "tier": "", "Version_2.x": "v1.2_3"}
    assert errors_of(with_metadata(a_pod(), labels=labels)) == []


def test_annotation_keys_must_be_qualified_names() -> None:
    errors = errors_of(with_metadata(a_pod(), annotations={"bad key": "x"}))
    assert errors == [f'metadata.annotations: Invalid value: "bad key": {QUALIFIED_NAME_PART_MESSAGE}']


def test_annotation_keys_ignore_case() -> None:
    assert errors_of(with_metadata(a_pod(), annotations={"Example.COM/Note": "anything at all, even spaces"})) == []


def test_annotations_are_limited_to_256_kib_in_total() -> None:
    pod = with_metadata(a_pod(), annotations={"a": "x" * 200_000, "b": "x" * 100_000})
    assert errors_of(pod) == ["metadata.annotations: Too long: must have at most 262144 bytes"]


def test_finalizers_must_be_qualified_names() -> None:
    errors = errors_of(with_metadata(a_pod(), finalizers=["example.com/a b"]))
    assert errors == [f'metadata.finalizers: Invalid value: "example.com/a b": {QUALIFIED_NAME_PART_MESSAGE}']


def test_an_unqualified_finalizer_must_be_a_standard_one() -> None:
    assert errors_of(with_metadata(a_pod(), finalizers=["cleanup"])) == [
        'metadata.finalizers: Invalid value: "cleanup": name is neither a standard finalizer name '
        "nor is it fully qualified"]


def test_standard_and_qualified_finalizers_pass() -> None:
    assert errors_of(with_metadata(a_pod(), finalizers=["kubernetes", "example.com/cleanup"])) == []


def test_an_owner_reference_needs_api_version_kind_name_and_uid() -> None:
    assert errors_of(with_metadata(a_pod(), ownerReferences=[{}])) == [
        'metadata.ownerReferences[0].apiVersion: Invalid value: "": version must not be empty',
        'metadata.ownerReferences[0].kind: Invalid value: "": must not be empty',
        'metadata.ownerReferences[0].name: Invalid value: "": must not be empty',
        'metadata.ownerReferences[0].uid: Invalid value: "": must not be empty',
    ]


def test_only_one_owner_reference_may_be_the_controller() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": True}
    pod = with_metadata(a_pod(), ownerReferences=[owner, {**owner, "name": "b", "uid": "2"}])
    assert errors_of(pod) == [
        "metadata.ownerReferences: Invalid value: Only one reference can have Controller set to true"]


def test_a_complete_owner_reference_passes() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": True}
    assert errors_of(with_metadata(a_pod(), ownerReferences=[owner])) == []


@pytest.mark.parametrize(("field", "old_value", "new_value"), [
    ("name", "web", "web2"),
    ("namespace", "default", "other"),
    ("uid", "1", "2"),
    ("creationTimestamp", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"),
])
def test_identity_metadata_is_immutable(field: str, old_value: str, new_value: str) -> None:
    old = with_metadata(a_pod(), **{field: old_value})
    new = with_metadata(a_pod(), **{field: new_value})
    assert f'metadata.{field}: Invalid value: "{new_value}": field is immutable' in errors_of(new, old=old)


def test_labels_and_annotations_may_change_on_update() -> None:
    old = with_metadata(a_pod(), uid="1", labels={"a": "1"})
    new = with_metadata(a_pod(), uid="1", labels={"a": "2"}, annotations={"note": "x"})
    assert errors_of(new, old=old) == []


# --------------------------------------------------------------- pod: containers


def test_a_pod_needs_a_container() -> None:
    assert errors_of(a_pod(containers=[])) == ["spec.containers: Required value"]


def test_a_container_name_is_required() -> None:
    assert errors_of(a_pod(containers=[{"image": "nginx"}])) == ["spec.containers[0].name: Required value"]


def test_a_container_name_must_be_a_dns_label() -> None:
    assert container_errors(name="Web") == [f'spec.containers[0].name: Invalid value: "Web": {LABEL_MESSAGE}']


def test_container_names_are_unique_across_init_and_regular_containers() -> None:
    pod = a_pod(initContainers=[a_container(name="setup"), a_container(name="web")])
    assert errors_of(pod) == ['spec.initContainers[1].name: Duplicate value: "web"']


def test_distinct_container_names_pass() -> None:
    assert errors_of(a_pod(initContainers=[a_container(name="setup")])) == []


def test_a_regular_container_may_not_set_a_restart_policy() -> None:
    assert container_errors(restartPolicy="Always") == [
        "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"]


@pytest.mark.parametrize("policy", ["Never", "OnFailure", ""])
def test_an_init_container_restart_policy_may_only_be_always(policy: str) -> None:
    pod = a_pod(initContainers=[a_container(name="setup", restartPolicy=policy)])
    assert errors_of(pod) == [
        f'spec.initContainers[0].restartPolicy: Unsupported value: "{policy}": supported values: "Always"']


def test_a_sidecar_init_container_with_restart_policy_always_passes() -> None:
    assert errors_of(a_pod(initContainers=[a_container(name="proxy", restartPolicy="Always")])) == []


def test_an_image_is_required() -> None:
    assert errors_of(a_pod(containers=[{"name": "web"}])) == ["spec.containers[0].image: Required value"]


def test_an_image_may_not_have_surrounding_whitespace() -> None:
    assert container_errors(image=" nginx") == [
        'spec.containers[0].image: Invalid value: " nginx": must not have leading or trailing whitespace']


def test_a_container_port_is_required() -> None:
    assert container_errors(ports=[{"name": "http"}]) == ["spec.containers[0].ports[0].containerPort: Required value"]


@pytest.mark.parametrize("port", [65536, -1])
def test_a_container_port_must_be_in_range(port: int) -> None:
    assert container_errors(ports=[{"containerPort": port}]) == [
        f"spec.containers[0].ports[0].containerPort: Invalid value: {port}: must be between 1 and 65535, inclusive"]


def test_a_host_port_must_be_in_range() -> None:
    assert container_errors(ports=[{"containerPort": 80, "hostPort": 70000}]) == [
        "spec.containers[0].ports[0].hostPort: Invalid value: 70000: must be between 1 and 65535, inclusive"]


def test_a_host_port_of_zero_means_none() -> None:
    assert container_errors(ports=[{"containerPort": 80, "hostPort": 0}]) == []


def test_a_port_protocol_must_be_tcp_udp_or_sctp() -> None:
    assert container_errors(ports=[{"containerPort": 80, "protocol": "HTTP"}]) == [
        'spec.containers[0].ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"']


@pytest.mark.parametrize(("name", "message"), [
    ("http-metrics-port", "must be no more than 15 characters"),
    ("HTTP", "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"),
    ("8080", "must contain at least one letter (a-z)"),
    ("a--b", "must not contain consecutive hyphens"),
    ("-http", "must not begin or end with a hyphen"),
])
def test_a_port_name_must_be_an_iana_service_name(name: str, message: str) -> None:
    assert f'spec.containers[0].ports[0].name: Invalid value: "{name}": {message}' in container_errors(
        ports=[{"name": name, "containerPort": 80}])


def test_port_names_are_unique_within_a_container() -> None:
    ports = [{"name": "http", "containerPort": 80}, {"name": "http", "containerPort": 81}]
    assert container_errors(ports=ports) == ['spec.containers[0].ports[1].name: Duplicate value: "http"']


def test_valid_ports_pass() -> None:
    ports = [{"name": "http", "containerPort": 80, "protocol": "TCP"},
             {"name": "dns-udp", "containerPort": 53, "hostPort": 53, "protocol": "UDP"}]
    assert container_errors(ports=ports) == []


# --------------------------------------------------------------- pod: env


def test_an_env_name_is_required() -> None:
    assert container_errors(env=[{"value": "x"}]) == ["spec.containers[0].env[0].name: Required value"]


def test_an_env_name_may_not_contain_an_equals_sign() -> None:
    assert container_errors(env=[{"name": "A=B", "value": "x"}]) == [
        'spec.containers[0].env[0].name: Invalid value: "A=B": a valid environment variable name must consist '
        "only of printable ASCII characters other than '='"]


def test_an_env_name_may_use_any_other_printable_character() -> None:
    assert container_errors(env=[{"name": "my.var-1 (x)", "value": "x"}]) == []


def test_value_from_needs_a_source() -> None:
    assert container_errors(env=[{"name": "A", "valueFrom": {}}]) == [
        'spec.containers[0].env[0].valueFrom: Invalid value: "": must specify one of: `fieldRef`, '
        "`resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"]


def test_value_from_may_not_come_with_a_value() -> None:
    env = [{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    assert container_errors(env=env) == [
        'spec.containers[0].env[0].valueFrom: Invalid value: "": may not be specified when `value` is not empty']


def test_value_from_takes_exactly_one_source() -> None:
    source = {"fieldRef": {"fieldPath": "metadata.name"}, "secretKeyRef": {"name": "s", "key": "k"}}
    assert container_errors(env=[{"name": "A", "valueFrom": source}]) == [
        'spec.containers[0].env[0].valueFrom: Invalid value: "": may not have more than one field specified at a time']


def test_a_field_ref_must_name_a_supported_field() -> None:
    errors = container_errors(env=[{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.hostname"}}}])
    assert len(errors) == 1 and errors[0].startswith(
        'spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: "spec.hostname": supported values:')


def test_a_field_ref_may_subscript_labels_and_annotations() -> None:
    env = [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app.kubernetes.io/name']"}}}]
    assert container_errors(env=env) == []


def test_a_config_map_key_ref_needs_a_valid_key() -> None:
    env = [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "config", "key": "a/b"}}}]
    errors = container_errors(env=env)
    assert len(errors) == 1 and errors[0].startswith(
        'spec.containers[0].env[0].valueFrom.configMapKeyRef.key: Invalid value: "a/b": a valid config key must')


def test_a_secret_key_ref_needs_a_name_and_key() -> None:
    assert container_errors(env=[{"name": "A", "valueFrom": {"secretKeyRef": {}}}]) == [
        "spec.containers[0].env[0].valueFrom.secretKeyRef.name: Required value",
        "spec.containers[0].env[0].valueFrom.secretKeyRef.key: Required value",
    ]


def test_a_resource_field_ref_must_name_a_supported_resource() -> None:
    env = [{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}]
    assert container_errors(env=env)[0].startswith(
        'spec.containers[0].env[0].valueFrom.resourceFieldRef.resource: Unsupported value: "limits.gpu"')


def test_a_cpu_resource_field_ref_divisor_must_be_1_or_1m() -> None:
    env = [{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1k"}}}]
    assert container_errors(env=env) == [
        'spec.containers[0].env[0].valueFrom.resourceFieldRef.divisor: Invalid value: "1k": '
        "only divisor's values 1m, 1 are supported with the cpu resource"]


def test_env_sources_of_every_kind_pass() -> None:
    env = [
        {"name": "A", "value": "x"},
        {"name": "B", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
        {"name": "C", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        {"name": "D", "valueFrom": {"configMapKeyRef": {"name": "config", "key": "log.level"}}},
        {"name": "E", "valueFrom": {"secretKeyRef": {"name": "secret", "key": "password"}}},
    ]
    assert container_errors(env=env) == []


def test_env_from_needs_a_source() -> None:
    assert container_errors(envFrom=[{"prefix": "X_"}]) == [
        'spec.containers[0].envFrom[0]: Invalid value: "": must specify one of: `configMapRef` or `secretRef`']


def test_env_from_takes_one_source() -> None:
    assert container_errors(envFrom=[{"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]) == [
        'spec.containers[0].envFrom[0]: Invalid value: "": may not have more than one field specified at a time']


def test_env_from_with_one_named_source_passes() -> None:
    assert container_errors(envFrom=[{"prefix": "DB_", "secretRef": {"name": "db"}}]) == []


# --------------------------------------------------------------- pod: resources


def test_a_resource_quantity_must_parse() -> None:
    assert container_errors(resources={"limits": {"memory": "64MB"}}) == [
        'spec.containers[0].resources.limits[memory]: Invalid value: "64MB": quantities must match the regular '
        "expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"]


def test_a_resource_quantity_may_not_be_negative() -> None:
    assert container_errors(resources={"requests": {"cpu": "-1"}}) == [
        'spec.containers[0].resources.requests[cpu]: Invalid value: "-1": must be greater than or equal to 0']


def test_a_request_may_not_exceed_its_limit() -> None:
    assert container_errors(resources={"limits": {"cpu": "1"}, "requests": {"cpu": "1500m"}}) == [
        'spec.containers[0].resources.requests: Invalid value: "1500m": must be less than or equal to cpu limit of 1']


def test_a_request_equal_to_its_limit_passes() -> None:
    assert container_errors(resources={"limits": {"memory": "1Gi"}, "requests": {"memory": "1024Mi"}}) == []


def test_a_resource_name_must_be_standard_or_qualified() -> None:
    assert container_errors(resources={"limits": {"gpu": "1"}}) == [
        'spec.containers[0].resources.limits[gpu]: Invalid value: "gpu": must be a standard resource for containers']


def test_an_extended_resource_request_must_equal_its_limit() -> None:
    assert container_errors(resources={"limits": {"example.com/gpu": "2"}, "requests": {"example.com/gpu": "1"}}) == [
        'spec.containers[0].resources.requests: Invalid value: "1": must be equal to example.com/gpu limit of 2']


def test_an_extended_resource_must_be_a_whole_number() -> None:
    assert container_errors(resources={"limits": {"example.com/gpu": "500m"}}) == [
        'spec.containers[0].resources.limits[example.com/gpu]: Invalid value: "500m": must be an integer']


def test_standard_hugepage_and_extended_resources_pass() -> None:
    resources = {"limits": {"cpu": "2", "memory": "1Gi", "ephemeral-storage": "10Gi", "hugepages-2Mi": "100Mi",
                            "example.com/gpu": "1"},
                 "requests": {"cpu": "500m", "memory": "512Mi", "example.com/gpu": "1"}}
    assert container_errors(resources=resources) == []


# --------------------------------------------------------------- pod: volumes


def test_a_volume_mount_must_name_a_volume() -> None:
    assert container_errors(volumeMounts=[{"name": "data", "mountPath": "/data"}]) == [
        'spec.containers[0].volumeMounts[0].name: Not found: "data"']


def test_a_volume_mount_needs_a_mount_path() -> None:
    pod = a_pod(containers=[a_container(volumeMounts=[{"name": "data"}])], volumes=[{"name": "data", "emptyDir": {}}])
    assert errors_of(pod) == ["spec.containers[0].volumeMounts[0].mountPath: Required value"]


def test_mount_paths_are_unique_within_a_container() -> None:
    mounts = [{"name": "a", "mountPath": "/data"}, {"name": "b", "mountPath": "/data"}]
    pod = a_pod(containers=[a_container(volumeMounts=mounts)],
                volumes=[{"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {}}])
    assert errors_of(pod) == ['spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/data": must be unique']


def test_a_sub_path_may_not_climb_out_of_the_volume() -> None:
    pod = a_pod(containers=[a_container(volumeMounts=[{"name": "a", "mountPath": "/x", "subPath": "../etc"}])],
                volumes=[{"name": "a", "emptyDir": {}}])
    assert errors_of(pod) == [
        "spec.containers[0].volumeMounts[0].subPath: Invalid value: \"../etc\": must not contain '..'"]


def test_volume_names_are_unique() -> None:
    pod = a_pod(volumes=[{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}}])
    assert errors_of(pod) == ['spec.volumes[1].name: Duplicate value: "a"']


def test_a_volume_name_must_be_a_dns_label() -> None:
    assert errors_of(a_pod(volumes=[{"name": "my_data", "emptyDir": {}}])) == [
        f'spec.volumes[0].name: Invalid value: "my_data": {LABEL_MESSAGE}']


def test_a_volume_needs_a_source() -> None:
    assert errors_of(a_pod(volumes=[{"name": "a"}])) == ["spec.volumes[0]: Required value: must specify a volume type"]


def test_a_volume_has_exactly_one_source() -> None:
    volume = {"name": "a", "emptyDir": {}, "hostPath": {"path": "/tmp"}}
    assert errors_of(a_pod(volumes=[volume])) == [
        "spec.volumes[0].emptyDir: Forbidden: may not specify more than 1 volume type"]


def test_a_secret_volume_needs_a_secret_name() -> None:
    assert errors_of(a_pod(volumes=[{"name": "a", "secret": {}}])) == [
        "spec.volumes[0].secret.secretName: Required value"]


def test_a_volume_default_mode_is_at_most_0777() -> None:
    assert errors_of(a_pod(volumes=[{"name": "a", "configMap": {"name": "c", "defaultMode": 0o1000}}])) == [
        "spec.volumes[0].configMap.defaultMode: Invalid value: 512: must be a number between 0 and 0777 (octal), "
        "both inclusive"]


def test_an_nfs_path_must_be_absolute() -> None:
    assert errors_of(a_pod(volumes=[{"name": "a", "nfs": {"server": "nfs", "path": "exports"}}])) == [
        'spec.volumes[0].nfs.path: Invalid value: "exports": must be an absolute path']


def test_a_projected_source_has_exactly_one_kind() -> None:
    volume = {"name": "a", "projected": {"sources": [{}]}}
    assert errors_of(a_pod(volumes=[volume])) == [
        "spec.volumes[0].projected.sources[0]: Required value: must specify exactly 1 volume type"]


def test_volumes_of_every_kind_pass() -> None:
    volumes = [
        {"name": "a", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "b", "hostPath": {"path": "/var/log", "type": "Directory"}},
        {"name": "c", "secret": {"secretName": "s", "defaultMode": 0o400, "items": [{"key": "k", "path": "k.txt"}]}},
        {"name": "d", "configMap": {"name": "c"}},
        {"name": "e", "persistentVolumeClaim": {"claimName": "pvc"}},
        {"name": "f", "nfs": {"server": "nfs", "path": "/exports"}},
        {"name": "g", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"name": "h", "projected": {"sources": [{"serviceAccountToken": {"path": "t", "expirationSeconds": 3600}}]}},
    ]
    assert errors_of(a_pod(volumes=volumes)) == []


# --------------------------------------------------------------- pod: probes


def test_a_probe_needs_a_handler() -> None:
    assert container_errors(livenessProbe={"periodSeconds": 5}) == [
        "spec.containers[0].livenessProbe: Required value: must specify a handler type"]


def test_a_probe_has_exactly_one_handler() -> None:
    probe = {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}
    assert container_errors(readinessProbe=probe) == [
        "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type"]


def test_probe_period_and_thresholds_must_be_at_least_one() -> None:
    probe = {"tcpSocket": {"port": 80}, "periodSeconds": 0, "failureThreshold": 0}
    assert container_errors(readinessProbe=probe) == [
        "spec.containers[0].readinessProbe.periodSeconds: Invalid value: 0: must be greater than or equal to 1",
        "spec.containers[0].readinessProbe.failureThreshold: Invalid value: 0: must be greater than or equal to 1",
    ]


def test_a_liveness_probe_succeeds_after_one_success() -> None:
    assert container_errors(livenessProbe={"tcpSocket": {"port": 80}, "successThreshold": 2}) == [
        "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"]


def test_a_readiness_probe_may_need_several_successes() -> None:
    assert container_errors(readinessProbe={"tcpSocket": {"port": 80}, "successThreshold": 2}) == []


def test_a_probe_port_number_must_be_in_range() -> None:
    assert container_errors(livenessProbe={"httpGet": {"path": "/", "port": 0}}) == [
        "spec.containers[0].livenessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive"]


def test_a_probe_port_name_must_be_an_iana_service_name() -> None:
    assert container_errors(livenessProbe={"tcpSocket": {"port": "HTTP"}}) == [
        'spec.containers[0].livenessProbe.tcpSocket.port: Invalid value: "HTTP": must contain only alpha-numeric '
        "characters (a-z, 0-9), and hyphens (-)",
        'spec.containers[0].livenessProbe.tcpSocket.port: Invalid value: "HTTP": '
        "must contain at least one letter (a-z)",
    ]


def test_an_http_probe_scheme_is_http_or_https() -> None:
    assert container_errors(livenessProbe={"httpGet": {"port": 80, "scheme": "FTP"}}) == [
        'spec.containers[0].livenessProbe.httpGet.scheme: Unsupported value: "FTP": supported values: "HTTP", "HTTPS"']


def test_an_exec_probe_needs_a_command() -> None:
    assert container_errors(startupProbe={"exec": {}}) == [
        "spec.containers[0].startupProbe.exec.command: Required value"]


def test_init_containers_may_not_have_probes() -> None:
    pod = a_pod(initContainers=[a_container(name="setup", livenessProbe={"exec": {"command": ["true"]}})])
    assert errors_of(pod) == ["spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers"]


def test_probes_of_every_kind_pass() -> None:
    errors = container_errors(
        livenessProbe={"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTPS"}, "periodSeconds": 3},
        readinessProbe={"tcpSocket": {"port": 8080}, "initialDelaySeconds": 0},
        startupProbe={"grpc": {"port": 9000}, "failureThreshold": 30},
    )
    assert errors == []


def test_a_lifecycle_handler_needs_an_action() -> None:
    assert container_errors(lifecycle={"preStop": {}}) == [
        "spec.containers[0].lifecycle.preStop: Required value: must specify a handler type"]


def test_a_pre_stop_sleep_may_not_outlast_the_grace_period() -> None:
    assert container_errors(lifecycle={"preStop": {"sleep": {"seconds": 31}}}) == [
        "spec.containers[0].lifecycle.preStop.sleep.seconds: Invalid value: 31: must be non-negative and less than "
        "terminationGracePeriodSeconds (30)"]


def test_a_pre_stop_sleep_within_the_grace_period_passes() -> None:
    assert container_errors(lifecycle={"preStop": {"sleep": {"seconds": 5}}}) == []


# --------------------------------------------------------------- pod: policies


def test_restart_policy_must_be_known() -> None:
    assert errors_of(a_pod(restartPolicy="Sometimes")) == [
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"']


@pytest.mark.parametrize("policy", ["Always", "OnFailure", "Never"])
def test_known_restart_policies_pass(policy: str) -> None:
    assert errors_of(a_pod(restartPolicy=policy)) == []


def test_dns_policy_must_be_known() -> None:
    assert errors_of(a_pod(dnsPolicy="Google")) == [
        'spec.dnsPolicy: Unsupported value: "Google": supported values: "ClusterFirstWithHostNet", "ClusterFirst", '
        '"Default", "None"']


def test_dns_policy_none_needs_a_dns_config() -> None:
    assert errors_of(a_pod(dnsPolicy="None")) == [
        "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"]


def test_dns_policy_none_with_a_nameserver_passes() -> None:
    assert errors_of(a_pod(dnsPolicy="None", dnsConfig={"nameservers": ["192.0.2.1"]})) == []


def test_termination_grace_period_may_not_be_negative() -> None:
    assert errors_of(a_pod(terminationGracePeriodSeconds=-1)) == [
        "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0"]


def test_a_termination_grace_period_of_zero_passes() -> None:
    assert errors_of(a_pod(terminationGracePeriodSeconds=0)) == []


def test_active_deadline_must_be_positive() -> None:
    assert errors_of(a_pod(activeDeadlineSeconds=0)) == [
        "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"]


def test_node_selector_keys_must_be_qualified_names() -> None:
    assert errors_of(a_pod(nodeSelector={"disk type": "ssd"})) == [
        f'spec.nodeSelector: Invalid value: "disk type": {QUALIFIED_NAME_PART_MESSAGE}']


def test_a_valid_node_selector_passes() -> None:
    assert errors_of(a_pod(nodeSelector={"kubernetes.io/os": "linux", "disktype": "ssd"})) == []


def test_the_pod_os_must_be_linux_or_windows() -> None:
    assert errors_of(a_pod(os={"name": "plan9"})) == [
        'spec.os.name: Unsupported value: "plan9": supported values: "linux", "windows"']


def test_the_pod_os_needs_a_name_when_given() -> None:
    assert errors_of(a_pod(os={})) == ["spec.os.name: Required value"]


@pytest.mark.parametrize("name", ["linux", "windows"])
def test_a_linux_or_windows_pod_os_passes(name: str) -> None:
    assert errors_of(a_pod(os={"name": name})) == []


# --------------------------------------------------------------- pod: security contexts


def test_a_seccomp_profile_type_must_be_known() -> None:
    assert errors_of(a_pod(securityContext={"seccompProfile": {"type": "Strict"}})) == [
        'spec.securityContext.seccompProfile.type: Unsupported value: "Strict": supported values: "Localhost", '
        '"RuntimeDefault", "Unconfined"']


def test_a_seccomp_profile_needs_a_type() -> None:
    assert errors_of(a_pod(securityContext={"seccompProfile": {}})) == [
        "spec.securityContext.seccompProfile.type: Required value: type is required when seccompProfile is set"]


def test_a_localhost_seccomp_profile_needs_a_profile_file() -> None:
    assert container_errors(securityContext={"seccompProfile": {"type": "Localhost"}}) == [
        "spec.containers[0].securityContext.seccompProfile.localhostProfile: Required value: must be set when "
        "seccomp type is Localhost"]


@pytest.mark.parametrize("profile_type", ["RuntimeDefault", "Unconfined"])
def test_only_a_localhost_seccomp_profile_names_a_profile_file(profile_type: str) -> None:
    profile = {"type": profile_type, "localhostProfile": "profiles/audit.json"}
    assert container_errors(securityContext={"seccompProfile": profile}) == [
        'spec.containers[0].securityContext.seccompProfile.localhostProfile: Invalid value: "profiles/audit.json": '
        "can only be set when seccomp type is Localhost"]


def test_a_localhost_seccomp_profile_file_stays_under_the_seccomp_directory() -> None:
    profile = {"type": "Localhost", "localhostProfile": "../audit.json"}
    assert errors_of(a_pod(securityContext={"seccompProfile": profile})) == [
        'spec.securityContext.seccompProfile.localhostProfile: Invalid value: "../audit.json": must not contain \'..\'']


def test_valid_seccomp_profiles_pass() -> None:
    pod = a_pod(
        securityContext={"seccompProfile": {"type": "RuntimeDefault"}},
        containers=[a_container(securityContext={
            "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"}})],
    )
    assert errors_of(pod) == []


# --------------------------------------------------------------- pod: tolerations


def test_a_toleration_operator_must_be_exists_or_equal() -> None:
    assert errors_of(a_pod(tolerations=[{"key": "a", "operator": "In", "value": "b"}])) == [
        'spec.tolerations[0].operator: Unsupported value: "In": supported values: "Equal", "Exists"']


def test_a_toleration_effect_must_be_known() -> None:
    assert errors_of(a_pod(tolerations=[{"key": "a", "operator": "Exists", "effect": "NoRun"}])) == [
        'spec.tolerations[0].effect: Unsupported value: "NoRun": supported values: "NoExecute", "NoSchedule", '
        '"PreferNoSchedule"']


def test_an_exists_toleration_has_no_value() -> None:
    assert errors_of(a_pod(tolerations=[{"key": "a", "operator": "Exists", "value": "b"}])) == [
        "spec.tolerations[0].operator: Invalid value: \"Exists\": value must be empty when `operator` is 'Exists'"]


def test_toleration_seconds_need_the_no_execute_effect() -> None:
    toleration = {"key": "a", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 60}
    assert errors_of(a_pod(tolerations=[toleration])) == [
        "spec.tolerations[0].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when "
        "`tolerationSeconds` is set"]


def test_a_toleration_without_a_key_must_use_exists() -> None:
    assert errors_of(a_pod(tolerations=[{"operator": "Equal", "value": "x"}])) == [
        'spec.tolerations[0].operator: Invalid value: "Equal": operator must be Exists when `key` is empty, '
        'which means "match all values and all keys"']


def test_valid_tolerations_pass() -> None:
    tolerations = [
        {"operator": "Exists"},
        {"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
    ]
    assert errors_of(a_pod(tolerations=tolerations)) == []


# --------------------------------------------------------------- pod: affinity


def node_affinity_term(**requirement: Any) -> dict[str, Any]:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", **requirement}]}]}}}


TERM_PATH = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"


def test_a_node_selector_operator_must_be_known() -> None:
    assert errors_of(a_pod(affinity=node_affinity_term(operator="Near", values=["a"]))) == [
        f'{TERM_PATH}.matchExpressions[0].operator: Unsupported value: "Near": supported values: "DoesNotExist", '
        '"Exists", "Gt", "In", "Lt", "NotIn"']


def test_in_needs_values() -> None:
    assert errors_of(a_pod(affinity=node_affinity_term(operator="In"))) == [
        f"{TERM_PATH}.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"]


def test_exists_takes_no_values() -> None:
    assert errors_of(a_pod(affinity=node_affinity_term(operator="Exists", values=["a"]))) == [
        f"{TERM_PATH}.matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or "
        "'DoesNotExist'"]


def test_gt_takes_a_single_value() -> None:
    assert errors_of(a_pod(affinity=node_affinity_term(operator="Gt", values=["1", "2"]))) == [
        f"{TERM_PATH}.matchExpressions[0].values: Required value: must be specified single value when `operator` is "
        "'Lt' or 'Gt'"]


def test_lt_takes_an_integer() -> None:
    assert errors_of(a_pod(affinity=node_affinity_term(operator="Lt", values=["ten"]))) == [
        f'{TERM_PATH}.matchExpressions[0].values[0]: Invalid value: "ten": must be an integer']


def test_gt_with_one_integer_passes() -> None:
    assert errors_of(a_pod(affinity=node_affinity_term(operator="Gt", values=["3"]))) == []


def test_required_node_affinity_needs_a_term() -> None:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}
    assert errors_of(a_pod(affinity=affinity)) == [
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: "
        "Required value: must have at least one node selector term"]


@pytest.mark.parametrize("weight", [0, 101])
def test_preference_weights_are_1_to_100(weight: int) -> None:
    affinity = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": weight, "preference": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}]}}
    assert errors_of(a_pod(affinity=affinity)) == [
        f"spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: "
        f"{weight}: must be in the range 1-100"]


def test_pod_affinity_needs_a_topology_key() -> None:
    affinity = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}}]}}
    assert errors_of(a_pod(affinity=affinity)) == [
        "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: "
        "Required value: can not be empty"]


def test_a_label_selector_does_not_take_gt() -> None:
    affinity = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
        "labelSelector": {"matchExpressions": [{"key": "rank", "operator": "Gt", "values": ["1"]}]},
        "topologyKey": "zone"}]}}
    errors = errors_of(a_pod(affinity=affinity))
    assert errors == [
        "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchExpressions[0]"
        '.operator: Unsupported value: "Gt": supported values: "DoesNotExist", "Exists", "In", "NotIn"']


def test_valid_affinity_passes() -> None:
    affinity = {
        **node_affinity_term(operator="In", values=["a", "b"]),
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {
            "labelSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
            "topologyKey": "kubernetes.io/hostname"}}]},
    }
    assert errors_of(a_pod(affinity=affinity)) == []


# --------------------------------------------------------------- pod: updates


def bound(pod: dict[str, Any], node: str) -> dict[str, Any]:
    return {**pod, "spec": {**pod["spec"], "nodeName": node}}


def test_an_image_change_is_allowed() -> None:
    assert errors_of(a_pod(containers=[a_container(image="nginx:1.26")]), old=a_pod()) == []


def test_an_init_container_image_change_is_allowed() -> None:
    old = a_pod(initContainers=[a_container(name="setup", image="busybox:1.35")])
    new = a_pod(initContainers=[a_container(name="setup", image="busybox:1.36")])
    assert errors_of(new, old=old) == []


def test_any_other_spec_change_is_forbidden() -> None:
    new = a_pod(containers=[a_container(ports=[{"containerPort": 80}])])
    assert errors_of(new, old=a_pod()) == [UPDATE_FORBIDDEN]


def test_a_restart_policy_change_is_forbidden() -> None:
    assert errors_of(a_pod(restartPolicy="Never"), old=a_pod(restartPolicy="Always")) == [UPDATE_FORBIDDEN]


def test_binding_an_unbound_pod_to_a_node_is_allowed() -> None:
    assert errors_of(bound(a_pod(), "node-1"), old=a_pod()) == []


def test_moving_a_bound_pod_to_another_node_is_forbidden() -> None:
    assert errors_of(bound(a_pod(), "node-2"), old=bound(a_pod(), "node-1")) == [UPDATE_FORBIDDEN]


def test_adding_a_toleration_is_allowed() -> None:
    old = a_pod(tolerations=[{"key": "a", "operator": "Exists"}])
    new = a_pod(tolerations=[{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}])
    assert errors_of(new, old=old) == []


def test_removing_a_toleration_is_forbidden() -> None:
    old = a_pod(tolerations=[{"key": "a", "operator": "Exists"}])
    assert errors_of(a_pod(tolerations=[]), old=old) == [
        "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]


def test_changing_toleration_seconds_is_allowed() -> None:
    toleration = {"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
    new = a_pod(tolerations=[{**toleration, "tolerationSeconds": 60}])
    assert errors_of(new, old=a_pod(tolerations=[toleration])) == []


def test_active_deadline_may_be_set_on_update() -> None:
    assert errors_of(a_pod(activeDeadlineSeconds=600), old=a_pod()) == []


def test_active_deadline_may_be_shortened() -> None:
    assert errors_of(a_pod(activeDeadlineSeconds=300), old=a_pod(activeDeadlineSeconds=600)) == []


def test_active_deadline_may_not_be_removed() -> None:
    assert errors_of(a_pod(), old=a_pod(activeDeadlineSeconds=600)) == [
        'spec.activeDeadlineSeconds: Invalid value: "": must not update from a positive integer to nil value']


def test_active_deadline_may_not_be_extended() -> None:
    assert errors_of(a_pod(activeDeadlineSeconds=900), old=a_pod(activeDeadlineSeconds=600)) == [
        "spec.activeDeadlineSeconds: Invalid value: 900: must be less than or equal to previous value"]


def test_termination_grace_period_may_change() -> None:
    assert errors_of(a_pod(terminationGracePeriodSeconds=5), old=a_pod(terminationGracePeriodSeconds=30)) == []


def test_a_pod_with_several_bad_fields_lists_every_path() -> None:
    pod = a_pod(
        containers=[a_container(name="Web", image="", ports=[{"containerPort": 0, "protocol": "HTTP"}])],
        restartPolicy="Sometimes",
        volumes=[{"name": "a"}],
    )
    pod["metadata"]["name"] = "Web"
    paths = [error.split(":")[0] for error in errors_of(pod)]
    assert sorted(paths) == sorted([
        "metadata.name",
        "spec.volumes[0]",
        "spec.containers[0].name",
        "spec.containers[0].image",
        "spec.containers[0].ports[0].containerPort",
        "spec.containers[0].ports[0].protocol",
        "spec.restartPolicy",
    ])


# ----------------------------------------------------- ConfigMap and Secret


def a_config_map(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config", "namespace": "default"}, **fields}


def a_secret(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "secret", "namespace": "default"}, **fields}


@pytest.mark.parametrize(("key", "message"), [
    ("a/b", "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
            "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"),
    ("..", "must not be '..'"),
    ("..data", "must not start with '..'"),
])
def test_config_map_keys_must_be_valid(key: str, message: str) -> None:
    assert errors_of(a_config_map(data={key: "x"})) == [f'data[{key}]: Invalid value: "{key}": {message}']


def test_a_config_map_key_is_at_most_253_characters() -> None:
    key = "k" * 254
    assert errors_of(a_config_map(data={key: "x"})) == [
        f'data[{key}]: Invalid value: "{key}": must be no more than 253 characters']


def test_a_key_may_not_be_in_both_data_and_binary_data() -> None:
    assert errors_of(a_config_map(data={"a": "x"}, binaryData={"a": "eA=="})) == [
        'data[a]: Invalid value: "a": duplicate of key present in binaryData']


def test_a_config_map_is_at_most_1_mib() -> None:
    assert errors_of(a_config_map(data={"a": "x" * 600_000, "b": "x" * 600_000})) == [
        "data: Too long: must have at most 1048576 bytes"]


def test_a_valid_config_map_passes() -> None:
    assert errors_of(a_config_map(data={"game.properties": "lives=3", "UI_MODE": "dark"},
                                  binaryData={"logo.png": "iVBORw=="})) == []


def test_an_immutable_config_map_keeps_its_data() -> None:
    old = a_config_map(data={"a": "1"}, immutable=True)
    assert errors_of(a_config_map(data={"a": "2"}, immutable=True), old=old) == [
        "data: Forbidden: field is immutable when `immutable` is set"]


def test_an_immutable_config_map_stays_immutable() -> None:
    old = a_config_map(data={"a": "1"}, immutable=True)
    assert errors_of(a_config_map(data={"a": "1"}, immutable=False), old=old) == [
        "immutable: Forbidden: field is immutable when `immutable` is set"]


def test_a_mutable_config_map_may_change_its_data() -> None:
    assert errors_of(a_config_map(data={"a": "2"}), old=a_config_map(data={"a": "1"})) == []


def test_secret_keys_must_be_valid() -> None:
    assert errors_of(a_secret(stringData={"user name": "x"}))[0].startswith(
        'stringData[user name]: Invalid value: "user name": a valid config key must consist of')


def test_a_secret_type_may_be_any_qualified_name() -> None:
    assert errors_of(a_secret(type="example.com/api-token")) == []


def test_a_secret_type_must_be_a_qualified_name() -> None:
    assert errors_of(a_secret(type="my type")) == [f'type: Invalid value: "my type": {QUALIFIED_NAME_PART_MESSAGE}']


def test_a_tls_secret_needs_a_certificate_and_key() -> None:
    assert errors_of(a_secret(type="kubernetes.io/tls", data={"tls.crt": "eA=="})) == ["data[tls.key]: Required value"]


def test_a_tls_secret_with_both_passes() -> None:
    assert errors_of(a_secret(type="kubernetes.io/tls", data={"tls.crt": "eA==", "tls.key": "eA=="})) == []


def test_a_basic_auth_secret_needs_a_username_or_password() -> None:
    assert errors_of(a_secret(type="kubernetes.io/basic-auth", stringData={"token": "x"})) == [
        "data[username]: Required value", "data[password]: Required value"]


def test_a_secret_type_is_immutable() -> None:
    assert errors_of(a_secret(type="example.com/b"), old=a_secret(type="Opaque")) == [
        'type: Invalid value: "example.com/b": field is immutable']


def test_an_immutable_secret_keeps_its_data() -> None:
    old = a_secret(data={"a": "eA=="}, immutable=True)
    assert errors_of(a_secret(data={"a": "eQ=="}, immutable=True), old=old) == [
        "data: Forbidden: field is immutable when `immutable` is set"]


# --------------------------------------------------- Node, Event, Lease, Namespace


def a_node(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}, "spec": spec}


def test_a_taint_effect_must_be_known() -> None:
    assert errors_of(a_node(taints=[{"key": "a", "effect": "NoRun"}])) == [
        'spec.taints[0].effect: Unsupported value: "NoRun": supported values: "NoExecute", "NoSchedule", '
        '"PreferNoSchedule"']


def test_a_taint_needs_an_effect() -> None:
    assert errors_of(a_node(taints=[{"key": "a"}])) == ["spec.taints[0].effect: Required value"]


def test_a_taint_key_must_be_a_qualified_name() -> None:
    assert errors_of(a_node(taints=[{"key": "a b", "effect": "NoSchedule"}])) == [
        f'spec.taints[0].key: Invalid value: "a b": {QUALIFIED_NAME_PART_MESSAGE}']


def test_taints_are_unique_by_key_and_effect() -> None:
    taints = [{"key": "a", "effect": "NoSchedule"}, {"key": "a", "value": "x", "effect": "NoSchedule"}]
    assert errors_of(a_node(taints=taints)) == [
        'spec.taints[1]: Duplicate value: "a:NoSchedule": taints must be unique by key and effect pair']


def test_a_pod_cidr_must_be_a_cidr() -> None:
    assert errors_of(a_node(podCIDR="10.244.1.0")) == [
        'spec.podCIDR: Invalid value: "10.244.1.0": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)']


def test_a_valid_node_spec_passes() -> None:
    assert errors_of(a_node(podCIDR="10.244.1.0/24", podCIDRs=["10.244.1.0/24", "fd00:10:244:1::/64"],
                            taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])) == []


def test_a_node_pod_cidr_may_not_change_once_set() -> None:
    assert errors_of(a_node(podCIDRs=["10.0.2.0/24"]), old=a_node(podCIDRs=["10.0.1.0/24"])) == [
        'spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid']


def test_node_capacity_quantities_must_parse() -> None:
    node = {**a_node(), "status": {"capacity": {"cpu": "four"}}}
    assert errors_of(node)[0].startswith('status.capacity[cpu]: Invalid value: "four": quantities must match')


def an_event(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.1", "namespace": "default"}, **fields}


def test_an_event_needs_the_kind_and_name_of_its_object() -> None:
    assert errors_of(an_event(involvedObject={})) == [
        "involvedObject.kind: Required value", "involvedObject.name: Required value"]


def test_an_event_about_an_object_in_another_namespace_is_rejected() -> None:
    event = an_event(involvedObject={"kind": "Pod", "name": "web", "namespace": "other"})
    assert errors_of(event) == ['involvedObject.namespace: Invalid value: "other": does not match event.namespace']


def test_a_complete_event_passes() -> None:
    event = an_event(involvedObject={"kind": "Pod", "name": "web", "namespace": "default"}, type="Warning", count=3)
    assert errors_of(event) == []


def a_lease(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "node-1", "namespace": "kube-node-lease"}, "spec": spec}


def test_a_lease_duration_must_be_positive() -> None:
    assert errors_of(a_lease(leaseDurationSeconds=0)) == [
        "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]


def test_a_lease_with_a_duration_passes() -> None:
    assert errors_of(a_lease(holderIdentity="node-1", leaseDurationSeconds=40)) == []


def test_namespace_finalizers_must_be_valid() -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}, "spec": {"finalizers": ["x y"]}}
    assert errors_of(namespace) == [f'spec.finalizers: Invalid value: "x y": {QUALIFIED_NAME_PART_MESSAGE}']


def test_a_namespace_with_the_kubernetes_finalizer_passes() -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"},
                 "spec": {"finalizers": ["kubernetes"]}}
    assert errors_of(namespace) == []
