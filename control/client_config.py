"""The client's config file: where `sampan` and other clients find the server.

Shaped like a kubeconfig (clusters, users, contexts, current-context) so that
credentials can join it later without a new format. Looked up at
``$SAMPAN_CONFIG``, else ``~/.sampan/config``. ``sampan up`` writes it, so
``sampan get nodes`` in another shell reaches the cluster at once.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

CONFIG_ENV = "SAMPAN_CONFIG"


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV) or Path.home() / ".sampan" / "config")


def write_config(server: str, *, path: Path | None = None, name: str = "sampan") -> Path:
    """Write a config whose current context points at server; returns its path."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server}}],
        "users": [{"name": "admin", "user": {}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "admin"}}],
        "current-context": name,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(document, sort_keys=False))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def server_from_config(path: Path | None = None) -> str | None:
    """The current context's server, or None when there is no usable config."""
    path = path or config_path()
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(document, dict):
        return None
    current = document.get("current-context")
    contexts = {c.get("name"): c.get("context", {}) for c in document.get("contexts") or [] if isinstance(c, dict)}
    clusters = {c.get("name"): c.get("cluster", {}) for c in document.get("clusters") or [] if isinstance(c, dict)}
    cluster = clusters.get((contexts.get(current) or {}).get("cluster"))
    server = (cluster or {}).get("server")
    return server if isinstance(server, str) and server else None
