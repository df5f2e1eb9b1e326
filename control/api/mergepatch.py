"""JSON merge patch (RFC 7386): apply a patch, and compute one between two documents."""

from __future__ import annotations

from typing import Any

_MAX_DEPTH = 100


def apply_merge_patch(target: Any, patch: Any, *, _depth: int = 0) -> Any:
    """Return target with patch applied (neither argument is modified)."""
    if _depth > _MAX_DEPTH:
        raise ValueError(f"merge patch nested deeper than {_MAX_DEPTH} levels")
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value, _depth=_depth + 1)
    return result


def create_merge_patch(original: Any, modified: Any) -> Any:
    """The merge patch that turns original into modified ({} when equal)."""
    if not isinstance(original, dict) or not isinstance(modified, dict):
        return modified
    patch: dict[str, Any] = {}
    for key in original.keys() - modified.keys():
        patch[key] = None
    for key, value in modified.items():
        if key not in original:
            patch[key] = value
        elif original[key] != value:
            if isinstance(value, dict) and isinstance(original[key], dict):
                patch[key] = create_merge_patch(original[key], value)
            else:
                patch[key] = value
    return patch
