"""The encryption configuration: which kinds are encrypted at rest, with which keys.

The file is Kubernetes' EncryptionConfiguration (``--encryption-provider-config``),
YAML or JSON, limited to the providers Sampan implements::

    apiVersion: apiserver.config.k8s.io/v1
    kind: EncryptionConfiguration
    resources:
      - resources: [secrets]
        providers:
          - aesgcm:
              keys:
                - name: key-2          # the first key encrypts
                  secret: <base64 of 32 random bytes>
                - name: key-1          # older keys still decrypt
                  secret: <base64>
          - identity: {}               # reads values stored before encryption

The first provider writes, every provider reads (control/store/encryption.py
does the work). Rotation: put a new key first, restart every control replica
with the file, run ``sampan secrets reencrypt``, then drop the old key.

``sampan control`` on the embedded SQLite store creates this file with a
fresh key next to the database when none is given (k3s' ``--secrets-encryption``,
on by default here): Secrets are never stored in plain text unless asked.
Several replicas on etcd must share one file, so there it is never invented:
without one, Secrets are stored unencrypted and the service says so at start.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

import yaml

from control.api import kinds
from control.store.encryption import AESGCMKey, AESGCMProvider, IdentityProvider, Transformer

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"
FILE_NAME = "encryption-config.yaml"
SUPPORTED_PROVIDERS = ("aesgcm", "identity")

log = logging.getLogger(__name__)


class EncryptionConfigError(ValueError):
    """The file is unreadable or breaks a rule; the message names the field."""


def load_encryption_config(path: str | os.PathLike[str]) -> dict[str, Transformer]:
    """The file's transformers by storage prefix (``/registry/secrets/``)."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise EncryptionConfigError(f"--encryption-provider-config: cannot read {path}: {err.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise EncryptionConfigError(f"{path}: not YAML or JSON: {err}") from None
    return parse_encryption_config(document, source=str(path))


def parse_encryption_config(document: Any, *, source: str = "encryption config") -> dict[str, Transformer]:
    def fail(field: str, rule: str) -> EncryptionConfigError:
        return EncryptionConfigError(f"{source}: {field}: {rule}")

    if not isinstance(document, dict):
        raise fail("(root)", "must be an EncryptionConfiguration object")
    if document.get("kind") != KIND:
        raise fail("kind", f"Unsupported value: {document.get('kind')!r}: supported values: {KIND!r}")
    if document.get("apiVersion") != API_VERSION:
        raise fail("apiVersion", f"Unsupported value: {document.get('apiVersion')!r}: supported values: "
                                 f"{API_VERSION!r}")
    entries = document.get("resources")
    if not isinstance(entries, list) or not entries:
        raise fail("resources", "Required value: a list of resources and their providers")
    plurals = {kind.plural for kind in kinds.all_kinds()}
    transformers: dict[str, Transformer] = {}
    for i, entry in enumerate(entries):
        where = f"resources[{i}]"
        if not isinstance(entry, dict):
            raise fail(where, "must be an object with resources and providers")
        names = entry.get("resources")
        if not isinstance(names, list) or not names:
            raise fail(f"{where}.resources", "Required value: the resources to encrypt, e.g. [secrets]")
        transformer = Transformer(_providers(entry.get("providers"), f"{where}.providers", fail))
        for j, name in enumerate(names):
            # "secrets" and "secrets." (Kubernetes' group-qualified form of the core group) are one thing.
            plural = str(name).removesuffix(".")
            if plural not in plurals:
                raise fail(f"{where}.resources[{j}]", f"Unsupported value: {name!r}: not a resource this "
                                                      f"server stores (e.g. secrets, configmaps)")
            prefix = f"/registry/{plural}/"
            if prefix in transformers:
                raise fail(f"{where}.resources[{j}]", f"Duplicate value: {name!r}")
            transformers[prefix] = transformer
    return transformers


