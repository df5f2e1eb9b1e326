"""Validation as a whole (control/server/validation/__init__.py): every kind
has a validator, and the real manifests under tests/api/manifests/ are valid
before and after defaulting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from control.api import kinds
from control.api.manifest import kind_of, load_documents, to_message
from control.server.defaults import apply_defaults
from control.server.validation import VALIDATORS, validate

MANIFESTS = Path(__file__).parent.parent.parent / "api" / "manifests"


def manifest_documents() -> list[Any]:
    return [
        pytest.param(document, id=f"{path.name}[{i}]")
        for path in sorted(MANIFESTS.iterdir())
        for i, document in enumerate(load_documents(path.read_text()))
    ]


def test_every_kind_has_a_validator() -> None:
    assert set(VALIDATORS) == {kind.kind for kind in kinds.all_kinds()}


@pytest.mark.parametrize("document", manifest_documents())
def test_real_manifests_are_valid_before_and_after_defaulting(document: dict[str, Any]) -> None:
    message = to_message(document)
    kind = kind_of(document)
    assert validate(kind, message) == []
    apply_defaults(kind, message)
    assert validate(kind, message) == []
