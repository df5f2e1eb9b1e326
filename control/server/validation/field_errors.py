"""The vocabulary every validator speaks: FieldErrors at a path, Kubernetes-style.

The constructors mirror k8s.io/apimachinery's field.Invalid, field.Required,
field.Forbidden and field.NotSupported, so a validator reads like its
Kubernetes original and prints the same message. The checks below them are
the few field rules more than one kind shares: quantities, label maps, paths
inside a volume and IP addresses. Name formats live in control/api/names.py,
because clients apply them too.
"""

from __future__ import annotations

import ipaddress
from typing import Callable, Iterable, Mapping, Sequence

from control.api.manifest import FieldError
from control.api.names import label_value_errors, qualified_name_errors
from control.api.quantity import parse_quantity

_NON_NEGATIVE_MSG = "must be greater than or equal to 0"
_IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
_CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


def invalid(path: str, value: str | int, messages: Iterable[str]) -> list[FieldError]:
    """One "Invalid value" error per message: how a format check's list becomes errors."""
    return [FieldError(path, "Invalid value", message, value) for message in messages]


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, "Required value", detail)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, "Forbidden", detail)


def one_of(path: str, value: str, supported: Sequence[str]) -> list[FieldError]:
    """Nothing when ``value`` is supported, else Kubernetes' "Unsupported value" listing the options."""
    if value in supported:
        return []
    listed = ", ".join(f'"{option}"' for option in supported)
    return [FieldError(path, "Unsupported value", f"supported values: {listed}", value)]


def at_least(path: str, value: int, minimum: int) -> list[FieldError]:
    if value >= minimum:
        return []
    return [FieldError(path, "Invalid value", f"must be greater than or equal to {minimum}", value)]


def name_errors(path: str, value: str, check: Callable[[str], list[str]]) -> list[FieldError]:
    """A name that must be given and must pass ``check``."""
    return invalid(path, value, check(value)) if value else [required(path)]


def quantity_errors(path: str, value: str) -> list[FieldError]:
    """A resource quantity that parses and is not negative."""
    try:
        parsed = parse_quantity(value)
    except ValueError as err:
        return invalid(path, value, [str(err)])
    return invalid(path, value, [_NON_NEGATIVE_MSG]) if parsed < 0 else []


def labels_errors(path: str, labels: Mapping[str, str]) -> list[FieldError]:
    """A label map: qualified-name keys and label values (metadata, node selectors, matchLabels)."""
    errors: list[FieldError] = []
    for key in sorted(labels):
        errors += invalid(path, key, qualified_name_errors(key))
        errors += invalid(path, labels[key], label_value_errors(labels[key]))
    return errors


def local_path_errors(path: str, value: str) -> list[FieldError]:
    """A path inside a volume: relative and never climbing out with '..'."""
    errors: list[FieldError] = []
    if value.startswith("/"):
        errors += invalid(path, value, ["must be a relative path"])
    if ".." in value.split("/"):
        errors += invalid(path, value, ["must not contain '..'"])
    return errors


def required_local_path_errors(path: str, value: str) -> list[FieldError]:
    """A path inside a volume that must be given (projected and downward API items)."""
    return local_path_errors(path, value) if value else [required(path)]


def ip_errors(value: str) -> list[str]:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return [_IP_MSG]
    return []


def cidr_errors(value: str) -> list[str]:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return [_CIDR_MSG]
    return [] if "/" in value else [_CIDR_MSG]
