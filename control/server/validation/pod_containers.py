"""Container rules, for regular and init containers alike.

``container_errors`` checks one container: its name and image, ports,
environment, resources, volume mounts, probes, lifecycle handlers, policies
and security context. Init containers differ in two rules: they may not have
probes, and they alone may set ``restartPolicy``, whose only value, "Always",
makes an init container a sidecar that keeps running beside the pod's
containers (Kubernetes 1.29+).
"""

from __future__ import annotations

from typing import Sequence

from google.protobuf.message import Message

from control.api.manifest import FieldError
from control.api.names import (
    config_key_errors, dns1123_label_errors, dns1123_subdomain_errors, env_var_name_errors, port_name_errors,
    port_number_errors, qualified_name_errors,
)
from control.api.quantity import parse_quantity
from control.server.validation.downward_api import field_ref_errors, resource_field_ref_errors
from control.server.validation.field_errors import (
    at_least, forbidden, invalid, ip_errors, local_path_errors, name_errors, one_of, quantity_errors, required,
)
from control.server.validation.security_contexts import container_security_context_errors

_PROTOCOLS = ("SCTP", "TCP", "UDP")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
_SIDECAR_RESTART_POLICIES = ("Always",)
_HTTP_SCHEMES = ("HTTP", "HTTPS")
_MOUNT_PROPAGATIONS = ("Bidirectional", "HostToContainer", "None")
_STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def container_errors(
    container: Message, path: str, *, volumes: set[str], init: bool, grace: int
) -> list[FieldError]:
    """One container of ``spec.containers`` or (``init``) ``spec.initContainers`` at ``path``.

    ``volumes`` are the pod's volume names, for the mounts; ``grace`` is the
    pod's termination grace period, which a preStop sleep may not outlast.
    """
    errors = name_errors(f"{path}.name", container.name, dns1123_label_errors)
    if not container.image:
        errors.append(required(f"{path}.image"))
    elif container.image != container.image.strip():
        errors += invalid(f"{path}.image", container.image, ["must not have leading or trailing whitespace"])
    errors += _ports_errors(f"{path}.ports", container.ports)
    errors += _env_errors(f"{path}.env", container.env)
    errors += _env_from_errors(f"{path}.envFrom", container.env_from)
    errors += _resources_errors(f"{path}.resources", container.resources)
    errors += _mounts_errors(f"{path}.volumeMounts", container.volume_mounts, volumes=volumes,
                             privileged=container.security_context.privileged)
    for field, json_name in (("liveness_probe", "livenessProbe"), ("readiness_probe", "readinessProbe"),
                             ("startup_probe", "startupProbe")):
        if not container.HasField(field):
            continue
        if init:
            errors.append(forbidden(f"{path}.{json_name}", "may not be set for init containers"))
        else:
            errors += _probe_errors(f"{path}.{json_name}", getattr(container, field),
                                    must_succeed_once=json_name != "readinessProbe")
    for field, json_name in (("post_start", "postStart"), ("pre_stop", "preStop")):
        if container.lifecycle.HasField(field):
            errors += _handler_errors(f"{path}.lifecycle.{json_name}", getattr(container.lifecycle, field),
                                      ("exec", "http_get", "tcp_socket", "sleep"), grace=grace)
    if container.HasField("image_pull_policy"):
        errors += one_of(f"{path}.imagePullPolicy", container.image_pull_policy, _PULL_POLICIES)
    if container.HasField("termination_message_policy"):
        errors += one_of(f"{path}.terminationMessagePolicy", container.termination_message_policy,
                         _TERMINATION_MESSAGE_POLICIES)
    if container.HasField("restart_policy"):
        if init:
            errors += one_of(f"{path}.restartPolicy", container.restart_policy, _SIDECAR_RESTART_POLICIES)
        else:
            errors.append(forbidden(f"{path}.restartPolicy", "may not be set for non-init containers"))
    errors += container_security_context_errors(f"{path}.securityContext", container.security_context)
    return errors


def _ports_errors(path: str, ports: Sequence[Message]) -> list[FieldError]:
    errors: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        item = f"{path}[{i}]"
        if port.name:
            problems = port_name_errors(port.name)
            errors += invalid(f"{item}.name", port.name, problems)
            if not problems and port.name in names:
                errors.append(FieldError(f"{item}.name", "Duplicate value", value=port.name))
            names.add(port.name)
        if not port.container_port:
            errors.append(required(f"{item}.containerPort"))
        else:
            errors += invalid(f"{item}.containerPort", port.container_port, port_number_errors(port.container_port))
        if port.host_port:
            errors += invalid(f"{item}.hostPort", port.host_port, port_number_errors(port.host_port))
        if port.HasField("protocol"):
            errors += one_of(f"{item}.protocol", port.protocol, _PROTOCOLS)
        if port.host_ip:
            errors += invalid(f"{item}.hostIP", port.host_ip, ip_errors(port.host_ip))
    return errors


