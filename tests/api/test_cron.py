"""Cron schedules (control/api/cron.py): the five-field syntax, the macros,
the errors that name the broken part, and the next time a schedule fires,
on a time zone's wall clock across daylight saving changes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from control.api.cron import ScheduleError, load_time_zone, parse_schedule, schedule_field_errors

UTC = timezone.utc
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def firings(schedule: str, after: datetime, count: int, tz=UTC) -> list[str]:
    """The next count times the schedule fires after a moment, as ISO 8601 with their UTC offset."""
    parsed = parse_schedule(schedule)
    found = []
    for _ in range(count):
        after = parsed.next_after(after, tz)
        found.append(after.isoformat())
    return found


# ---------------------------------------------------------------- the fields


def test_stars_lists_ranges_and_steps():
    schedule = parse_schedule("*/15 9-17 1,15 * *")
    assert schedule.minutes == (0, 15, 30, 45)
    assert schedule.hours == tuple(range(9, 18))
    assert schedule.days_of_month == {1, 15}
    assert schedule.months == set(range(1, 13))


def test_a_range_with_a_step_and_a_start_with_a_step():
    assert parse_schedule("1-30/5 * * * *").minutes == (1, 6, 11, 16, 21, 26)
    # "N/STEP" runs from N to the end of the field.
    assert parse_schedule("50/4 * * * *").minutes == (50, 54, 58)


def test_month_and_weekday_names_in_any_case():
    schedule = parse_schedule("0 0 * jan-Mar,DEC mon-fri")
    assert schedule.months == {1, 2, 3, 12}
    assert schedule.days_of_week == {1, 2, 3, 4, 5}


def test_day_of_week_seven_is_sunday():
    assert parse_schedule("0 0 * * 7").days_of_week == {0}
    assert parse_schedule("0 0 * * 5-7").days_of_week == {5, 6, 0}


@pytest.mark.parametrize("macro, fields", [
    ("@yearly", "0 0 1 1 *"), ("@annually", "0 0 1 1 *"), ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"), ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"), ("@hourly", "0 * * * *"),
])
def test_macros_mean_their_five_fields(macro, fields):
    after = utc(2024, 2, 27, 13, 17)
    assert firings(macro, after, 3) == firings(fields, after, 3)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("schedule, message", [
    ("61 * * * *", "minute 61 out of range 0-59"),
    ("* 24 * * *", "hour 24 out of range 0-23"),
    ("0 0 0 * *", "day of month 0 out of range 1-31"),
    ("0 0 * 13 *", "month 13 out of range 1-12"),
    ("0 0 * * 8", "day of week 8 out of range 0-7"),
    ("* * * *", "expected exactly 5 fields (minute hour day-of-month month day-of-week), found 4"),
    ("0 0 * * * *", "expected exactly 5 fields (minute hour day-of-month month day-of-week), found 6"),
    ("30-10 * * * *", "minute: beginning of range (30) beyond end of range (10) in '30-10'"),
    ("*/0 * * * *", "minute: step '0' in '*/0' must be a positive number"),
    ("*/x * * * *", "minute: step 'x' in '*/x' must be a positive number"),
    ("0 0 * FOO *", "month: 'FOO' is not a number or a name (JAN-DEC)"),
    ("0 0 * * SUNDAY", "day of week: 'SUNDAY' is not a number or a name (SUN-SAT)"),
    ("a * * * *", "minute: 'a' is not a number"),
    ("1,,2 * * * *", "minute: empty item in '1,,2'"),
    ("? * * * *", "minute: '?' is not a number"),
    ("@every 5m", "unknown macro '@every 5m': use five fields or one of "
                  "@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly"),
    ("TZ=Europe/Paris 0 9 * * *", "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
    ("CRON_TZ=UTC 0 9 * * *", "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
])
def test_a_broken_schedule_is_refused_naming_the_broken_part(schedule, message):
    with pytest.raises(ScheduleError) as raised:
        parse_schedule(schedule)
    assert str(raised.value) == message


@pytest.mark.parametrize("name, message", [
    ("Mars/Olympus_Mons", "unknown time zone Mars/Olympus_Mons"),
    ("../../etc/passwd", "unknown time zone ../../etc/passwd"),
    ("Local", "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"),
])
def test_an_unknown_time_zone_is_refused(name, message):
    with pytest.raises(ScheduleError) as raised:
        load_time_zone(name)
    assert str(raised.value) == message


def test_a_known_time_zone_loads():
    assert load_time_zone("Europe/Paris").utcoffset(datetime(2024, 7, 1)) == timedelta(hours=2)


def test_next_after_needs_a_time_with_a_zone():
    with pytest.raises(ValueError):
        parse_schedule("* * * * *").next_after(datetime(2024, 1, 1))


# ---------------------------------------------------------------- next times


def test_the_next_time_is_strictly_after_and_on_a_whole_minute():
    assert firings("*/15 * * * *", utc(2024, 5, 1, 12, 0), 2) == [
        "2024-05-01T12:15:00+00:00", "2024-05-01T12:30:00+00:00"]
    assert firings("*/15 * * * *", utc(2024, 5, 1, 12, 14, 59, 999999), 1) == ["2024-05-01T12:15:00+00:00"]


def test_the_next_time_rolls_over_hours_days_months_and_years():
    assert firings("30 23 31 12 *", utc(2024, 5, 1), 2) == [
        "2024-12-31T23:30:00+00:00", "2025-12-31T23:30:00+00:00"]


def test_february_29th_waits_for_a_leap_year():
    assert firings("0 0 29 2 *", utc(2024, 3, 1), 2) == ["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"]


def test_a_schedule_that_never_fires_has_no_next_time():
    assert parse_schedule("0 0 30 2 *").next_after(utc(2024, 1, 1)) is None


def test_when_both_day_fields_are_restricted_either_may_match():
    # The 13th of the month, and every Friday. 2024-09-01 is a Sunday.
    assert firings("0 0 13 * FRI", utc(2024, 9, 1), 4) == [
        "2024-09-06T00:00:00+00:00", "2024-09-13T00:00:00+00:00",
        "2024-09-20T00:00:00+00:00", "2024-09-27T00:00:00+00:00"]
    assert firings("0 0 10 * MON", utc(2024, 9, 1), 3) == [
        "2024-09-02T00:00:00+00:00", "2024-09-09T00:00:00+00:00", "2024-09-10T00:00:00+00:00"]


def test_when_one_day_field_is_a_star_both_must_match():
    # Mondays only ("*" day of month places no restriction) ...
    assert firings("0 0 * * MON", utc(2024, 9, 1), 2) == ["2024-09-02T00:00:00+00:00", "2024-09-09T00:00:00+00:00"]
    # ... and the 13th only, whatever the weekday.
    assert firings("0 0 13 * *", utc(2024, 9, 1), 2) == ["2024-09-13T00:00:00+00:00", "2024-10-13T00:00:00+00:00"]
    # "?" is a star too.
    assert firings("0 0 13 * ?", utc(2024, 9, 1), 1) == ["2024-09-13T00:00:00+00:00"]


def test_a_stepped_day_field_is_a_restriction():
    # Every other day of the month OR Sundays; 2024-09-01 is a Sunday.
    assert firings("0 0 */2 * SUN", utc(2024, 9, 1, 1), 4) == [
        "2024-09-03T00:00:00+00:00", "2024-09-05T00:00:00+00:00",
        "2024-09-07T00:00:00+00:00", "2024-09-08T00:00:00+00:00"]


def test_the_schedule_is_read_on_the_time_zones_wall_clock():
    # 09:00 in Tokyo (UTC+9) is midnight UTC.
    [when] = firings("0 9 * * *", utc(2024, 5, 1, 12), 1, tz=ZoneInfo("Asia/Tokyo"))
    assert when == "2024-05-02T09:00:00+09:00"
    assert datetime.fromisoformat(when).astimezone(UTC) == utc(2024, 5, 2, 0, 0)


def test_a_wall_time_skipped_when_clocks_go_forward_does_not_fire_that_day():
    # New York skips 02:00-02:59 on 2024-03-10.
    assert firings("30 2 * * *", datetime(2024, 3, 9, 12, tzinfo=NEW_YORK), 2, tz=NEW_YORK) == [
        "2024-03-11T02:30:00-04:00", "2024-03-12T02:30:00-04:00"]
    assert firings("0 * * * *", datetime(2024, 3, 10, 0, 30, tzinfo=NEW_YORK), 3, tz=NEW_YORK) == [
        "2024-03-10T01:00:00-05:00", "2024-03-10T03:00:00-04:00", "2024-03-10T04:00:00-04:00"]


def test_a_wall_time_repeated_when_clocks_go_back_fires_both_times():
    # New York shows 01:00-01:59 twice on 2024-11-03: first in EDT (-04:00), then in EST (-05:00).
    assert firings("30 1 * * *", datetime(2024, 11, 3, 0, tzinfo=NEW_YORK), 3, tz=NEW_YORK) == [
        "2024-11-03T01:30:00-04:00", "2024-11-03T01:30:00-05:00", "2024-11-04T01:30:00-05:00"]
    assert firings("0 * * * *", datetime(2024, 11, 3, 0, 30, tzinfo=NEW_YORK), 3, tz=NEW_YORK) == [
        "2024-11-03T01:00:00-04:00", "2024-11-03T01:00:00-05:00", "2024-11-03T02:00:00-05:00"]


def test_firings_across_a_daylight_saving_change_are_an_hour_apart_in_real_time():
    parsed = parse_schedule("*/20 * * * *")
    moment = datetime(2024, 11, 3, 0, 50, tzinfo=NEW_YORK)
    times = []
    for _ in range(8):
        moment = parsed.next_after(moment, NEW_YORK)
        times.append(moment.astimezone(UTC))
    assert all(b - a == timedelta(minutes=20) for a, b in zip(times, times[1:]))


def test_the_next_time_in_a_zone_with_a_half_hour_offset():
    # India is UTC+05:30: 09:00 there is 03:30 UTC.
    [when] = firings("0 9 * * *", utc(2024, 5, 1, 4), 1, tz=ZoneInfo("Asia/Kolkata"))
    assert datetime.fromisoformat(when).astimezone(UTC) == utc(2024, 5, 2, 3, 30)


# ---------------------------------------------------------------- the API's check


def test_schedule_field_errors_name_the_field_and_the_broken_part():
    [error] = schedule_field_errors("61 * * * *", None)
    assert str(error) == 'spec.schedule: Invalid value: "61 * * * *": minute 61 out of range 0-59'
    [error] = schedule_field_errors("0 9 * * *", "Mars/Olympus_Mons")
    assert str(error) == 'spec.timeZone: Invalid value: "Mars/Olympus_Mons": unknown time zone Mars/Olympus_Mons'
    [error] = schedule_field_errors("0 9 * * *", "", path="spec.x")
    assert str(error) == 'spec.x.timeZone: Invalid value: "": timeZone must be nil or non-empty string'


def test_schedule_field_errors_refuse_a_tz_prefix_with_or_without_a_time_zone():
    [alone] = schedule_field_errors("CRON_TZ=UTC 0 9 * * *", None)
    assert alone.detail == "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
    [both] = schedule_field_errors("TZ=UTC 0 9 * * *", "UTC")
    assert both.detail == "cannot use both timeZone field and TZ or CRON_TZ in schedule"


def test_a_good_schedule_and_time_zone_have_no_errors():
    assert schedule_field_errors("@hourly", "Europe/Paris") == []
    assert schedule_field_errors("*/5 * * * MON-FRI", None) == []
