"""Cron schedules as CronJobs write them, and the next time one fires.

``parse_schedule("*/15 9-17 * * MON-FRI")`` reads the standard five fields
(minute, hour, day of month, month, day of week) or a macro (@yearly,
@annually, @monthly, @weekly, @daily, @midnight, @hourly) into a
``Schedule``; ``schedule.next_after(t, tz)`` is the first whole minute after
``t`` that the schedule names, on the wall clock of time zone ``tz``.

The syntax is the one Kubernetes accepts (robfig/cron's standard parser):
each field is a comma-separated list of ``*``, ``N``, ``N-M``, each with an
optional ``/STEP`` (``N/STEP`` means ``N-max/STEP``); months and weekdays may
be named (JAN-DEC, SUN-SAT, any case); day of week 7 is Sunday too; ``?``
means ``*`` in the two day fields. When both day fields are restricted (not
``*``), a day matches if either does (Vixie cron's rule: ``0 0 1 * MON`` is
the 1st of the month and every Monday). ``TZ=``/``CRON_TZ=`` prefixes are
refused, as Kubernetes refuses them: a CronJob names its zone in
``spec.timeZone``, which ``load_time_zone`` checks. ``schedule_field_errors``
is the API's check of both fields, with Kubernetes' messages.

Daylight saving time follows Kubernetes too: a wall-clock time that does not
exist on a day (skipped when clocks go forward) does not fire that day, and
one that happens twice (when clocks go back) fires both times.

Pure functions and values: no I/O beyond reading the time zone database.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from control.api.manifest import FieldError

# How far ahead next_after looks before deciding a schedule never fires
# (February 29th can be eight years away across a century).
_SEARCH_DAYS = 366 * 9

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTH_NAMES = {name: number for number, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
_WEEKDAY_NAMES = {name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}


class ScheduleError(ValueError):
    """A schedule or time zone that cannot be used; the message names the broken part."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]
    # How the error for an unreadable value describes what the field takes.
    accepts: str
    may_be_question_mark: bool = False


_FIELDS = (
    _Field("minute", 0, 59, {}, "a number"),
    _Field("hour", 0, 23, {}, "a number"),
    _Field("day of month", 1, 31, {}, "a number", may_be_question_mark=True),
    _Field("month", 1, 12, _MONTH_NAMES, "a number or a name (JAN-DEC)"),
    _Field("day of week", 0, 7, _WEEKDAY_NAMES, "a number or a name (SUN-SAT)", may_be_question_mark=True),
)


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: the values each field allows (weekdays 0-6, Sunday 0)."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    # A day field written "*" (or "?") places no restriction, which decides
    # whether the two day fields combine with AND or with OR.
    any_day_of_month: bool
    any_day_of_week: bool

    def fires_on(self, day: date) -> bool:
        """Whether the schedule names this calendar day (month and both day fields)."""
        if day.month not in self.months:
            return False
        by_month_day = day.day in self.days_of_month
        by_weekday = (day.isoweekday() % 7) in self.days_of_week
        if self.any_day_of_month or self.any_day_of_week:
            return by_month_day and by_weekday
        return by_month_day or by_weekday

    def next_after(self, after: datetime, tz: tzinfo = timezone.utc) -> datetime | None:
        """The first time strictly after ``after`` that the schedule names on tz's wall clock.

        ``after`` must carry a time zone; the answer is in ``tz``. None when
        the schedule never fires (``0 0 30 2 *``: there is no February 30th).
        Compare answers in UTC or by ``timestamp()``: Python ignores ``fold``
        when it compares two times of one zone, so it holds 01:30 before and
        01:30 after clocks go back equal.
        """
        if after.tzinfo is None:
            raise ValueError("next_after needs a time with a time zone")
        after = after.astimezone(timezone.utc)
        day = after.astimezone(tz).date()
        for _ in range(_SEARCH_DAYS):
            if self.fires_on(day):
                found = self._first_on(day, after, tz)
                if found is not None:
                    return found.astimezone(tz)
            day += timedelta(days=1)
        return None

    def _first_on(self, day: date, after: datetime, tz: tzinfo) -> datetime | None:
        """The earliest firing (in UTC) on this local day later than after (in UTC), if any."""
        steady = not _offset_changes_on(day, tz)
        local_after = after.astimezone(tz).replace(tzinfo=None)
        best: datetime | None = None
        for hour in self.hours:
            for minute in self.minutes:
                wall = datetime.combine(day, time(hour, minute))
                if steady and wall <= local_after:
                    continue  # the wall clock is the timeline on such a day
                for instant in _instants_at(wall, tz):
                    if instant > after and (best is None or instant < best):
                        best = instant
                if steady and best is not None:
                    return best
        return best


