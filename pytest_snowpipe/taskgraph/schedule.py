"""Parse a human schedule string into what a Snowflake root task takes (timedelta or Cron).

snowflake.core checks no bounds (a 1-second or a 30-day ``timedelta`` both pass the client),
so the bounds are enforced here, at compile time, instead of failing at deploy.

Accepted forms (case-insensitive, surrounding whitespace ignored):

* ``<N>s`` / ``<N>m`` / ``<N>h`` / ``<N>d``: an interval, e.g. ``30m``, ``12h``, ``1d``, ``90s``.
  The SQL spellings ``30 MINUTES``, ``12 hours``, ``1 day``, ``90 SECONDS`` (singular or plural)
  are accepted too.
* a bare number: days (``"1"`` is one day).
* ``cron <min> <hour> <dom> <month> <dow> <tz>`` or ``USING CRON <...> <tz>``: five cron fields
  and an IANA time zone, spelled as in the tz database (checked with ``zoneinfo``; ``utc`` is refused).

Rules (decided here; Snowflake's SQL is ``SCHEDULE = '<N> SECONDS|MINUTES|HOURS'`` or
``'USING CRON <expr> <tz>'``):

* ``N`` must be a positive whole number: ``0m``, ``-5m`` and ``1.5s`` are errors (the REST model
  ``MinutesSchedule`` carries whole minutes plus whole seconds only).
* Minimum interval: 10 seconds. Snowflake's newer docs allow ``N SECONDS`` schedules with
  a 10-second floor; an interval under that (``9s``) is an error. Minute, hour and day forms
  are always at least a minute, so they are never under the floor.
* Maximum interval: 8 days (11520 minutes, 691200 seconds), Snowflake's documented ceiling
  for a task schedule: ``9d`` and ``11521m`` are errors.
* Cron: Snowflake's minimum cron interval is one minute, which any 5-field cron satisfies.
  The expression is parsed and evaluated by cronsim (``L`` in day-of-month, ``<n>L`` in
  day-of-week, names, lists, ranges, steps): a malformed field, cronsim's extras that Snowflake
  lacks (``#``, ``W``, day of week 7), and a schedule that can never fire (``0 0 31 6 *``) are errors.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pytest_snowpipe.errors import SnowpipeError

if TYPE_CHECKING:  # pragma: no cover
    from snowflake.core.task import Cron

MIN_INTERVAL = timedelta(seconds=10)
MAX_INTERVAL = timedelta(days=8)  # 11520 minutes

VALID_FORMS = (
    "Valid forms: 30m, 12h, 1d, 90s (at least 10 seconds, at most 8 days), a bare number of days, "
    "or 'cron <min> <hour> <dom> <month> <dow> <tz>'"
)

_UNITS: dict[str, str] = {
    "s": "seconds", "sec": "seconds", "secs": "seconds", "second": "seconds", "seconds": "seconds",
    "m": "minutes", "min": "minutes", "mins": "minutes", "minute": "minutes", "minutes": "minutes",
    "h": "hours", "hr": "hours", "hrs": "hours", "hour": "hours", "hours": "hours",
    "d": "days", "day": "days", "days": "days",
}
# ASCII only: ``\d`` and ``str.isdigit`` also accept other scripts' digits ("١٠m"), which Snowflake refuses
_INTERVAL_RE = re.compile(r"^([+-]?\d+(?:\.\d*)?|[+-]?\.\d+)\s*([a-z]*)$", re.IGNORECASE | re.ASCII)
_CRON_PREFIX_RE = re.compile(r"^(?:using\s+)?cron\s+(.*)$", re.IGNORECASE | re.DOTALL)

# Snowflake's cron (CREATE TASK docs; snowflake.core ``Cron``): five fields, ``*``, lists, ranges, steps,
# names, ``L`` in day-of-month and ``<n>L`` in day-of-week, day-of-week 0-6. cronsim parses and evaluates
# it; what cronsim accepts beyond that dialect (``#``, ``W``, ``LW``, day-of-week 7) is refused here.
_CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_NOT_SNOWFLAKE = re.compile(r"[#W?]", re.IGNORECASE)
_DOW_SEVEN = re.compile(r"(?<![0-9])7(?![0-9])")


class ScheduleError(SnowpipeError, ValueError):
    """A schedule string Snowflake would reject (or that we refuse); the message says why."""


def _fail(text: str, rule: str) -> ScheduleError:
    return ScheduleError(f"{text!r} {rule}. {VALID_FORMS}")


def parse_schedule(text: str) -> timedelta | Cron:
    """Return a ``timedelta`` or a ``snowflake.core.task.Cron`` for ``text``; raise ScheduleError."""
    if not isinstance(text, str):
        raise ScheduleError(f"{text!r} is not a string; a schedule must be written as text. {VALID_FORMS}")
    stripped = text.strip()
    if not stripped:
        raise _fail(text, "is empty (an unset CI variable?); give a schedule or leave --schedule out")
    if not stripped.isascii():
        raise _fail(text, "has characters other than ASCII (write digits as 0-9)")
    cron = _CRON_PREFIX_RE.match(stripped)
    if cron:
        return _parse_cron(text, cron.group(1))
    return _parse_interval(text, stripped)


def _parse_interval(text: str, stripped: str) -> timedelta:
    m = _INTERVAL_RE.match(stripped)
    if not m:
        raise _fail(text, "is not a schedule")
    number, unit_text = m.group(1), m.group(2).lower()
    unit = _UNITS.get(unit_text) if unit_text else "days"
    if unit is None:
        raise _fail(text, f"has an unknown unit {m.group(2)!r} (use s, m, h or d)")
    if not re.fullmatch(r"[+-]?[0-9]+", number):
        raise _fail(text, "is not a whole number of units (fractions are not allowed)")
    n = int(number)
    if n <= 0:
        raise _fail(text, "is not a positive interval (it must be at least 10 seconds)")
    interval = timedelta(**{unit: n})
    if interval < MIN_INTERVAL:
        raise _fail(text, "is under Snowflake's minimum schedule of 10 seconds")
    if interval > MAX_INTERVAL:
        raise _fail(text, "is over Snowflake's maximum schedule of 8 days (11520 minutes)")
    return interval


def _parse_cron(text: str, body: str) -> Cron:
    parts = body.split()
    if len(parts) != 6:
        raise _fail(text, f"has {len(parts)} cron parts; a cron schedule needs 5 fields and a time zone")
    tz = parts[5]
    if not _is_time_zone(tz):
        raise _fail(text, f"has an unknown time zone {tz!r} (use an IANA name such as UTC or America/Los_Angeles)")
    expr = " ".join(parts[:5])
    for value, field in zip(parts[:5], _CRON_FIELDS, strict=True):
        if _NOT_SNOWFLAKE.search(value) or (field == "day of week" and _DOW_SEVEN.search(value)):
            raise _fail(text, f"has an invalid cron {field} field {value!r}: Snowflake's cron has no "
                              "'#', 'W', '?' or day of week 7 (use 0-6 or SUN-SAT, 'L' or '<n>L')")
    _check_fires(text, expr, tz)
    from snowflake.core.task import Cron

    return Cron(expr, tz)


def _check_fires(text: str, expr: str, tz: str) -> None:
    """Parse ``expr`` with cronsim: a malformed field, or a schedule that can never fire, is a ScheduleError."""
    from cronsim import CronSimError

    try:
        next_fire_times(expr, tz, 1)
    except CronSimError as exc:
        parts = expr.split()
        field = str(exc).removeprefix("Bad ").replace("-", " ")
        if field in _CRON_FIELDS:
            value = parts[_CRON_FIELDS.index(field)]
            if field == "day of month" and _parses(" ".join([*parts[:3], "*", "*"])):
                raise _fail(text, f"can never fire: no month {parts[3]!r} has day of month {value!r}") from None
            raise _fail(text, f"has an invalid cron {field} field {value!r}") from None
        raise _fail(text, f"is not a cron expression ({exc})") from None
    except StopIteration:
        raise _fail(text, "can never fire") from None


def _parses(expr: str) -> bool:
    from cronsim import CronSimError

    try:
        next_fire_times(expr, "UTC", 1)
    except (CronSimError, StopIteration):
        return False
    return True


def next_fire_times(expr: str, tz: str, count: int = 3, after: datetime | None = None) -> list[datetime]:
    """The next ``count`` times a cron ``expr`` fires, in its time zone ``tz`` (cronsim evaluates it)."""
    import zoneinfo

    from cronsim import CronSim

    zone = zoneinfo.ZoneInfo(tz)
    start = (after or datetime.now(UTC)).astimezone(zone)
    times = CronSim(expr.upper(), start)
    return [next(times) for _ in range(count)]


def _is_time_zone(tz: str) -> bool:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a tz directory such as 'America'
        return False
    return True


def describe_schedule(sched: timedelta | Cron | None) -> str:
    """Say a schedule in words for reports: 'every 30 minutes', 'cron 0 6 * * * UTC'."""
    if sched is None:
        return "no schedule (runs only via EXECUTE TASK)"
    if isinstance(sched, timedelta):
        seconds = int(sched.total_seconds())
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
            if seconds % size == 0 and seconds >= size:
                n = seconds // size
                return f"every {n} {unit}{'' if n == 1 else 's'}"
        return f"every {sched}"
    expr, tz = getattr(sched, "expr", None), getattr(sched, "timezone", None)
    if expr is not None and tz is not None:
        return f"cron {expr} {tz}"
    return str(sched)


__all__ = ["MAX_INTERVAL", "MIN_INTERVAL", "ScheduleError", "describe_schedule", "next_fire_times", "parse_schedule"]
