"""Where an API request's time went, from the control service's own metrics.

The service times every request (``sampan_apiserver_request_duration_seconds``)
and every store call (``sampan_store_operation_duration_seconds``). Scraping
``/metrics`` before and after a benchmark run and subtracting gives, per
request, the mean time in the server's handler and in each kind of store
call; the client's mean latency minus the handler's is the time outside the
server (the client library, the transport, and waiting to be scheduled).

The same histogram's buckets, subtracted the same way, give a verb's
latency percentiles over a stretch of a run (``verb_latency``), read as
Prometheus' ``histogram_quantile`` reads them: linear within the bucket the
rank falls in, so a percentile is only as fine as the buckets around it,
while the share of requests within a bucket's bound is exact. Unlike
Prometheus, a percentile beyond the last finite bound is infinite (and
printed as "over" that bound), not that bound.
"""

from __future__ import annotations

import math
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
        return parse(response.read().decode())


def parse(text: str) -> Scrape:
    """Every sample of a Prometheus text exposition, keyed by name and labels."""
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


@dataclass(frozen=True)
class VerbLatency:
    """One verb's requests over a stretch of a run, all kinds together (seconds)."""

    verb: str
    requests: int
    p99: float  # inf: beyond the last finite bucket bound, `ceiling`
    within: float  # the share of requests that took at most `bound` seconds (exact: a bucket's bound)
    bound: float
    slowest_kind: str  # the kind whose requests of this verb had the highest p99
    slowest_p99: float
    ceiling: float  # the histogram's last finite bucket bound


def verb_latency(before: Scrape, after: Scrape, *, verb: str, bound: float) -> VerbLatency:
    """p99 of verb's requests between two scrapes, from the request-duration
    histogram; ``bound`` must be one of its bucket bounds."""
    by_kind: dict[str, dict[float, float]] = {}
    for (name, labels), value in after.items():
        found = dict(labels)
        if name != _REQUESTS + "_bucket" or found.get("verb") != verb:
            continue
        count = value - before.get((name, labels), 0.0)
        by_kind.setdefault(found["kind"], {})[float(found["le"])] = count
    total: dict[float, float] = {}
    for buckets in by_kind.values():
        for le, count in buckets.items():
            total[le] = total.get(le, 0.0) + count
    requests = int(total.get(math.inf, 0.0))
    if requests == 0:
        return VerbLatency(verb, 0, math.nan, math.nan, bound, "", math.nan, math.nan)
    if bound not in total:
        raise ValueError(f"{bound} s is not a bucket bound of {_REQUESTS}")
    per_kind = {kind: histogram_quantile(0.99, buckets) for kind, buckets in by_kind.items()
                if buckets.get(math.inf, 0.0) > 0}
    slowest = max(per_kind, key=lambda kind: per_kind[kind])
    return VerbLatency(verb, requests, histogram_quantile(0.99, total), total[bound] / requests, bound,
                       slowest, per_kind[slowest], max(le for le in total if not math.isinf(le)))


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """The q-quantile (0..1) of cumulative bucket counts {upper bound: count},
    interpolated linearly within its bucket; inf when it falls beyond the
    highest finite bound; NaN without observations."""
    ordered = sorted(buckets.items())
    observations = ordered[-1][1] if ordered else 0.0
    if observations <= 0:
        return math.nan
    rank = q * observations
    lower, below = 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if math.isinf(le):
                return math.inf
            if count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return math.inf
