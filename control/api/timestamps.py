"""Times as the API writes them: RFC 3339 in UTC, whole seconds ("2024-05-01T12:00:00Z")."""

from __future__ import annotations

from datetime import datetime, timezone


def format_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float:
    """Epoch seconds of an API timestamp (0.0 when empty or malformed)."""
    if not text:
        return 0.0
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
