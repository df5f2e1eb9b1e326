"""``--watch-jitter SECONDS``: delay every watch event a client in the test process receives.

Each event waits a random time up to SECONDS before the consumer sees it, so
each watcher (a controller's informer, the scheduler, a test's stand-in
kubelet) runs behind the store by its own, changing amount, as on a loaded
machine. Order within one stream is kept. Races that depend on one watcher
seeing a change before another then show up in a few runs instead of one CI
run in three:

    .venv/bin/python -m pytest tests/controllers --watch-jitter 0.05

Only the test process is affected (in-process control services included);
control services started as subprocesses are not.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from control.client import Client


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--watch-jitter", type=float, default=0.0, metavar="SECONDS",
                     help="delay each watch event received in the test process by up to SECONDS (finds races)")


def pytest_configure(config: pytest.Config) -> None:
    most = config.getoption("--watch-jitter")
    if most <= 0:
        return
    plain = Client.watch

    async def watch(self, *args, **kwargs):
        async for event in plain(self, *args, **kwargs):
            await asyncio.sleep(random.random() * most)
            yield event

    Client.watch = watch
