"""One serialized worker per pod: never two syncs of one pod at once.

``dispatch(uid)`` asks for a sync of the pod. With no worker running for it, a
task starts; with one running, the request is remembered and the worker syncs
once more when it finishes, however many requests came meanwhile (syncs are
level-triggered, so one more pass covers them all). A worker with nothing
left to do ends, so idle pods cost no task.

A sync that raises is logged and ``on_retry(uid, RETRY_SECONDS)`` asks for
another sync later; a failure never ends a worker pool or the loop that
dispatches to it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0


class PodWorkers:
    def __init__(
        self,
        sync: Callable[[str], Awaitable[None]],
        *,
        on_retry: Callable[[str, float], None],
    ) -> None:
        self._sync = sync
        self._on_retry = on_retry
        self._tasks: dict[str, asyncio.Task] = {}
        self._again: set[str] = set()

    def dispatch(self, uid: str) -> None:
        if uid in self._tasks:
            self._again.add(uid)
            return
        self._tasks[uid] = asyncio.create_task(self._work(uid), name=f"pod worker {uid}")

    def busy(self, uid: str) -> bool:
        return uid in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    async def _work(self, uid: str) -> None:
        try:
            while True:
                self._again.discard(uid)
                try:
                    await self._sync(uid)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("syncing pod %s failed; retrying in %.1fs", uid, RETRY_SECONDS)
                    self._on_retry(uid, RETRY_SECONDS)
                if uid not in self._again:
                    return
        finally:
            self._tasks.pop(uid, None)
            self._again.discard(uid)

    async def stop(self) -> None:
        """Cancel every worker (the agent stops; pods keep running)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
