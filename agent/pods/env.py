"""A container's environment, as kubelet's ``makeEnvironmentVariables`` builds it.

Order and precedence: every ``envFrom`` source in order (keys prefixed, names
that are not valid variable names skipped), then ``env`` in order, each entry
overriding what came before. An ``env`` value may refer to variables defined
before it as ``$(NAME)``; the same expansion applies to the command and args
with the finished environment (``expand``: ``$$`` escapes a dollar, an unknown
reference stays as written).

ConfigMaps and Secrets are read through a ``ConfigSource``. A missing one (or
missing key) that is not optional is a ``ContainerConfigError`` whose message
is kubelet's (``configmap "x" not found``): the container waits with reason
CreateContainerConfigError until the object appears.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping, Protocol

from agent.pods.downward_api import DownwardAPIError, field_value, resource_value
from protos.api.v1 import core_pb2

_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")


class ConfigSource(Protocol):
    """Where ConfigMaps and Secrets are read from (the agent's watch cache)."""

    async def config_map(self, namespace: str, name: str) -> core_pb2.ConfigMap | None:
        """The ConfigMap, or None when it does not exist."""

    async def secret(self, namespace: str, name: str) -> core_pb2.Secret | None:
        """The Secret, or None when it does not exist."""


class ContainerConfigError(Exception):
    """The container's configuration cannot be built yet (CreateContainerConfigError)."""


def _read_variable(text: str) -> tuple[str, bool, int]:
    """After a '$': (what to write, whether it names a variable, characters consumed)."""
    if text[0] == "$":
        return "$", False, 1
    if text[0] == "(":
        end = text.find(")", 1)
        if end != -1:
            return text[1:end], True, end + 1
        return "$(", False, 1
    return "$" + text[0], False, 1


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Kubernetes' $(VAR) expansion (third_party/forked/golang/expansion)."""
    out: list[str] = []
    checkpoint = cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            read, is_variable, advance = _read_variable(text[cursor + 1:])
            if is_variable:
                value = lookup(read)
                out.append(value if value is not None else f"$({read})")
            else:
                out.append(read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


def expand_all(items, env: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(expand(item, env.get) for item in items)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


async def _env_from(pod: core_pb2.Pod, source: core_pb2.EnvFromSource, configs: ConfigSource) -> dict[str, str]:
    namespace = pod.metadata.namespace
    if source.HasField("config_map_ref"):
        ref = source.config_map_ref
        config_map = await configs.config_map(namespace, ref.name)
        if config_map is None:
            if ref.optional:
                return {}
            raise ContainerConfigError(f'configmap "{ref.name}" not found')
        data: dict[str, str] = {k: _text(v) for k, v in config_map.binary_data.items()}
        data.update(config_map.data)
    elif source.HasField("secret_ref"):
        ref = source.secret_ref
        secret = await configs.secret(namespace, ref.name)
        if secret is None:
            if ref.optional:
                return {}
            raise ContainerConfigError(f'secret "{ref.name}" not found')
        data = {k: _text(v) for k, v in secret.data.items()}
    else:
        return {}
    prefixed = {source.prefix + key: value for key, value in data.items()}
    return {key: value for key, value in prefixed.items() if _ENV_NAME.fullmatch(key)}


async def _value_from(
    pod: core_pb2.Pod, container: core_pb2.Container, source: core_pb2.EnvVarSource,
    configs: ConfigSource, *, host_ip: str, pod_ip: str,
) -> str | None:
    """The value, or None for an optional reference that is absent (the variable is left out)."""
    namespace = pod.metadata.namespace
    if source.HasField("config_map_key_ref"):
        ref = source.config_map_key_ref
        config_map = await configs.config_map(namespace, ref.name)
        if config_map is None:
            if ref.optional:
                return None
            raise ContainerConfigError(f'configmap "{ref.name}" not found')
        if ref.key in config_map.data:
            return config_map.data[ref.key]
        if ref.key in config_map.binary_data:
            return _text(config_map.binary_data[ref.key])
        if ref.optional:
            return None
        raise ContainerConfigError(f"couldn't find key {ref.key} in ConfigMap {namespace}/{ref.name}")
    if source.HasField("secret_key_ref"):
        ref = source.secret_key_ref
        secret = await configs.secret(namespace, ref.name)
        if secret is None:
            if ref.optional:
                return None
            raise ContainerConfigError(f'secret "{ref.name}" not found')
        if ref.key in secret.data:
            return _text(secret.data[ref.key])
        if ref.optional:
            return None
        raise ContainerConfigError(f"couldn't find key {ref.key} in Secret {namespace}/{ref.name}")
    try:
        if source.HasField("field_ref"):
            return field_value(pod, source.field_ref.field_path, host_ip=host_ip, pod_ip=pod_ip)
        if source.HasField("resource_field_ref"):
            ref = source.resource_field_ref
            target = container
            if ref.container_name and ref.container_name != container.name:
                target = next((c for c in (*pod.spec.init_containers, *pod.spec.containers)
                               if c.name == ref.container_name), container)
            return resource_value(target, ref.resource, ref.divisor)
    except (DownwardAPIError, ValueError) as err:
        raise ContainerConfigError(str(err)) from None
    return ""


async def resolve_env(
    pod: core_pb2.Pod, container: core_pb2.Container, configs: ConfigSource, *, host_ip: str, pod_ip: str,
) -> dict[str, str]:
    """The container's environment, in definition order. Raises ContainerConfigError."""
    env: dict[str, str] = {}
    for source in container.env_from:
        env.update(await _env_from(pod, source, configs))
    for var in container.env:
        if var.HasField("value_from"):
            value = await _value_from(pod, container, var.value_from, configs, host_ip=host_ip, pod_ip=pod_ip)
            if value is None:
                continue
        else:
            value = expand(var.value, env.get)
        env[var.name] = value
    return env
