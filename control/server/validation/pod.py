"""Pod rules: Kubernetes' ValidatePodSpec, and ValidatePodUpdate on update.

``validate_pod`` checks the spec field by field, handing each part to the
module that holds its rules: containers (pod_containers.py), volumes
(pod_volumes.py), security contexts, and scheduling constraints
(pod_scheduling.py). The pod-wide fields are checked here: policies, DNS,
host names, the OS, readiness gates and overhead.

On update a pod's spec is nearly frozen, as in Kubernetes: only container
images, the active deadline (downwards), the grace period, new tolerations and
(once, by the scheduler's binding) the node name may change.
"""

from __future__ import annotations

from google.protobuf.message import Message

from control.api.manifest import FieldError
from control.api.names import dns1123_label_errors, dns1123_subdomain_errors, qualified_name_errors
from control.server.validation.field_errors import (
    at_least, forbidden, invalid, ip_errors, labels_errors, name_errors, one_of, quantity_errors, required,
)
from control.server.validation.pod_containers import container_errors
from control.server.validation.pod_scheduling import affinity_errors, toleration_errors, topology_spread_errors
from control.server.validation.pod_volumes import volumes_errors
from control.server.validation.security_contexts import pod_security_context_errors

RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
_PREEMPTION_POLICIES = ("Never", "PreemptLowerPriority")
_OS_NAMES = ("linux", "windows")
_UPDATABLE_POD_FIELDS = (
    "pod updates may not change fields other than `spec.containers[*].image`, "
    "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, "
    "`spec.tolerations` (only additions to existing tolerations), "
    "`spec.terminationGracePeriodSeconds`"
)


def validate_pod(pod: Message, old: Message | None) -> list[FieldError]:
    errors = pod_spec_errors(pod.spec)
    if old is not None:
        errors += _pod_update_errors(pod.spec, old.spec)
    return errors


def pod_spec_errors(spec: Message, *, path: str = "spec") -> list[FieldError]:
    """Kubernetes' ValidatePodSpec for the pod spec at ``path``: a pod's own, or a workload's
    ``spec.template.spec``."""
    errors, volume_names = volumes_errors(spec.volumes, spec_path=path)
    grace = spec.termination_grace_period_seconds if spec.HasField("termination_grace_period_seconds") else 30
    if not spec.containers:
        errors.append(required(f"{path}.containers"))
    names: set[str] = set()
    for group, init in (("containers", False), ("initContainers", True)):
        for i, container in enumerate(spec.init_containers if init else spec.containers):
            item = f"{path}.{group}[{i}]"
            errors += container_errors(container, item, volumes=volume_names, init=init, grace=grace)
            if container.name in names:
                errors.append(FieldError(f"{item}.name", "Duplicate value", value=container.name))
            names.add(container.name)
    if spec.HasField("restart_policy"):
        errors += one_of(f"{path}.restartPolicy", spec.restart_policy, RESTART_POLICIES)
    if spec.HasField("dns_policy"):
        errors += one_of(f"{path}.dnsPolicy", spec.dns_policy, _DNS_POLICIES)
    errors += _dns_config_errors(spec, path)
    errors += at_least(f"{path}.terminationGracePeriodSeconds", spec.termination_grace_period_seconds, 0)
    if spec.HasField("active_deadline_seconds") and not 1 <= spec.active_deadline_seconds <= 2**31 - 1:
        errors += invalid(f"{path}.activeDeadlineSeconds", spec.active_deadline_seconds,
                          ["must be between 1 and 2147483647, inclusive"])
    errors += labels_errors(f"{path}.nodeSelector", spec.node_selector)
    for field, json_name, check in (
        ("service_account_name", "serviceAccountName", dns1123_subdomain_errors),
        ("node_name", "nodeName", dns1123_subdomain_errors),
        ("hostname", "hostname", dns1123_label_errors),
        ("subdomain", "subdomain", dns1123_label_errors),
    ):
        if getattr(spec, field):
            errors += invalid(f"{path}.{json_name}", getattr(spec, field), check(getattr(spec, field)))
    errors += pod_security_context_errors(spec.security_context, spec_path=path)
    for i, secret in enumerate(spec.image_pull_secrets):
        errors += name_errors(f"{path}.imagePullSecrets[{i}].name", secret.name, dns1123_subdomain_errors)
    for i, toleration in enumerate(spec.tolerations):
        errors += toleration_errors(f"{path}.tolerations[{i}]", toleration)
    errors += affinity_errors(spec.affinity, spec_path=path)
    for i, alias in enumerate(spec.host_aliases):
        errors += invalid(f"{path}.hostAliases[{i}].ip", alias.ip, ip_errors(alias.ip))
        for hostname in alias.hostnames:
            errors += invalid(f"{path}.hostAliases[{i}].hostnames", hostname, dns1123_subdomain_errors(hostname))
    if spec.HasField("preemption_policy"):
        errors += one_of(f"{path}.preemptionPolicy", spec.preemption_policy, _PREEMPTION_POLICIES)
    for i, gate in enumerate(spec.readiness_gates):
        errors += invalid(f"{path}.readinessGates[{i}].conditionType", gate.condition_type,
                          qualified_name_errors(gate.condition_type))
    errors += topology_spread_errors(spec.topology_spread_constraints, spec_path=path)
    for name in sorted(spec.overhead):
        errors += quantity_errors(f"{path}.overhead[{name}]", spec.overhead[name])
    if spec.HasField("os"):
        errors += _os_errors(spec.os, path)
    return errors


