"""Restart back-off, kubelet's ``flowcontrol.Backoff`` in a few lines.

A crashing container is restarted at once the first time, then only after a
delay that doubles on every further crash (``initial`` up to ``maximum``). A
key whose last restart is older than ``reset_after`` starts over, so a
container that ran well for that long gets a fresh budget. Image pulls use the
same tracker with their own keys.

The tracker is plain bookkeeping over times the caller passes in; it never
sleeps and never reads a clock, so its tests need no waiting.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RestartBackoff:
    """The back-off policy: delays in seconds."""

    initial: float = 10.0
    maximum: float = 300.0
    reset_after: float = 600.0


@dataclass
class _Entry:
    delay: float
    last_update: float


class BackoffTracker:
    """Per-key back-off state (key: e.g. a pod uid and container name)."""

    def __init__(self, policy: RestartBackoff) -> None:
        self.policy = policy
        self._entries: dict[object, _Entry] = {}

    def _live(self, key: object, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and now - entry.last_update > self.policy.reset_after:
            del self._entries[key]
            return None
        return entry

    def remaining(self, key: object, *, since: float, now: float) -> float:
        """Seconds still to wait, counting the current delay from ``since`` (for
        a crash: when the container finished); 0 when the key may act now."""
        entry = self._live(key, now)
        if entry is None:
            return 0.0
        return max(0.0, since + entry.delay - now)

    def next(self, key: object, *, now: float) -> float:
        """Record an attempt at ``now`` and return the delay the following one must wait."""
        entry = self._live(key, now)
        if entry is None:
            entry = self._entries[key] = _Entry(self.policy.initial, now)
        else:
            entry.delay = min(entry.delay * 2, self.policy.maximum)
            entry.last_update = now
        return entry.delay

    def delay(self, key: object) -> float:
        """The current delay of key (0 when it has none)."""
        entry = self._entries.get(key)
        return entry.delay if entry is not None else 0.0

    def last_update(self, key: object) -> float:
        entry = self._entries.get(key)
        return entry.last_update if entry is not None else 0.0

    def forget(self, key: object) -> None:
        self._entries.pop(key, None)

    def forget_where(self, predicate) -> None:
        """Drop every key for which predicate(key) is true (a deleted pod's keys)."""
        for key in [k for k in self._entries if predicate(k)]:
            del self._entries[key]


def format_duration(seconds: float) -> str:
    """A duration as Go prints one, as kubelet's messages show it: 200ms, 20s, 5m0s."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    if minutes:
        hours, minutes = divmod(int(minutes), 60)
        text = f"{minutes}m{text}"
        if hours:
            text = f"{hours}h{text}"
    return text
