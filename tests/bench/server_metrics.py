"""Where an API request's time went, from the control service's own metrics.

The service times every request (``sampan_apiserver_request_duration_seconds``)
and every store call (``sampan_store_operation_duration_seconds``). Scraping
``/metrics`` before and after a benchmark run and subtracting gives, per
request, the mean time in the server's handler and in each kind of store
call; the client's mean latency minus the handler's is the time outside the
server (the client library, the transport, and waiting to be scheduled).
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

_REQUESTS = "sampan_apiserver_request_duration_seconds"
_STORE = "sampan_store_operation_duration_seconds"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an http_proxy

Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Scrape:
    """Every sample of the service's metrics, keyed by name and labels."""
    with _DIRECT.open(url, timeout=10) as response:
        text = response.read().decode()
    samples: Scrape = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@dataclass(frozen=True)
class ServerTimes:
    """Means per API request over one run, in milliseconds."""

    requests: int
    handler_ms: float
    store_ms: dict[str, tuple[float, float]]  # store operation -> (calls per request, ms per call)

    @property
    def store_total_ms(self) -> float:
        return sum(calls * ms for calls, ms in self.store_ms.values())


def server_times(before: Scrape, after: Scrape, *, kind: str, verb: str) -> ServerTimes:
    def delta(name: str, labels: dict[str, str]) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    labels = {"kind": kind, "verb": verb}
    requests = int(delta(_REQUESTS + "_count", labels))
    if requests == 0:
        return ServerTimes(0, float("nan"), {})
    store = {}
    operations = {dict(key[1])["operation"] for key in after if key[0] == _STORE + "_count"}
    for operation in sorted(operations):
        calls = delta(_STORE + "_count", {"operation": operation})
        if calls:
            seconds = delta(_STORE + "_sum", {"operation": operation})
            store[operation] = (calls / requests, seconds / calls * 1000)
    return ServerTimes(requests, delta(_REQUESTS + "_sum", labels) / requests * 1000, store)
