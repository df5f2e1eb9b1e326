"""Lease rules: a positive duration and a count of transitions that never goes below zero."""

from __future__ import annotations

from google.protobuf.message import Message

from control.api.manifest import FieldError
from control.server.validation.field_errors import at_least, invalid


def validate_lease(lease: Message, old: Message | None) -> list[FieldError]:
    spec = lease.spec
    errors: list[FieldError] = []
    if spec.HasField("lease_duration_seconds") and spec.lease_duration_seconds <= 0:
        errors += invalid("spec.leaseDurationSeconds", spec.lease_duration_seconds, ["must be greater than 0"])
    return errors + at_least("spec.leaseTransitions", spec.lease_transitions, 0)
