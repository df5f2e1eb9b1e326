"""Go's text/tabwriter, which is how kubectl lines up its columns.

Text is cells separated by tabs. A cell that a tab ends belongs to a column;
the text after a line's last tab does not, and is never padded. A column is
aligned only over a block of consecutive lines that all have a cell in it, so
a line without tabs ("Containers:") ends every block, and nested blocks
line up independently (``kubectl describe`` depends on this). A column's
width is its widest cell plus ``padding``, at least ``minwidth``.

kubectl's tables use minwidth 6 and padding 3; describe uses 0 and 2.
"""

from __future__ import annotations


def align(text: str, *, minwidth: int, padding: int) -> str:
    """Lay text out as Go's tabwriter.Writer (space padding, no flags) would."""
    lines = [line.split("\t") for line in text.split("\n")]
    widths: list[int] = []
    out: list[str] = []

    def write_lines(first: int, end: int) -> None:
        for index in range(first, end):
            cells = lines[index]
            for column, cell in enumerate(cells):
                out.append(cell)
                if column < len(widths) and column < len(cells) - 1:
                    out.append(" " * (widths[column] - len(cell)))
            if index + 1 < len(lines):
                out.append("\n")

    def format_block(first: int, end: int) -> None:
        column = len(widths)
        line = first
        while line < end:
            if column >= len(lines[line]) - 1:
                line += 1
                continue
            # A block of lines with a cell in this column starts here.
            write_lines(first, line)
            first = line
            width = minwidth
            while line < end and column < len(lines[line]) - 1:
                width = max(width, len(lines[line][column]) + padding)
                line += 1
            widths.append(width)
            format_block(first, line)
            widths.pop()
            first = line
        write_lines(first, end)

    format_block(0, len(lines))
    return "".join(out)
