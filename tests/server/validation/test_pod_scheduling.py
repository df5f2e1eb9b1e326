"""Scheduling constraint rules (control/server/validation/pod_scheduling.py):
tolerations, node affinity, pod affinity and anti-affinity.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.validation.support import a_pod, errors_of


def test_a_toleration_operator_must_be_exists_or_equal() -> None:
    assert errors_of(a_pod(tolerations=[{"key": "a", "operator": "In", "value": "b"}])) == [
        'spec.tolerations[0].operator: Unsupported value: "In": supported values: "Equal", "Exists"']


def test_a_toleration_effect_must_be_known() -> None:
    assert errors_of(a_pod(tolerations=[{"key": "a", "operator": "Exists", "effect": "NoRun"}])) == [
        'spec.tolerations[0].effect: Unsupported value: "NoRun": supported values: "NoExecute", "NoSchedule", '
        '"PreferNoSchedule"']


def test_an_exists_toleration_has_no_value() -> None:
    assert errors_of(a_pod(tolerations=[{"key": "a", "operator": "Exists", "value": "b"}])) == [
        "spec.tolerations[0].operator: Invalid value: \"Exists\": value must be empty when `operator` is 'Exists'"]


def test_toleration_seconds_need_the_no_execute_effect() -> None:
    toleration = {"key": "a", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 60}
    assert errors_of(a_pod(tolerations=[toleration])) == [
        "spec.tolerations[0].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when "
        "`tolerationSeconds` is set"]


def test_a_toleration_without_a_key_must_use_exists() -> None:
    assert errors_of(a_pod(tolerations=[{"operator": "Equal", "value": "x"}])) == [
        'spec.tolerations[0].operator: Invalid value: "Equal": operator must be Exists when `key` is empty, '
        'which means "match all values and all keys"']


def test_valid_tolerations_pass() -> None:
    tolerations = [
        {"operator": "Exists"},
        {"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
    ]
    assert errors_of(a_pod(tolerations=tolerations)) == []


def node_affinity_term(**requirement: Any) -> dict[str, Any]:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", **requirement}]}]}}}


TERM_PATH = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"


def test_a_node_selector_operator_must_be_known() -> None:
    assert errors_of(a_pod(affinity=node_affinity_term(operator="Near", values=["a"]))) == [
        f'{TERM_PATH}.matchExpressions[0].operator: Unsupported value: "Near": supported values: "DoesNotExist", '
        '"Exists", "Gt", "In", "Lt", "NotIn"']


def test_in_needs_values() -> None:
    assert errors_of(a_pod(affinity=node_affinity_term(operator="In"))) == [
        f"{TERM_PATH}.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"]


def test_exists_takes_no_values() -> None:
    assert errors_of(a_pod(affinity=node_affinity_term(operator="Exists", values=["a"]))) == [
        f"{TERM_PATH}.matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or "
        "'DoesNotExist'"]


def test_gt_takes_a_single_value() -> None:
    assert errors_of(a_pod(affinity=node_affinity_term(operator="Gt", values=["1", "2"]))) == [
        f"{TERM_PATH}.matchExpressions[0].values: Required value: must be specified single value when `operator` is "
        "'Lt' or 'Gt'"]


def test_lt_takes_an_integer() -> None:
    assert errors_of(a_pod(affinity=node_affinity_term(operator="Lt", values=["ten"]))) == [
        f'{TERM_PATH}.matchExpressions[0].values[0]: Invalid value: "ten": must be an integer']


def test_gt_with_one_integer_passes() -> None:
    assert errors_of(a_pod(affinity=node_affinity_term(operator="Gt", values=["3"]))) == []


def test_required_node_affinity_needs_a_term() -> None:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}
    assert errors_of(a_pod(affinity=affinity)) == [
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: "
        "Required value: must have at least one node selector term"]


@pytest.mark.parametrize("weight", [0, 101])
def test_preference_weights_are_1_to_100(weight: int) -> None:
    affinity = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": weight, "preference": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}]}}
    assert errors_of(a_pod(affinity=affinity)) == [
        f"spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: "
        f"{weight}: must be in the range 1-100"]


def test_pod_affinity_needs_a_topology_key() -> None:
    affinity = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}}]}}
    assert errors_of(a_pod(affinity=affinity)) == [
        "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: "
        "Required value: can not be empty"]


def test_a_label_selector_does_not_take_gt() -> None:
    affinity = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
        "labelSelector": {"matchExpressions": [{"key": "rank", "operator": "Gt", "values": ["1"]}]},
        "topologyKey": "zone"}]}}
    errors = errors_of(a_pod(affinity=affinity))
    assert errors == [
        "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchExpressions[0]"
        '.operator: Unsupported value: "Gt": supported values: "DoesNotExist", "Exists", "In", "NotIn"']


def test_valid_affinity_passes() -> None:
    affinity = {
        **node_affinity_term(operator="In", values=["a", "b"]),
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {
            "labelSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
            "topologyKey": "kubernetes.io/hostname"}}]},
    }
    assert errors_of(a_pod(affinity=affinity)) == []
