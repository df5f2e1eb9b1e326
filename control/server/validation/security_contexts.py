"""Security context rules, for the pod's and for each container's.

The two contexts share their user and group ids and their seccomp profile, so
both validators are here, next to each other. A seccomp profile follows
Kubernetes' validateSeccompProfileField: a known type, and a profile file
(relative to the kubelet's seccomp directory) exactly when the type is
Localhost.
"""

from __future__ import annotations

from typing import Iterable

from google.protobuf.message import Message

from control.api.manifest import FieldError
from control.server.validation.field_errors import invalid, local_path_errors, one_of, required

_ID_RANGE_MSG = "must be between 0 and 2147483647, inclusive"
_MAX_ID = 2**31 - 1
_SECCOMP_PROFILE_TYPES = ("Localhost", "RuntimeDefault", "Unconfined")


def pod_security_context_errors(context: Message, *, spec_path: str = "spec") -> list[FieldError]:
    path = f"{spec_path}.securityContext"
    errors = _id_errors(path, context, (("run_as_user", "runAsUser"), ("run_as_group", "runAsGroup"),
                                        ("fs_group", "fsGroup")))
    for i, group in enumerate(context.supplemental_groups):
        if not 0 <= group <= _MAX_ID:
            errors += invalid(f"{path}.supplementalGroups[{i}]", group, [_ID_RANGE_MSG])
    for i, sysctl in enumerate(context.sysctls):
        if not sysctl.name:
            errors.append(required(f"{path}.sysctls[{i}].name"))
    if context.HasField("seccomp_profile"):
        errors += _seccomp_profile_errors(f"{path}.seccompProfile", context.seccomp_profile)
    return errors


def container_security_context_errors(path: str, context: Message) -> list[FieldError]:
    errors = _id_errors(path, context, (("run_as_user", "runAsUser"), ("run_as_group", "runAsGroup")))
    if context.privileged and context.HasField("allow_privilege_escalation") and not context.allow_privilege_escalation:
        errors.append(FieldError(path, "Invalid value",
                                 "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"))
    if context.HasField("seccomp_profile"):
        errors += _seccomp_profile_errors(f"{path}.seccompProfile", context.seccomp_profile)
    return errors


def _id_errors(path: str, message: Message, fields: Iterable[tuple[str, str]]) -> list[FieldError]:
    errors: list[FieldError] = []
    for field, json_name in fields:
        value = getattr(message, field)
        if message.HasField(field) and not 0 <= value <= _MAX_ID:
            errors += invalid(f"{path}.{json_name}", value, [_ID_RANGE_MSG])
    return errors


def _seccomp_profile_errors(path: str, profile: Message) -> list[FieldError]:
    errors: list[FieldError] = []
    if not profile.type:
        errors.append(required(f"{path}.type", "type is required when seccompProfile is set"))
    else:
        errors += one_of(f"{path}.type", profile.type, _SECCOMP_PROFILE_TYPES)
    if profile.type == "Localhost":
        if not profile.HasField("localhost_profile"):
            errors.append(required(f"{path}.localhostProfile", "must be set when seccomp type is Localhost"))
        else:
            errors += local_path_errors(f"{path}.localhostProfile", profile.localhost_profile)
    elif profile.HasField("localhost_profile"):
        errors += invalid(f"{path}.localhostProfile", profile.localhost_profile,
                          ["can only be set when seccomp type is Localhost"])
    return errors
