"""autoscaling/v2 validation (control/server/validation/autoscaling.py).

Covered, with Kubernetes' messages where Kubernetes has the rule: the scale
target reference, minReplicas and maxReplicas, metric types (only Resource,
with a message saying the others are not supported), resource names (cpu,
memory), metric targets (type, the field the type names, positive values),
and behavior policies, windows and select policies.
"""

from __future__ import annotations

import pytest

from tests.server.validation.support import errors_of
from tests.server.validation.workloads import an_autoscaler, changed

TARGET = "spec.metrics[0].resource.target"


def cpu_metric(**target) -> list[dict]:
    return [{"type": "Resource", "resource": {"name": "cpu", "target": target}}]


def test_an_autoscaler_is_valid_before_and_after_defaulting() -> None:
    assert errors_of(an_autoscaler()) == errors_of(an_autoscaler(), defaulted=True) == []


@pytest.mark.parametrize("field", ["kind", "name"])
def test_the_scale_target_needs_a_kind_and_a_name(field: str) -> None:
    assert errors_of(changed(an_autoscaler(), f"spec.scaleTargetRef.{field}", None)) == [
        f"spec.scaleTargetRef.{field}: Required value"]


def test_the_scale_target_name_is_a_path_segment() -> None:
    assert errors_of(changed(an_autoscaler(), "spec.scaleTargetRef.name", "a/b%")) == [
        "spec.scaleTargetRef.name: Invalid value: \"a/b%\": may not contain '/'",
        "spec.scaleTargetRef.name: Invalid value: \"a/b%\": may not contain '%'"]


def test_min_replicas_is_at_least_one() -> None:
    assert errors_of(an_autoscaler(minReplicas=0)) == [
        "spec.minReplicas: Invalid value: 0: must be greater than or equal to 1"]


def test_max_replicas_is_required_and_positive() -> None:
    assert errors_of(changed(an_autoscaler(), "spec.maxReplicas", None)) == [
        "spec.maxReplicas: Invalid value: 0: must be greater than 0"]


def test_max_replicas_is_at_least_min_replicas() -> None:
    assert errors_of(an_autoscaler(minReplicas=6)) == [
        "spec.maxReplicas: Invalid value: 5: must be greater than or equal to `minReplicas`"]


@pytest.mark.parametrize("metric_type", ["Pods", "Object", "External", "ContainerResource"])
def test_only_resource_metrics_are_supported(metric_type: str) -> None:
    assert errors_of(an_autoscaler(metrics=[{"type": metric_type}])) == [
        f'spec.metrics[0].type: Unsupported value: "{metric_type}": supported values: "Resource" (Sampan scales on '
        "the cpu and memory its agents report; Pods, Object, External and ContainerResource metrics are not "
        "supported)"]


def test_a_metric_needs_a_type_and_a_source() -> None:
    assert errors_of(an_autoscaler(metrics=[{}, {"type": "Resource"}])) == [
        "spec.metrics[0].type: Required value: must specify a metric source type",
        "spec.metrics[1].resource: Required value: must populate information for the given metric source"]


def test_a_resource_metric_is_cpu_or_memory() -> None:
    metrics = cpu_metric(type="Utilization", averageUtilization=50)
    metrics[0]["resource"]["name"] = "nvidia.com/gpu"
    assert errors_of(an_autoscaler(metrics=metrics)) == [
        'spec.metrics[0].resource.name: Unsupported value: "nvidia.com/gpu": supported values: "cpu", "memory"']


def test_a_target_needs_a_known_type() -> None:
    assert errors_of(an_autoscaler(metrics=cpu_metric(averageUtilization=50))) == [
        f"{TARGET}.type: Required value: must specify a metric target type"]
    assert errors_of(an_autoscaler(metrics=cpu_metric(type="Median", averageUtilization=50))) == [
        f'{TARGET}.type: Invalid value: "Median": must be either Utilization, Value, or AverageValue']


