"""From a Pod to runtime specs: sandbox identity, labels the agent recovers
by, hostname, host ports, DNS from the host's resolv.conf and dnsConfig,
resources, log paths, and the spec hash that detects a changed container."""

from __future__ import annotations

from agent.pods import runtime_specs
from agent.runtime.base import LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID, DNSConfig, Mount
from control.api import manifest
from protos.api.v1 import core_pb2

HOST_DNS = DNSConfig(servers=("10.0.0.2",), searches=("corp.example",), options=("ndots:1",))


def make_pod(**spec) -> core_pb2.Pod:
    containers = spec.pop("containers", [{"name": "app", "image": "nginx:1.25"}])
    return manifest.to_message({"apiVersion": "v1", "kind": "Pod",
                                "metadata": {"name": "web", "namespace": "shop", "uid": "u-1",
                                             "labels": {"app": "web"}},
                                "spec": {"containers": containers, **spec}})


def test_a_sandbox_carries_the_pods_identity_and_recovery_labels():
    spec = runtime_specs.sandbox_spec(make_pod(terminationGracePeriodSeconds=7), attempt=2,
                                      log_directory="/logs", host_dns=HOST_DNS)
    assert (spec.pod_uid, spec.pod_name, spec.namespace, spec.attempt) == ("u-1", "web", "shop", 2)
    assert spec.hostname == "web" and spec.log_directory == "/logs"
    assert spec.labels[LABEL_POD_UID] == "u-1" and spec.labels[LABEL_POD_NAME] == "web"
    assert spec.labels[LABEL_POD_NAMESPACE] == "shop" and spec.labels["app"] == "web"
    assert spec.labels[runtime_specs.LABEL_GRACE_PERIOD] == "7"


def test_the_hostname_is_the_spec_hostname_when_given():
    spec = runtime_specs.sandbox_spec(make_pod(hostname="db-0"), attempt=0, log_directory="", host_dns=HOST_DNS)
    assert spec.hostname == "db-0"


def test_host_ports_become_port_mappings():
    pod = make_pod(containers=[{"name": "app", "image": "x", "ports": [
        {"containerPort": 80, "hostPort": 8080}, {"containerPort": 9090}]}])
    spec = runtime_specs.sandbox_spec(pod, attempt=0, log_directory="", host_dns=HOST_DNS)
    assert [(p.container_port, p.host_port, p.protocol) for p in spec.port_mappings] == [(80, 8080, "TCP")]


def test_dns_is_the_hosts_plus_the_pods_dns_config():
    pod = make_pod(dnsConfig={"nameservers": ["1.1.1.1"], "searches": ["svc.local"],
                              "options": [{"name": "ndots", "value": "5"}, {"name": "edns0"}]})
    assert runtime_specs.dns_config(pod, HOST_DNS) == DNSConfig(
        servers=("10.0.0.2", "1.1.1.1"), searches=("corp.example", "svc.local"), options=("ndots:5", "edns0"))


def test_dns_policy_none_uses_only_the_pods_dns_config():
    pod = make_pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1"]})
    assert runtime_specs.dns_config(pod, HOST_DNS) == DNSConfig(servers=("1.1.1.1",))


def test_resolv_conf_is_read_like_the_resolver_does(tmp_path):
    path = tmp_path / "resolv.conf"
    path.write_text("# comment\nnameserver 10.0.0.2\nnameserver 10.0.0.3 # second\nsearch a.example b.example\n"
                    "options ndots:2 timeout:1\n")
    assert runtime_specs.read_resolv_conf(str(path)) == DNSConfig(
        servers=("10.0.0.2", "10.0.0.3"), searches=("a.example", "b.example"), options=("ndots:2", "timeout:1"))
    assert runtime_specs.read_resolv_conf(str(tmp_path / "absent")) == DNSConfig()


def test_a_container_spec_has_labels_resources_and_a_per_attempt_log():
    pod = make_pod(containers=[{"name": "app", "image": "nginx:1.25", "workingDir": "/srv",
                                "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "1", "memory": "128Mi"}}}])
    container = pod.spec.containers[0]
    spec = runtime_specs.container_spec(pod, container, kind=runtime_specs.APP, attempt=3, command=("nginx",),
                                        args=("-g", "daemon off;"), env={"A": "1"}, mounts=(Mount("/h", "/c"),))
    assert (spec.name, spec.image, spec.attempt, spec.working_dir) == ("app", "nginx:1.25", 3, "/srv")
    assert spec.command == ("nginx",) and spec.args == ("-g", "daemon off;") and dict(spec.env) == {"A": "1"}
    assert (spec.resources.cpu_request_millis, spec.resources.cpu_limit_millis,
            spec.resources.memory_limit_bytes) == (250, 1000, 128 << 20)
    assert spec.log_path == "app/3.log"
    assert spec.labels[LABEL_CONTAINER_NAME] == "app" and spec.labels[LABEL_POD_UID] == "u-1"
    assert spec.labels[runtime_specs.LABEL_CONTAINER_KIND] == "app"
    assert spec.labels[runtime_specs.LABEL_CONTAINER_HASH] == runtime_specs.container_hash(container)


def test_the_spec_hash_changes_with_the_image_only_when_the_spec_does():
    first, second = make_pod().spec.containers[0], make_pod().spec.containers[0]
    assert runtime_specs.container_hash(first) == runtime_specs.container_hash(second)
    second.image = "nginx:1.26"
    assert runtime_specs.container_hash(first) != runtime_specs.container_hash(second)


def test_grace_period_prefers_the_deletions():
    pod = make_pod(terminationGracePeriodSeconds=30)
    assert runtime_specs.grace_period(pod) == 30
    pod.metadata.deletion_grace_period_seconds = 3
    assert runtime_specs.grace_period(pod) == 3


def test_pods_are_described_as_kubelet_does():
    assert runtime_specs.describe_pod(make_pod()) == "web_shop(u-1)"
