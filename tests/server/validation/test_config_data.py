"""ConfigMap and Secret rules (control/server/validation/config_data.py): keys,
size, immutability and Secret types.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.validation.support import QUALIFIED_NAME_PART_MESSAGE, errors_of


def a_config_map(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config", "namespace": "default"}, **fields}


def a_secret(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "secret", "namespace": "default"}, **fields}


@pytest.mark.parametrize(("key", "message"), [
    ("a/b", "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
            "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"),
    ("..", "must not be '..'"),
    ("..data", "must not start with '..'"),
])
def test_config_map_keys_must_be_valid(key: str, message: str) -> None:
    assert errors_of(a_config_map(data={key: "x"})) == [f'data[{key}]: Invalid value: "{key}": {message}']


def test_a_config_map_key_is_at_most_253_characters() -> None:
    key = "k" * 254
    assert errors_of(a_config_map(data={key: "x"})) == [
        f'data[{key}]: Invalid value: "{key}": must be no more than 253 characters']


def test_a_key_may_not_be_in_both_data_and_binary_data() -> None:
    assert errors_of(a_config_map(data={"a": "x"}, binaryData={"a": "eA=="})) == [
        'data[a]: Invalid value: "a": duplicate of key present in binaryData']


def test_a_config_map_is_at_most_1_mib() -> None:
    assert errors_of(a_config_map(data={"a": "x" * 600_000, "b": "x" * 600_000})) == [
        "data: Too long: must have at most 1048576 bytes"]


def test_a_valid_config_map_passes() -> None:
    assert errors_of(a_config_map(data={"game.properties": "lives=3", "UI_MODE": "dark"},
                                  binaryData={"logo.png": "iVBORw=="})) == []


def test_an_immutable_config_map_keeps_its_data() -> None:
    old = a_config_map(data={"a": "1"}, immutable=True)
    assert errors_of(a_config_map(data={"a": "2"}, immutable=True), old=old) == [
        "data: Forbidden: field is immutable when `immutable` is set"]


def test_an_immutable_config_map_stays_immutable() -> None:
    old = a_config_map(data={"a": "1"}, immutable=True)
    assert errors_of(a_config_map(data={"a": "1"}, immutable=False), old=old) == [
        "immutable: Forbidden: field is immutable when `immutable` is set"]


def test_a_mutable_config_map_may_change_its_data() -> None:
    assert errors_of(a_config_map(data={"a": "2"}), old=a_config_map(data={"a": "1"})) == []


def test_secret_keys_must_be_valid() -> None:
    assert errors_of(a_secret(stringData={"user name": "x"}))[0].startswith(
        'stringData[user name]: Invalid value: "user name": a valid config key must consist of')


def test_a_secret_type_may_be_any_qualified_name() -> None:
    assert errors_of(a_secret(type="example.com/api-token")) == []


def test_a_secret_type_must_be_a_qualified_name() -> None:
    assert errors_of(a_secret(type="my type")) == [f'type: Invalid value: "my type": {QUALIFIED_NAME_PART_MESSAGE}']


def test_a_tls_secret_needs_a_certificate_and_key() -> None:
    assert errors_of(a_secret(type="kubernetes.io/tls", data={"tls.crt": "eA=="})) == ["data[tls.key]: Required value"]


def test_a_tls_secret_with_both_passes() -> None:
    assert errors_of(a_secret(type="kubernetes.io/tls", data={"tls.crt": "eA==", "tls.key": "eA=="})) == []


def test_a_basic_auth_secret_needs_a_username_or_password() -> None:
    assert errors_of(a_secret(type="kubernetes.io/basic-auth", stringData={"token": "x"})) == [
        "data[username]: Required value", "data[password]: Required value"]


def test_a_secret_type_is_immutable() -> None:
    assert errors_of(a_secret(type="example.com/b"), old=a_secret(type="Opaque")) == [
        'type: Invalid value: "example.com/b": field is immutable']


def test_an_immutable_secret_keeps_its_data() -> None:
    old = a_secret(data={"a": "eA=="}, immutable=True)
    assert errors_of(a_secret(data={"a": "eQ=="}, immutable=True), old=old) == [
        "data: Forbidden: field is immutable when `immutable` is set"]