def _env_errors(path: str, env: Sequence[Message]) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, var in enumerate(env):
        item = f"{path}[{i}]"
        errors += name_errors(f"{item}.name", var.name, env_var_name_errors)
        if not var.HasField("value_from"):
            continue
        source = var.value_from
        given = [field for field in ("field_ref", "resource_field_ref", "config_map_key_ref", "secret_key_ref")
                 if source.HasField(field)]
        if source.HasField("field_ref"):
            errors += field_ref_errors(f"{item}.valueFrom.fieldRef", source.field_ref, volume=False)
        if source.HasField("resource_field_ref"):
            errors += resource_field_ref_errors(f"{item}.valueFrom.resourceFieldRef", source.resource_field_ref,
                                                volume=False)
        for field, json_name in (("config_map_key_ref", "configMapKeyRef"), ("secret_key_ref", "secretKeyRef")):
            if source.HasField(field):
                selector = getattr(source, field)
                errors += name_errors(f"{item}.valueFrom.{json_name}.name", selector.name, dns1123_subdomain_errors)
                errors += name_errors(f"{item}.valueFrom.{json_name}.key", selector.key, config_key_errors)
        if not given:
            errors += invalid(f"{item}.valueFrom", "", [
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"])
        elif var.value:
            errors += invalid(f"{item}.valueFrom", "", ["may not be specified when `value` is not empty"])
        elif len(given) > 1:
            errors += invalid(f"{item}.valueFrom", "", ["may not have more than one field specified at a time"])
    return errors


def _env_from_errors(path: str, sources: Sequence[Message]) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, source in enumerate(sources):
        item = f"{path}[{i}]"
        if source.prefix:
            errors += invalid(f"{item}.prefix", source.prefix, env_var_name_errors(source.prefix))
        given = [json_name for field, json_name in (("config_map_ref", "configMapRef"), ("secret_ref", "secretRef"))
                 if source.HasField(field)]
        for json_name in given:
            reference = source.config_map_ref if json_name == "configMapRef" else source.secret_ref
            errors += name_errors(f"{item}.{json_name}.name", reference.name, dns1123_subdomain_errors)
        if not given:
            errors += invalid(item, "", ["must specify one of: `configMapRef` or `secretRef`"])
        elif len(given) > 1:
            errors += invalid(item, "", ["may not have more than one field specified at a time"])
    return errors


def _is_extended_resource(name: str) -> bool:
    return "/" in name and not name.partition("/")[0].endswith("kubernetes.io")


def _resource_name_errors(path: str, name: str) -> list[FieldError]:
    errors = invalid(path, name, qualified_name_errors(name))
    if "/" not in name:
        if name not in _STANDARD_CONTAINER_RESOURCES and not name.startswith("hugepages-"):
            errors += invalid(path, name, ["must be a standard resource for containers"])
    elif not _is_extended_resource(name):
        errors += invalid(path, name, ["doesn't follow extended resource name standard"])
    return errors


def _resources_errors(path: str, resources: Message) -> list[FieldError]:
    errors: list[FieldError] = []
    limits, requests = resources.limits, resources.requests
    for group, amounts in (("limits", limits), ("requests", requests)):
        for name in sorted(amounts):
            item = f"{path}.{group}[{name}]"
            errors += _resource_name_errors(item, name)
            problems = quantity_errors(item, amounts[name])
            if not problems and _is_extended_resource(name):
                value = parse_quantity(amounts[name])
                if value != value.to_integral_value():
                    problems = invalid(item, amounts[name], ["must be an integer"])
            errors += problems
    for name in sorted(requests):
        if quantity_errors("", requests[name]) or (name in limits and quantity_errors("", limits[name])):
            continue
        if name not in limits:
            if _is_extended_resource(name):
                errors.append(required(f"{path}.limits", "Limit must be set for non overcommitable resources"))
            continue
        request, limit = parse_quantity(requests[name]), parse_quantity(limits[name])
        if _is_extended_resource(name) and request != limit:
            errors += invalid(f"{path}.requests", requests[name], [f"must be equal to {name} limit of {limits[name]}"])
        elif request > limit:
            errors += invalid(f"{path}.requests", requests[name],
                              [f"must be less than or equal to {name} limit of {limits[name]}"])
    return errors


def _mounts_errors(
    path: str, mounts: Sequence[Message], *, volumes: set[str], privileged: bool
) -> list[FieldError]:
    errors: list[FieldError] = []
    mount_paths: set[str] = set()
    for i, mount in enumerate(mounts):
        item = f"{path}[{i}]"
        if not mount.name:
            errors.append(required(f"{item}.name"))
        elif mount.name not in volumes:
            errors.append(FieldError(f"{item}.name", "Not found", value=mount.name))
        if not mount.mount_path:
            errors.append(required(f"{item}.mountPath"))
        elif mount.mount_path in mount_paths:
            errors += invalid(f"{item}.mountPath", mount.mount_path, ["must be unique"])
        mount_paths.add(mount.mount_path)
        if mount.sub_path:
            errors += local_path_errors(f"{item}.subPath", mount.sub_path)
        if mount.sub_path_expr:
            if mount.sub_path:
                errors += invalid(f"{item}.subPathExpr", mount.sub_path_expr,
                                  ["subPathExpr and subPath are mutually exclusive"])
            errors += local_path_errors(f"{item}.subPathExpr", mount.sub_path_expr)
        if mount.HasField("mount_propagation"):
            errors += one_of(f"{item}.mountPropagation", mount.mount_propagation, _MOUNT_PROPAGATIONS)
            if mount.mount_propagation == "Bidirectional" and not privileged:
                errors.append(forbidden(f"{item}.mountPropagation",
                                        "Bidirectional mount propagation is available only to privileged containers"))
    return errors


def _probe_errors(path: str, probe: Message, *, must_succeed_once: bool) -> list[FieldError]:
    errors = _handler_errors(path, probe, ("exec", "http_get", "tcp_socket", "grpc"), grace=None)
    errors += at_least(f"{path}.initialDelaySeconds", probe.initial_delay_seconds, 0)
    for field, json_name in (("timeout_seconds", "timeoutSeconds"), ("period_seconds", "periodSeconds"),
                             ("success_threshold", "successThreshold"), ("failure_threshold", "failureThreshold")):
        if probe.HasField(field):
            errors += at_least(f"{path}.{json_name}", getattr(probe, field), 1)
    if must_succeed_once and probe.HasField("success_threshold") and probe.success_threshold != 1:
        errors += invalid(f"{path}.successThreshold", probe.success_threshold, ["must be 1"])
    if probe.HasField("termination_grace_period_seconds") and probe.termination_grace_period_seconds <= 0:
        errors += invalid(f"{path}.terminationGracePeriodSeconds", probe.termination_grace_period_seconds,
                          ["must be greater than 0"])
    return errors


def _handler_errors(path: str, handler: Message, actions: Sequence[str], *, grace: int | None) -> list[FieldError]:
    """A probe or lifecycle handler: exactly one action, and that action valid."""
    json_names = {"exec": "exec", "http_get": "httpGet", "tcp_socket": "tcpSocket", "grpc": "grpc", "sleep": "sleep"}
    given = [action for action in actions if handler.HasField(action)]
    if not given:
        return [required(path, "must specify a handler type")]
    errors = [forbidden(f"{path}.{json_names[extra]}", "may not specify more than 1 handler type")
              for extra in given[1:]]
    kind = given[0]
    action, item = getattr(handler, kind), f"{path}.{json_names[kind]}"
    if kind == "exec" and not action.command:
        errors.append(required(f"{item}.command"))
    elif kind == "http_get":
        if action.HasField("path") and not action.path:
            errors.append(required(f"{item}.path"))
        errors += _port_or_name_errors(f"{item}.port", action)
        if action.HasField("scheme"):
            errors += one_of(f"{item}.scheme", action.scheme, _HTTP_SCHEMES)
    elif kind == "tcp_socket":
        errors += _port_or_name_errors(f"{item}.port", action)
    elif kind == "grpc":
        errors += invalid(f"{item}.port", action.port, port_number_errors(action.port))
    elif kind == "sleep" and grace is not None and not 0 <= action.seconds <= grace:
        errors += invalid(f"{item}.seconds", action.seconds,
                          [f"must be non-negative and less than terminationGracePeriodSeconds ({grace})"])
    return errors


def _port_or_name_errors(path: str, action: Message) -> list[FieldError]:
    which = action.port.WhichOneof("value")
    if which == "int_value":
        return invalid(path, action.port.int_value, port_number_errors(action.port.int_value))
    if which == "str_value":
        return invalid(path, action.port.str_value, port_name_errors(action.port.str_value))
    return [required(path)]
