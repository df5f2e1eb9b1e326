"""ConfigMap and Secret rules: keys that can be file names, 1 MiB of data, immutability.

The two kinds hold the same thing, named data for pods to read as
environment variables or mounted files, so they share their key and size
rules. A Secret's type may also require keys (a TLS secret needs a
certificate and a key). Once ``immutable`` is set, the data can never change
again and ``immutable`` cannot be unset: kubelets stop watching such objects.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from google.protobuf.message import Message

from control.api.manifest import FieldError
from control.api.names import config_key_errors, qualified_name_errors
from control.server.validation.field_errors import forbidden, invalid, required

_MAX_DATA_BYTES = 1024 * 1024
_IMMUTABLE_DATA = "field is immutable when `immutable` is set"
_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def _data_errors(path: str, data: Mapping[str, str | bytes]) -> list[FieldError]:
    errors: list[FieldError] = []
    for key in sorted(data):
        errors += invalid(f"{path}[{key}]", key, config_key_errors(key))
    return errors


def _data_size(*maps: Mapping[str, str | bytes]) -> int:
    return sum(len(value.encode() if isinstance(value, str) else value) for data in maps for value in data.values())


def _immutable_data_errors(
    obj: Message, old: Message | None, fields: Sequence[tuple[str, str]]
) -> list[FieldError]:
    if old is None or not old.immutable:
        return []
    errors = [forbidden(json_name, _IMMUTABLE_DATA) for field, json_name in fields
              if getattr(obj, field) != getattr(old, field)]
    if not obj.immutable:
        errors.append(forbidden("immutable", _IMMUTABLE_DATA))
    return errors


def validate_config_map(config_map: Message, old: Message | None) -> list[FieldError]:
    errors = _data_errors("data", config_map.data) + _data_errors("binaryData", config_map.binary_data)
    for key in sorted(set(config_map.data) & set(config_map.binary_data)):
        errors += invalid(f"data[{key}]", key, ["duplicate of key present in binaryData"])
    if _data_size(config_map.data, config_map.binary_data) > _MAX_DATA_BYTES:
        errors.append(FieldError("data", "Too long", f"must have at most {_MAX_DATA_BYTES} bytes"))
    return errors + _immutable_data_errors(config_map, old, (("data", "data"), ("binary_data", "binaryData")))


def validate_secret(secret: Message, old: Message | None) -> list[FieldError]:
    errors = _data_errors("data", secret.data) + _data_errors("stringData", secret.string_data)
    if _data_size(secret.data, secret.string_data) > _MAX_DATA_BYTES:
        errors.append(FieldError("data", "Too long", f"must have at most {_MAX_DATA_BYTES} bytes"))
    keys = set(secret.data) | set(secret.string_data)
    if secret.type:
        errors += invalid("type", secret.type, qualified_name_errors(secret.type))
    for key in _SECRET_REQUIRED_KEYS.get(secret.type, ()):
        if key not in keys:
            errors.append(required(f"data[{key}]"))
    if secret.type == "kubernetes.io/basic-auth" and not keys & {"username", "password"}:
        errors += [required("data[username]"), required("data[password]")]
    if secret.type == "kubernetes.io/service-account-token" and \
            "kubernetes.io/service-account.name" not in secret.metadata.annotations:
        errors.append(required("metadata.annotations[kubernetes.io/service-account.name]"))
    if old is not None and secret.type != old.type:
        errors += invalid("type", secret.type, ["field is immutable"])
    return errors + _immutable_data_errors(secret, old, (("data", "data"),))
