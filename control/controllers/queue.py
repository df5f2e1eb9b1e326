"""A work queue of object keys, as client-go's: watch handlers only add keys;
workers take a key, reconcile it, and either forget it or requeue it with
backoff.

Guarantees: a key waiting in the queue is held once however often it is
added; a key is never handed to two workers at once (added again while being
processed, it is queued again once its worker finishes); a failing key is
retried after an exponential backoff (``base_delay`` doubling up to
``max_delay``), reset when it succeeds.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Hashable

from control.api import errors


class WorkQueue:
    def __init__(self, *, base_delay: float = 0.005, max_delay: float = 60.0) -> None:
        self._queue: asyncio.Queue[Hashable] = asyncio.Queue()
        self._waiting: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._failures: dict[Hashable, int] = {}
        self._delayed: dict[Hashable, asyncio.TimerHandle] = {}
        self.base_delay = base_delay
        self.max_delay = max_delay

    def add(self, key: Hashable) -> None:
        if key in self._processing:
            self._dirty.add(key)
        elif key not in self._waiting:
            self._waiting.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: Hashable, delay: float) -> None:
        """Add key after delay seconds; of several waits for one key, the earliest wins."""
        loop = asyncio.get_running_loop()
        waiting = self._delayed.get(key)
        if waiting is not None:
            if waiting.when() <= loop.time() + delay:
                return
            waiting.cancel()

        def fire() -> None:
            self._delayed.pop(key, None)
            self.add(key)

        self._delayed[key] = loop.call_later(delay, fire)

    def requeue_with_backoff(self, key: Hashable) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = min(self.max_delay, self.base_delay * (2 ** failures))
        self.add_after(key, delay)
        return delay

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    async def get(self) -> Hashable:
        key = await self._queue.get()
        self._waiting.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: Hashable) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def __len__(self) -> int:
        return len(self._waiting)

    def close(self) -> None:
        for handle in self._delayed.values():
            handle.cancel()
        self._delayed.clear()


async def run_workers(
    queue: WorkQueue, reconcile: Callable[[Hashable], Awaitable[float | None]], *, workers: int = 1
) -> None:
    """Run reconcile(key) for queued keys until cancelled.

    reconcile returns None when done, or seconds after which to look again; an
    exception requeues the key with backoff (a ConflictError, a lost write
    race, without a traceback).
    """

    async def worker() -> None:
        while True:
            key = await queue.get()
            try:
                again = await reconcile(key)
            except asyncio.CancelledError:
                raise
            except errors.ConflictError as err:  # a write raced another: look again with fresh data
                logging.getLogger(__name__).info("reconcile %r: %s; retrying", key, err)
                queue.requeue_with_backoff(key)
            except Exception:
                logging.getLogger(__name__).exception("reconcile %r failed; retrying", key)
                queue.requeue_with_backoff(key)
            else:
                queue.forget(key)
                if again is not None:
                    queue.add_after(key, again)
            finally:
                queue.done(key)

    await asyncio.gather(*(worker() for _ in range(workers)))
