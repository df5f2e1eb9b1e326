"""Write a volume's files so a reader never sees a half-updated set (kubelet's AtomicWriter).

Layout of a target directory (a configMap, secret, downwardAPI or projected
volume):

    ..2024_05_01_12_00_00.123456789/   the current payload, written whole
    ..data -> ..2024_05_01_12_00_00.123456789
    key -> ..data/key                 one link per top-level payload entry

An update writes a new timestamped directory, then swaps ``..data`` with one
``rename`` of a fresh symlink (atomic on POSIX), then fixes the user-visible
links and removes the old directory. A payload equal to what is there already
changes nothing, so re-syncing a pod costs only a comparison.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Mapping

DATA_DIR = "..data"
_DATA_TMP = "..data_tmp"


@dataclass(frozen=True)
class FileProjection:
    data: bytes
    mode: int = 0o644


class PayloadError(ValueError):
    """A payload path that is absolute, climbs out with '..', or starts with '..'."""


def _validate(path: str) -> None:
    parts = path.split("/")
    if not path or path.startswith("/") or ".." in parts or path.startswith("..") or "" in parts:
        raise PayloadError(f"invalid payload path {path!r}")


def _current(target: str) -> dict[str, FileProjection] | None:
    """What ``..data`` holds now (None when there is no payload yet)."""
    data_dir = os.path.join(target, DATA_DIR)
    if not os.path.isdir(data_dir):
        return None
    found: dict[str, FileProjection] = {}
    for root, _dirs, files in os.walk(data_dir):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, data_dir)] = FileProjection(
                    handle.read(), os.stat(path).st_mode & 0o7777)
    return found


class AtomicWriter:
    """Publishes payloads into one target directory."""

    def __init__(self, target: str) -> None:
        self.target = target

    def write(self, payload: Mapping[str, FileProjection]) -> bool:
        """Make the directory show exactly ``payload``. Returns whether anything changed."""
        for path in payload:
            _validate(path)
        os.makedirs(self.target, mode=0o755, exist_ok=True)
        data_link = os.path.join(self.target, DATA_DIR)
        old_dir = os.readlink(data_link) if os.path.islink(data_link) else None
        current = _current(self.target)
        changed = current != dict(payload)
        if changed:
            stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
            new_dir = tempfile.mkdtemp(prefix=stamp, dir=self.target)
            os.chmod(new_dir, 0o755)
            for path, projection in payload.items():
                full = os.path.join(new_dir, path)
                os.makedirs(os.path.dirname(full), mode=0o755, exist_ok=True)
                with open(full, "wb") as handle:
                    handle.write(projection.data)
                os.chmod(full, projection.mode)
            tmp_link = os.path.join(self.target, _DATA_TMP)
            if os.path.lexists(tmp_link):
                os.unlink(tmp_link)
            os.symlink(os.path.basename(new_dir), tmp_link)
            os.rename(tmp_link, data_link)
        self._publish_links(payload)
        if changed and old_dir:
            shutil.rmtree(os.path.join(self.target, old_dir), ignore_errors=True)
        return changed

    def _publish_links(self, payload: Mapping[str, FileProjection]) -> None:
        wanted = {path.split("/", 1)[0] for path in payload}
        for entry in os.listdir(self.target):
            if entry.startswith(".."):
                continue
            full = os.path.join(self.target, entry)
            if entry not in wanted and os.path.islink(full):
                os.unlink(full)
        for name in wanted:
            link = os.path.join(self.target, name)
            if not os.path.lexists(link):
                os.symlink(os.path.join(DATA_DIR, name), link)
