"""Fairness: how many requests one identity, and everyone, may have in flight.

``Limiter`` is the gate's ``Limiter`` (control/server/gate.py): the servicer
holds ``admit(user)`` around each unary request (watches, logs and exec are
long by nature and not counted). A request over a bound is refused at once,
before it is decoded, with ``errors.TooManyRequestsError``
(RESOURCE_EXHAUSTED), a ``retry-after`` trailing metadata value in seconds
and "retry after 1s" in the message; ``control.client.Client`` retries such
answers a few times after that delay.

Callers are put in priority levels by identity, a small version of the
Kubernetes API server's priority and fairness (APF) levels:

- ``exempt``: the control service's own loopback client
  (``system:sampan-control``: scheduler, controllers, leader election), never
  limited, as APF exempts the API server's own requests and runs leader
  election at its own level.
- ``system``: nodes (group ``system:nodes``): their heartbeats (Lease
  renewals, status updates) draw on their own pool, so no amount of traffic
  from users can take their places.
- ``workload``: everyone else, administrators included.

Within a level each identity has at most ``max_per_user`` requests in flight,
and the level at most its total, so one flooding client gets refusals while
the others, and the nodes, go on. Unlike APF there are no queues: a refused
request is retried by its client, which keeps the server's memory bounded by
the totals.

In plain-text mode every caller is the same user, so a per-user bound would
only throttle the controllers and agents together; the service therefore uses
the limiter only when callers are authenticated (see ``_build_gate`` in
control/service.py).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass
from typing import AsyncIterator

from control.api import errors
from control.auth.identity import CONTROL_PLANE_USER, NODES_GROUP, UserInfo

RETRY_AFTER_SECONDS = 1
EXEMPT, SYSTEM, WORKLOAD = "exempt", "system", "workload"


@dataclass(frozen=True)
class FairnessConfig:
    """The bounds (``sampan control --max-requests-inflight-per-user`` and
    ``--max-requests-inflight``); the nodes' pool is as large as the users'."""

    max_per_user: int = 100
    max_total: int = 400
    max_system_total: int = 400

    def __post_init__(self) -> None:
        for name, flag in (("max_per_user", "--max-requests-inflight-per-user"),
                           ("max_total", "--max-requests-inflight"), ("max_system_total", "max_system_total")):
            if getattr(self, name) < 1:
                raise ValueError(f"{flag}: Invalid value: {getattr(self, name)}: must be >= 1")


def priority_level(user: UserInfo) -> str:
    if user.name == CONTROL_PLANE_USER:
        return EXEMPT
    if NODES_GROUP in user.groups:
        return SYSTEM
    return WORKLOAD


class _Pool:
    """One priority level's places: a total and a per-identity bound."""

    def __init__(self, name: str, *, total: int, per_user: int) -> None:
        self.name = name
        self.total = total
        self.per_user = per_user
        self.in_flight = 0
        self.by_user: Counter[str] = Counter()

    def take(self, user: str) -> None:
        if self.by_user[user] >= self.per_user:
            raise errors.TooManyRequestsError(
                f'too many requests in flight for user "{user}" (at most {self.per_user} at a time); '
                f"retry after {RETRY_AFTER_SECONDS}s", retry_after_seconds=RETRY_AFTER_SECONDS)
        if self.in_flight >= self.total:
            raise errors.TooManyRequestsError(
                f"the server has too many requests in flight ({self.total} at {self.name} priority); "
                f"retry after {RETRY_AFTER_SECONDS}s", retry_after_seconds=RETRY_AFTER_SECONDS)
        self.in_flight += 1
        self.by_user[user] += 1

    def give_back(self, user: str) -> None:
        self.in_flight -= 1
        self.by_user[user] -= 1
        if not self.by_user[user]:
            del self.by_user[user]


class Limiter:
    """Bounds requests in flight per identity and per priority level (see module doc).

    Places are taken and returned without awaiting, so on one event loop no
    lock is needed."""

    def __init__(self, config: FairnessConfig | None = None) -> None:
        config = config or FairnessConfig()
        self.config = config
        self.pools = {
            SYSTEM: _Pool(SYSTEM, total=config.max_system_total, per_user=config.max_per_user),
            WORKLOAD: _Pool(WORKLOAD, total=config.max_total, per_user=config.max_per_user),
        }

    @contextlib.asynccontextmanager
    async def admit(self, user: UserInfo) -> AsyncIterator[None]:
        pool = self.pools.get(priority_level(user))
        if pool is None:
            yield
            return
        pool.take(user.name)
        try:
            yield
        finally:
            pool.give_back(user.name)

    def in_flight(self, level: str) -> int:
        return self.pools[level].in_flight
