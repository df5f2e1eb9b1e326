"""apps/v1 validation (control/server/validation/apps.py and pod_templates.py).

Covered, with Kubernetes' messages: the selector and template rules the
ReplicaSet, Deployment, DaemonSet and StatefulSet share (selector required,
well formed, non-empty, matching the template's labels; the template's pod
spec checked by the Pod rules at spec.template.spec; restartPolicy Always; no
activeDeadlineSeconds; the selector immutable on update); each kind's update
strategy (types, rollingUpdate numbers and percentages, the zero and 100%
rules); a StatefulSet's DNS-label name and frozen spec; a ControllerRevision's
required, immutable data.
"""

from __future__ import annotations

import pytest

from tests.server.validation.support import errors_of
from tests.server.validation.workloads import a_template, a_workload, changed

POD_OWNERS = ["ReplicaSet", "Deployment", "DaemonSet", "StatefulSet"]
EMPTY_SELECTOR_WORD = {"ReplicaSet": "deployment", "Deployment": "deployment", "DaemonSet": "daemonset",
                       "StatefulSet": "statefulset"}
DEADLINE_KIND = {"ReplicaSet": "ReplicaSet", "Deployment": "ReplicaSet", "DaemonSet": "DaemonSet",
                 "StatefulSet": "StatefulSet"}
MISMATCH = "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`"
PERCENT_MESSAGE = ("a valid percent string must be a numeric string followed by an ending '%' "
                   "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")


# ------------------------------------------------------- shared by pod owners


@pytest.mark.parametrize("kind", POD_OWNERS)
def test_a_minimal_workload_is_valid_before_and_after_defaulting(kind: str) -> None:
    assert errors_of(a_workload(kind)) == []
    assert errors_of(a_workload(kind), defaulted=True) == []


@pytest.mark.parametrize("kind", POD_OWNERS)
def test_a_selector_is_required(kind: str) -> None:
    assert errors_of(changed(a_workload(kind), "spec.selector", None)) == ["spec.selector: Required value"]


@pytest.mark.parametrize("kind", POD_OWNERS)
def test_an_empty_selector_is_rejected(kind: str) -> None:
    assert errors_of(changed(a_workload(kind), "spec.selector", {})) == [
        f"spec.selector: Invalid value: empty selector is invalid for {EMPTY_SELECTOR_WORD[kind]}"]


@pytest.mark.parametrize("kind", POD_OWNERS)
def test_the_selector_must_match_the_template_labels(kind: str) -> None:
    workload = changed(a_workload(kind), "spec.selector", {"matchLabels": {"app": "api"}})
    assert errors_of(workload) == [MISMATCH]


def test_a_selector_with_expressions_that_match_the_template_passes() -> None:
    selector = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]},
                                     {"key": "canary", "operator": "DoesNotExist"}]}
    assert errors_of(changed(a_workload("Deployment"), "spec.selector", selector)) == []


def test_a_selector_expression_with_an_unknown_operator_is_rejected_and_not_matched() -> None:
    selector = {"matchExpressions": [{"key": "app", "operator": "Gt", "values": ["1"]}]}
    assert errors_of(changed(a_workload("ReplicaSet"), "spec.selector", selector)) == [
        'spec.selector.matchExpressions[0].operator: Unsupported value: "Gt": supported values: '
        '"DoesNotExist", "Exists", "In", "NotIn"']


@pytest.mark.parametrize("kind", POD_OWNERS)
def test_template_pods_must_restart_always(kind: str) -> None:
    workload = changed(a_workload(kind), "spec.template", a_template(restart="OnFailure"))
    assert errors_of(workload) == [
        'spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: "Always"']


@pytest.mark.parametrize("kind", POD_OWNERS)
def test_template_pods_may_not_have_a_deadline(kind: str) -> None:
    workload = changed(a_workload(kind), "spec.template", a_template(activeDeadlineSeconds=30))
    assert errors_of(workload) == [f"spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds "
                                   f"in {DEADLINE_KIND[kind]} is not Supported"]


@pytest.mark.parametrize("kind", POD_OWNERS)
def test_the_template_pod_spec_is_checked_by_the_pod_rules_at_its_own_path(kind: str) -> None:
    template = a_template(containers=[{"name": "web"}], volumes=[{"name": "Data", "emptyDir": {}}])
    assert errors_of(changed(a_workload(kind), "spec.template", template)) == [
        'spec.template.spec.volumes[0].name: Invalid value: "Data": a lowercase RFC 1123 label must consist of '
        "lower case alphanumeric characters or '-', and must start and end with an alphanumeric character "
        "(e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        "spec.template.spec.containers[0].image: Required value"]


def test_template_affinity_errors_carry_the_template_path() -> None:
    affinity = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}}]}}
    workload = changed(a_workload("Deployment"), "spec.template", a_template(affinity=affinity))
    assert errors_of(workload) == [
        "spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]"
        ".topologyKey: Required value: can not be empty"]


