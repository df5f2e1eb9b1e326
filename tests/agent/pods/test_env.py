"""A container's environment: $(VAR) expansion, envFrom with prefixes,
valueFrom ConfigMap/Secret keys (missing and optional), the downward API
(fieldRef, resourceFieldRef with divisors) and kubelet's error messages."""

from __future__ import annotations

import pytest

from agent.pods.env import ContainerConfigError, expand, expand_all, resolve_env
from control.api import manifest
from protos.api.v1 import core_pb2
from tests.agent.pods.support import Configs


def pod_with(container: dict, **spec) -> core_pb2.Pod:
    return manifest.to_message({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"},
                     "annotations": {"team": "blue"}},
        "spec": {"nodeName": "node-a", "serviceAccountName": "builder",
                 "containers": [{"name": "app", "image": "x", **container}], **spec}})


async def env_of(container: dict, configs: Configs | None = None) -> dict[str, str]:
    pod = pod_with(container)
    return await resolve_env(pod, pod.spec.containers[0], configs or Configs(), host_ip="10.0.0.5",
                             pod_ip="10.244.1.7")


# ---------------------------------------------------------- $(VAR) expansion

@pytest.mark.parametrize(("text", "expected"), [
    ("$(A)", "1"),
    ("x$(A)y$(B)z", "x1y2z"),
    ("$(MISSING)", "$(MISSING)"),     # unknown references stay as written
    ("$$(A)", "$(A)"),                # $$ escapes
    ("$$", "$"),
    ("$(A", "$(A"),                   # unterminated
    ("$A", "$A"),                     # only $(...) is a reference
    ("cost: 5$", "cost: 5$"),
    ("", ""),
])
def test_expansion_follows_kubernetes(text, expected):
    assert expand(text, {"A": "1", "B": "2"}.get) == expected


def test_command_and_args_expand_with_the_finished_environment():
    assert expand_all(["echo", "$(GREETING) $(NAME)"], {"GREETING": "hi", "NAME": "you"}) == ("echo", "hi you")


async def test_a_value_may_refer_to_variables_defined_before_it_only():
    env = await env_of({"env": [{"name": "A", "value": "a"}, {"name": "B", "value": "$(A)-$(C)"},
                                {"name": "C", "value": "c"}]})
    assert env == {"A": "a", "B": "a-$(C)", "C": "c"}


# ------------------------------------------------------- ConfigMaps, Secrets

async def test_env_from_imports_every_key_with_a_prefix_and_skips_invalid_names():
    configs = Configs(config_maps={"cfg": {"MODE": "fast", "bad name": "x", "1X": "y"}})
    env = await env_of({"envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}]}, configs)
    assert env == {"CFG_MODE": "fast", "CFG_1X": "y"}


async def test_env_overrides_env_from():
    configs = Configs(secrets={"s": {"USER": "from-secret"}})
    env = await env_of({"envFrom": [{"secretRef": {"name": "s"}}], "env": [{"name": "USER", "value": "explicit"}]},
                       configs)
    assert env == {"USER": "explicit"}


async def test_key_references_read_config_maps_and_secrets():
    configs = Configs(config_maps={"cfg": {"color": "blue"}}, secrets={"s": {"token": "t0k"}})
    env = await env_of({"env": [
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}}]}, configs)
    assert env == {"COLOR": "blue", "TOKEN": "t0k"}


@pytest.mark.parametrize(("container", "message"), [
    ({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]},
     'configmap "nope" not found'),
    ({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]},
     'secret "nope" not found'),
    ({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "absent"}}}]},
     "couldn't find key absent in ConfigMap shop/cfg"),
    ({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "absent"}}}]},
     "couldn't find key absent in Secret shop/s"),
    ({"envFrom": [{"configMapRef": {"name": "nope"}}]}, 'configmap "nope" not found'),
    ({"envFrom": [{"secretRef": {"name": "nope"}}]}, 'secret "nope" not found'),
])
async def test_a_missing_reference_is_a_config_error_with_kubelets_message(container, message):
    configs = Configs(config_maps={"cfg": {"k": "v"}}, secrets={"s": {"k": "v"}})
    with pytest.raises(ContainerConfigError) as raised:
        await env_of(container, configs)
    assert str(raised.value) == message


async def test_optional_references_that_are_missing_are_left_out():
    env = await env_of({
        "envFrom": [{"configMapRef": {"name": "nope", "optional": True}}],
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": True}}},
                {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}},
                {"name": "Z", "value": "z"}]})
    assert env == {"Z": "z"}


# ------------------------------------------------------------ downward API

@pytest.mark.parametrize(("path", "value"), [
    ("metadata.name", "web"),
    ("metadata.namespace", "shop"),
    ("metadata.uid", "u-1"),
    ("metadata.labels['app']", "web"),
    ("metadata.annotations['team']", "blue"),
    ("spec.nodeName", "node-a"),
    ("spec.serviceAccountName", "builder"),
    ("status.hostIP", "10.0.0.5"),
    ("status.podIP", "10.244.1.7"),
])
async def test_field_refs_read_the_pod(path, value):
    env = await env_of({"env": [{"name": "V", "valueFrom": {"fieldRef": {"fieldPath": path}}}]})
    assert env == {"V": value}


@pytest.mark.parametrize(("resource", "divisor", "value"), [
    ("limits.cpu", "", "1"),          # 500m rounded up to whole cores
    ("limits.cpu", "1m", "500"),
    ("requests.cpu", "1m", "250"),
    ("limits.memory", "", "134217728"),
    ("limits.memory", "1Mi", "128"),
    ("requests.memory", "1Mi", "64"),
])
async def test_resource_field_refs_read_the_containers_resources(resource, divisor, value):
    ref = {"resource": resource, **({"divisor": divisor} if divisor else {})}
    env = await env_of({"resources": {"limits": {"cpu": "500m", "memory": "128Mi"},
                                      "requests": {"cpu": "250m", "memory": "64Mi"}},
                        "env": [{"name": "V", "valueFrom": {"resourceFieldRef": ref}}]})
    assert env == {"V": value}


async def test_an_unset_limit_reads_as_the_nodes_capacity():
    env = await env_of({"env": [{"name": "V", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu",
                                                                                   "divisor": "1m"}}}]})
    assert int(env["V"]) >= 1000


async def test_an_unknown_field_path_is_a_config_error():
    with pytest.raises(ContainerConfigError, match="unsupported fieldPath"):
        await env_of({"env": [{"name": "V", "valueFrom": {"fieldRef": {"fieldPath": "spec.nope"}}}]})
