"""Resource quantities, as Kubernetes' resource.Quantity writes them.

A quantity is a decimal number with an optional suffix: a decimal SI suffix
(``n u m "" k M G T P E``), a binary one (``Ki Mi Gi Ti Pi Ei``) or a decimal
exponent (``1e3``, ``5E-2``). Values are exact: parsing returns a ``Decimal``
computed without rounding, so ``"0.1"`` plus ``"0.2"`` is ``"0.3"``. The
conversions to integers round up, as Kubernetes' ``Value`` and ``MilliValue``
do, so a request of ``"0.5m"`` CPU never becomes zero.

Manifests keep quantities as the strings their author wrote; this module is
what validation, the scheduler and the agent use to compare and add them.
"""

from __future__ import annotations

import decimal
import re
from decimal import Decimal

FORMAT_ERROR = (
    "quantities must match the regular expression "
    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
SUFFIX_ERROR = "unable to parse quantity's suffix"
NUMERIC_ERROR = "unable to parse numeric part of quantity"

_SHAPE = re.compile(r"([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_EXPONENT = re.compile(r"[eE]([+-]?[0-9]+)")

_DECIMAL_EXPONENTS = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_EXPONENTS = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_SUFFIX_OF_EXPONENT = {exponent: suffix for suffix, exponent in _DECIMAL_EXPONENTS.items()}
_BINARY_SUFFIXES_DESCENDING = sorted(_BINARY_EXPONENTS.items(), key=lambda item: -item[1])
# Exponents beyond this are typos or attacks, not resources.
_MAX_EXPONENT = 1000


def _exact_context(digits: int) -> decimal.Context:
    # Wide enough that multiplying by 2**60 or 10**9 never rounds.
    return decimal.Context(prec=digits + 40, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


def parse_quantity(text: str) -> Decimal:
    """The exact value of a quantity string; ValueError with Kubernetes' message if malformed."""
    if not isinstance(text, str) or _SHAPE.fullmatch(text) is None:
        raise ValueError(FORMAT_ERROR)
    number = _NUMBER.match(text)
    if number is None:
        raise ValueError(NUMERIC_ERROR)
    suffix = text[number.end():]
    context = _exact_context(len(text))
    value = Decimal(number.group())
    if suffix in _DECIMAL_EXPONENTS:
        return value.scaleb(_DECIMAL_EXPONENTS[suffix], context)
    if suffix in _BINARY_EXPONENTS:
        return context.multiply(value, Decimal(2 ** _BINARY_EXPONENTS[suffix]))
    exponent = _EXPONENT.fullmatch(suffix)
    if exponent is None:
        raise ValueError(SUFFIX_ERROR)
    power = int(exponent.group(1))
    if abs(power) > _MAX_EXPONENT:
        raise ValueError(NUMERIC_ERROR)
    return value.scaleb(power, context)


def is_quantity(text: str) -> bool:
    try:
        parse_quantity(text)
    except ValueError:
        return False
    return True


def _ceil(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=decimal.ROUND_CEILING))


def cpu_millis(text: str) -> int:
    """A CPU quantity in millicores, rounded up ("250m" -> 250, "1.5" -> 1500)."""
    value = parse_quantity(text)
    return _ceil(value.scaleb(3, _exact_context(len(text))))


def bytes_value(text: str) -> int:
    """A quantity as a whole number, rounded up ("128Mi" -> 134217728, "1G" -> 10**9)."""
    return _ceil(parse_quantity(text))


def format_cpu_millis(millis: int) -> str:
    """Millicores as Kubernetes writes them: whole cores bare ("2"), else "250m"."""
    if millis % 1000 == 0:
        return str(millis // 1000)
    return f"{millis}m"


def format_bytes(count: int) -> str:
    """A byte count with the largest binary suffix that divides it exactly ("128Mi")."""
    if count != 0:
        for suffix, exponent in _BINARY_SUFFIXES_DESCENDING:
            if count % (1 << exponent) == 0:
                return f"{count >> exponent}{suffix}"
    return str(count)


def format_decimal(value: Decimal | int) -> str:
    """Kubernetes' canonical decimal form: an integer with the largest SI suffix
    that loses nothing ("0.5" -> "500m", "1000" -> "1k", "1500" -> "1500").

    Precision finer than a nano unit is rounded up, as Kubernetes does.
    """
    value = Decimal(value)
    if not value.is_finite():
        raise ValueError(NUMERIC_ERROR)
    nanos = _ceil(value.scaleb(9, _exact_context(len(str(value)))))
    if nanos == 0:
        return "0"
    exponent = -9
    while nanos % 1000 == 0 and exponent < 18:
        nanos //= 1000
        exponent += 3
    return f"{nanos}{_SUFFIX_OF_EXPONENT[exponent]}"

