"""kubectl describe's writer: two spaces per level, tab-separated cells aligned.

kubectl writes describe text through a PrefixWriter (indentation by level)
into a tabwriter with minwidth 0 and padding 2, and flushes it before the
Events table so that table lines up on its own. ``DescriptionWriter`` does
the same over ``control.cli.tabwriter``.
"""

from __future__ import annotations

from control.cli import tabwriter

INDENT = "  "
MIN_WIDTH = 0
PADDING = 2


class DescriptionWriter:
    """Collects describe text; ``text()`` returns it aligned."""

    def __init__(self) -> None:
        self._aligned: list[str] = []
        self._pending: list[str] = []

    def write(self, level: int, text: str) -> None:
        """Append text indented by level (only its first line: kubectl's PrefixWriter)."""
        self._pending.append(INDENT * level + text)

    def line(self, level: int, text: str = "") -> None:
        self.write(level, text + "\n")

    def flush(self) -> None:
        """Align what was written so far on its own, apart from what follows."""
        if self._pending:
            self._aligned.append(tabwriter.align("".join(self._pending), minwidth=MIN_WIDTH, padding=PADDING))
            self._pending = []

    def text(self) -> str:
        self.flush()
        return "".join(self._aligned)
