"""Namespace rules: beyond its name (a DNS label, see meta.py), only its finalizers."""

from __future__ import annotations

from google.protobuf.message import Message

from control.api.manifest import FieldError
from control.server.validation.meta import finalizer_errors


def validate_namespace(namespace: Message, old: Message | None) -> list[FieldError]:
    return finalizer_errors("spec.finalizers", namespace.spec.finalizers)
