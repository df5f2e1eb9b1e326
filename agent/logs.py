"""A container's log as ``sampan logs`` shows it, read back from its CRI log file.

Every runtime writes a container's output to one file in the CRI log format
(agent.runtime.base), a record per line: ``<RFC3339Nano> <stdout|stderr>
<F|P> <text>``; a line longer than the runtime's limit becomes partial (P)
records ended by a full (F) one. ``read_log`` turns the file back into the
container's lines, as the kubelet's log reader does: it strips the prefix,
joins a stream's partial records into one line (timed by its first record),
keeps the last N lines (``tail_lines``, found by reading the file backwards)
and those written after a moment (``since``), and can prefix each line with
its time. With ``follow`` it goes on reading what is appended until the
container stops running; then it reads what the container wrote last and
ends.

Following polls the file (every ``poll_interval``) and asks the runtime
whether the container still runs (every ``state_interval``): no inotify,
which keeps it portable and costs one small read per poll. A record still
being written (no newline yet) is left for the next read. Malformed records
are skipped, as the kubelet skips them. Logs are not rotated by the agent, so
there is one file per container attempt and no rotation to follow.
"""

from __future__ import annotations

import asyncio
import calendar
import itertools
import os
import re
import time
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, BinaryIO, Callable, Iterator

POLL_INTERVAL = 0.1
STATE_INTERVAL = 1.0
# Bytes read per step; a chunk sent holds the whole lines of one step.
BLOCK_BYTES = 64 * 1024

_TIMESTAMP = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)")


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    # The last N lines only; None for all of them.
    tail_lines: int | None = None
    # Lines written before this Unix time are skipped; None for all.
    since: float | None = None
    timestamps: bool = False


@dataclass(frozen=True)
class LogRecord:
    """One record of a CRI log file."""

    timestamp: bytes
    stream: bytes
    partial: bool
    text: bytes


def parse_record(line: bytes) -> LogRecord | None:
    """A CRI log line (without its newline) as a record; None if malformed."""
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"F", b"P"):
        return None
    return LogRecord(timestamp=parts[0], stream=parts[1], partial=parts[2] == b"P",
                     text=parts[3] if len(parts) == 4 else b"")


def parse_timestamp(text: bytes) -> float | None:
    """An RFC 3339 time with up to nanoseconds (as runtimes write it) as Unix time."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    seconds = calendar.timegm(time.strptime(match[1].decode(), "%Y-%m-%dT%H:%M:%S"))
    fraction = float(b"0" + match[2]) if match[2] else 0.0
    zone = match[3]
    offset = 0 if zone == b"Z" else (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60) * (1 if zone[:1] == b"+" else -1)
    return seconds - offset + fraction


def _lines_backward(log: BinaryIO, end: int) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of every newline-terminated line before end, the last first."""
    position, first_part = end, b""
    while position > 0:
        size = min(BLOCK_BYTES, position)
        position -= size
        log.seek(position)
        data = log.read(size) + first_part
        parts = data.split(b"\n")
        # parts[-1] follows the last newline: empty, or a record still being written.
        starts = list(itertools.accumulate((len(part) + 1 for part in parts[:-1]), initial=position))
        for index in range(len(parts) - 2, 0, -1):
            yield starts[index], parts[index]
        # parts[0] may begin before position: carry it (with its newline) into the next block.
        first_part = parts[0] + b"\n" if len(parts) > 1 else parts[0]
    if first_part.endswith(b"\n"):
        yield 0, first_part[:-1]


def tail_offset(log: BinaryIO, lines: int) -> int:
    """Where the last ``lines`` lines of a CRI log start. A line is a full
    record with the partial records before it."""
    end = log.seek(0, os.SEEK_END)
    if lines <= 0:
        return end
    full_records = 0
    for offset, line in _lines_backward(log, end):
        record = parse_record(line)
        if record is not None and not record.partial:
            full_records += 1
            if full_records > lines:
                return offset + len(line) + 1
    return 0


class _RecordReader:
    """The complete records appended to a log file since the last read."""

    def __init__(self, log: BinaryIO) -> None:
        self._log = log
        self._unfinished = b""

    def read(self) -> list[LogRecord] | None:
        """The next block's complete records; None at the end of the file."""
        data = self._log.read(BLOCK_BYTES)
        if not data:
            return None
        lines = (self._unfinished + data).split(b"\n")
        self._unfinished = lines.pop()
        return [record for record in map(parse_record, lines) if record is not None]


class _LineJoiner:
    """Joins each stream's partial records with the full record that ends them."""

    def __init__(self) -> None:
        self._partial: dict[bytes, list[LogRecord]] = {}

    def add(self, record: LogRecord) -> tuple[bytes, bytes] | None:
        """(timestamp, line with its newline) when record ends a line."""
        if record.partial:
            self._partial.setdefault(record.stream, []).append(record)
            return None
        parts = self._partial.pop(record.stream, [])
        first = parts[0] if parts else record
        return first.timestamp, b"".join(part.text for part in parts) + record.text + b"\n"

    def unfinished(self) -> list[tuple[bytes, bytes]]:
        """The lines whose full record never came (the log ended), without a newline."""
        lines = [(parts[0].timestamp, b"".join(part.text for part in parts)) for parts in self._partial.values()]
        self._partial.clear()
        return lines


def _render(lines: list[tuple[bytes, bytes]], options: LogOptions) -> bytes:
    out = []
    for timestamp, line in lines:
        if options.since is not None:
            when = parse_timestamp(timestamp)
            if when is not None and when < options.since:
                continue
        out.append(timestamp + b" " + line if options.timestamps else line)
    return b"".join(out)


async def read_log(
    path: str,
    options: LogOptions,
    *,
    still_running: Callable[[], Awaitable[bool]],
    poll_interval: float = POLL_INTERVAL,
    state_interval: float = STATE_INTERVAL,
) -> AsyncIterator[bytes]:
    """The container's lines from the CRI log at path, in chunks of whole lines.

    ``still_running`` says whether the container runs (so a followed log
    goes on); it is asked only with ``options.follow``. A missing file is
    an empty log (the container has written nothing yet, or its log is gone).
    """
    running = options.follow
    log = _open(path)
    while log is None and running:
        await asyncio.sleep(poll_interval)
        log = _open(path)
        if log is None:
            running = await still_running()
    if log is None:
        return
    with log:
        if options.tail_lines is not None and options.tail_lines >= 0:
            log.seek(tail_offset(log, options.tail_lines))
        records, joiner = _RecordReader(log), _LineJoiner()
        last_check = float("-inf")  # the first end of file asks at once
        while True:
            records_read = records.read()
            if records_read is not None:
                chunk = _render([line for line in map(joiner.add, records_read) if line is not None], options)
                if chunk:
                    yield chunk
                continue
            if not running:
                break
            if time.monotonic() - last_check >= state_interval:
                running = await still_running()
                last_check = time.monotonic()
                if not running:
                    continue  # one more pass reads what it wrote last
            await asyncio.sleep(poll_interval)
        chunk = _render(joiner.unfinished(), options)
        if chunk:
            yield chunk


def _open(path: str) -> BinaryIO | None:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None
