"""The work queue's delayed adds (control/controllers/queue.py): of several waits for one key, the earliest wins.

Controllers that wait for a time (a CronJob's next run, a Job's deadline, a
TTL) ask to look again after the time left; when that time moves earlier
(a schedule or TTL changed), the earlier wait must not be swallowed by the
later one already pending.
"""

from __future__ import annotations

import asyncio

from control.controllers.queue import WorkQueue


async def test_an_earlier_delay_replaces_a_later_one_for_the_same_key():
    queue = WorkQueue()
    queue.add_after("job", 30.0)
    queue.add_after("job", 0.01)
    key = await asyncio.wait_for(queue.get(), timeout=5)
    assert key == "job"
    queue.done(key)
    queue.close()


async def test_a_later_delay_does_not_postpone_an_earlier_one():
    queue = WorkQueue()
    queue.add_after("job", 0.01)
    queue.add_after("job", 30.0)
    assert await asyncio.wait_for(queue.get(), timeout=5) == "job"
    queue.close()