def parse_schedule(text: str) -> Schedule:
    """The Schedule ``text`` describes; ScheduleError names the broken part otherwise."""
    spec = text.strip()
    if "TZ" in spec:
        raise ScheduleError("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    if spec.startswith("@"):
        expanded = MACROS.get(spec.lower())
        if expanded is None:
            listed = ", ".join(MACROS)
            raise ScheduleError(f"unknown macro {spec!r}: use five fields or one of {listed}")
        spec = expanded
    parts = spec.split()
    if len(parts) != len(_FIELDS):
        raise ScheduleError(f"expected exactly 5 fields (minute hour day-of-month month day-of-week), "
                            f"found {len(parts)}")
    values = []
    stars = []
    for field, part in zip(_FIELDS, parts):
        allowed, star = _parse_field(field, part)
        values.append(allowed)
        stars.append(star)
    minutes, hours, days_of_month, months, days_of_week = values
    return Schedule(
        text=text, minutes=tuple(sorted(minutes)), hours=tuple(sorted(hours)),
        days_of_month=frozenset(days_of_month), months=frozenset(months),
        days_of_week=frozenset(d % 7 for d in days_of_week),
        any_day_of_month=stars[2], any_day_of_week=stars[4])


def schedule_field_errors(schedule: str, time_zone: str | None, *, path: str = "spec") -> list[FieldError]:
    """A CronJob's schedule and timeZone (None: unset) as the API checks them, Kubernetes' messages.

    An empty schedule is left to the caller (it is "Required", not "Invalid").
    """
    errors: list[FieldError] = []
    if schedule:
        try:
            parse_schedule(schedule)
        except ScheduleError as err:
            message = str(err)
            if time_zone is not None and "TZ" in schedule:
                message = "cannot use both timeZone field and TZ or CRON_TZ in schedule"
            errors.append(FieldError(f"{path}.schedule", "Invalid value", message, schedule))
    if time_zone is not None:
        if not time_zone:
            errors.append(FieldError(f"{path}.timeZone", "Invalid value", "timeZone must be nil or non-empty string",
                                     time_zone))
        else:
            try:
                load_time_zone(time_zone)
            except ScheduleError as err:
                errors.append(FieldError(f"{path}.timeZone", "Invalid value", str(err), time_zone))
    return errors


def load_time_zone(name: str) -> tzinfo:
    """The IANA time zone ``name`` (e.g. "Europe/Paris"); ScheduleError if there is none."""
    if name.lower() == "local":
        raise ScheduleError("timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name}") from None


def _parse_field(field: _Field, text: str) -> tuple[set[int], bool]:
    """The values one field allows, and whether it places no restriction at all."""
    allowed: set[int] = set()
    unrestricted = False
    for item in text.split(","):
        if not item:
            raise ScheduleError(f"{field.name}: empty item in {text!r}")
        values, star = _parse_item(field, item)
        allowed |= values
        unrestricted = unrestricted or star
    return allowed, unrestricted


def _parse_item(field: _Field, item: str) -> tuple[set[int], bool]:
    span, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) == 0:
            raise ScheduleError(f"{field.name}: step {step_text!r} in {item!r} must be a positive number")
        step = int(step_text)
    if span == "*" or (span == "?" and field.may_be_question_mark):
        return set(range(field.low, field.high + 1, step)), step == 1
    first_text, dash, last_text = span.partition("-")
    first = _value(field, first_text)
    if dash:
        last = _value(field, last_text)
    else:
        # "N/STEP" runs from N to the field's end, as in robfig/cron.
        last = field.high if slash else first
    if first > last:
        raise ScheduleError(f"{field.name}: beginning of range ({first}) beyond end of range ({last}) in {item!r}")
    return set(range(first, last + 1, step)), False


def _value(field: _Field, text: str) -> int:
    named = field.names.get(text.upper())
    if named is not None:
        return named
    if not text.isdigit():
        raise ScheduleError(f"{field.name}: {text!r} is not {field.accepts}")
    value = int(text)
    if not field.low <= value <= field.high:
        raise ScheduleError(f"{field.name} {value} out of range {field.low}-{field.high}")
    return value


def _offset_changes_on(day: date, tz: tzinfo) -> bool:
    """Whether tz's UTC offset changes during this local day (a daylight saving switch)."""
    start = datetime.combine(day, time(0))
    end = datetime.combine(day + timedelta(days=1), time(0))
    offsets = {moment.replace(tzinfo=tz, fold=fold).utcoffset() for moment in (start, end) for fold in (0, 1)}
    return len(offsets) > 1


def _instants_at(wall: datetime, tz: tzinfo) -> list[datetime]:
    """The moments (in UTC) tz's clocks show this wall time: none in a gap, two in an overlap."""
    found: list[datetime] = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=tz, fold=fold).astimezone(timezone.utc)
        shown = instant.astimezone(tz).replace(tzinfo=None)
        if shown == wall and instant not in found:
            found.append(instant)
    return found
