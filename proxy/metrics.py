"""The proxy's Prometheus metrics, named after kube-proxy's.

- ``sampan_proxy_sync_proxy_rules_duration_seconds``: how long each sync
  took (computing the state and the mode applying it);
- ``sampan_proxy_network_programming_duration_seconds``: from an endpoint
  change to the sync that applied it. The change's time is the
  EndpointSlice's ``endpoints.kubernetes.io/last-change-trigger-time``
  annotation when the endpoints controller sets it (then the latency covers
  the controller too), else the moment this proxy saw the change;
- ``sampan_proxy_services`` / ``sampan_proxy_endpoints``: the virtual
  services (Service ports) and backends programmed by the last good sync;
- ``sampan_proxy_sync_proxy_rules_errors_total``: syncs that failed;
- ``sampan_proxy_sync_proxy_rules_last_timestamp_seconds``: when the last
  sync succeeded;
- ``sampan_proxy_mode``: 1 for the mode in use (label ``mode``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

SYNC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
PROGRAMMING_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


class ProxyMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sync_duration = Histogram(
            "sampan_proxy_sync_proxy_rules_duration_seconds", "Duration of one sync of the proxy's rules.",
            buckets=SYNC_BUCKETS, registry=self.registry)
        self.network_programming = Histogram(
            "sampan_proxy_network_programming_duration_seconds",
            "Time from an endpoint change to the proxy rules that apply it.",
            buckets=PROGRAMMING_BUCKETS, registry=self.registry)
        self.services = Gauge("sampan_proxy_services", "Virtual services (Service ports) programmed.",
                              registry=self.registry)
        self.endpoints = Gauge("sampan_proxy_endpoints", "Backends programmed, over all virtual services.",
                               registry=self.registry)
        self.sync_errors = Counter("sampan_proxy_sync_proxy_rules_errors", "Syncs of the proxy's rules that failed.",
                                   registry=self.registry)
        self.last_sync = Gauge("sampan_proxy_sync_proxy_rules_last_timestamp_seconds",
                               "When the proxy's rules were last synced successfully (Unix time).",
                               registry=self.registry)
        self.mode = Gauge("sampan_proxy_mode", "The proxy mode in use (1).", ["mode"], registry=self.registry)
