"""The client's config file: where `sampan` and other clients find the server.

Shaped like a kubeconfig (clusters, users, contexts, current-context): a
cluster has its server and the CA to trust (certificate-authority-data), a
user its client certificate and key (client-certificate-data,
client-key-data) or a token. Looked up at
``$SAMPAN_CONFIG``, else ``~/.sampan/config``. ``sampan up`` writes it, so
``sampan get nodes`` in another shell reaches the cluster at once.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml

CONFIG_ENV = "SAMPAN_CONFIG"


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV) or Path.home() / ".sampan" / "config")


def write_config(server: str, *, path: Path | None = None, name: str = "sampan", user: str = "admin",
                 ca: bytes | None = None, cert: bytes | None = None, key: bytes | None = None,
                 token: str | None = None) -> Path:
    """Write a config whose current context points at server, with these
    credentials (PEM bytes, stored base64 as kubeconfig's *-data fields); returns its path."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    cluster: dict = {"server": server}
    if ca is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
    credentials: dict = {}
    if cert is not None:
        credentials["client-certificate-data"] = base64.b64encode(cert).decode()
    if key is not None:
        credentials["client-key-data"] = base64.b64encode(key).decode()
    if token is not None:
        credentials["token"] = token
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(document, sort_keys=False))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def load_config(path: Path | None = None) -> dict | None:
    """The config document, or None when there is no readable one."""
    path = path or config_path()
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return document if isinstance(document, dict) else None


def _named(document: dict, section: str, field: str) -> dict[str, dict]:
    return {entry.get("name"): entry.get(field) or {} for entry in document.get(section) or []
            if isinstance(entry, dict) and isinstance(entry.get(field) or {}, dict)}


def current_context(document: dict, context: str | None = None) -> tuple[dict, dict]:
    """(cluster, user) entries of the named (default: current) context; empty dicts when missing."""
    context_entry = _named(document, "contexts", "context").get(context or document.get("current-context")) or {}
    cluster = _named(document, "clusters", "cluster").get(context_entry.get("cluster")) or {}
    user = _named(document, "users", "user").get(context_entry.get("user")) or {}
    return cluster, user


def _data(entry: dict, field: str) -> bytes | None:
    """A *-data field's bytes, or the file its path-valued sibling names (certificate-authority...)."""
    value = entry.get(f"{field}-data")
    if isinstance(value, str) and value:
        return base64.b64decode(value)
    file = entry.get(field)
    if isinstance(file, str) and file:
        return Path(file).expanduser().read_bytes()
    return None


def credentials_from_config(server: str, path: Path | None = None):
    """The current context's credentials (control.client.ClientCredentials) when its
    server is server; None otherwise (another cluster's credentials are never sent)."""
    from control.client import ClientCredentials

    document = load_config(path)
    if document is None:
        return None
    cluster, user = current_context(document)
    if cluster.get("server") != server:
        return None
    token = user.get("token")
    return ClientCredentials(ca=_data(cluster, "certificate-authority"), cert=_data(user, "client-certificate"),
                             key=_data(user, "client-key"), token=token if isinstance(token, str) and token else None)


def server_from_config(path: Path | None = None) -> str | None:
    """The current context's server, or None when there is no usable config."""
    document = load_config(path)
    if document is None:
        return None
    server = current_context(document)[0].get("server")
    return server if isinstance(server, str) and server else None


def context_entries(document: dict) -> list[tuple[str, dict]]:
    """(name, context) of every context in the config, in file order."""
    return [(entry["name"], entry.get("context") or {}) for entry in document.get("contexts") or []
            if isinstance(entry, dict) and isinstance(entry.get("name"), str)]


def set_current_context(name: str, path: Path | None = None) -> Path:
    """Make name the current context of the config at path (everything else kept); returns the path.

    KeyError when there is no such context."""
    path = path or config_path()
    document = load_config(path) or {}
    if name not in dict(context_entries(document)):
        raise KeyError(name)
    document["current-context"] = name
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(document, sort_keys=False))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path
