"""Resource quantities (control/api/quantity.py).

Covered: parsing every suffix family (decimal SI, binary, exponent) to an
exact value, Kubernetes' error messages for malformed quantities, rounding up
when converting to millicores and bytes, and the canonical forms written back
(``format_cpu_millis``, ``format_bytes``, ``format_decimal``).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from control.api.quantity import (
    FORMAT_ERROR,
    bytes_value,
    cpu_millis,
    format_bytes,
    format_cpu_millis,
    format_decimal,
    is_quantity,
    parse_quantity,
)


@pytest.mark.parametrize(("text", "value"), [
    ("100", Decimal(100)),
    ("0.5", Decimal("0.5")),
    (".5", Decimal("0.5")),
    ("1.5", Decimal("1.5")),
    ("500m", Decimal("0.5")),
    ("250u", Decimal("0.00025")),
    ("7n", Decimal("0.000000007")),
    ("1k", Decimal(1000)),
    ("1G", Decimal(10**9)),
    ("2E", Decimal(2 * 10**18)),
    ("2Ki", Decimal(2048)),
    ("128Mi", Decimal(128 * 2**20)),
    ("1.5Gi", Decimal(3 * 2**29)),
    ("1Ei", Decimal(2**60)),
    ("1e3", Decimal(1000)),
    ("1E3", Decimal(1000)),
    ("5e-2", Decimal("0.05")),
    ("+2k", Decimal(2000)),
    ("-1", Decimal(-1)),
])
def test_parse_quantity_gives_the_exact_value(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


def test_parse_quantity_keeps_precision_beyond_float() -> None:
    # 31 significant digits: more than a float or Decimal's default context holds.
    assert parse_quantity("123456789012345678901234567890.5Ki") == Decimal("126419751948641975194864197519872")


@pytest.mark.parametrize("text", ["", "abc", "1 ", " 1", "Mi", "1.5.Mi", "1Xi", "e3"])
def test_a_malformed_quantity_is_rejected_with_kubernetes_message(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_quantity(text)
    assert str(caught.value) in (
        FORMAT_ERROR, "unable to parse quantity's suffix", "unable to parse numeric part of quantity")


def test_the_format_error_quotes_kubernetes_regular_expression() -> None:
    with pytest.raises(ValueError, match=r"quantities must match the regular expression "
                                         r"'\^\(\[\+-\]\?\[0-9\.\]\+\)\(\[eEinumkKMGTP\]\*\[-\+\]\?\[0-9\]\*\)\$'"):
        parse_quantity("ten")


@pytest.mark.parametrize("text", ["1mi", "1e", "5Kii", "1.2.3"])
def test_an_unknown_suffix_is_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_an_absurd_exponent_is_rejected_rather_than_computed() -> None:
    with pytest.raises(ValueError, match="unable to parse numeric part of quantity"):
        parse_quantity("1e999999999")


def test_is_quantity_answers_without_raising() -> None:
    assert is_quantity("64Mi") and not is_quantity("64MB")


@pytest.mark.parametrize(("text", "millis"), [
    ("500m", 500), ("1", 1000), ("1.5", 1500), ("0.25", 250), ("2k", 2_000_000), ("0.5m", 1), ("1u", 1),
])
def test_cpu_millis_rounds_up_to_whole_millicores(text: str, millis: int) -> None:
    assert cpu_millis(text) == millis


@pytest.mark.parametrize(("text", "count"), [
    ("128Mi", 134_217_728), ("1G", 1_000_000_000), ("1e3", 1000), ("1.5Ki", 1536), ("100m", 1), ("0", 0),
])
def test_bytes_value_rounds_up_to_whole_bytes(text: str, count: int) -> None:
    assert bytes_value(text) == count


@pytest.mark.parametrize(("millis", "text"), [(250, "250m"), (1000, "1"), (1500, "1500m"), (0, "0"), (4000, "4")])
def test_format_cpu_millis_writes_whole_cores_bare(millis: int, text: str) -> None:
    assert format_cpu_millis(millis) == text


@pytest.mark.parametrize(("count", "text"), [
    (134_217_728, "128Mi"), (1024, "1Ki"), (3 * 2**30, "3Gi"), (1500, "1500"), (0, "0"), (2**60, "1Ei"),
])
def test_format_bytes_uses_the_largest_exact_binary_suffix(count: int, text: str) -> None:
    assert format_bytes(count) == text


@pytest.mark.parametrize(("value", "text"), [
    (Decimal("0.5"), "500m"), (Decimal("1.5"), "1500m"), (Decimal(1000), "1k"), (Decimal(1500), "1500"),
    (Decimal(1), "1"), (Decimal("0.1"), "100m"), (Decimal(0), "0"), (Decimal("1e18"), "1E"),
    (Decimal("0.0000000001"), "1n"), (Decimal(-2), "-2"),
])
def test_format_decimal_writes_kubernetes_canonical_form(value: Decimal, text: str) -> None:
    assert format_decimal(value) == text


def test_formatted_quantities_parse_back_to_the_same_value() -> None:
    for count in (1, 1023, 1024, 5 * 2**40):
        assert bytes_value(format_bytes(count)) == count
    for millis in (1, 999, 1000, 123456):
        assert cpu_millis(format_cpu_millis(millis)) == millis
