"""Pod scheduling constraints: tolerations, affinity and topology spread.

These are the fields the scheduler reads to choose a node, so their rules are
the ones it relies on: operators it knows, values that suit each operator,
qualified-name keys, weights from 1 to 100. A toleration's effects are the
ones a node's taints may have (node.py).
"""

from __future__ import annotations

import re
from typing import Sequence

from google.protobuf.message import Message

from control.api.manifest import FieldError
from control.api.names import dns1123_label_errors, label_value_errors, qualified_name_errors
from control.server.validation.field_errors import forbidden, invalid, labels_errors, one_of, required
from control.server.validation.node import TAINT_EFFECTS

_TOLERATION_OPERATORS = ("Equal", "Exists")
_SELECTOR_OPERATORS = ("DoesNotExist", "Exists", "In", "NotIn")
_NODE_SELECTOR_OPERATORS = ("DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn")
_UNSATISFIABLE_ACTIONS = ("DoNotSchedule", "ScheduleAnyway")


def toleration_errors(path: str, toleration: Message) -> list[FieldError]:
    errors: list[FieldError] = []
    if toleration.key:
        errors += invalid(f"{path}.key", toleration.key, qualified_name_errors(toleration.key))
    elif toleration.operator != "Exists":
        errors += invalid(f"{path}.operator", toleration.operator, [
            'operator must be Exists when `key` is empty, which means "match all values and all keys"'])
    if toleration.HasField("toleration_seconds") and toleration.effect != "NoExecute":
        errors += invalid(f"{path}.effect", toleration.effect,
                          ["effect must be 'NoExecute' when `tolerationSeconds` is set"])
    if toleration.operator in ("", "Equal"):
        errors += invalid(f"{path}.value", toleration.value, label_value_errors(toleration.value))
    elif toleration.operator == "Exists":
        if toleration.value:
            errors += invalid(f"{path}.operator", toleration.operator,
                              ["value must be empty when `operator` is 'Exists'"])
    else:
        errors += one_of(f"{path}.operator", toleration.operator, _TOLERATION_OPERATORS)
    if toleration.effect:
        errors += one_of(f"{path}.effect", toleration.effect, TAINT_EFFECTS)
    return errors


def affinity_errors(affinity: Message, *, spec_path: str = "spec") -> list[FieldError]:
    errors: list[FieldError] = []
    path = f"{spec_path}.affinity.nodeAffinity"
    node = affinity.node_affinity
    if node.HasField("required_during_scheduling_ignored_during_execution"):
        node_selector = node.required_during_scheduling_ignored_during_execution
        item = f"{path}.requiredDuringSchedulingIgnoredDuringExecution"
        if not node_selector.node_selector_terms:
            errors.append(required(f"{item}.nodeSelectorTerms", "must have at least one node selector term"))
        for i, term in enumerate(node_selector.node_selector_terms):
            errors += _node_selector_term_errors(f"{item}.nodeSelectorTerms[{i}]", term)
    for i, preferred in enumerate(node.preferred_during_scheduling_ignored_during_execution):
        item = f"{path}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
        errors += _weight_errors(f"{item}.weight", preferred.weight)
        errors += _node_selector_term_errors(f"{item}.preference", preferred.preference)
    for field, json_name in (("pod_affinity", "podAffinity"), ("pod_anti_affinity", "podAntiAffinity")):
        pod, path = getattr(affinity, field), f"{spec_path}.affinity.{json_name}"
        for i, term in enumerate(pod.required_during_scheduling_ignored_during_execution):
            errors += _pod_affinity_term_errors(f"{path}.requiredDuringSchedulingIgnoredDuringExecution[{i}]", term)
        for i, weighted in enumerate(pod.preferred_during_scheduling_ignored_during_execution):
            item = f"{path}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
            errors += _weight_errors(f"{item}.weight", weighted.weight)
            errors += _pod_affinity_term_errors(f"{item}.podAffinityTerm", weighted.pod_affinity_term)
    return errors


def _weight_errors(path: str, weight: int) -> list[FieldError]:
    return [] if 1 <= weight <= 100 else invalid(path, weight, ["must be in the range 1-100"])


