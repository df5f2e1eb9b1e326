"""Server-side validation: Kubernetes' rules, with Kubernetes' messages.

``validate(kind, obj, old=old)`` returns every broken rule as a FieldError
(an empty list means valid). It runs the object-metadata rules every kind
shares, then the kind's own validator from ``VALIDATORS``: adding a kind with
rules is one function and one entry there.

The API service validates after defaulting, as Kubernetes does, but the rules
never rely on it: a field Kubernetes would default is checked only when it is
set, so validating an undefaulted object reports only what is wrong with it.
On update (``old`` given) the update rules run as well: immutable metadata,
Kubernetes' narrow list of mutable pod fields, immutable ConfigMaps and
Secrets.

The format checks at the top (``dns1123_label_errors`` and friends) are ports
of k8s.io/apimachinery/pkg/util/validation and return message lists the way
those functions do, so one bad name may break several rules at once.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Callable, Iterable, Mapping, Sequence

from google.protobuf.message import Message

from control.api.kinds import Kind
from control.api.manifest import FieldError
from control.api.quantity import parse_quantity

# ------------------------------------------------------------ format checks

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + r"(\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)
_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_VALUE_FMT = f"({_QUALIFIED_NAME_FMT})?"
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_ENV_VAR_NAME_MSG = (
    "a valid environment variable name must consist only of printable ASCII characters other than '='"
)
_PORT_RANGE_MSG = "must be between 1 and 65535, inclusive"
_FILE_MODE_MSG = "must be a number between 0 and 0777 (octal), both inclusive"
_NON_NEGATIVE_MSG = "must be greater than or equal to 0"
_ID_RANGE_MSG = "must be between 0 and 2147483647, inclusive"

_DNS1123_LABEL = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN = re.compile(_DNS1123_SUBDOMAIN_FMT)
_QUALIFIED_NAME = re.compile(_QUALIFIED_NAME_FMT)
_LABEL_VALUE = re.compile(_LABEL_VALUE_FMT)
_CONFIG_KEY = re.compile(_CONFIG_KEY_FMT)
_PORT_NAME_CHARSET = re.compile("[-a-z0-9]+")
_HAS_LETTER = re.compile(".*[a-z]")


def _regex_error(message: str, fmt: str, *examples: str) -> str:
    # Kubernetes' RegexError, double spaces and all.
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{fmt}')"


_QUALIFIED_NAME_REGEX_ERROR = _regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")


def _too_long(limit: int) -> str:
    return f"must be no more than {limit} characters"


def dns1123_label_errors(value: str) -> list[str]:
    errors = [_too_long(63)] if len(value) > 63 else []
    if not _DNS1123_LABEL.fullmatch(value):
        if _DNS1123_SUBDOMAIN.fullmatch(value):
            errors.append("must not contain dots")
        else:
            errors.append(_regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errors


def dns1123_subdomain_errors(value: str) -> list[str]:
    errors = [_too_long(253)] if len(value) > 253 else []
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        errors.append(_regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errors


def qualified_name_errors(value: str) -> list[str]:
    """An optional DNS-subdomain prefix and '/', then a name of at most 63 characters."""
    parts = value.split("/")
    errors: list[str] = []
    if len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors += ["prefix part " + message for message in dns1123_subdomain_errors(prefix)]
    elif len(parts) == 1:
        name = value
    else:
        return ["a qualified name " + _QUALIFIED_NAME_REGEX_ERROR
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part " + _too_long(63))
    if not _QUALIFIED_NAME.fullmatch(name):
        errors.append("name part " + _QUALIFIED_NAME_REGEX_ERROR)
    return errors


def label_value_errors(value: str) -> list[str]:
    errors = [_too_long(63)] if len(value) > 63 else []
    if not _LABEL_VALUE.fullmatch(value):
        errors.append(_regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errors


def config_key_errors(value: str) -> list[str]:
    """A ConfigMap or Secret key: also a file name when mounted, so no '.' or '..'."""
    errors = [_too_long(253)] if len(value) > 253 else []
    if not _CONFIG_KEY.fullmatch(value):
        errors.append(_regex_error(_CONFIG_KEY_MSG, _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if value == ".":
        errors.append("must not be '.'")
    elif value == "..":
        errors.append("must not be '..'")
    elif value.startswith(".."):
        errors.append("must not start with '..'")
    return errors


def port_name_errors(value: str) -> list[str]:
    """An IANA_SVC_NAME: at most 15 lowercase alphanumerics and single inner hyphens."""
    errors = [_too_long(15)] if len(value) > 15 else []
    if not _PORT_NAME_CHARSET.fullmatch(value):
        errors.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _HAS_LETTER.match(value):
        errors.append("must contain at least one letter (a-z)")
    if "--" in value:
        errors.append("must not contain consecutive hyphens")
    if value.startswith("-") or value.endswith("-"):
        errors.append("must not begin or end with a hyphen")
    return errors


def port_number_errors(value: int) -> list[str]:
    return [] if 1 <= value <= 65535 else [_PORT_RANGE_MSG]


def env_var_name_errors(value: str) -> list[str]:
    if any(not 32 <= ord(char) <= 126 or char == "=" for char in value):
        return [_ENV_VAR_NAME_MSG]
    return []


def _ip_errors(value: str) -> list[str]:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    return []


def _cidr_errors(value: str) -> list[str]:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    return [] if "/" in value else ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]


# ----------------------------------------------------------- error helpers


def _invalid(path: str, value: str | int, messages: Iterable[str]) -> list[FieldError]:
    return [FieldError(path, "Invalid value", message, value) for message in messages]


def _required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, "Required value", detail)


def _forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, "Forbidden", detail)


def _one_of(path: str, value: str, supported: Sequence[str]) -> list[FieldError]:
    if value in supported:
        return []
    listed = ", ".join(f'"{option}"' for option in supported)
    return [FieldError(path, "Unsupported value", f"supported values: {listed}", value)]


def _at_least(path: str, value: int, minimum: int) -> list[FieldError]:
    if value >= minimum:
        return []
    return [FieldError(path, "Invalid value", f"must be greater than or equal to {minimum}", value)]


def _name_errors(path: str, value: str, check: Callable[[str], list[str]]) -> list[FieldError]:
    """A name that must be given and must pass ``check``."""
    return _invalid(path, value, check(value)) if value else [_required(path)]


def _quantity_errors(path: str, value: str) -> list[FieldError]:
    try:
        parsed = parse_quantity(value)
    except ValueError as err:
        return _invalid(path, value, [str(err)])
    return _invalid(path, value, [_NON_NEGATIVE_MSG]) if parsed < 0 else []


def _labels_errors(path: str, labels: Mapping[str, str]) -> list[FieldError]:
    errors: list[FieldError] = []
    for key in sorted(labels):
        errors += _invalid(path, key, qualified_name_errors(key))
        errors += _invalid(path, labels[key], label_value_errors(labels[key]))
    return errors


def _local_path_errors(path: str, value: str) -> list[FieldError]:
    """A path inside a volume: relative and never climbing out with '..'."""
    errors: list[FieldError] = []
    if value.startswith("/"):
        errors += _invalid(path, value, ["must be a relative path"])
    if ".." in value.split("/"):
        errors += _invalid(path, value, ["must not contain '..'"])
    return errors


# ----------------------------------------------------------------- metadata

_STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")
_MAX_ANNOTATIONS_BYTES = 256 * 1024
# Kinds whose names are DNS-1123 labels; every other kind's are subdomains.
NAME_RULES: dict[str, Callable[[str], list[str]]] = {"Namespace": dns1123_label_errors}


def validate_object_meta(kind: Kind, meta: Message, *, old_meta: Message | None = None) -> list[FieldError]:
    """Kubernetes' ValidateObjectMeta, plus ValidateObjectMetaUpdate when ``old_meta`` is given."""
    name_rule = NAME_RULES.get(kind.kind, dns1123_subdomain_errors)
    errors: list[FieldError] = []
    if meta.generate_name:
        # A prefix may end in '-': the generated suffix follows it.
        prefix = meta.generate_name
        masked = prefix[:-1] + "a" if prefix.endswith("-") else prefix
        errors += _invalid("metadata.generateName", prefix, name_rule(masked))
    if meta.name:
        errors += _invalid("metadata.name", meta.name, name_rule(meta.name))
    elif old_meta is not None or not meta.generate_name:
        errors.append(_required("metadata.name", "name or generateName is required"))
    if not kind.namespaced and meta.namespace:
        errors.append(_forbidden("metadata.namespace", "not allowed on this type"))
    elif meta.namespace:
        errors += _invalid("metadata.namespace", meta.namespace, dns1123_label_errors(meta.namespace))
    errors += _labels_errors("metadata.labels", meta.labels)
    for key in sorted(meta.annotations):
        errors += _invalid("metadata.annotations", key, qualified_name_errors(key.lower()))
    size = sum(len(key.encode()) + len(value.encode()) for key, value in meta.annotations.items())
    if size > _MAX_ANNOTATIONS_BYTES:
        errors.append(FieldError("metadata.annotations", "Too long",
                                 f"must have at most {_MAX_ANNOTATIONS_BYTES} bytes"))
    errors += _finalizer_errors("metadata.finalizers", meta.finalizers)
    errors += _owner_reference_errors(meta.owner_references)
    if old_meta is not None:
        errors += _immutable_meta_errors(meta, old_meta)
    return errors


