"""Times as kubectl prints them: ages (HumanDuration) and RFC 1123 dates;
and Go durations as its flags take them (``--timeout 1m30s``, ``--since 5m``).

``human_duration`` is k8s.io/apimachinery/pkg/util/duration.HumanDuration:
about two significant figures, finer units while they still matter ("90s",
"3m20s", "15m", "5h30m", "36h", "3d4h", "45d", "2y30d", "10y"). Clock skew
of up to two seconds in the future reads "0s"; more is "<invalid>".

API timestamps are RFC 3339 strings ("2024-05-01T12:00:00Z"); an unset or
unreadable one reads "<unknown>", as kubectl's translateTimestampSince does.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from control.cli.errors import CommandError

UNKNOWN = "<unknown>"

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_FRACTION = re.compile(r"(\.\d{1,6})\d*")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def human_duration(seconds: float) -> str:
    """kubectl's HumanDuration of a duration in seconds."""
    whole = int(seconds)  # truncates toward zero, as Go's int(d.Seconds())
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 60 * 2:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if rest == 0 else f"{years}y{rest}d"
    return f"{hours // 24 // 365}y"


def parse_duration(text: str) -> float:
    """A Go duration ("30s", "1m30s", "500ms", "0") in seconds."""
    if text in ("0", ""):
        return 0.0
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(text):
        raise CommandError(f'error: invalid duration "{text}" (examples: 30s, 1m30s, 500ms)')
    return total


def parse_timestamp(text: str) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime; None when empty or malformed."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", text.replace("z", "Z")))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def now() -> datetime:
    return datetime.now(timezone.utc)


def age(timestamp: str, *, at: datetime) -> str:
    """kubectl's translateTimestampSince: the age of a timestamp at a moment."""
    when = parse_timestamp(timestamp)
    if when is None:
        return UNKNOWN
    return human_duration((at - when).total_seconds())


def rfc1123z(timestamp: str) -> str:
    """Go's time.RFC1123Z in local time ("Mon, 02 Jan 2006 15:04:05 -0700"), as describe prints.

    An unset timestamp prints as Go prints its zero time.
    """
    when = parse_timestamp(timestamp)
    if when is None:
        return "Mon, 01 Jan 0001 00:00:00 +0000"
    local = when.astimezone()
    return (f"{_WEEKDAYS[local.weekday()]}, {local.day:02d} {_MONTHS[local.month - 1]} {local.year:04d} "
            f"{local:%H:%M:%S} {local:%z}")
