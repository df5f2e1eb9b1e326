"""How commands read KIND[,KIND] [NAME...] and KIND/NAME arguments."""

from __future__ import annotations

import pytest

from control.api import kinds
from control.cli.errors import CommandError
from control.cli.targets import Target, parse_targets, several_kinds

POD, CM = kinds.by_kind("Pod"), kinds.by_kind("ConfigMap")


@pytest.mark.parametrize("name", ["po", "pod", "pods", "Pod"])
def test_kinds_resolve_by_any_kubectl_name(name):
    assert parse_targets([name], command="get") == [Target(POD)]


def test_names_follow_the_kind():
    assert parse_targets(["pods", "web", "db"], command="get") == [Target(POD, ("web", "db"))]


def test_comma_separated_kinds_each_get_the_names():
    assert parse_targets(["po,cm"], command="get") == [Target(POD), Target(CM)]


def test_kind_slash_name_groups_names_by_kind():
    targets = parse_targets(["pod/web", "cm/cfg", "pods/db"], command="get")
    assert targets == [Target(POD, ("web", "db")), Target(CM, ("cfg",))]
    assert several_kinds(targets)


def test_an_unknown_kind_is_refused():
    with pytest.raises(kinds.UnknownKindError, match='resource type "podz"'):
        parse_targets(["podz"], command="get")


def test_no_kind_is_refused():
    with pytest.raises(CommandError, match="you must specify the type of resource to describe"):
        parse_targets([], command="describe")