def _node_selector_term_errors(path: str, term: Message) -> list[FieldError]:
    errors = _match_expressions_errors(f"{path}.matchExpressions", term.match_expressions, _NODE_SELECTOR_OPERATORS)
    for i, requirement in enumerate(term.match_fields):
        item = f"{path}.matchFields[{i}]"
        if requirement.operator in ("In", "NotIn"):
            if len(requirement.values) != 1:
                errors.append(required(f"{item}.values", "must be only one value when `operator` is 'In' or "
                                                          "'NotIn' for node field selector"))
        else:
            errors += one_of(f"{item}.operator", requirement.operator, ("In", "NotIn"))
        errors += one_of(f"{item}.key", requirement.key, ("metadata.name",))
    return errors


def _match_expressions_errors(path: str, requirements: Sequence[Message], operators: Sequence[str]) -> list[FieldError]:
    """Label or node selector requirements: values that suit the operator, and a qualified-name key."""
    errors: list[FieldError] = []
    for i, requirement in enumerate(requirements):
        item = f"{path}[{i}]"
        errors += _requirement_errors(item, requirement, operators)
        errors += invalid(f"{item}.key", requirement.key, qualified_name_errors(requirement.key))
    return errors


def _requirement_errors(path: str, requirement: Message, operators: Sequence[str]) -> list[FieldError]:
    """The operator and values rules shared by label and node selector requirements."""
    operator, values = requirement.operator, list(requirement.values)
    if operator in ("In", "NotIn"):
        if not values:
            return [required(f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'")]
    elif operator in ("Exists", "DoesNotExist"):
        if values:
            return [forbidden(f"{path}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")]
    elif operator in ("Gt", "Lt") and operator in operators:
        if len(values) != 1:
            return [required(f"{path}.values", "must be specified single value when `operator` is 'Lt' or 'Gt'")]
        if not re.fullmatch(r"[+-]?[0-9]+", values[0]):
            return invalid(f"{path}.values[0]", values[0], ["must be an integer"])
    else:
        return one_of(f"{path}.operator", operator, operators)
    return []


def label_selector_errors(path: str, selector: Message) -> list[FieldError]:
    """A label selector (matchLabels and matchExpressions): pod affinity terms, workload selectors."""
    errors = labels_errors(f"{path}.matchLabels", selector.match_labels)
    return errors + _match_expressions_errors(f"{path}.matchExpressions", selector.match_expressions,
                                              _SELECTOR_OPERATORS)


def _pod_affinity_term_errors(path: str, term: Message) -> list[FieldError]:
    errors = label_selector_errors(f"{path}.labelSelector", term.label_selector)
    errors += label_selector_errors(f"{path}.namespaceSelector", term.namespace_selector)
    for namespace in term.namespaces:
        errors += invalid(f"{path}.namespaces", namespace, dns1123_label_errors(namespace))
    if not term.topology_key:
        errors.append(required(f"{path}.topologyKey", "can not be empty"))
    else:
        errors += invalid(f"{path}.topologyKey", term.topology_key, qualified_name_errors(term.topology_key))
    return errors


def topology_spread_errors(constraints: Sequence[Message], *, spec_path: str = "spec") -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for i, constraint in enumerate(constraints):
        path = f"{spec_path}.topologySpreadConstraints[{i}]"
        if constraint.max_skew <= 0:
            errors += invalid(f"{path}.maxSkew", constraint.max_skew, ["must be greater than zero"])
        if not constraint.topology_key:
            errors.append(required(f"{path}.topologyKey", "can not be empty"))
        else:
            errors += invalid(f"{path}.topologyKey", constraint.topology_key,
                              qualified_name_errors(constraint.topology_key))
        errors += one_of(f"{path}.whenUnsatisfiable", constraint.when_unsatisfiable, _UNSATISFIABLE_ACTIONS)
        if constraint.HasField("min_domains"):
            if constraint.min_domains <= 0:
                errors += invalid(f"{path}.minDomains", constraint.min_domains, ["must be greater than 0"])
            elif constraint.when_unsatisfiable != "DoNotSchedule":
                errors += invalid(f"{path}.minDomains", constraint.min_domains, [
                    f"can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {constraint.when_unsatisfiable}"])
        pair = (constraint.topology_key, constraint.when_unsatisfiable)
        if pair in seen:
            errors.append(FieldError(f"{path}.{{topologyKey, whenUnsatisfiable}}", "Duplicate value",
                                     value=f"{pair[0]}, {pair[1]}"))
        seen.add(pair)
    return errors
