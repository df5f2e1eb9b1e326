"""Node, Event, Lease and Namespace rules (control/server/validation/node.py,
event.py, lease.py, namespace.py): taints and pod CIDRs, event subjects,
lease fields, namespace names.
"""

from __future__ import annotations

from typing import Any

from tests.server.validation.support import QUALIFIED_NAME_PART_MESSAGE, errors_of


def a_node(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}, "spec": spec}


def test_a_taint_effect_must_be_known() -> None:
    assert errors_of(a_node(taints=[{"key": "a", "effect": "NoRun"}])) == [
        'spec.taints[0].effect: Unsupported value: "NoRun": supported values: "NoExecute", "NoSchedule", '
        '"PreferNoSchedule"']


def test_a_taint_needs_an_effect() -> None:
    assert errors_of(a_node(taints=[{"key": "a"}])) == ["spec.taints[0].effect: Required value"]


def test_a_taint_key_must_be_a_qualified_name() -> None:
    assert errors_of(a_node(taints=[{"key": "a b", "effect": "NoSchedule"}])) == [
        f'spec.taints[0].key: Invalid value: "a b": {QUALIFIED_NAME_PART_MESSAGE}']


def test_taints_are_unique_by_key_and_effect() -> None:
    taints = [{"key": "a", "effect": "NoSchedule"}, {"key": "a", "value": "x", "effect": "NoSchedule"}]
    assert errors_of(a_node(taints=taints)) == [
        'spec.taints[1]: Duplicate value: "a:NoSchedule": taints must be unique by key and effect pair']


def test_a_pod_cidr_must_be_a_cidr() -> None:
    assert errors_of(a_node(podCIDR="10.244.1.0")) == [
        'spec.podCIDR: Invalid value: "10.244.1.0": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)']


def test_a_valid_node_spec_passes() -> None:
    assert errors_of(a_node(podCIDR="10.244.1.0/24", podCIDRs=["10.244.1.0/24", "fd00:10:244:1::/64"],
                            taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])) == []


def test_a_node_pod_cidr_may_not_change_once_set() -> None:
    assert errors_of(a_node(podCIDRs=["10.0.2.0/24"]), old=a_node(podCIDRs=["10.0.1.0/24"])) == [
        'spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid']


def test_node_capacity_quantities_must_parse() -> None:
    node = {**a_node(), "status": {"capacity": {"cpu": "four"}}}
    assert errors_of(node)[0].startswith('status.capacity[cpu]: Invalid value: "four": quantities must match')


def an_event(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.1", "namespace": "default"}, **fields}


def test_an_event_needs_the_kind_and_name_of_its_object() -> None:
    assert errors_of(an_event(involvedObject={})) == [
        "involvedObject.kind: Required value", "involvedObject.name: Required value"]


def test_an_event_about_an_object_in_another_namespace_is_rejected() -> None:
    event = an_event(involvedObject={"kind": "Pod", "name": "web", "namespace": "other"})
    assert errors_of(event) == ['involvedObject.namespace: Invalid value: "other": does not match event.namespace']


def test_a_complete_event_passes() -> None:
    event = an_event(involvedObject={"kind": "Pod", "name": "web", "namespace": "default"}, type="Warning", count=3)
    assert errors_of(event) == []


def a_lease(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "node-1", "namespace": "kube-node-lease"}, "spec": spec}


def test_a_lease_duration_must_be_positive() -> None:
    assert errors_of(a_lease(leaseDurationSeconds=0)) == [
        "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]


def test_a_lease_with_a_duration_passes() -> None:
    assert errors_of(a_lease(holderIdentity="node-1", leaseDurationSeconds=40)) == []


def test_namespace_finalizers_must_be_valid() -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}, "spec": {"finalizers": ["x y"]}}
    assert errors_of(namespace) == [f'spec.finalizers: Invalid value: "x y": {QUALIFIED_NAME_PART_MESSAGE}']


def test_a_namespace_with_the_kubernetes_finalizer_passes() -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"},
                 "spec": {"finalizers": ["kubernetes"]}}
    assert errors_of(namespace) == []
