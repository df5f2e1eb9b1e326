"""apps/v1 rules: ReplicaSet, Deployment, DaemonSet, StatefulSet and ControllerRevision.

The four pod-owning kinds share their core (pod_templates.py): a required,
non-empty selector that matches the template's labels, a template valid by
the Pod rules whose pods restart ``Always`` and have no deadline, and a
selector that never changes once set (an apps/v1 rule: changing it would
orphan every pod the workload has). What differs is each kind's update
strategy:

- Deployment: Recreate, or RollingUpdate with maxUnavailable and maxSurge
  (numbers or percentages, not both zero, maxUnavailable at most 100%);
- DaemonSet: OnDelete, or RollingUpdate where exactly one of maxUnavailable
  and maxSurge is non-zero;
- StatefulSet: OnDelete, or RollingUpdate with a partition and an optional
  maxUnavailable; and a StatefulSet's spec is frozen but for replicas,
  ordinals, template, updateStrategy, persistentVolumeClaimRetentionPolicy
  and minReadySeconds.

Values Kubernetes defaults are checked when set. Where a rule combines two
fields (maxSurge with maxUnavailable), an unset one counts as its default.
A ControllerRevision is a saved template: its data is required and frozen.
"""

from __future__ import annotations

from google.protobuf.message import Message

from control.api.manifest import FieldError
from control.server import defaults
from control.server.validation.field_errors import at_least, forbidden, invalid, one_of, required
from control.server.validation.pod_templates import (
    immutable, int_or_percent_errors, int_or_percent_value, no_active_deadline_errors, non_negative_errors,
    over_100_percent_errors, pod_template_errors, restart_policy_errors, selector_errors, selector_match_errors,
)

_ALWAYS = ("Always",)
_DEPLOYMENT_STRATEGIES = ("Recreate", "RollingUpdate")
_DAEMON_SET_STRATEGIES = ("OnDelete", "RollingUpdate")
_POD_MANAGEMENT_POLICIES = ("OrderedReady", "Parallel")
_STATEFUL_SET_STRATEGIES = ("RollingUpdate", "OnDelete")
_STATEFUL_SET_UPDATABLE = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', "
    "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
)


def _pod_owner_errors(spec: Message, *, kind: str, kind_word: str) -> list[FieldError]:
    """Selector and template, as every apps/v1 kind that creates pods has them."""
    errors = selector_errors("spec.selector", spec, kind_word=kind_word)
    errors += selector_match_errors("spec.selector", spec, template_path="spec.template")
    errors += pod_template_errors(spec.template, "spec.template")
    errors += restart_policy_errors("spec.template.spec", spec.template.spec, _ALWAYS)
    return errors + no_active_deadline_errors("spec.template.spec", spec.template.spec, kind=kind)


def _selector_update_errors(obj: Message, old: Message | None) -> list[FieldError]:
    return [] if old is None else immutable("spec.selector", obj.spec, old.spec, "selector")


# ---------------------------------------------------------------- ReplicaSet


def validate_replica_set(rs: Message, old: Message | None) -> list[FieldError]:
    spec = rs.spec
    errors = non_negative_errors(spec, "spec", (("replicas", "replicas"), ("min_ready_seconds", "minReadySeconds")))
    errors += _pod_owner_errors(spec, kind="ReplicaSet", kind_word="deployment")
    return errors + _selector_update_errors(rs, old)


# ---------------------------------------------------------------- Deployment


def validate_deployment(deployment: Message, old: Message | None) -> list[FieldError]:
    spec = deployment.spec
    errors = non_negative_errors(spec, "spec", (("replicas", "replicas"),))
    # Kubernetes checks a Deployment's template with the ReplicaSet rules, messages included.
    errors += _pod_owner_errors(spec, kind="ReplicaSet", kind_word="deployment")
    if spec.HasField("strategy"):
        errors += _deployment_strategy_errors(spec.strategy)
    errors += non_negative_errors(spec, "spec", (("min_ready_seconds", "minReadySeconds"),
                                                 ("revision_history_limit", "revisionHistoryLimit"),
                                                 ("progress_deadline_seconds", "progressDeadlineSeconds")))
    if spec.HasField("progress_deadline_seconds") and spec.progress_deadline_seconds <= spec.min_ready_seconds:
        errors += invalid("spec.progressDeadlineSeconds", spec.progress_deadline_seconds,
                          ["must be greater than minReadySeconds"])
    return errors + _selector_update_errors(deployment, old)


