"""Label selector keys and values (control/api/selectors.py) follow the label rules.

A selector's keys are qualified names and its values label values, checked by
the same functions (control/api/names.py) that check labels on objects, so a
selector no valid label could match is a SelectorError naming the broken rule.
Parsing and matching are covered end to end in tests/server/test_api.py.
"""

from __future__ import annotations

import re

import pytest

from control.api.selectors import Requirement, SelectorError, parse_label_selector


@pytest.mark.parametrize("text", [
    "example.com/app=web",
    "app.kubernetes.io/name in (web, api)",
    "!example.com/legacy",
    "A_b.c-D=x_Y.z-1",
    "app=",
])
def test_qualified_keys_and_label_values_parse(text: str) -> None:
    assert parse_label_selector(text).requirements


def test_an_empty_value_selects_labels_set_to_the_empty_string() -> None:
    assert parse_label_selector("app=").requirements == (Requirement("app", "In", ("",)),)


@pytest.mark.parametrize(("text", "broken"), [
    ("-app=web", "name part must consist of alphanumeric characters"),
    ("Example.com/app=web", "prefix part a lowercase RFC 1123 subdomain must consist"),
    ("a/b/c=web", "a qualified name must consist of alphanumeric characters"),
    ("!app_", "name part must consist of alphanumeric characters"),
    (f"{'a' * 64}=web", "name part must be no more than 63 characters"),
    (f"{'a' * 254}/app=web", "prefix part must be no more than 253 characters"),
])
def test_a_key_that_is_not_a_qualified_name_is_rejected(text: str, broken: str) -> None:
    key = text.lstrip("!").partition("=")[0]
    with pytest.raises(SelectorError, match=re.escape(f"invalid label key {key!r}: {broken}")):
        parse_label_selector(text)


@pytest.mark.parametrize(("text", "value", "broken"), [
    ("app=-web", "-web", "a valid label must be an empty string or consist of alphanumeric characters"),
    ("app in (web, api_)", "api_", "a valid label must be an empty string or consist of alphanumeric characters"),
    (f"app={'v' * 64}", "v" * 64, "must be no more than 63 characters"),
])
def test_a_value_that_is_not_a_label_value_is_rejected(text: str, value: str, broken: str) -> None:
    with pytest.raises(SelectorError, match=re.escape(f"invalid label value {value!r}: {broken}")):
        parse_label_selector(text)