def test_template_label_values_are_checked() -> None:
    workload = changed(a_workload("ReplicaSet"), "spec.template", a_template(labels={"app": "web", "tier": "a b"}))
    assert errors_of(workload) == [
        'spec.template.labels: Invalid value: "a b": a valid label must be an empty string or consist of '
        "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]


@pytest.mark.parametrize("kind", ["ReplicaSet", "Deployment", "StatefulSet"])
def test_replicas_may_not_be_negative(kind: str) -> None:
    assert errors_of(changed(a_workload(kind), "spec.replicas", -1)) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0"]


@pytest.mark.parametrize("kind", ["ReplicaSet", "Deployment", "DaemonSet"])
def test_the_selector_is_immutable(kind: str) -> None:
    old = a_workload(kind)
    new = changed(changed(old, "spec.selector", {"matchLabels": {"app": "web", "tier": "front"}}),
                  "spec.template", a_template(labels={"app": "web", "tier": "front"}))
    assert errors_of(new, old=old) == ["spec.selector: Invalid value: field is immutable"]


@pytest.mark.parametrize("kind", ["ReplicaSet", "Deployment", "DaemonSet"])
def test_the_template_and_replicas_may_change(kind: str) -> None:
    old = a_workload(kind)
    new = changed(old, "spec.template", a_template(labels={"app": "web", "version": "2"}))
    if kind != "DaemonSet":
        new["spec"]["replicas"] = 5
    assert errors_of(new, old=old) == []


# ---------------------------------------------------------------- Deployment


def test_a_deployment_strategy_type_must_be_known() -> None:
    deployment = a_workload("Deployment", strategy={"type": "BlueGreen"})
    assert errors_of(deployment) == [
        'spec.strategy.type: Unsupported value: "BlueGreen": supported values: "Recreate", "RollingUpdate"']


def test_recreate_may_not_have_rolling_update_parameters() -> None:
    deployment = a_workload("Deployment", strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}})
    assert errors_of(deployment) == [
        "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]


def test_recreate_alone_is_valid_and_gets_no_rolling_update_defaults() -> None:
    deployment = a_workload("Deployment", strategy={"type": "Recreate"})
    assert errors_of(deployment) == errors_of(deployment, defaulted=True) == []


@pytest.mark.parametrize(("field", "value", "message"), [
    ("maxSurge", "abc", f'Invalid value: "abc": {PERCENT_MESSAGE}'),
    ("maxSurge", "10", f'Invalid value: "10": {PERCENT_MESSAGE}'),
    ("maxUnavailable", -1, "Invalid value: -1: must be greater than or equal to 0"),
    ("maxUnavailable", "150%", 'Invalid value: "150%": must not be greater than 100%'),
])
def test_rolling_update_numbers_are_non_negative_numbers_or_percentages(field: str, value, message: str) -> None:
    deployment = a_workload("Deployment", strategy={"type": "RollingUpdate", "rollingUpdate": {field: value}})
    assert errors_of(deployment) == [f"spec.strategy.rollingUpdate.{field}: {message}"]


def test_max_surge_may_exceed_100_percent() -> None:
    deployment = a_workload("Deployment", strategy={"rollingUpdate": {"maxSurge": "200%"}})
    assert errors_of(deployment) == []


def test_max_surge_and_max_unavailable_may_not_both_be_zero() -> None:
    deployment = a_workload("Deployment", strategy={"rollingUpdate": {"maxSurge": "0%", "maxUnavailable": 0}})
    assert errors_of(deployment) == [
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"]


def test_a_zero_max_unavailable_alone_is_valid_since_max_surge_defaults_to_25_percent() -> None:
    deployment = a_workload("Deployment", strategy={"rollingUpdate": {"maxUnavailable": 0}})
    assert errors_of(deployment) == errors_of(deployment, defaulted=True) == []


def test_the_progress_deadline_must_exceed_min_ready_seconds() -> None:
    deployment = a_workload("Deployment", minReadySeconds=30, progressDeadlineSeconds=30)
    assert errors_of(deployment) == [
        "spec.progressDeadlineSeconds: Invalid value: 30: must be greater than minReadySeconds"]


def test_history_limit_and_min_ready_seconds_may_not_be_negative() -> None:
    deployment = a_workload("Deployment", minReadySeconds=-1, revisionHistoryLimit=-1)
    assert errors_of(deployment) == [
        "spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0",
        "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0"]


# ----------------------------------------------------------------- DaemonSet


def test_a_daemon_set_strategy_type_must_be_known() -> None:
    ds = a_workload("DaemonSet", updateStrategy={"type": "Rolling"})
    assert errors_of(ds) == [
        'spec.updateStrategy.type: Unsupported value: "Rolling": supported values: "OnDelete", "RollingUpdate"']


def test_a_daemon_set_surges_or_replaces_in_place_but_not_both() -> None:
    # maxUnavailable defaults to 1, so a surge alone asks for both.
    ds = a_workload("DaemonSet", updateStrategy={"rollingUpdate": {"maxSurge": 1}})
    assert errors_of(ds) == [
        "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: may not be set when maxUnavailable is non-zero"]


def test_a_daemon_set_may_surge_with_no_unavailability() -> None:
    ds = a_workload("DaemonSet", updateStrategy={"rollingUpdate": {"maxSurge": "10%", "maxUnavailable": 0}})
    assert errors_of(ds) == errors_of(ds, defaulted=True) == []


def test_a_daemon_set_update_must_make_progress() -> None:
    ds = a_workload("DaemonSet", updateStrategy={"rollingUpdate": {"maxUnavailable": "0%"}})
    assert errors_of(ds) == [
        "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"]


def test_daemon_set_percentages_are_at_most_100() -> None:
    ds = a_workload("DaemonSet", updateStrategy={"rollingUpdate": {"maxUnavailable": 0, "maxSurge": "101%"}})
    assert errors_of(ds) == [
        'spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: "101%": must not be greater than 100%']


def test_on_delete_is_a_valid_daemon_set_strategy() -> None:
    assert errors_of(a_workload("DaemonSet", updateStrategy={"type": "OnDelete"}), defaulted=True) == []


# --------------------------------------------------------------- StatefulSet


def test_a_stateful_set_name_must_be_a_dns_label() -> None:
    sts = changed(a_workload("StatefulSet"), "metadata.name", "web.v1")
    assert errors_of(sts) == [
        'metadata.name: Invalid value: "web.v1": must not contain dots']


def test_the_pod_management_policy_must_be_known() -> None:
    assert errors_of(a_workload("StatefulSet", podManagementPolicy="Random")) == [
        "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'"]


def test_a_stateful_set_strategy_type_must_be_known() -> None:
    assert errors_of(a_workload("StatefulSet", updateStrategy={"type": "Rolling"})) == [
        "spec.updateStrategy.type: Invalid value: \"Rolling\": must be 'RollingUpdate' or 'OnDelete'"]


def test_on_delete_takes_no_rolling_update() -> None:
    sts = a_workload("StatefulSet", updateStrategy={"type": "OnDelete", "rollingUpdate": {"partition": 1}})
    assert errors_of(sts) == [
        "spec.updateStrategy.rollingUpdate: Invalid value: only allowed for updateStrategy 'RollingUpdate'"]


def test_the_partition_may_not_be_negative_and_max_unavailable_not_zero() -> None:
    sts = a_workload("StatefulSet", updateStrategy={"type": "RollingUpdate",
                                                    "rollingUpdate": {"partition": -1, "maxUnavailable": 0}})
    assert errors_of(sts) == [
        "spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be greater than or equal to 0",
        "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 0: cannot be 0"]


def test_the_start_ordinal_may_not_be_negative() -> None:
    assert errors_of(a_workload("StatefulSet", ordinals={"start": -1})) == [
        "spec.ordinals.start: Invalid value: -1: must be greater than or equal to 0"]


def test_a_stateful_set_may_change_replicas_template_strategy_ordinals_and_min_ready_seconds() -> None:
    old = a_workload("StatefulSet", serviceName="web")
    new = a_workload("StatefulSet", serviceName="web", replicas=5, minReadySeconds=10, ordinals={"start": 1},
                     updateStrategy={"type": "OnDelete"},
                     template=a_template(labels={"app": "web", "version": "2"}))
    assert errors_of(new, old=old, defaulted=True) == []


@pytest.mark.parametrize(("field", "value"), [("serviceName", "other"), ("podManagementPolicy", "Parallel"),
                                               ("revisionHistoryLimit", 3),
                                               ("selector", {"matchExpressions": [
                                                   {"key": "app", "operator": "Exists"}]})])
def test_the_rest_of_a_stateful_set_spec_is_frozen(field: str, value) -> None:
    old = a_workload("StatefulSet", serviceName="web")
    assert errors_of(changed(old, f"spec.{field}", value), old=old, defaulted=True) == [
        "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
        "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"]


# -------------------------------------------------------- ControllerRevision


def a_revision(revision: int = 1, image: str = "nginx:1.25") -> dict:
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": "web-7d4b9c", "namespace": "default"},
            "data": {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}},
            "revision": revision}


def test_a_controller_revision_needs_data() -> None:
    assert errors_of(changed(a_revision(), "data", None)) == ["data: Required value: data is mandatory"]


def test_a_controller_revision_number_may_not_be_negative() -> None:
    assert errors_of(a_revision(-1)) == ["revision: Invalid value: -1: must be greater than or equal to 0"]


def test_a_controller_revision_data_is_immutable_but_its_number_may_change() -> None:
    assert errors_of(a_revision(2), old=a_revision(1)) == []
    assert errors_of(a_revision(1, image="nginx:1.26"), old=a_revision(1)) == [
        "data: Invalid value: field is immutable"]
