"""``kubectl describe``-style text for every kind.

``describe(obj, events=..., now=...)`` picks the kind's describer from
``DESCRIBERS`` (pods and nodes have their own, like kubectl's; namespaces,
config maps and secrets too; anything else gets the generic one). ``events``
is the object's events, or None to leave the Events section out; ``pods``
are a node's non-terminated pods for its resource summary.

Modules: ``writer`` (indentation and alignment), ``sections`` (labels,
annotations, taints, tolerations, events), ``pod``, ``node``, ``generic``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable, Sequence

from google.protobuf.message import Message

from control.cli.describers.generic import (
    describe_configmap,
    describe_generic,
    describe_namespace,
    describe_secret,
)
from control.cli.describers.node import describe_node
from control.cli.describers.pod import describe_pod
from control.cli.objects import kind_of

Describer = Callable[..., str]

DESCRIBERS: dict[str, Describer] = {
    "Pod": describe_pod,
    "Node": describe_node,
    "Namespace": describe_namespace,
    "ConfigMap": describe_configmap,
    "Secret": describe_secret,
}


def describe(obj: Message, *, events: Sequence[Message] | None, now: datetime,
             pods: Sequence[Message] | None = None) -> str:
    kind = kind_of(obj).kind
    if kind == "Node":
        return describe_node(obj, events=events, now=now, pods=pods)
    return DESCRIBERS.get(kind, describe_generic)(obj, events=events, now=now)
