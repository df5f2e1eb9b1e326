"""TaintToleration: NoSchedule/NoExecute taints keep untolerating pods off;
PreferNoSchedule only scores."""

from __future__ import annotations

from control.scheduler.framework import CycleState
from control.scheduler.plugins.taint_toleration import fits, new, tolerates
from protos.api.v1 import core_pb2
from tests.scheduler.builders import make_node, make_pod, node_info

DB_TAINT = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}


def test_an_untolerated_no_schedule_taint_is_reported_with_key_and_value():
    status = new().filter(make_pod(), node_info(make_node("a", taints=[DB_TAINT])), CycleState())
    assert status.reasons == ("node(s) had untolerated taint {dedicated: db}",)


def test_an_equal_toleration_with_the_same_value_tolerates():
    pod = make_pod(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}])
    assert fits(pod, make_node("a", taints=[DB_TAINT]))


def test_a_toleration_with_another_value_does_not():
    pod = make_pod(tolerations=[{"key": "dedicated", "value": "web"}])
    assert not fits(pod, make_node("a", taints=[DB_TAINT]))


def test_exists_without_key_tolerates_everything():
    pod = make_pod(tolerations=[{"operator": "Exists"}])
    assert fits(pod, make_node("a", taints=[DB_TAINT, {"key": "x", "effect": "NoExecute"}]))


def test_a_toleration_for_another_effect_does_not_tolerate():
    toleration = core_pb2.Toleration(key="dedicated", operator="Exists", effect="NoExecute")
    assert not tolerates(toleration, core_pb2.Taint(key="dedicated", value="db", effect="NoSchedule"))


def test_prefer_no_schedule_does_not_filter_but_lowers_the_score():
    plugin = new()
    soft = node_info(make_node("soft", taints=[{"key": "spot", "effect": "PreferNoSchedule"}]))
    clean = node_info(make_node("clean"))
    pod = make_pod()
    assert plugin.filter(pod, soft, CycleState()).success
    raw = {info.name: plugin.score(pod, info, CycleState()) for info in (soft, clean)}
    assert plugin.normalize(raw, pod, CycleState()) == {"soft": 0, "clean": 100}