def _finalizer_errors(path: str, finalizers: Iterable[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    for finalizer in finalizers:
        problems = qualified_name_errors(finalizer)
        errors += _invalid(path, finalizer, problems)
        if not problems and "/" not in finalizer and finalizer not in _STANDARD_FINALIZERS:
            errors += _invalid(path, finalizer, ["name is neither a standard finalizer name nor is it fully qualified"])
    return errors


def _owner_reference_errors(references: Sequence[Message]) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, reference in enumerate(references):
        path = f"metadata.ownerReferences[{i}]"
        version = reference.api_version.rpartition("/")[2]
        if not version:
            errors += _invalid(f"{path}.apiVersion", reference.api_version, ["version must not be empty"])
        for field, json_name in (("kind", "kind"), ("name", "name"), ("uid", "uid")):
            if not getattr(reference, field):
                errors += _invalid(f"{path}.{json_name}", "", ["must not be empty"])
    if sum(1 for reference in references if reference.controller) > 1:
        errors.append(FieldError("metadata.ownerReferences", "Invalid value",
                                 "Only one reference can have Controller set to true"))
    return errors


def _immutable_meta_errors(meta: Message, old_meta: Message) -> list[FieldError]:
    errors: list[FieldError] = []
    for field, json_name in (("name", "name"), ("namespace", "namespace")):
        if getattr(meta, field) != getattr(old_meta, field):
            errors += _invalid(f"metadata.{json_name}", getattr(meta, field), ["field is immutable"])
    # The registry copies these from the stored object when a client leaves
    # them out; only a different value is an attempt to change them.
    for field, json_name in (("uid", "uid"), ("creation_timestamp", "creationTimestamp")):
        if meta.HasField(field) and getattr(meta, field) != getattr(old_meta, field):
            errors += _invalid(f"metadata.{json_name}", getattr(meta, field), ["field is immutable"])
    return errors


# ---------------------------------------------------------------------- Pod

_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
_PROTOCOLS = ("SCTP", "TCP", "UDP")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
_HTTP_SCHEMES = ("HTTP", "HTTPS")
_MOUNT_PROPAGATIONS = ("Bidirectional", "HostToContainer", "None")
_TAINT_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")
_TOLERATION_OPERATORS = ("Equal", "Exists")
_SELECTOR_OPERATORS = ("DoesNotExist", "Exists", "In", "NotIn")
_NODE_SELECTOR_OPERATORS = ("DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn")
_HOST_PATH_TYPES = ("", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket")
_PREEMPTION_POLICIES = ("Never", "PreemptLowerPriority")
_UNSATISFIABLE_ACTIONS = ("DoNotSchedule", "ScheduleAnyway")
_STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_RESOURCE_FIELD_REFS = (
    "limits.cpu", "limits.ephemeral-storage", "limits.memory",
    "requests.cpu", "requests.ephemeral-storage", "requests.memory",
)
_ENV_FIELD_PATHS = (
    "metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid",
    "spec.nodeName", "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
)
_VOLUME_FIELD_PATHS = ("metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid")
_SUBSCRIPTED_FIELD_PATH = re.compile(r"(metadata\.(?:labels|annotations))\['(.*)'\]")
_CPU_DIVISORS = ("1m", "1")
_MEMORY_DIVISORS = ("1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei")
_UPDATABLE_POD_FIELDS = (
    "pod updates may not change fields other than `spec.containers[*].image`, "
    "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, "
    "`spec.tolerations` (only additions to existing tolerations), "
    "`spec.terminationGracePeriodSeconds`"
)


def validate_pod(pod: Message, old: Message | None) -> list[FieldError]:
    errors = _pod_spec_errors(pod.spec)
    if old is not None:
        errors += _pod_update_errors(pod.spec, old.spec)
    return errors


def _pod_spec_errors(spec: Message) -> list[FieldError]:
    errors, volume_names = _volumes_errors(spec.volumes)
    grace = spec.termination_grace_period_seconds if spec.HasField("termination_grace_period_seconds") else 30
    if not spec.containers:
        errors.append(_required("spec.containers"))
    names: set[str] = set()
    for group, init in (("containers", False), ("initContainers", True)):
        for i, container in enumerate(spec.init_containers if init else spec.containers):
            path = f"spec.{group}[{i}]"
            errors += _container_errors(container, path, volumes=volume_names, init=init, grace=grace)
            if container.name in names:
                errors.append(FieldError(f"{path}.name", "Duplicate value", value=container.name))
            names.add(container.name)
    if spec.HasField("restart_policy"):
        errors += _one_of("spec.restartPolicy", spec.restart_policy, _RESTART_POLICIES)
    if spec.HasField("dns_policy"):
        errors += _one_of("spec.dnsPolicy", spec.dns_policy, _DNS_POLICIES)
    errors += _dns_config_errors(spec)
    errors += _at_least("spec.terminationGracePeriodSeconds", spec.termination_grace_period_seconds, 0)
    if spec.HasField("active_deadline_seconds") and not 1 <= spec.active_deadline_seconds <= 2**31 - 1:
        errors += _invalid("spec.activeDeadlineSeconds", spec.active_deadline_seconds,
                           ["must be between 1 and 2147483647, inclusive"])
    errors += _labels_errors("spec.nodeSelector", spec.node_selector)
    for field, json_name, check in (
        ("service_account_name", "serviceAccountName", dns1123_subdomain_errors),
        ("node_name", "nodeName", dns1123_subdomain_errors),
        ("hostname", "hostname", dns1123_label_errors),
        ("subdomain", "subdomain", dns1123_label_errors),
    ):
        if getattr(spec, field):
            errors += _invalid(f"spec.{json_name}", getattr(spec, field), check(getattr(spec, field)))
    errors += _pod_security_context_errors(spec.security_context)
    for i, secret in enumerate(spec.image_pull_secrets):
        errors += _name_errors(f"spec.imagePullSecrets[{i}].name", secret.name, dns1123_subdomain_errors)
    for i, toleration in enumerate(spec.tolerations):
        errors += _toleration_errors(f"spec.tolerations[{i}]", toleration)
    errors += _affinity_errors(spec.affinity)
    for i, alias in enumerate(spec.host_aliases):
        errors += _invalid(f"spec.hostAliases[{i}].ip", alias.ip, _ip_errors(alias.ip))
        for hostname in alias.hostnames:
            errors += _invalid(f"spec.hostAliases[{i}].hostnames", hostname, dns1123_subdomain_errors(hostname))
    if spec.HasField("preemption_policy"):
        errors += _one_of("spec.preemptionPolicy", spec.preemption_policy, _PREEMPTION_POLICIES)
    for i, gate in enumerate(spec.readiness_gates):
        errors += _invalid(f"spec.readinessGates[{i}].conditionType", gate.condition_type,
                           qualified_name_errors(gate.condition_type))
    errors += _topology_spread_errors(spec.topology_spread_constraints)
    for name in sorted(spec.overhead):
        errors += _quantity_errors(f"spec.overhead[{name}]", spec.overhead[name])
    return errors


def _dns_config_errors(spec: Message) -> list[FieldError]:
    errors: list[FieldError] = []
    config = spec.dns_config
    if spec.dns_policy == "None":
        if not spec.HasField("dns_config"):
            return [_required("spec.dnsConfig", "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not config.nameservers:
            errors.append(_required("spec.dnsConfig.nameservers",
                                    "must provide at least one DNS nameserver when `dnsPolicy` is None"))
    if len(config.nameservers) > 3:
        errors.append(FieldError("spec.dnsConfig.nameservers", "Invalid value",
                                 "must not have more than 3 nameservers"))
    for i, server in enumerate(config.nameservers):
        errors += _invalid(f"spec.dnsConfig.nameservers[{i}]", server, _ip_errors(server))
    for i, search in enumerate(config.searches):
        errors += _invalid(f"spec.dnsConfig.searches[{i}]", search, dns1123_subdomain_errors(search.rstrip(".")))
    for i, option in enumerate(config.options):
        if not option.name:
            errors.append(_required(f"spec.dnsConfig.options[{i}]", "Option.Name must not be empty"))
    return errors


def _id_errors(path: str, message: Message, fields: Iterable[tuple[str, str]]) -> list[FieldError]:
    errors: list[FieldError] = []
    for field, json_name in fields:
        value = getattr(message, field)
        if message.HasField(field) and not 0 <= value <= 2**31 - 1:
            errors += _invalid(f"{path}.{json_name}", value, [_ID_RANGE_MSG])
    return errors


def _pod_security_context_errors(context: Message) -> list[FieldError]:
    path = "spec.securityContext"
    errors = _id_errors(path, context, (("run_as_user", "runAsUser"), ("run_as_group", "runAsGroup"),
                                        ("fs_group", "fsGroup")))
    for i, group in enumerate(context.supplemental_groups):
        if not 0 <= group <= 2**31 - 1:
            errors += _invalid(f"{path}.supplementalGroups[{i}]", group, [_ID_RANGE_MSG])
    for i, sysctl in enumerate(context.sysctls):
        if not sysctl.name:
            errors.append(_required(f"{path}.sysctls[{i}].name"))
    return errors


def _container_errors(
    container: Message, path: str, *, volumes: set[str], init: bool, grace: int
) -> list[FieldError]:
    errors = _name_errors(f"{path}.name", container.name, dns1123_label_errors)
    if not container.image:
        errors.append(_required(f"{path}.image"))
    elif container.image != container.image.strip():
        errors += _invalid(f"{path}.image", container.image, ["must not have leading or trailing whitespace"])
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
            errors.append(_forbidden(f"{path}.{json_name}", "may not be set for init containers"))
        else:
            errors += _probe_errors(f"{path}.{json_name}", getattr(container, field),
                                    must_succeed_once=json_name != "readinessProbe")
    for field, json_name in (("post_start", "postStart"), ("pre_stop", "preStop")):
        if container.lifecycle.HasField(field):
            errors += _handler_errors(f"{path}.lifecycle.{json_name}", getattr(container.lifecycle, field),
                                      ("exec", "http_get", "tcp_socket", "sleep"), grace=grace)
    if container.HasField("image_pull_policy"):
        errors += _one_of(f"{path}.imagePullPolicy", container.image_pull_policy, _PULL_POLICIES)
    if container.HasField("termination_message_policy"):
        errors += _one_of(f"{path}.terminationMessagePolicy", container.termination_message_policy,
                          _TERMINATION_MESSAGE_POLICIES)
    context = container.security_context
    errors += _id_errors(f"{path}.securityContext", context, (("run_as_user", "runAsUser"),
                                                              ("run_as_group", "runAsGroup")))
    if context.privileged and context.HasField("allow_privilege_escalation") and not context.allow_privilege_escalation:
        errors.append(FieldError(f"{path}.securityContext", "Invalid value",
                                 "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"))
    return errors


def _ports_errors(path: str, ports: Sequence[Message]) -> list[FieldError]:
    errors: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        item = f"{path}[{i}]"
        if port.name:
            problems = port_name_errors(port.name)
            errors += _invalid(f"{item}.name", port.name, problems)
            if not problems and port.name in names:
                errors.append(FieldError(f"{item}.name", "Duplicate value", value=port.name))
            names.add(port.name)
        if not port.container_port:
            errors.append(_required(f"{item}.containerPort"))
        else:
            errors += _invalid(f"{item}.containerPort", port.container_port, port_number_errors(port.container_port))
        if port.host_port:
            errors += _invalid(f"{item}.hostPort", port.host_port, port_number_errors(port.host_port))
        if port.HasField("protocol"):
            errors += _one_of(f"{item}.protocol", port.protocol, _PROTOCOLS)
        if port.host_ip:
            errors += _invalid(f"{item}.hostIP", port.host_ip, _ip_errors(port.host_ip))
    return errors


def _env_errors(path: str, env: Sequence[Message]) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, var in enumerate(env):
        item = f"{path}[{i}]"
        errors += _name_errors(f"{item}.name", var.name, env_var_name_errors)
        if not var.HasField("value_from"):
            continue
        source = var.value_from
        given = [field for field in ("field_ref", "resource_field_ref", "config_map_key_ref", "secret_key_ref")
                 if source.HasField(field)]
        if source.HasField("field_ref"):
            errors += _field_ref_errors(f"{item}.valueFrom.fieldRef", source.field_ref, _ENV_FIELD_PATHS)
        if source.HasField("resource_field_ref"):
            errors += _resource_field_ref_errors(f"{item}.valueFrom.resourceFieldRef", source.resource_field_ref,
                                                 volume=False)
        for field, json_name in (("config_map_key_ref", "configMapKeyRef"), ("secret_key_ref", "secretKeyRef")):
            if source.HasField(field):
                selector = getattr(source, field)
                errors += _name_errors(f"{item}.valueFrom.{json_name}.name", selector.name, dns1123_subdomain_errors)
                errors += _name_errors(f"{item}.valueFrom.{json_name}.key", selector.key, config_key_errors)
        if not given:
            errors += _invalid(f"{item}.valueFrom", "", [
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"])
        elif var.value:
            errors += _invalid(f"{item}.valueFrom", "", ["may not be specified when `value` is not empty"])
        elif len(given) > 1:
            errors += _invalid(f"{item}.valueFrom", "", ["may not have more than one field specified at a time"])
    return errors


def _field_ref_errors(path: str, ref: Message, supported: Sequence[str]) -> list[FieldError]:
    if not ref.field_path:
        return [_required(f"{path}.fieldPath")]
    subscripted = _SUBSCRIPTED_FIELD_PATH.fullmatch(ref.field_path)
    if subscripted:
        field, key = subscripted.groups()
        key = key.lower() if field == "metadata.annotations" else key
        return _invalid(f"{path}.fieldPath", ref.field_path, qualified_name_errors(key))
    return _one_of(f"{path}.fieldPath", ref.field_path, supported)


def _resource_field_ref_errors(path: str, ref: Message, *, volume: bool) -> list[FieldError]:
    if volume and not ref.container_name:
        return [_required(f"{path}.containerName")]
    if not ref.resource:
        return [_required(f"{path}.resource")]
    errors = _one_of(f"{path}.resource", ref.resource, _RESOURCE_FIELD_REFS)
    if errors or not ref.divisor:
        return errors
    errors = _quantity_errors(f"{path}.divisor", ref.divisor)
    if errors:
        return errors
    resource = ref.resource.partition(".")[2]
    allowed = _CPU_DIVISORS if resource == "cpu" else _MEMORY_DIVISORS
    divisor = parse_quantity(ref.divisor)
    if divisor != 0 and all(parse_quantity(option) != divisor for option in allowed):
        errors += _invalid(f"{path}.divisor", ref.divisor, [
            f"only divisor's values {', '.join(allowed)} are supported with the {resource} resource"])
    return errors


def _env_from_errors(path: str, sources: Sequence[Message]) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, source in enumerate(sources):
        item = f"{path}[{i}]"
        if source.prefix:
            errors += _invalid(f"{item}.prefix", source.prefix, env_var_name_errors(source.prefix))
        given = [json_name for field, json_name in (("config_map_ref", "configMapRef"), ("secret_ref", "secretRef"))
                 if source.HasField(field)]
        for json_name in given:
            reference = source.config_map_ref if json_name == "configMapRef" else source.secret_ref
            errors += _name_errors(f"{item}.{json_name}.name", reference.name, dns1123_subdomain_errors)
        if not given:
            errors += _invalid(item, "", ["must specify one of: `configMapRef` or `secretRef`"])
        elif len(given) > 1:
            errors += _invalid(item, "", ["may not have more than one field specified at a time"])
    return errors


def _is_extended_resource(name: str) -> bool:
    return "/" in name and not name.partition("/")[0].endswith("kubernetes.io")


def _resource_name_errors(path: str, name: str) -> list[FieldError]:
    errors = _invalid(path, name, qualified_name_errors(name))
    if "/" not in name:
        if name not in _STANDARD_CONTAINER_RESOURCES and not name.startswith("hugepages-"):
            errors += _invalid(path, name, ["must be a standard resource for containers"])
    elif not _is_extended_resource(name):
        errors += _invalid(path, name, ["doesn't follow extended resource name standard"])
    return errors


def _resources_errors(path: str, resources: Message) -> list[FieldError]:
    errors: list[FieldError] = []
    limits, requests = resources.limits, resources.requests
    for group, amounts in (("limits", limits), ("requests", requests)):
        for name in sorted(amounts):
            item = f"{path}.{group}[{name}]"
            errors += _resource_name_errors(item, name)
            problems = _quantity_errors(item, amounts[name])
            if not problems and _is_extended_resource(name):
                value = parse_quantity(amounts[name])
                if value != value.to_integral_value():
                    problems = _invalid(item, amounts[name], ["must be an integer"])
            errors += problems
    for name in sorted(requests):
        if _quantity_errors("", requests[name]) or (name in limits and _quantity_errors("", limits[name])):
            continue
        if name not in limits:
            if _is_extended_resource(name):
                errors.append(_required(f"{path}.limits", "Limit must be set for non overcommitable resources"))
            continue
        request, limit = parse_quantity(requests[name]), parse_quantity(limits[name])
        if _is_extended_resource(name) and request != limit:
            errors += _invalid(f"{path}.requests", requests[name], [f"must be equal to {name} limit of {limits[name]}"])
        elif request > limit:
            errors += _invalid(f"{path}.requests", requests[name],
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
            errors.append(_required(f"{item}.name"))
        elif mount.name not in volumes:
            errors.append(FieldError(f"{item}.name", "Not found", value=mount.name))
        if not mount.mount_path:
            errors.append(_required(f"{item}.mountPath"))
        elif mount.mount_path in mount_paths:
            errors += _invalid(f"{item}.mountPath", mount.mount_path, ["must be unique"])
        mount_paths.add(mount.mount_path)
        if mount.sub_path:
            errors += _local_path_errors(f"{item}.subPath", mount.sub_path)
        if mount.sub_path_expr:
            if mount.sub_path:
                errors += _invalid(f"{item}.subPathExpr", mount.sub_path_expr,
                                   ["subPathExpr and subPath are mutually exclusive"])
            errors += _local_path_errors(f"{item}.subPathExpr", mount.sub_path_expr)
        if mount.HasField("mount_propagation"):
            errors += _one_of(f"{item}.mountPropagation", mount.mount_propagation, _MOUNT_PROPAGATIONS)
            if mount.mount_propagation == "Bidirectional" and not privileged:
                errors.append(_forbidden(f"{item}.mountPropagation",
                                         "Bidirectional mount propagation is available only to privileged containers"))
    return errors


def _probe_errors(path: str, probe: Message, *, must_succeed_once: bool) -> list[FieldError]:
    errors = _handler_errors(path, probe, ("exec", "http_get", "tcp_socket", "grpc"), grace=None)
    errors += _at_least(f"{path}.initialDelaySeconds", probe.initial_delay_seconds, 0)
    for field, json_name in (("timeout_seconds", "timeoutSeconds"), ("period_seconds", "periodSeconds"),
                             ("success_threshold", "successThreshold"), ("failure_threshold", "failureThreshold")):
        if probe.HasField(field):
            errors += _at_least(f"{path}.{json_name}", getattr(probe, field), 1)
    if must_succeed_once and probe.HasField("success_threshold") and probe.success_threshold != 1:
        errors += _invalid(f"{path}.successThreshold", probe.success_threshold, ["must be 1"])
    if probe.HasField("termination_grace_period_seconds") and probe.termination_grace_period_seconds <= 0:
        errors += _invalid(f"{path}.terminationGracePeriodSeconds", probe.termination_grace_period_seconds,
                           ["must be greater than 0"])
    return errors


def _handler_errors(path: str, handler: Message, actions: Sequence[str], *, grace: int | None) -> list[FieldError]:
    """A probe or lifecycle handler: exactly one action, and that action valid."""
    json_names = {"exec": "exec", "http_get": "httpGet", "tcp_socket": "tcpSocket", "grpc": "grpc", "sleep": "sleep"}
    given = [action for action in actions if handler.HasField(action)]
    if not given:
        return [_required(path, "must specify a handler type")]
    errors = [_forbidden(f"{path}.{json_names[extra]}", "may not specify more than 1 handler type")
              for extra in given[1:]]
    kind = given[0]
    action, item = getattr(handler, kind), f"{path}.{json_names[kind]}"
    if kind == "exec" and not action.command:
        errors.append(_required(f"{item}.command"))
    elif kind == "http_get":
        if action.HasField("path") and not action.path:
            errors.append(_required(f"{item}.path"))
        errors += _port_or_name_errors(f"{item}.port", action)
        if action.HasField("scheme"):
            errors += _one_of(f"{item}.scheme", action.scheme, _HTTP_SCHEMES)
    elif kind == "tcp_socket":
        errors += _port_or_name_errors(f"{item}.port", action)
    elif kind == "grpc":
        errors += _invalid(f"{item}.port", action.port, port_number_errors(action.port))
    elif kind == "sleep" and grace is not None and not 0 <= action.seconds <= grace:
        errors += _invalid(f"{item}.seconds", action.seconds,
                           [f"must be non-negative and less than terminationGracePeriodSeconds ({grace})"])
    return errors


def _port_or_name_errors(path: str, action: Message) -> list[FieldError]:
    which = action.port.WhichOneof("value")
    if which == "int_value":
        return _invalid(path, action.port.int_value, port_number_errors(action.port.int_value))
    if which == "str_value":
        return _invalid(path, action.port.str_value, port_name_errors(action.port.str_value))
    return [_required(path)]


def _volumes_errors(volumes: Sequence[Message]) -> tuple[list[FieldError], set[str]]:
    errors: list[FieldError] = []
    names: set[str] = set()
    for i, volume in enumerate(volumes):
        path = f"spec.volumes[{i}]"
        errors += _volume_source_errors(path, volume)
        errors += _name_errors(f"{path}.name", volume.name, dns1123_label_errors)
        if volume.name in names:
            errors.append(FieldError(f"{path}.name", "Duplicate value", value=volume.name))
        names.add(volume.name)
    return errors, names


_VOLUME_SOURCES = (
    ("host_path", "hostPath"), ("empty_dir", "emptyDir"), ("secret", "secret"), ("config_map", "configMap"),
    ("persistent_volume_claim", "persistentVolumeClaim"), ("nfs", "nfs"), ("downward_api", "downwardAPI"),
    ("projected", "projected"),
)


def _volume_source_errors(path: str, volume: Message) -> list[FieldError]:
    given = [(field, json_name) for field, json_name in _VOLUME_SOURCES if volume.HasField(field)]
    if not given:
        return [_required(path, "must specify a volume type")]
    errors = [_forbidden(f"{path}.{json_name}", "may not specify more than 1 volume type")
              for _, json_name in given[1:]]
    field, json_name = given[0]
    source, item = getattr(volume, field), f"{path}.{json_name}"
    if field == "host_path":
        if not source.path:
            errors.append(_required(f"{item}.path"))
        elif ".." in source.path.split("/"):
            errors += _invalid(f"{item}.path", source.path, ["must not contain '..'"])
        if source.HasField("type"):
            errors += _one_of(f"{item}.type", source.type, _HOST_PATH_TYPES)
    elif field == "empty_dir" and source.HasField("size_limit"):
        errors += _quantity_errors(f"{item}.sizeLimit", source.size_limit)
    elif field in ("secret", "config_map"):
        name_field, name_json = ("secret_name", "secretName") if field == "secret" else ("name", "name")
        errors += _name_errors(f"{item}.{name_json}", getattr(source, name_field), dns1123_subdomain_errors)
        errors += _key_to_path_errors(f"{item}.items", source.items)
        errors += _file_mode_errors(f"{item}.defaultMode", source)
    elif field == "persistent_volume_claim" and not source.claim_name:
        errors.append(_required(f"{item}.claimName"))
    elif field == "nfs":
        if not source.server:
            errors.append(_required(f"{item}.server"))
        if not source.path:
            errors.append(_required(f"{item}.path"))
        elif not source.path.startswith("/"):
            errors += _invalid(f"{item}.path", source.path, ["must be an absolute path"])
    elif field == "downward_api":
        errors += _downward_api_items_errors(f"{item}.items", source.items)
        errors += _file_mode_errors(f"{item}.defaultMode", source)
    elif field == "projected":
        errors += _projection_errors(f"{item}.sources", source.sources)
        errors += _file_mode_errors(f"{item}.defaultMode", source)
    return errors


def _file_mode_errors(path: str, source: Message) -> list[FieldError]:
    field = "mode" if "mode" in source.DESCRIPTOR.fields_by_name else "default_mode"
    value = getattr(source, field)
    if source.HasField(field) and not 0 <= value <= 0o777:
        return _invalid(path, value, [_FILE_MODE_MSG])
    return []


def _key_to_path_errors(path: str, items: Sequence[Message]) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, item in enumerate(items):
        item_path = f"{path}[{i}]"
        if not item.key:
            errors.append(_required(f"{item_path}.key"))
        if not item.path:
            errors.append(_required(f"{item_path}.path"))
        else:
            errors += _local_path_errors(f"{item_path}.path", item.path)
        errors += _file_mode_errors(f"{item_path}.mode", item)
    return errors


def _downward_api_items_errors(path: str, items: Sequence[Message]) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, item in enumerate(items):
        item_path = f"{path}[{i}]"
        if not item.path:
            errors.append(_required(f"{item_path}.path"))
        else:
            errors += _local_path_errors(f"{item_path}.path", item.path)
        if item.HasField("field_ref"):
            errors += _field_ref_errors(f"{item_path}.fieldRef", item.field_ref, _VOLUME_FIELD_PATHS)
            if item.HasField("resource_field_ref"):
                errors += _invalid(item_path, "resource",
                                   ["fieldRef and resourceFieldRef can not be specified simultaneously"])
        elif item.HasField("resource_field_ref"):
            errors += _resource_field_ref_errors(f"{item_path}.resourceFieldRef", item.resource_field_ref, volume=True)
        else:
            errors.append(_required(item_path, "one of fieldRef and resourceFieldRef is required"))
        errors += _file_mode_errors(f"{item_path}.mode", item)
    return errors


def _projection_errors(path: str, sources: Sequence[Message]) -> list[FieldError]:
    errors: list[FieldError] = []
    kinds = (("secret", "secret"), ("config_map", "configMap"), ("downward_api", "downwardAPI"),
             ("service_account_token", "serviceAccountToken"))
    for i, source in enumerate(sources):
        item = f"{path}[{i}]"
        given = [(field, json_name) for field, json_name in kinds if source.HasField(field)]
        if not given:
            errors.append(_required(item, "must specify exactly 1 volume type"))
            continue
        errors += [_forbidden(f"{item}.{json_name}", "may not specify more than 1 volume type per source")
                   for _, json_name in given[1:]]
        field, json_name = given[0]
        projection, projection_path = getattr(source, field), f"{item}.{json_name}"
        if field in ("secret", "config_map"):
            errors += _name_errors(f"{projection_path}.name", projection.name, dns1123_subdomain_errors)
            errors += _key_to_path_errors(f"{projection_path}.items", projection.items)
        elif field == "downward_api":
            errors += _downward_api_items_errors(f"{projection_path}.items", projection.items)
        else:
            if not projection.path:
                errors.append(_required(f"{projection_path}.path"))
            else:
                errors += _local_path_errors(f"{projection_path}.path", projection.path)
            seconds = projection.expiration_seconds
            if projection.HasField("expiration_seconds") and seconds < 600:
                errors += _invalid(f"{projection_path}.expirationSeconds", seconds,
                                   ["may not specify a duration less than 10 minutes"])
            elif seconds > 2**32:
                errors += _invalid(f"{projection_path}.expirationSeconds", seconds,
                                   ["may not specify a duration larger than 2^32 seconds"])
    return errors


def _toleration_errors(path: str, toleration: Message) -> list[FieldError]:
    errors: list[FieldError] = []
    if toleration.key:
        errors += _invalid(f"{path}.key", toleration.key, qualified_name_errors(toleration.key))
    elif toleration.operator != "Exists":
        errors += _invalid(f"{path}.operator", toleration.operator, [
            'operator must be Exists when `key` is empty, which means "match all values and all keys"'])
    if toleration.HasField("toleration_seconds") and toleration.effect != "NoExecute":
        errors += _invalid(f"{path}.effect", toleration.effect,
                           ["effect must be 'NoExecute' when `tolerationSeconds` is set"])
    if toleration.operator in ("", "Equal"):
        errors += _invalid(f"{path}.value", toleration.value, label_value_errors(toleration.value))
    elif toleration.operator == "Exists":
        if toleration.value:
            errors += _invalid(f"{path}.operator", toleration.operator,
                               ["value must be empty when `operator` is 'Exists'"])
    else:
        errors += _one_of(f"{path}.operator", toleration.operator, _TOLERATION_OPERATORS)
    if toleration.effect:
        errors += _one_of(f"{path}.effect", toleration.effect, _TAINT_EFFECTS)
    return errors


def _affinity_errors(affinity: Message) -> list[FieldError]:
    errors: list[FieldError] = []
    path = "spec.affinity.nodeAffinity"
    node = affinity.node_affinity
    if node.HasField("required_during_scheduling_ignored_during_execution"):
        required = node.required_during_scheduling_ignored_during_execution
        item = f"{path}.requiredDuringSchedulingIgnoredDuringExecution"
        if not required.node_selector_terms:
            errors.append(_required(f"{item}.nodeSelectorTerms", "must have at least one node selector term"))
        for i, term in enumerate(required.node_selector_terms):
            errors += _node_selector_term_errors(f"{item}.nodeSelectorTerms[{i}]", term)
    for i, preferred in enumerate(node.preferred_during_scheduling_ignored_during_execution):
        item = f"{path}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
        errors += _weight_errors(f"{item}.weight", preferred.weight)
        errors += _node_selector_term_errors(f"{item}.preference", preferred.preference)
    for field, json_name in (("pod_affinity", "podAffinity"), ("pod_anti_affinity", "podAntiAffinity")):
        pod, path = getattr(affinity, field), f"spec.affinity.{json_name}"
        for i, term in enumerate(pod.required_during_scheduling_ignored_during_execution):
            errors += _pod_affinity_term_errors(f"{path}.requiredDuringSchedulingIgnoredDuringExecution[{i}]", term)
        for i, weighted in enumerate(pod.preferred_during_scheduling_ignored_during_execution):
            item = f"{path}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
            errors += _weight_errors(f"{item}.weight", weighted.weight)
            errors += _pod_affinity_term_errors(f"{item}.podAffinityTerm", weighted.pod_affinity_term)
    return errors


def _weight_errors(path: str, weight: int) -> list[FieldError]:
    return [] if 1 <= weight <= 100 else _invalid(path, weight, ["must be in the range 1-100"])


def _node_selector_term_errors(path: str, term: Message) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, requirement in enumerate(term.match_expressions):
        item = f"{path}.matchExpressions[{i}]"
        errors += _requirement_errors(item, requirement, _NODE_SELECTOR_OPERATORS)
        errors += _invalid(f"{item}.key", requirement.key, qualified_name_errors(requirement.key))
    for i, requirement in enumerate(term.match_fields):
        item = f"{path}.matchFields[{i}]"
        if requirement.operator in ("In", "NotIn"):
            if len(requirement.values) != 1:
                errors.append(_required(f"{item}.values", "must be only one value when `operator` is 'In' or "
                                                          "'NotIn' for node field selector"))
        else:
            errors += _one_of(f"{item}.operator", requirement.operator, ("In", "NotIn"))
        errors += _one_of(f"{item}.key", requirement.key, ("metadata.name",))
    return errors


def _requirement_errors(path: str, requirement: Message, operators: Sequence[str]) -> list[FieldError]:
    """The operator and values rules shared by label and node selector requirements."""
    operator, values = requirement.operator, list(requirement.values)
    if operator in ("In", "NotIn"):
        if not values:
            return [_required(f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'")]
    elif operator in ("Exists", "DoesNotExist"):
        if values:
            return [_forbidden(f"{path}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")]
    elif operator in ("Gt", "Lt") and operator in operators:
        if len(values) != 1:
            return [_required(f"{path}.values", "must be specified single value when `operator` is 'Lt' or 'Gt'")]
        if not re.fullmatch(r"[+-]?[0-9]+", values[0]):
            return _invalid(f"{path}.values[0]", values[0], ["must be an integer"])
    else:
        return _one_of(f"{path}.operator", operator, operators)
    return []


def _label_selector_errors(path: str, selector: Message) -> list[FieldError]:
    errors = _labels_errors(f"{path}.matchLabels", selector.match_labels)
    for i, requirement in enumerate(selector.match_expressions):
        item = f"{path}.matchExpressions[{i}]"
        errors += _requirement_errors(item, requirement, _SELECTOR_OPERATORS)
        errors += _invalid(f"{item}.key", requirement.key, qualified_name_errors(requirement.key))
    return errors


def _pod_affinity_term_errors(path: str, term: Message) -> list[FieldError]:
    errors = _label_selector_errors(f"{path}.labelSelector", term.label_selector)
    errors += _label_selector_errors(f"{path}.namespaceSelector", term.namespace_selector)
    for namespace in term.namespaces:
        errors += _invalid(f"{path}.namespaces", namespace, dns1123_label_errors(namespace))
    if not term.topology_key:
        errors.append(_required(f"{path}.topologyKey", "can not be empty"))
    else:
        errors += _invalid(f"{path}.topologyKey", term.topology_key, qualified_name_errors(term.topology_key))
    return errors


def _topology_spread_errors(constraints: Sequence[Message]) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for i, constraint in enumerate(constraints):
        path = f"spec.topologySpreadConstraints[{i}]"
        if constraint.max_skew <= 0:
            errors += _invalid(f"{path}.maxSkew", constraint.max_skew, ["must be greater than zero"])
        if not constraint.topology_key:
            errors.append(_required(f"{path}.topologyKey", "can not be empty"))
        else:
            errors += _invalid(f"{path}.topologyKey", constraint.topology_key,
                               qualified_name_errors(constraint.topology_key))
        errors += _one_of(f"{path}.whenUnsatisfiable", constraint.when_unsatisfiable, _UNSATISFIABLE_ACTIONS)
        if constraint.HasField("min_domains"):
            if constraint.min_domains <= 0:
                errors += _invalid(f"{path}.minDomains", constraint.min_domains, ["must be greater than 0"])
            elif constraint.when_unsatisfiable != "DoNotSchedule":
                errors += _invalid(f"{path}.minDomains", constraint.min_domains, [
                    f"can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {constraint.when_unsatisfiable}"])
        pair = (constraint.topology_key, constraint.when_unsatisfiable)
        if pair in seen:
            errors.append(FieldError(f"{path}.{{topologyKey, whenUnsatisfiable}}", "Duplicate value",
                                     value=f"{pair[0]}, {pair[1]}"))
        seen.add(pair)
    return errors


def _pod_update_errors(spec: Message, old: Message) -> list[FieldError]:
    """Kubernetes' ValidatePodUpdate: a running pod's spec is nearly frozen."""
    errors: list[FieldError] = []
    if old.HasField("active_deadline_seconds"):
        if not spec.HasField("active_deadline_seconds"):
            errors += _invalid("spec.activeDeadlineSeconds", "",
                               ["must not update from a positive integer to nil value"])
        elif spec.active_deadline_seconds > old.active_deadline_seconds:
            errors += _invalid("spec.activeDeadlineSeconds", spec.active_deadline_seconds,
                               ["must be less than or equal to previous value"])
    for toleration in old.tolerations:
        if not any(_same_toleration(toleration, new) for new in spec.tolerations):
            errors.append(_forbidden("spec.tolerations",
                                     "existing toleration can not be modified except its tolerationSeconds"))
            break
    # Undo every allowed change; whatever still differs was not allowed.
    munged = type(spec)()
    munged.CopyFrom(spec)
    for new_containers, old_containers in ((munged.containers, old.containers),
                                           (munged.init_containers, old.init_containers)):
        for container, previous in zip(new_containers, old_containers):
            _copy_field(container, previous, "image")
    for field in ("active_deadline_seconds", "termination_grace_period_seconds"):
        _copy_field(munged, old, field)
    del munged.tolerations[:]
    munged.tolerations.extend(old.tolerations)
    if not old.node_name:
        _copy_field(munged, old, "node_name")  # binding: the scheduler sets nodeName once
    if munged != old:
        errors.append(_forbidden("spec", _UPDATABLE_POD_FIELDS))
    return errors


def _same_toleration(old: Message, new: Message) -> bool:
    clone = type(old)()
    clone.CopyFrom(old)
    _copy_field(clone, new, "toleration_seconds")
    return clone == new


def _copy_field(target: Message, source: Message, field: str) -> None:
    if source.HasField(field):
        setattr(target, field, getattr(source, field))
    else:
        target.ClearField(field)


# ---------------------------------------------------------------- the rest

_MAX_DATA_BYTES = 1024 * 1024
_IMMUTABLE_DATA = "field is immutable when `immutable` is set"
_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def _data_errors(path: str, data: Mapping[str, str | bytes]) -> list[FieldError]:
    errors: list[FieldError] = []
    for key in sorted(data):
        errors += _invalid(f"{path}[{key}]", key, config_key_errors(key))
    return errors


def _data_size(*maps: Mapping[str, str | bytes]) -> int:
    return sum(len(value.encode() if isinstance(value, str) else value) for data in maps for value in data.values())


def _immutable_data_errors(
    obj: Message, old: Message | None, fields: Sequence[tuple[str, str]]
) -> list[FieldError]:
    if old is None or not old.immutable:
        return []
    errors = [_forbidden(json_name, _IMMUTABLE_DATA) for field, json_name in fields
              if getattr(obj, field) != getattr(old, field)]
    if not obj.immutable:
        errors.append(_forbidden("immutable", _IMMUTABLE_DATA))
    return errors


def validate_config_map(config_map: Message, old: Message | None) -> list[FieldError]:
    errors = _data_errors("data", config_map.data) + _data_errors("binaryData", config_map.binary_data)
    for key in sorted(set(config_map.data) & set(config_map.binary_data)):
        errors += _invalid(f"data[{key}]", key, ["duplicate of key present in binaryData"])
    if _data_size(config_map.data, config_map.binary_data) > _MAX_DATA_BYTES:
        errors.append(FieldError("data", "Too long", f"must have at most {_MAX_DATA_BYTES} bytes"))
    return errors + _immutable_data_errors(config_map, old, (("data", "data"), ("binary_data", "binaryData")))


def validate_secret(secret: Message, old: Message | None) -> list[FieldError]:
    errors = _data_errors("data", secret.data) + _data_errors("stringData", secret.string_data)
    if _data_size(secret.data, secret.string_data) > _MAX_DATA_BYTES:
        errors.append(FieldError("data", "Too long", f"must have at most {_MAX_DATA_BYTES} bytes"))
    keys = set(secret.data) | set(secret.string_data)
    if secret.type:
        errors += _invalid("type", secret.type, qualified_name_errors(secret.type))
    for key in _SECRET_REQUIRED_KEYS.get(secret.type, ()):
        if key not in keys:
            errors.append(_required(f"data[{key}]"))
    if secret.type == "kubernetes.io/basic-auth" and not keys & {"username", "password"}:
        errors += [_required("data[username]"), _required("data[password]")]
    if secret.type == "kubernetes.io/service-account-token" and \
            "kubernetes.io/service-account.name" not in secret.metadata.annotations:
        errors.append(_required("metadata.annotations[kubernetes.io/service-account.name]"))
    if old is not None and secret.type != old.type:
        errors += _invalid("type", secret.type, ["field is immutable"])
    return errors + _immutable_data_errors(secret, old, (("data", "data"),))


def validate_node(node: Message, old: Message | None) -> list[FieldError]:
    spec = node.spec
    errors: list[FieldError] = []
    if spec.pod_cidr:
        errors += _invalid("spec.podCIDR", spec.pod_cidr, _cidr_errors(spec.pod_cidr))
    for i, cidr in enumerate(spec.pod_cidrs):
        errors += _invalid(f"spec.podCIDRs[{i}]", cidr, _cidr_errors(cidr))
    if len(spec.pod_cidrs) > 2:
        errors += _invalid("spec.podCIDRs", ", ".join(spec.pod_cidrs),
                           ["may specify no more than one CIDR for each IP family"])
    if spec.pod_cidr and spec.pod_cidrs and spec.pod_cidrs[0] != spec.pod_cidr:
        errors += _invalid("spec.podCIDRs[0]", spec.pod_cidrs[0], ["must match spec.podCIDR"])
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(spec.taints):
        path = f"spec.taints[{i}]"
        errors += _invalid(f"{path}.key", taint.key, qualified_name_errors(taint.key))
        errors += _invalid(f"{path}.value", taint.value, label_value_errors(taint.value))
        if not taint.effect:
            errors.append(_required(f"{path}.effect"))
        else:
            errors += _one_of(f"{path}.effect", taint.effect, _TAINT_EFFECTS)
        if (taint.key, taint.effect) in seen:
            errors.append(FieldError(path, "Duplicate value", "taints must be unique by key and effect pair",
                                     f"{taint.key}:{taint.effect}"))
        seen.add((taint.key, taint.effect))
    for group, json_name in ((node.status.capacity, "capacity"), (node.status.allocatable, "allocatable")):
        for name in sorted(group):
            errors += _quantity_errors(f"status.{json_name}[{name}]", group[name])
    if old is not None:
        if old.spec.pod_cidrs and list(spec.pod_cidrs) != list(old.spec.pod_cidrs):
            errors.append(_forbidden("spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid'))
        if old.spec.provider_id and spec.provider_id != old.spec.provider_id:
            errors.append(_forbidden("spec.providerID",
                                     'node updates may not change providerID except from "" to valid'))
    return errors


def validate_namespace(namespace: Message, old: Message | None) -> list[FieldError]:
    return _finalizer_errors("spec.finalizers", namespace.spec.finalizers)


def validate_event(event: Message, old: Message | None) -> list[FieldError]:
    involved = event.involved_object
    errors = [_required(f"involvedObject.{name}") for name in ("kind", "name") if not getattr(involved, name)]
    if involved.namespace and event.metadata.namespace and involved.namespace != event.metadata.namespace:
        errors += _invalid("involvedObject.namespace", involved.namespace, ["does not match event.namespace"])
    if event.HasField("type"):
        errors += _one_of("type", event.type, ("Normal", "Warning"))
    errors += _at_least("count", event.count, 0)
    return errors


def validate_lease(lease: Message, old: Message | None) -> list[FieldError]:
    spec = lease.spec
    errors: list[FieldError] = []
    if spec.HasField("lease_duration_seconds") and spec.lease_duration_seconds <= 0:
        errors += _invalid("spec.leaseDurationSeconds", spec.lease_duration_seconds, ["must be greater than 0"])
    return errors + _at_least("spec.leaseTransitions", spec.lease_transitions, 0)


# ---------------------------------------------------------------- registry

# A kind's rules: (new object, stored object on update or None) -> broken rules.
Validator = Callable[[Message, Message | None], list[FieldError]]

# One validator per kind; the object metadata rules run for every kind.
VALIDATORS: dict[str, Validator] = {
    "Namespace": validate_namespace,
    "Node": validate_node,
    "Pod": validate_pod,
    "ConfigMap": validate_config_map,
    "Secret": validate_secret,
    "Event": validate_event,
    "Lease": validate_lease,
}


def validate(kind: Kind, obj: Message, *, old: Message | None = None) -> list[FieldError]:
    """Every rule ``obj`` breaks, as a new object or (``old`` given) as an update of ``old``."""
    errors = validate_object_meta(kind, obj.metadata, old_meta=None if old is None else old.metadata)
    validator = VALIDATORS.get(kind.kind)
    if validator is not None:
        errors += validator(obj, old)
    return errors
