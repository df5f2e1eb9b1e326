"""Pod-wide rules and pod updates (control/server/validation/pod.py): restart
and DNS policies, grace periods, deadlines, node selectors, the OS; and the
narrow set of fields a pod update may change, binding included.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.validation.support import QUALIFIED_NAME_PART_MESSAGE, a_container, a_pod, errors_of


UPDATE_FORBIDDEN = (
    "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`, "
    "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to "
    "existing tolerations), `spec.terminationGracePeriodSeconds`"
)


# --------------------------------------------------------------- pod: policies


def test_restart_policy_must_be_known() -> None:
    assert errors_of(a_pod(restartPolicy="Sometimes")) == [
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"']


@pytest.mark.parametrize("policy", ["Always", "OnFailure", "Never"])
def test_known_restart_policies_pass(policy: str) -> None:
    assert errors_of(a_pod(restartPolicy=policy)) == []


def test_dns_policy_must_be_known() -> None:
    assert errors_of(a_pod(dnsPolicy="Google")) == [
        'spec.dnsPolicy: Unsupported value: "Google": supported values: "ClusterFirstWithHostNet", "ClusterFirst", '
        '"Default", "None"']


def test_dns_policy_none_needs_a_dns_config() -> None:
    assert errors_of(a_pod(dnsPolicy="None")) == [
        "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"]


def test_dns_policy_none_with_a_nameserver_passes() -> None:
    assert errors_of(a_pod(dnsPolicy="None", dnsConfig={"nameservers": ["192.0.2.1"]})) == []


def test_termination_grace_period_may_not_be_negative() -> None:
    assert errors_of(a_pod(terminationGracePeriodSeconds=-1)) == [
        "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0"]


def test_a_termination_grace_period_of_zero_passes() -> None:
    assert errors_of(a_pod(terminationGracePeriodSeconds=0)) == []


def test_active_deadline_must_be_positive() -> None:
    assert errors_of(a_pod(activeDeadlineSeconds=0)) == [
        "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"]


def test_node_selector_keys_must_be_qualified_names() -> None:
    assert errors_of(a_pod(nodeSelector={"disk type": "ssd"})) == [
        f'spec.nodeSelector: Invalid value: "disk type": {QUALIFIED_NAME_PART_MESSAGE}']


def test_a_valid_node_selector_passes() -> None:
    assert errors_of(a_pod(nodeSelector={"kubernetes.io/os": "linux", "disktype": "ssd"})) == []


def test_the_pod_os_must_be_linux_or_windows() -> None:
    assert errors_of(a_pod(os={"name": "plan9"})) == [
        'spec.os.name: Unsupported value: "plan9": supported values: "linux", "windows"']


def test_the_pod_os_needs_a_name_when_given() -> None:
    assert errors_of(a_pod(os={})) == ["spec.os.name: Required value"]


@pytest.mark.parametrize("name", ["linux", "windows"])
def test_a_linux_or_windows_pod_os_passes(name: str) -> None:
    assert errors_of(a_pod(os={"name": name})) == []


# --------------------------------------------------------------- pod: updates


def bound(pod: dict[str, Any], node: str) -> dict[str, Any]:
    return {**pod, "spec": {**pod["spec"], "nodeName": node}}


def test_an_image_change_is_allowed() -> None:
    assert errors_of(a_pod(containers=[a_container(image="nginx:1.26")]), old=a_pod()) == []


def test_an_init_container_image_change_is_allowed() -> None:
    old = a_pod(initContainers=[a_container(name="setup", image="busybox:1.35")])
    new = a_pod(initContainers=[a_container(name="setup", image="busybox:1.36")])
    assert errors_of(new, old=old) == []


def test_any_other_spec_change_is_forbidden() -> None:
    new = a_pod(containers=[a_container(ports=[{"containerPort": 80}])])
    assert errors_of(new, old=a_pod()) == [UPDATE_FORBIDDEN]


def test_a_restart_policy_change_is_forbidden() -> None:
    assert errors_of(a_pod(restartPolicy="Never"), old=a_pod(restartPolicy="Always")) == [UPDATE_FORBIDDEN]


def test_binding_an_unbound_pod_to_a_node_is_allowed() -> None:
    assert errors_of(bound(a_pod(), "node-1"), old=a_pod()) == []


def test_moving_a_bound_pod_to_another_node_is_forbidden() -> None:
    assert errors_of(bound(a_pod(), "node-2"), old=bound(a_pod(), "node-1")) == [UPDATE_FORBIDDEN]


def test_adding_a_toleration_is_allowed() -> None:
    old = a_pod(tolerations=[{"key": "a", "operator": "Exists"}])
    new = a_pod(tolerations=[{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}])
    assert errors_of(new, old=old) == []


def test_removing_a_toleration_is_forbidden() -> None:
    old = a_pod(tolerations=[{"key": "a", "operator": "Exists"}])
    assert errors_of(a_pod(tolerations=[]), old=old) == [
        "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]


def test_changing_toleration_seconds_is_allowed() -> None:
    toleration = {"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
    new = a_pod(tolerations=[{**toleration, "tolerationSeconds": 60}])
    assert errors_of(new, old=a_pod(tolerations=[toleration])) == []


def test_active_deadline_may_be_set_on_update() -> None:
    assert errors_of(a_pod(activeDeadlineSeconds=600), old=a_pod()) == []


def test_active_deadline_may_be_shortened() -> None:
    assert errors_of(a_pod(activeDeadlineSeconds=300), old=a_pod(activeDeadlineSeconds=600)) == []


def test_active_deadline_may_not_be_removed() -> None:
    assert errors_of(a_pod(), old=a_pod(activeDeadlineSeconds=600)) == [
        'spec.activeDeadlineSeconds: Invalid value: "": must not update from a positive integer to nil value']


def test_active_deadline_may_not_be_extended() -> None:
    assert errors_of(a_pod(activeDeadlineSeconds=900), old=a_pod(activeDeadlineSeconds=600)) == [
        "spec.activeDeadlineSeconds: Invalid value: 900: must be less than or equal to previous value"]


def test_termination_grace_period_may_change() -> None:
    assert errors_of(a_pod(terminationGracePeriodSeconds=5), old=a_pod(terminationGracePeriodSeconds=30)) == []


def test_a_pod_with_several_bad_fields_lists_every_path() -> None:
    pod = a_pod(
        containers=[a_container(name="Web", image="", ports=[{"containerPort": 0, "protocol": "HTTP"}])],
        restartPolicy="Sometimes",
        volumes=[{"name": "a"}],
    )
    pod["metadata"]["name"] = "Web"
    paths = [error.split(":")[0] for error in errors_of(pod)]
    assert sorted(paths) == sorted([
        "metadata.name",
        "spec.volumes[0]",
        "spec.containers[0].name",
        "spec.containers[0].image",
        "spec.containers[0].ports[0].containerPort",
        "spec.containers[0].ports[0].protocol",
        "spec.restartPolicy",
    ])
