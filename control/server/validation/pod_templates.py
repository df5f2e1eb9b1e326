"""Rules the workload kinds share: label selectors, the pod templates they
stamp pods from, and the numbers-or-percentages of their rolling updates.

A workload (ReplicaSet, Deployment, DaemonSet, StatefulSet, Job, CronJob)
owns the pods its selector matches and creates them from its template, so a
valid workload has a valid, non-empty selector that matches its own
template's labels: otherwise it would create pods it does not count as its
own, forever. The template's pod spec gets exactly the Pod rules of pod.py,
at ``spec.template.spec``; which restart policies a kind allows is the
kind's own rule, checked by its module with ``restart_policy_errors``.

``immutable`` is Kubernetes' ValidateImmutableField for the fields an update
may not change (selectors, a Job's template).
"""

from __future__ import annotations

import re
from typing import Sequence

from google.protobuf.message import Message

from control.api import selectors
from control.api.manifest import FieldError
from control.server.validation.field_errors import at_least, forbidden, invalid, labels_errors, one_of, required
from control.server.validation.meta import annotations_errors
from control.server.validation.pod import RESTART_POLICIES, pod_spec_errors
from control.server.validation.pod_scheduling import label_selector_errors

_PERCENT = re.compile(r"[0-9]+%")
_PERCENT_MSG = ("a valid percent string must be a numeric string followed by an ending '%' "
                "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")
_SELECTOR_MISMATCH = "`selector` does not match template `labels`"


def selector_errors(path: str, spec: Message, *, kind_word: str) -> list[FieldError]:
    """``spec.selector``: required, well formed, and not empty (an empty one would select every pod)."""
    if not spec.HasField("selector"):
        return [required(path)]
    errors = label_selector_errors(path, spec.selector)
    if not spec.selector.match_labels and not spec.selector.match_expressions:
        errors.append(FieldError(path, "Invalid value", f"empty selector is invalid for {kind_word}"))
    return errors


def selector_match_errors(path: str, spec: Message, *, template_path: str) -> list[FieldError]:
    """The selector must match the template's labels, so the pods made from it are the workload's own.

    Only a selector that is present and well formed is matched (its own errors say the rest).
    """
    if not spec.HasField("selector") or label_selector_errors(path, spec.selector):
        return []
    selector = selectors.from_label_selector_message(spec.selector)
    if selector.empty or selector.matches(spec.template.metadata.labels):
        return []
    return [FieldError(f"{template_path}.metadata.labels", "Invalid value", _SELECTOR_MISMATCH)]


def pod_template_errors(template: Message, path: str) -> list[FieldError]:
    """Kubernetes' ValidatePodTemplateSpec: the template's labels and annotations, and its pod spec
    with the Pod rules. (Kubernetes names the label path ``template.labels``, without ``metadata``.)"""
    errors = labels_errors(f"{path}.labels", template.metadata.labels)
    errors += annotations_errors(f"{path}.annotations", template.metadata.annotations)
    return errors + pod_spec_errors(template.spec, path=f"{path}.spec")


def restart_policy_errors(spec_path: str, pod_spec: Message, allowed: Sequence[str]) -> list[FieldError]:
    """A restart policy the kind allows (checked when set: an unset one defaults to Always).

    A policy no pod may have is reported once, by the Pod rules."""
    if not pod_spec.HasField("restart_policy") or pod_spec.restart_policy not in RESTART_POLICIES:
        return []
    return one_of(f"{spec_path}.restartPolicy", pod_spec.restart_policy, allowed)


def no_active_deadline_errors(spec_path: str, pod_spec: Message, *, kind: str) -> list[FieldError]:
    """Pods that should run until replaced may not have a deadline."""
    if not pod_spec.HasField("active_deadline_seconds"):
        return []
    return [forbidden(f"{spec_path}.activeDeadlineSeconds", f"activeDeadlineSeconds in {kind} is not Supported")]


def non_negative_errors(spec: Message, base: str, fields: Sequence[tuple[str, str]]) -> list[FieldError]:
    """Each (field, JSON name) that is set must be 0 or more."""
    errors: list[FieldError] = []
    for field, json_name in fields:
        if spec.HasField(field):
            errors += at_least(f"{base}.{json_name}", getattr(spec, field), 0)
    return errors


# ------------------------------------------------------------ int or percent


def int_or_percent_errors(path: str, value: Message) -> list[FieldError]:
    """maxSurge, maxUnavailable: a non-negative number or a percentage like "25%"."""
    which = value.WhichOneof("value")
    if which == "int_value":
        return at_least(path, value.int_value, 0)
    if which == "str_value" and not _PERCENT.fullmatch(value.str_value):
        return invalid(path, value.str_value, [_PERCENT_MSG])
    return []


def int_or_percent_value(value: Message, default: int | str) -> int:
    """The number in an IntOrString (``default`` when unset); a malformed percentage counts as 0."""
    which = value.WhichOneof("value")
    if which is None:
        return int_or_percent_value_of(default)
    if which == "int_value":
        return value.int_value
    return int_or_percent_value_of(value.str_value)


def int_or_percent_value_of(raw: int | str) -> int:
    if isinstance(raw, int):
        return raw
    return int(raw[:-1]) if _PERCENT.fullmatch(raw) else 0


def over_100_percent_errors(path: str, value: Message) -> list[FieldError]:
    if value.WhichOneof("value") == "str_value" and _PERCENT.fullmatch(value.str_value) \
            and int(value.str_value[:-1]) > 100:
        return invalid(path, value.str_value, ["must not be greater than 100%"])
    return []


def immutable(path: str, new: Message, old: Message, field: str) -> list[FieldError]:
    """Kubernetes' ValidateImmutableField: ``field`` of ``new`` is as it was in ``old`` (set or unset)."""
    if new.HasField(field) == old.HasField(field) and getattr(new, field) == getattr(old, field):
        return []
    value = getattr(new, field) if new.HasField(field) else None
    shown = value if isinstance(value, (int, str, bool)) else None
    return [FieldError(path, "Invalid value", "field is immutable", shown)]
