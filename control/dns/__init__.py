"""Cluster DNS: names for Services and their pods, served by the control plane.

- ``zone``: what the cluster domain holds, answered from the shared Service
  and EndpointSlice caches (pure lookups, no I/O).
- ``upstream``: the host's resolvers, for every name outside the cluster domain.
- ``server``: the DNS server itself, UDP and TCP on one address.
- ``registration``: the ``kube-system/kube-dns`` Service, and its Endpoints
  and EndpointSlice naming this server, so the proxies send the well-known
  cluster IP's port 53 here.
- ``cluster_dns``: its configuration and ``run_cluster_dns``, which the
  leading control replica runs next to the controllers.

Wire format is dnspython's: nothing here encodes or decodes packets by hand.
"""