def _deployment_strategy_errors(strategy: Message) -> list[FieldError]:
    path = "spec.strategy"
    strategy_type = strategy.type or "RollingUpdate"  # the default
    if strategy_type == "Recreate":
        if strategy.HasField("rolling_update"):
            return [forbidden(f"{path}.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if strategy_type != "RollingUpdate":
        return one_of(f"{path}.type", strategy.type, _DEPLOYMENT_STRATEGIES)
    rolling, rolling_path = strategy.rolling_update, f"{path}.rollingUpdate"
    errors = int_or_percent_errors(f"{rolling_path}.maxUnavailable", rolling.max_unavailable)
    errors += int_or_percent_errors(f"{rolling_path}.maxSurge", rolling.max_surge)
    unavailable = int_or_percent_value(rolling.max_unavailable, defaults.DEFAULT_MAX_UNAVAILABLE)
    surge = int_or_percent_value(rolling.max_surge, defaults.DEFAULT_MAX_SURGE)
    if unavailable == 0 and surge == 0:
        errors += invalid(f"{rolling_path}.maxUnavailable", 0, ["may not be 0 when `maxSurge` is 0"])
    return errors + over_100_percent_errors(f"{rolling_path}.maxUnavailable", rolling.max_unavailable)


# ----------------------------------------------------------------- DaemonSet


def validate_daemon_set(ds: Message, old: Message | None) -> list[FieldError]:
    spec = ds.spec
    errors = _pod_owner_errors(spec, kind="DaemonSet", kind_word="daemonset")
    errors += non_negative_errors(spec, "spec", (("min_ready_seconds", "minReadySeconds"),
                                                 ("revision_history_limit", "revisionHistoryLimit")))
    if spec.HasField("update_strategy"):
        errors += _daemon_set_strategy_errors(spec.update_strategy)
    return errors + _selector_update_errors(ds, old)


def _daemon_set_strategy_errors(strategy: Message) -> list[FieldError]:
    path = "spec.updateStrategy"
    strategy_type = strategy.type or "RollingUpdate"  # the default
    if strategy_type == "OnDelete":
        return []
    if strategy_type != "RollingUpdate":
        return one_of(f"{path}.type", strategy.type, _DAEMON_SET_STRATEGIES)
    rolling, rolling_path = strategy.rolling_update, f"{path}.rollingUpdate"
    errors: list[FieldError] = []
    for field, json_name in (("max_unavailable", "maxUnavailable"), ("max_surge", "maxSurge")):
        errors += int_or_percent_errors(f"{rolling_path}.{json_name}", getattr(rolling, field))
        errors += over_100_percent_errors(f"{rolling_path}.{json_name}", getattr(rolling, field))
    # A daemon's pod per node is either replaced in place (unavailable) or surged, never both.
    unavailable = int_or_percent_value(rolling.max_unavailable, 1) != 0
    surge = int_or_percent_value(rolling.max_surge, 0) != 0
    if unavailable and surge:
        errors.append(FieldError(f"{rolling_path}.maxSurge", "Invalid value",
                                 "may not be set when maxUnavailable is non-zero"))
    elif not unavailable and not surge:
        errors.append(required(f"{rolling_path}.maxUnavailable", "cannot be 0 when maxSurge is 0"))
    return errors


# --------------------------------------------------------------- StatefulSet


def validate_stateful_set(sts: Message, old: Message | None) -> list[FieldError]:
    spec = sts.spec
    errors: list[FieldError] = []
    if spec.HasField("pod_management_policy") and spec.pod_management_policy not in _POD_MANAGEMENT_POLICIES:
        errors += invalid("spec.podManagementPolicy", spec.pod_management_policy,
                          ["must be 'OrderedReady' or 'Parallel'"])
    if spec.HasField("update_strategy"):
        errors += _stateful_set_strategy_errors(spec.update_strategy)
    errors += non_negative_errors(spec, "spec", (("replicas", "replicas"), ("min_ready_seconds", "minReadySeconds")))
    if spec.ordinals.HasField("start"):
        errors += at_least("spec.ordinals.start", spec.ordinals.start, 0)
    errors += _pod_owner_errors(spec, kind="StatefulSet", kind_word="statefulset")
    if old is not None:
        # The selector is among the frozen fields.
        errors += _stateful_set_update_errors(spec, old.spec)
    return errors


def _stateful_set_strategy_errors(strategy: Message) -> list[FieldError]:
    path = "spec.updateStrategy"
    if not strategy.HasField("type"):
        return []
    if strategy.type == "OnDelete":
        if strategy.HasField("rolling_update"):
            return [FieldError(f"{path}.rollingUpdate", "Invalid value",
                               "only allowed for updateStrategy 'RollingUpdate'")]
        return []
    if strategy.type != "RollingUpdate":
        return invalid(f"{path}.type", strategy.type, ["must be 'RollingUpdate' or 'OnDelete'"])
    rolling, rolling_path = strategy.rolling_update, f"{path}.rollingUpdate"
    errors = non_negative_errors(rolling, rolling_path, (("partition", "partition"),))
    if rolling.HasField("max_unavailable"):
        max_path = f"{rolling_path}.maxUnavailable"
        errors += int_or_percent_errors(max_path, rolling.max_unavailable)
        if int_or_percent_value(rolling.max_unavailable, 0) == 0:
            errors += invalid(max_path, 0, ["cannot be 0"])
        errors += over_100_percent_errors(max_path, rolling.max_unavailable)
    return errors


def _stateful_set_update_errors(spec: Message, old: Message) -> list[FieldError]:
    """Undo every change an update may make; whatever still differs was not allowed."""
    frozen = type(spec)()
    frozen.CopyFrom(spec)
    for field in ("replicas", "ordinals", "template", "update_strategy", "min_ready_seconds"):
        frozen.ClearField(field)
        if old.HasField(field):
            value = getattr(old, field)
            if isinstance(value, Message):
                getattr(frozen, field).CopyFrom(value)
            else:
                setattr(frozen, field, value)
    return [] if frozen == old else [forbidden("spec", _STATEFUL_SET_UPDATABLE)]


# -------------------------------------------------------- ControllerRevision


def validate_controller_revision(revision: Message, old: Message | None) -> list[FieldError]:
    errors: list[FieldError] = []
    if not revision.HasField("data"):
        errors.append(required("data", "data is mandatory"))
    errors += at_least("revision", revision.revision, 0)
    if old is not None:
        errors += immutable("data", revision, old, "data")
    return errors
