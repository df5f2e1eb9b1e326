"""The audit log: one JSON line per request that changes something.

``AuditLog`` is the gate's ``AuditSink`` (control/server/gate.py): when a
request finishes the gate hands it the ``RequestInfo`` (who, which verb, what
object) and the result code. Reads (get, list, watch, logs, top, discovery)
are not recorded; writes are: create, update, patch, delete,
deletecollection, and what creates a subresource (exec is ``create
pods/exec``, an image import ``create nodes/images``). Refused requests are
recorded too, with their code (PERMISSION_DENIED, RESOURCE_EXHAUSTED...);
only a caller that proves no identity is not, as there is no one to name.

Levels, as Kubernetes' audit policy names them: ``none`` writes nothing,
``metadata`` writes who did what to which object and how it ended, and
``request`` adds the request's object as its manifest. A Secret's values
never reach the log, at any level: its ``data`` and ``stringData`` values and
the last-applied annotation (which holds a copy of them) are replaced by
``<redacted>``, keeping the keys so the log still says what changed.

A line looks like::

    {"timestamp": "2025-01-02T03:04:05.678901Z", "level": "Metadata", "auditID": "…",
     "user": "alice", "groups": ["dev", "system:authenticated"], "verb": "create",
     "kind": "Pod", "resource": "pods", "subresource": "", "namespace": "default",
     "name": "web", "code": "OK", "latencyMs": 1.92}

The file is opened for appending and written line by line (one small write
per request, no fsync), so the event loop never waits on more than a buffered
write; a write that fails is logged once and dropped rather than failing the
request.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import time
import uuid
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any, Callable

import grpc

from control.api import manifest

if TYPE_CHECKING:  # the gate calls us; we only read what it hands over
    from control.server.gate import RequestInfo

log = logging.getLogger(__name__)

MUTATING_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
REDACTED = "<redacted>"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


class AuditLevel(enum.Enum):
    NONE = "none"
    METADATA = "metadata"
    REQUEST = "request"

    @classmethod
    def parse(cls, text: str) -> "AuditLevel":
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise ValueError(f"--audit-level: Unsupported value: {text!r}: supported values: "
                             f"{', '.join(repr(level.value) for level in cls)}") from None


class AuditLog:
    """An AuditSink writing JSON lines to a file (see module doc)."""

    def __init__(self, out: IO[str], *, level: AuditLevel = AuditLevel.METADATA,
                 clock: Callable[[], float] = time.time) -> None:
        self._out = out
        self.level = level
        self._clock = clock
        self._failed = False

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, level: AuditLevel = AuditLevel.METADATA) -> "AuditLog":
        """Append to path (created readable by its owner only: it names every user and object)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        # Line buffering: each record reaches the file when its line ends.
        return cls(os.fdopen(fd, "a", buffering=1, encoding="utf-8"), level=level)

    def record(self, info: RequestInfo, code: grpc.StatusCode) -> None:
        if self.level is AuditLevel.NONE or info.verb not in MUTATING_VERBS:
            return
        line = json.dumps(self.entry(info, code), separators=(", ", ": "), ensure_ascii=False)
        try:
            self._out.write(line + "\n")
        except (OSError, ValueError) as err:
            if not self._failed:
                log.error("cannot write the audit log: %s; audit records are dropped until it works again", err)
            self._failed = True
        else:
            self._failed = False

    def entry(self, info: RequestInfo, code: grpc.StatusCode) -> dict[str, Any]:
        kind = info.kind
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(self._clock(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": "Request" if self.level is AuditLevel.REQUEST else "Metadata",
            "auditID": str(uuid.uuid4()),
            "user": info.user.name,
            "groups": list(info.user.groups),
            "verb": info.verb,
            "kind": kind.kind if kind else "",
            "resource": kind.plural if kind else "",
            "subresource": info.subresource,
            "namespace": info.namespace if (kind is None or kind.namespaced) else "",
            "name": info.name,
            "code": code.name,
            "latencyMs": round((time.perf_counter() - info.started) * 1000, 3),
        }
        if self.level is AuditLevel.REQUEST and info.object is not None:
            entry["requestObject"] = redacted(manifest.to_dict(info.object))
        return entry

    def close(self) -> None:
        self._out.close()


def redacted(obj: dict[str, Any]) -> dict[str, Any]:
    """The manifest with a Secret's values replaced by <redacted> (other kinds as they are)."""
    if obj.get("kind") != "Secret":
        return obj
    obj = dict(obj)
    for field in ("data", "stringData"):
        if isinstance(obj.get(field), dict):
            obj[field] = {key: REDACTED for key in obj[field]}
    metadata = obj.get("metadata")
    if isinstance(metadata, dict) and LAST_APPLIED in (metadata.get("annotations") or {}):
        obj["metadata"] = {**metadata, "annotations": {**metadata["annotations"], LAST_APPLIED: REDACTED}}
    return obj
