"""What Prometheus sees of the cluster, served by the control service.

``state_metrics``: kube-state-metrics-style gauges over the leader's copies
of Pods, Nodes and Deployments. ``scrape_targets``: the HTTP service
discovery answer listing every component's metrics address. ``endpoint``:
the HTTP server that serves both next to the service's own ``/metrics``.
"""
