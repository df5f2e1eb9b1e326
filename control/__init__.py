"""Sampan's control service and everything that talks to it.

Layers, from the contract outwards (enforced by the import-linter contracts in
pyproject.toml):

- ``control.api``: the API contract in Python: the kind registry, manifest
  conversion, quantities, label and field selectors. Shared by every client.
- ``control.client``: the public gRPC client. Agents, proxies and the CLI
  reach the control service only through it.
- ``control.store``: the storage seam (SQLite embedded, etcd).
- ``control.server``: the API service: validation, defaulting, the object
  registry on top of a store, watch fan-out, the gRPC servicer.
- ``control.service``: wires store, server and metrics into ``sampan control``.
- ``control.cli``: the ``sampan`` command line.
"""
