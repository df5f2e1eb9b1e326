"""ServiceAccount rules: the secrets and image pull secrets it lists are named."""

from __future__ import annotations

from google.protobuf.message import Message

from control.api.manifest import FieldError
from control.server.validation.field_errors import required


def validate_service_account(account: Message, old: Message | None) -> list[FieldError]:
    errors: list[FieldError] = []
    for index, ref in enumerate(account.secrets):
        if not ref.name:
            errors.append(required(f"secrets[{index}].name"))
    for index, ref in enumerate(account.image_pull_secrets):
        if not ref.name:
            errors.append(required(f"imagePullSecrets[{index}].name"))
    return errors
