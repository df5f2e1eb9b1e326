"""Benchmarks of the control service: ``python -m tests.bench [--quick] [--only NAME]``.

The machine they run on is small and shared, so no absolute figure stands
alone: each benchmark measures a baseline in the same run (the raw store
doing the same work) and reports the ratio, and each figure carries the CPU
every process used while it was taken. The control service always runs as a
subprocess, as in production, so the client driving it never shares its
event loop.

- ``bench_api``: create and get throughput and latency at several
  concurrencies, on SQLite and etcd, against the raw store client.
- ``bench_watch``: delivery latency of one writer's updates to many
  watchers, against raw store watchers.
- ``bench_pods``: pod startup through an agent on containerd, creation to
  Running, against the same containers started straight through the CRI.
- ``bench_agent_footprint``: the agent's memory and CPU with pods running
  and nothing changing, against an idle Python process with its imports.
- ``bench_proxy``: the service proxy's full and one-change syncs (nftables
  in a private network namespace, IPVS on the host and in the test VM),
  against ``nft -f`` of a trivial ruleset and the smaller size; the
  userspace forwarder against a direct connection.

Modules here are named ``bench_*`` (never ``test_*``) and define no test
functions, so pytest does not collect them; ``tests/test_bench_smoke.py``
runs ``--quick`` to check they still work. See docs/benchmarks.md.
"""
