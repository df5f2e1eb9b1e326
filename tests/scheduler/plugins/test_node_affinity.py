"""NodeAffinity: nodeSelector and required node affinity filter; preferred
node affinity scores. Every operator, and matchFields on metadata.name."""

from __future__ import annotations

import pytest

from control.scheduler.framework import CycleState, schedule_one
from control.scheduler.plugins import default_profile
from control.scheduler.plugins.node_affinity import fits, new
from tests.scheduler.builders import make_node, make_pod, node_info

NODE = make_node("n1", labels={"zone": "a", "disk": "ssd", "cores": "8"})


def required(*terms: dict) -> dict:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def expression(key: str, operator: str, *values: str) -> dict:
    return {"matchExpressions": [{"key": key, "operator": operator, "values": list(values)}]}


def test_node_selector_must_match_every_label():
    assert fits(make_pod(nodeSelector={"zone": "a", "disk": "ssd"}), NODE)
    assert not fits(make_pod(nodeSelector={"zone": "a", "disk": "hdd"}), NODE)


def test_a_mismatch_is_reported_with_kubernetes_reason():
    status = new().filter(make_pod(nodeSelector={"zone": "b"}), node_info(NODE), CycleState())
    assert status.reasons == ("node(s) didn't match Pod's node affinity/selector",)


@pytest.mark.parametrize(("term", "expected"), [
    (expression("zone", "In", "a", "b"), True),
    (expression("zone", "In", "b"), False),
    (expression("zone", "NotIn", "b"), True),
    (expression("zone", "NotIn", "a"), False),
    (expression("missing", "NotIn", "a"), True),
    (expression("disk", "Exists"), True),
    (expression("gpu", "Exists"), False),
    (expression("gpu", "DoesNotExist"), True),
    (expression("disk", "DoesNotExist"), False),
    (expression("cores", "Gt", "4"), True),
    (expression("cores", "Gt", "8"), False),
    (expression("cores", "Lt", "16"), True),
    (expression("zone", "Gt", "1"), False),
    (expression("cores", "Gt", "many"), False),
])
def test_match_expression_operators(term, expected):
    assert fits(make_pod(affinity=required(term)), NODE) is expected


def test_terms_are_ored_and_requirements_anded():
    both = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]},
                                 {"key": "disk", "operator": "In", "values": ["hdd"]}]}
    assert not fits(make_pod(affinity=required(both)), NODE)
    assert fits(make_pod(affinity=required(both, expression("disk", "Exists"))), NODE)


def test_an_empty_term_matches_nothing():
    assert not fits(make_pod(affinity=required({})), NODE)


def test_match_fields_selects_by_node_name():
    by_name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
    assert fits(make_pod(affinity=required(by_name)), NODE)
    assert not fits(make_pod(affinity=required(by_name)), make_node("n2"))


def test_preferred_affinity_picks_the_matching_node():
    affinity = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "preference": expression("disk", "In", "ssd")}]}}
    nodes = [node_info(make_node("a-hdd", labels={"disk": "hdd"})), node_info(make_node("b-ssd", labels={"disk": "ssd"}))]
    assert schedule_one(make_pod(affinity=affinity), nodes, default_profile())[0] == "b-ssd"