def _os_errors(pod_os: Message, path: str) -> list[FieldError]:
    """The OS a pod's containers need: the scheduler matches it against nodes' kubernetes.io/os label."""
    if not pod_os.name:
        return [required(f"{path}.os.name")]
    return one_of(f"{path}.os.name", pod_os.name, _OS_NAMES)


def _dns_config_errors(spec: Message, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    config = spec.dns_config
    if spec.dns_policy == "None":
        if not spec.HasField("dns_config"):
            return [required(f"{path}.dnsConfig", "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not config.nameservers:
            errors.append(required(f"{path}.dnsConfig.nameservers",
                                   "must provide at least one DNS nameserver when `dnsPolicy` is None"))
    if len(config.nameservers) > 3:
        errors.append(FieldError(f"{path}.dnsConfig.nameservers", "Invalid value",
                                 "must not have more than 3 nameservers"))
    for i, server in enumerate(config.nameservers):
        errors += invalid(f"{path}.dnsConfig.nameservers[{i}]", server, ip_errors(server))
    for i, search in enumerate(config.searches):
        errors += invalid(f"{path}.dnsConfig.searches[{i}]", search, dns1123_subdomain_errors(search.rstrip(".")))
    for i, option in enumerate(config.options):
        if not option.name:
            errors.append(required(f"{path}.dnsConfig.options[{i}]", "Option.Name must not be empty"))
    return errors


def _pod_update_errors(spec: Message, old: Message) -> list[FieldError]:
    """Kubernetes' ValidatePodUpdate: a running pod's spec is nearly frozen."""
    errors: list[FieldError] = []
    if old.HasField("active_deadline_seconds"):
        if not spec.HasField("active_deadline_seconds"):
            errors += invalid("spec.activeDeadlineSeconds", "",
                              ["must not update from a positive integer to nil value"])
        elif spec.active_deadline_seconds > old.active_deadline_seconds:
            errors += invalid("spec.activeDeadlineSeconds", spec.active_deadline_seconds,
                              ["must be less than or equal to previous value"])
    for toleration in old.tolerations:
        if not any(_same_toleration(toleration, new) for new in spec.tolerations):
            errors.append(forbidden("spec.tolerations",
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
        errors.append(forbidden("spec", _UPDATABLE_POD_FIELDS))
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
