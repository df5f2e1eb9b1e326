"""Container rules (control/server/validation/pod_containers.py): names,
sidecar restart policies, images, ports, env and envFrom, resources, volume
mounts, probes and lifecycle handlers.
"""

from __future__ import annotations

import pytest

from tests.server.validation.support import LABEL_MESSAGE, a_container, a_pod, container_errors, errors_of


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
