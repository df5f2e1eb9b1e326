"""The CRI log reader (agent/logs.py) on log files written by hand.

Covered: partial records are joined into one line, per stream, timed by
their first record; malformed records are skipped; tail counts lines, not
partial records, also across read blocks; since compares the records' own
times, whatever their zone; a line whose full record never came ends the
log without a newline; following waits for a missing file while the
container runs and gives up once it stops.
"""

from __future__ import annotations

from pathlib import Path

from agent import logs
from agent.logs import LogOptions, parse_timestamp, read_log, tail_offset

T1 = b"2024-05-01T12:00:01.000000001Z"
T2 = b"2024-05-01T12:00:02.5Z"
T3 = b"2024-05-01T14:00:03+02:00"  # 12:00:03 UTC


async def read(path: Path, **options) -> bytes:
    async def never_runs() -> bool:
        return False

    return b"".join([chunk async for chunk in read_log(str(path), LogOptions(**options), still_running=never_runs)])


def write(tmp_path: Path, *records: bytes) -> Path:
    path = tmp_path / "0.log"
    path.write_bytes(b"".join(record + b"\n" for record in records))
    return path


async def test_partial_records_are_joined_per_stream_and_timed_by_their_first(tmp_path):
    path = write(tmp_path, T1 + b" stdout P hel", T1 + b" stderr F oops", T2 + b" stdout P lo ", T3 + b" stdout F world")
    assert await read(path) == b"oops\nhello world\n"
    assert await read(path, timestamps=True) == T1 + b" oops\n" + T1 + b" hello world\n"


async def test_malformed_records_are_skipped(tmp_path):
    path = write(tmp_path, b"garbage", T1 + b" stdout X nope", T1 + b" stdout F kept", T1 + b" stdout F")
    assert await read(path) == b"kept\n\n"


async def test_tail_counts_lines_not_partial_records(tmp_path):
    path = write(tmp_path, T1 + b" stdout F a", T1 + b" stdout P b1", T1 + b" stdout P b2", T1 + b" stdout F b3",
                 T1 + b" stdout F c")
    assert await read(path, tail_lines=2) == b"b1b2b3\nc\n"
    assert await read(path, tail_lines=3) == b"a\nb1b2b3\nc\n"


def test_tail_offset_finds_lines_across_read_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "BLOCK_BYTES", 7)
    path = write(tmp_path, *(T1 + b" stdout F line%d" % i for i in range(20)))
    with open(path, "rb") as log:
        offset = tail_offset(log, 3)
    assert path.read_bytes()[offset:].count(b"\n") == 3
    assert path.read_bytes()[offset:].startswith(T1 + b" stdout F line17")


async def test_since_compares_the_records_own_times(tmp_path):
    path = write(tmp_path, T1 + b" stdout F one", T2 + b" stdout F two", T3 + b" stdout F three")
    assert await read(path, since=parse_timestamp(T2)) == b"two\nthree\n"
    assert parse_timestamp(T3) == parse_timestamp(b"2024-05-01T12:00:03Z")


async def test_a_line_left_unfinished_ends_the_log_without_a_newline(tmp_path):
    path = write(tmp_path, T1 + b" stdout F done", T1 + b" stdout P cut sh")
    assert await read(path) == b"done\ncut sh"


async def test_following_a_missing_log_ends_once_the_container_stops(tmp_path):
    answers = iter([True, True, False])

    async def still_running() -> bool:
        return next(answers)

    chunks = [chunk async for chunk in read_log(str(tmp_path / "none.log"), LogOptions(follow=True),
                                                still_running=still_running, poll_interval=0.01)]
    assert chunks == []
