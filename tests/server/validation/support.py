"""What the validation tests share: Kubernetes' format messages, ``errors_of``
to validate a manifest (as an update of another, or defaulted first) and
read the messages, and pod builders to change one field at a time."""

from __future__ import annotations

from typing import Any

from control.api.manifest import from_dict, kind_of
from control.server.defaults import apply_defaults
from control.server.validation import validate

SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
QUALIFIED_NAME_PART_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def errors_of(obj: dict[str, Any], *, old: dict[str, Any] | None = None, defaulted: bool = False) -> list[str]:
    """The messages of every rule obj breaks (as an update of old, if given; after defaulting both, if asked)."""
    kind = kind_of(obj)
    message = from_dict(kind, obj)
    previous = None if old is None else from_dict(kind, old)
    if defaulted:
        apply_defaults(kind, message)
        if previous is not None:
            apply_defaults(kind, previous)
    return [str(error) for error in validate(kind, message, old=previous)]


def a_container(**fields: Any) -> dict[str, Any]:
    return {"name": "web", "image": "nginx:1.25", **fields}


def a_pod(*, containers: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"containers": [a_container()] if containers is None else containers, **spec},
    }


def container_errors(**fields: Any) -> list[str]:
    return errors_of(a_pod(containers=[a_container(**fields)]))


def with_metadata(obj: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {**obj, "metadata": {**obj["metadata"], **metadata}}
