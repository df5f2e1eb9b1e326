"""What the CLI needs to know about any API object, whatever its kind.

Objects are the typed messages of protos/api/v1; every kind has ``metadata``
(field 3), so name, namespace and labels read the same way for all of them.
Names for people follow kubectl: ``pod/web`` (``-o name``, apply's output),
``pod "web"`` (delete's output), with the API group added for kinds outside
the core group (``lease.coordination.k8s.io/node-1``).
"""

from __future__ import annotations

from google.protobuf.message import Message

from control.api import kinds


def kind_of(obj: Message) -> kinds.Kind:
    return kinds.by_type_url(kinds.TYPE_URL_PREFIX + obj.DESCRIPTOR.full_name)


def resource_type(kind: kinds.Kind) -> str:
    """kubectl's singular resource name, qualified by group outside core: pod, lease.coordination.k8s.io."""
    group = kind.group
    return f"{kind.singular}.{group}" if group else kind.singular


def resource_ref(kind: kinds.Kind, name: str) -> str:
    """``pod/web``: how ``-o name`` and apply name an object."""
    return f"{resource_type(kind)}/{name}"


def quoted_ref(kind: kinds.Kind, name: str) -> str:
    """``pod "web"``: how delete names an object."""
    return f'{resource_type(kind)} "{name}"'


def with_type_meta(obj: Message) -> Message:
    """The object with apiVersion and kind set (a copy when they were missing)."""
    kind = kind_of(obj)
    if obj.api_version == kind.api_version and obj.kind == kind.kind:  # type: ignore[attr-defined]
        return obj
    copy = type(obj)()
    copy.CopyFrom(obj)
    copy.api_version = kind.api_version  # type: ignore[attr-defined]
    copy.kind = kind.kind  # type: ignore[attr-defined]
    return copy