def test_a_target_sets_a_utilization_or_an_average_value_not_both() -> None:
    assert errors_of(an_autoscaler(metrics=cpu_metric(type="Utilization"))) == [
        f"{TARGET}.averageUtilization: Required value: must set either a target raw value or a target utilization"]
    both = cpu_metric(type="Utilization", averageUtilization=50, averageValue="500m")
    assert errors_of(an_autoscaler(metrics=both)) == [
        f"{TARGET}.averageValue: Forbidden: may not set both a target raw value and a target utilization"]


def test_the_target_type_names_the_field_that_is_set() -> None:
    assert errors_of(an_autoscaler(metrics=cpu_metric(type="Utilization", averageValue="500m"))) == [
        f"{TARGET}.averageUtilization: Required value: must be set when the target type is Utilization"]
    assert errors_of(an_autoscaler(metrics=cpu_metric(type="AverageValue", averageUtilization=50))) == [
        f"{TARGET}.averageValue: Required value: must be set when the target type is AverageValue"]


def test_a_resource_target_is_an_average_never_a_total_value() -> None:
    assert errors_of(an_autoscaler(metrics=cpu_metric(type="Value", averageValue="500m"))) == [
        f'{TARGET}.type: Unsupported value: "Value": supported values: "Utilization", "AverageValue"']


def test_utilization_and_values_must_be_positive() -> None:
    assert errors_of(an_autoscaler(metrics=cpu_metric(type="Utilization", averageUtilization=0))) == [
        f"{TARGET}.averageUtilization: Invalid value: 0: must be greater than 0"]
    assert errors_of(an_autoscaler(metrics=cpu_metric(type="AverageValue", averageValue="0"))) == [
        f'{TARGET}.averageValue: Invalid value: "0": must be positive']


def test_an_average_value_is_a_quantity() -> None:
    errors = errors_of(an_autoscaler(metrics=cpu_metric(type="AverageValue", averageValue="lots")))
    assert len(errors) == 1 and errors[0].startswith(f'{TARGET}.averageValue: Invalid value: "lots": ')


def test_a_memory_average_value_target_is_valid() -> None:
    metrics = [{"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue",
                                                                             "averageValue": "200Mi"}}}]
    assert errors_of(an_autoscaler(metrics=metrics)) == []


def test_scaling_policies_keep_kubernetes_bounds() -> None:
    behavior = {"scaleUp": {"policies": [{"type": "Nodes", "value": 0, "periodSeconds": 0},
                                         {"type": "Pods", "value": 4, "periodSeconds": 1801}]}}
    assert errors_of(an_autoscaler(behavior=behavior)) == [
        'spec.behavior.scaleUp.policies[0].type: Unsupported value: "Nodes": supported values: "Percent", "Pods"',
        "spec.behavior.scaleUp.policies[0].value: Invalid value: 0: must be greater than zero",
        "spec.behavior.scaleUp.policies[0].periodSeconds: Invalid value: 0: must be greater than zero",
        "spec.behavior.scaleUp.policies[1].periodSeconds: Invalid value: 1801: must be less than or equal to 1800"]


@pytest.mark.parametrize(("window", "message"), [
    (-1, "must be greater than or equal to zero"), (3601, "must be less than or equal to 3600")])
def test_a_stabilization_window_is_0_to_3600_seconds(window: int, message: str) -> None:
    behavior = {"scaleDown": {"stabilizationWindowSeconds": window}}
    assert errors_of(an_autoscaler(behavior=behavior)) == [
        f"spec.behavior.scaleDown.stabilizationWindowSeconds: Invalid value: {window}: {message}"]


def test_the_select_policy_must_be_known() -> None:
    assert errors_of(an_autoscaler(behavior={"scaleDown": {"selectPolicy": "Average"}})) == [
        'spec.behavior.scaleDown.selectPolicy: Unsupported value: "Average": supported values: '
        '"Disabled", "Max", "Min"']


def test_a_full_behavior_is_valid() -> None:
    behavior = {"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
                "scaleDown": {"selectPolicy": "Disabled"}}
    assert errors_of(an_autoscaler(behavior=behavior), defaulted=True) == []
