"""One process of API watchers for the fan-out benchmark.

    python -m tests.bench.watch_client --server ADDR --resource-version RV \\
        --watchers K --channels C --expected N

Opens C client channels and K ``Client.watch`` streams on ConfigMaps in the
benchmark namespace from resourceVersion RV, spread round-robin over the
channels. Speaks a line protocol with the benchmark process:

- prints ``READY`` once every watcher has received the warm-up stamp (so
  every stream is established before the timed updates start);
- ends when every watcher has received N timed updates, or when a line (or
  end of file) arrives on stdin, whichever comes first;
- prints one JSON line, ``FanoutCounts`` of its watchers, with the CPU time
  this process used between READY and the end.

Running watchers in several such processes takes the client's decoding work
off one core, so the benchmark can tell client limits from server limits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from control.client import Client
from tests.bench.configmaps import NAMESPACE
from tests.bench.fanout import FanoutTally, WatcherTally


async def watch_into(api: Client, tally: WatcherTally, *, resource_version: str) -> None:
    try:
        async for event in api.watch("ConfigMap", namespace=NAMESPACE, resource_version=resource_version):
            tally.record(event.object, time.time())
            if tally.done.is_set():
                return
    except Exception as err:  # reported to the benchmark as missing deliveries
        tally.failed(err)


async def stdin_closed_or_line() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.readline()


async def run(args: argparse.Namespace) -> None:
    clients = [Client.connect(args.server, timeout=None) for _ in range(args.channels)]
    tally = FanoutTally(args.watchers, args.expected)
    watches = [
        asyncio.create_task(watch_into(clients[n % args.channels], watcher, resource_version=args.resource_version))
        for n, watcher in enumerate(tally.watchers)
    ]
    stop = asyncio.create_task(stdin_closed_or_line())
    ready = asyncio.create_task(tally.wait_ready())
    await asyncio.wait([ready, stop], return_when=asyncio.FIRST_COMPLETED)
    print("READY", flush=True)
    cpu_at_ready = time.process_time()
    done = asyncio.create_task(tally.wait_done())
    await asyncio.wait([done, stop], return_when=asyncio.FIRST_COMPLETED)
    cpu = time.process_time() - cpu_at_ready
    for task in (*watches, done, ready, stop):
        task.cancel()
    await asyncio.gather(*watches, done, ready, stop, return_exceptions=True)
    print(json.dumps(tally.counts(cpu_seconds=cpu).to_json()), flush=True)
    for api in clients:
        await api.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.watch_client")
    parser.add_argument("--server", required=True)
    parser.add_argument("--resource-version", required=True)
    parser.add_argument("--watchers", type=int, required=True)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--expected", type=int, required=True)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
