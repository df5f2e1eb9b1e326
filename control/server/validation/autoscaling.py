"""autoscaling/v2 rules: HorizontalPodAutoscaler.

Kubernetes' rules for what Sampan's autoscaler can act on: a target named by
kind and name, between minReplicas (at least 1) and maxReplicas replicas,
scaled on metrics of type Resource (the agents report cpu and memory; Pods,
Object, External and ContainerResource metrics have no source here and are
refused with a message saying so). A resource metric's target is an average
utilization (a percentage of the pods' requests, above 0) or an average
value (a positive quantity), and the field its type names must be the one
given. A behavior's scaling rules keep Kubernetes' bounds: policies of type
Pods or Percent with a positive value over 1 to 1800 seconds, a
stabilization window of 0 to 3600 seconds, and a select policy of Max, Min
or Disabled.
"""

from __future__ import annotations

from google.protobuf.message import Message

from control.api.manifest import FieldError
from control.api.quantity import parse_quantity
from control.server.validation.field_errors import at_least, forbidden, invalid, one_of, quantity_errors, required

SUPPORTED_METRIC_TYPES = ("Resource",)
SUPPORTED_RESOURCES = ("cpu", "memory")
_TARGET_TYPES = ("Utilization", "Value", "AverageValue")
_UNSUPPORTED_METRIC = (
    'supported values: "Resource" (Sampan scales on the cpu and memory its agents report; '
    "Pods, Object, External and ContainerResource metrics are not supported)"
)
_SELECT_POLICIES = ("Disabled", "Max", "Min")
_POLICY_TYPES = ("Percent", "Pods")
MAX_PERIOD_SECONDS = 1800
MAX_STABILIZATION_WINDOW_SECONDS = 3600


def validate_horizontal_pod_autoscaler(hpa: Message, old: Message | None) -> list[FieldError]:
    spec = hpa.spec
    errors = _target_ref_errors(spec.scale_target_ref, "spec.scaleTargetRef")
    if spec.HasField("min_replicas"):
        errors += at_least("spec.minReplicas", spec.min_replicas, 1)
    if spec.max_replicas < 1:
        errors += invalid("spec.maxReplicas", spec.max_replicas, ["must be greater than 0"])
    if spec.HasField("min_replicas") and spec.max_replicas < spec.min_replicas:
        errors += invalid("spec.maxReplicas", spec.max_replicas, ["must be greater than or equal to `minReplicas`"])
    for i, metric in enumerate(spec.metrics):
        errors += _metric_errors(metric, f"spec.metrics[{i}]")
    if spec.HasField("behavior"):
        for field, json_name in (("scale_up", "scaleUp"), ("scale_down", "scaleDown")):
            if spec.behavior.HasField(field):
                errors += _scaling_rules_errors(getattr(spec.behavior, field), f"spec.behavior.{json_name}")
    return errors


def _target_ref_errors(ref: Message, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for field in ("kind", "name"):
        value = getattr(ref, field)
        if not value:
            errors.append(required(f"{path}.{field}"))
        else:
            errors += invalid(f"{path}.{field}", value, _path_segment_errors(value))
    return errors


def _path_segment_errors(name: str) -> list[str]:
    """Kubernetes' IsValidPathSegmentName: the name goes into a URL path."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{part}'" for part in ("/", "%") if part in name]


def _metric_errors(metric: Message, path: str) -> list[FieldError]:
    if not metric.type:
        return [required(f"{path}.type", "must specify a metric source type")]
    if metric.type not in SUPPORTED_METRIC_TYPES:
        return [FieldError(f"{path}.type", "Unsupported value", _UNSUPPORTED_METRIC, metric.type)]
    if not metric.HasField("resource"):
        return [required(f"{path}.resource", "must populate information for the given metric source")]
    source, source_path = metric.resource, f"{path}.resource"
    if not source.name:
        errors = [required(f"{source_path}.name", "must specify a resource name")]
    else:
        errors = one_of(f"{source_path}.name", source.name, SUPPORTED_RESOURCES)
    return errors + _resource_target_errors(source.target, f"{source_path}.target")


def _resource_target_errors(target: Message, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if not target.type:
        errors.append(required(f"{path}.type", "must specify a metric target type"))
    elif target.type not in _TARGET_TYPES:
        errors += invalid(f"{path}.type", target.type, ["must be either Utilization, Value, or AverageValue"])
    for field, json_name in (("value", "value"), ("average_value", "averageValue")):
        if target.HasField(field):
            errors += _positive_quantity_errors(f"{path}.{json_name}", getattr(target, field))
    if target.HasField("average_utilization") and target.average_utilization < 1:
        errors += invalid(f"{path}.averageUtilization", target.average_utilization, ["must be greater than 0"])
    utilization, average = target.HasField("average_utilization"), target.HasField("average_value")
    if not utilization and not average:
        errors.append(required(f"{path}.averageUtilization",
                               "must set either a target raw value or a target utilization"))
    elif utilization and average:
        errors.append(forbidden(f"{path}.averageValue",
                                "may not set both a target raw value and a target utilization"))
    elif target.type == "Value":
        # A resource is measured per pod: only its average has a meaning.
        errors += one_of(f"{path}.type", target.type, ("Utilization", "AverageValue"))
    elif target.type == "Utilization" and not utilization:
        errors.append(required(f"{path}.averageUtilization", "must be set when the target type is Utilization"))
    elif target.type == "AverageValue" and not average:
        errors.append(required(f"{path}.averageValue", "must be set when the target type is AverageValue"))
    return errors


def _positive_quantity_errors(path: str, value: str) -> list[FieldError]:
    errors = quantity_errors(path, value)
    if not errors and parse_quantity(value) <= 0:
        errors += invalid(path, value, ["must be positive"])
    return errors


def _scaling_rules_errors(rules: Message, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if rules.HasField("stabilization_window_seconds"):
        window = rules.stabilization_window_seconds
        if window < 0:
            errors += invalid(f"{path}.stabilizationWindowSeconds", window, ["must be greater than or equal to zero"])
        elif window > MAX_STABILIZATION_WINDOW_SECONDS:
            errors += invalid(f"{path}.stabilizationWindowSeconds", window,
                              [f"must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}"])
    if rules.HasField("select_policy"):
        errors += one_of(f"{path}.selectPolicy", rules.select_policy, _SELECT_POLICIES)
    if rules.HasField("tolerance"):
        errors += quantity_errors(f"{path}.tolerance", rules.tolerance)
    for i, policy in enumerate(rules.policies):
        item = f"{path}.policies[{i}]"
        errors += one_of(f"{item}.type", policy.type, _POLICY_TYPES)
        if policy.value <= 0:
            errors += invalid(f"{item}.value", policy.value, ["must be greater than zero"])
        if policy.period_seconds <= 0:
            errors += invalid(f"{item}.periodSeconds", policy.period_seconds, ["must be greater than zero"])
        elif policy.period_seconds > MAX_PERIOD_SECONDS:
            errors += invalid(f"{item}.periodSeconds", policy.period_seconds,
                              [f"must be less than or equal to {MAX_PERIOD_SECONDS}"])
    return errors