def _providers(raw: Any, where: str, fail) -> list:
    if not isinstance(raw, list) or not raw:
        raise fail(where, "Required value: at least one provider (aesgcm or identity)")
    providers: list = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise fail(at, "must name exactly one provider: aesgcm or identity")
        (name, body), = item.items()
        if name == "identity":
            providers.append(IdentityProvider())
        elif name == "aesgcm":
            providers.append(AESGCMProvider(_keys(body, f"{at}.aesgcm.keys", fail)))
        else:
            raise fail(at, f"Unsupported value: {name!r}: supported values: "
                           f"{', '.join(repr(p) for p in SUPPORTED_PROVIDERS)}")
    return providers


def _keys(body: Any, where: str, fail) -> list[AESGCMKey]:
    raw = body.get("keys") if isinstance(body, dict) else None
    if not isinstance(raw, list) or not raw:
        raise fail(where, "Required value: at least one key")
    keys: list[AESGCMKey] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise fail(at, "must be an object with name and secret")
        name = item.get("name")
        if not isinstance(name, str) or not name or ":" in name:
            raise fail(f"{at}.name", "Required value: a non-empty name without ':'")
        if name in seen:
            raise fail(f"{at}.name", f"Duplicate value: {name!r}")
        seen.add(name)
        try:
            secret = base64.b64decode(str(item.get("secret") or ""), validate=True)
        except (binascii.Error, ValueError):
            secret = b""
        if len(secret) not in (16, 24, 32):
            raise fail(f"{at}.secret", "Invalid value: must be the base64 encoding of a 16, 24 or 32 byte key "
                                       "(e.g. head -c 32 /dev/urandom | base64)")
        keys.append(AESGCMKey(name, secret))
    return keys


def new_key_config(*, key_name: str | None = None) -> dict[str, Any]:
    """An EncryptionConfiguration for Secrets with one fresh 32-byte AES-GCM key
    and the identity provider (for Secrets stored before)."""
    name = key_name or time.strftime("key-%Y%m%dT%H%M%SZ", time.gmtime())
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "resources": [{
            "resources": ["secrets"],
            "providers": [
                {"aesgcm": {"keys": [{"name": name, "secret": base64.b64encode(secrets.token_bytes(32)).decode()}]}},
                {"identity": {}},
            ],
        }],
    }


def write_new_config(path: str | os.PathLike[str]) -> None:
    """Write new_key_config() to path, readable by its owner only; never over an existing file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# Keys that encrypt Secrets at rest. Back this file up with the store: without it\n" \
           "# the Secrets cannot be read. The first aesgcm key encrypts, every key decrypts.\n"
    text += yaml.safe_dump(new_key_config(), sort_keys=False)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def default_config_path(store_url: str) -> Path | None:
    """Where ``sampan control`` keeps its own file: next to an SQLite database; None for etcd."""
    scheme, _, rest = store_url.partition("://")
    if scheme != "sqlite" or not rest:
        return None
    if rest.startswith("/"):
        rest = "/" + rest.lstrip("/")  # sqlite:////abs/path names /abs/path too
    return Path(rest).parent / FILE_NAME


def config_for_service(*, given: str | None, enabled: bool, store_url: str) -> str:
    """The file ``sampan control`` uses ("" for none), from --encryption-provider-config and
    --secrets-encryption: the given file, which must exist; else on SQLite the default one,
    created with a fresh key on first start; else (etcd, or encryption turned off) none, said aloud."""
    if given:
        if not Path(given).is_file():
            raise EncryptionConfigError(f"--encryption-provider-config: {given}: no such file")
        return given
    path = default_config_path(store_url) if enabled else None
    if path is None:
        reason = "--secrets-encryption=false" if not enabled else \
            "on etcd every control replica needs the same keys: give them one --encryption-provider-config"
        log.warning("Secrets are stored UNENCRYPTED (%s)", reason)
        return ""
    if not path.exists():
        write_new_config(path)
        log.info("created %s with a fresh AES-GCM key for Secrets; back it up with the database", path)
    return str(path)


def describe(transformers: dict[str, Transformer]) -> str:
    """One line for the service's log: what is encrypted, and with which key."""
    parts = []
    for prefix, transformer in sorted(transformers.items()):
        resource = prefix.strip("/").split("/")[-1]
        writer = transformer.writer
        how = f"aesgcm key {writer.write_key!r}" if isinstance(writer, AESGCMProvider) else "identity (plain text)"
        parts.append(f"{resource}: {how}")
    return ", ".join(parts)
