"""Ages as kubectl prints them: HumanDuration's units and cut-offs, and
timestamps that are unset, skewed or unreadable."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from control.cli.durations import age, human_duration, parse_timestamp, rfc1123z

MINUTE, HOUR, DAY, YEAR = 60, 3600, 86400, 365 * 86400


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"),
    (0.9, "0s"),
    (59, "59s"),
    (119, "119s"),
    (120, "2m"),
    (200, "3m20s"),
    (9 * MINUTE + 59, "9m59s"),
    (10 * MINUTE, "10m"),
    (10 * MINUTE + 30, "10m"),
    (179 * MINUTE, "179m"),
    (3 * HOUR, "3h"),
    (5 * HOUR + 30 * MINUTE, "5h30m"),
    (7 * HOUR + 59 * MINUTE, "7h59m"),
    (8 * HOUR + 30 * MINUTE, "8h"),
    (47 * HOUR, "47h"),
    (2 * DAY, "2d"),
    (3 * DAY + 4 * HOUR, "3d4h"),
    (7 * DAY + 23 * HOUR, "7d23h"),
    (8 * DAY + 5 * HOUR, "8d"),
    (729 * DAY, "729d"),
    (2 * YEAR, "2y"),
    (2 * YEAR + 30 * DAY, "2y30d"),
    (7 * YEAR + 364 * DAY, "7y364d"),
    (8 * YEAR + 100 * DAY, "8y"),
])
def test_human_duration_matches_kubectl(seconds, text):
    assert human_duration(seconds) == text


def test_up_to_two_seconds_in_the_future_reads_zero():
    assert human_duration(-1.5) == "0s"
    assert human_duration(-1) == "0s"


def test_further_in_the_future_is_invalid():
    assert human_duration(-2) == "<invalid>"


def test_age_of_an_unset_timestamp_is_unknown():
    assert age("", at=datetime.now(timezone.utc)) == "<unknown>"


def test_age_of_an_unreadable_timestamp_is_unknown():
    assert age("yesterday", at=datetime.now(timezone.utc)) == "<unknown>"


def test_age_counts_from_the_timestamp_to_the_moment():
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert age("2024-05-01T11:56:40Z", at=now) == "3m20s"


def test_timestamps_with_nanoseconds_and_offsets_parse():
    parsed = parse_timestamp("2024-05-01T12:00:00.123456789+02:00")
    assert parsed == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=timezone.utc)


def test_rfc1123z_prints_go_layout_in_local_time():
    text = rfc1123z("2024-05-01T12:00:00Z")
    local = datetime(2024, 5, 1, 12, tzinfo=timezone.utc).astimezone()
    assert text == local.strftime("%a, %d %b %Y %H:%M:%S %z")
    assert parse_timestamp("2024-05-01T12:00:00Z") - local == timedelta(0)
