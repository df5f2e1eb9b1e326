"""apply's three-way merge: what to send so the live object matches a manifest.

Like kubectl's CreateThreeWayJSONMergePatch, from three documents:

- original: the manifest applied last time, kept on the object in the
  ``kubectl.kubernetes.io/last-applied-configuration`` annotation;
- modified: the manifest being applied now (with that annotation updated);
- current: the live object.

The patch sets every field of ``modified`` that differs from ``current``
(fields only the server or other writers set are left alone) and sets to null
every field that ``original`` had and ``modified`` dropped (so removing a
label from the manifest removes it from the object). An unchanged manifest
gives ``{}``. Lists are replaced whole, as JSON merge patch does.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from control.api.mergepatch import apply_merge_patch, create_merge_patch

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def three_way_merge_patch(*, original: dict[str, Any] | None, modified: dict[str, Any],
                          current: dict[str, Any]) -> dict[str, Any]:
    additions = _keep_or_drop_nulls(create_merge_patch(current, modified), keep_nulls=False)
    deletions = {}
    if original is not None:
        deletions = _keep_or_drop_nulls(create_merge_patch(original, modified), keep_nulls=True)
    return apply_merge_patch(deletions, additions)


def _keep_or_drop_nulls(patch: dict[str, Any], *, keep_nulls: bool) -> dict[str, Any]:
    """Only the deletions (nulls) of a patch, or only its additions and changes."""
    kept: dict[str, Any] = {}
    for key, value in patch.items():
        if value is None:
            if keep_nulls:
                kept[key] = None
        elif isinstance(value, dict):
            if not value:
                # An explicit empty map is a value, not an empty patch.
                if not keep_nulls:
                    kept[key] = value
                continue
            nested = _keep_or_drop_nulls(value, keep_nulls=keep_nulls)
            if nested:
                kept[key] = nested
        elif not keep_nulls:
            kept[key] = value
    return kept


def last_applied_value(obj: dict[str, Any]) -> str:
    """The annotation's value for a manifest: the manifest itself as compact JSON.

    Like kubectl: keys sorted, no spaces, a trailing newline, and without the
    annotation itself.
    """
    return json.dumps(without_last_applied(obj), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False) + "\n"


def without_last_applied(obj: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(obj)
    annotations = (stripped.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict) and LAST_APPLIED in annotations:
        del annotations[LAST_APPLIED]
        if not annotations:
            del stripped["metadata"]["annotations"]
    return stripped


def with_last_applied(obj: dict[str, Any], value: str) -> dict[str, Any]:
    """A copy of obj carrying the annotation."""
    annotated = copy.deepcopy(obj)
    metadata = annotated.setdefault("metadata", {})
    annotations = metadata.get("annotations") or {}
    metadata["annotations"] = {**annotations, LAST_APPLIED: value}
    return annotated


def parse_last_applied(value: str) -> dict[str, Any] | None:
    """The manifest kept in the annotation; None when there is none or it is unreadable."""
    if not value:
        return None
    try:
        loaded = json.loads(value)
    except ValueError:
        return None
    return loaded if isinstance(loaded, dict) else None
