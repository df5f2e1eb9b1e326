"""Event rules: an event names the object it is about, in its own namespace."""

from __future__ import annotations

from google.protobuf.message import Message

from control.api.manifest import FieldError
from control.server.validation.field_errors import at_least, invalid, one_of, required


def validate_event(event: Message, old: Message | None) -> list[FieldError]:
    involved = event.involved_object
    errors = [required(f"involvedObject.{name}") for name in ("kind", "name") if not getattr(involved, name)]
    if involved.namespace and event.metadata.namespace and involved.namespace != event.metadata.namespace:
        errors += invalid("involvedObject.namespace", involved.namespace, ["does not match event.namespace"])
    if event.HasField("type"):
        errors += one_of("type", event.type, ("Normal", "Warning"))
    errors += at_least("count", event.count, 0)
    return errors
