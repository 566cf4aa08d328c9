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
  Each field is checked for shape and range (minute 0-59, hour 0-23, day-of-month 1-31 or
  ``L``, month 1-12 or JAN-DEC, day-of-week 0-6 or SUN-SAT, optionally ``<n>L``), with
  ``*``, lists ``a,b``, ranges ``a-b`` and steps ``*/n`` / ``a-b/n`` / ``a/n``.
"""
from __future__ import annotations

import re
from datetime import timedelta
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

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# field name, low, high, names (mapped to low + index), whether a bare "L" / "<n>L" is allowed
_CRON_FIELDS: list[tuple[str, int, int, list[str], str]] = [
    ("minute", 0, 59, [], ""),
    ("hour", 0, 23, [], ""),
    ("day of month", 1, 31, [], "L"),
    ("month", 1, 12, _MONTHS, ""),
    ("day of week", 0, 6, _DAYS, "nL"),
]


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
    for value, (field, low, high, names, special) in zip(parts[:5], _CRON_FIELDS, strict=False):
        problem = _cron_field_problem(value, low, high, names, special)
        if problem:
            raise _fail(text, f"has an invalid cron {field} field {value!r}: {problem}")
    tz = parts[5]
    if not _is_time_zone(tz):
        raise _fail(text, f"has an unknown time zone {tz!r} (use an IANA name such as UTC or America/Los_Angeles)")
    from snowflake.core.task import Cron

    return Cron(" ".join(parts[:5]), tz)


def _is_number(token: str) -> bool:
    """A whole number written in ASCII digits (``"٣".isdigit()`` is true, Snowflake refuses it)."""
    return token.isascii() and token.isdigit()


def _cron_value(token: str, low: int, high: int, names: list[str]) -> bool:
    if _is_number(token):
        return low <= int(token) <= high
    return token.upper() in names


def _cron_field_problem(value: str, low: int, high: int, names: list[str], special: str) -> str | None:
    """Return why one cron field is malformed, or None if its shape and range are fine."""
    for item in value.split(","):
        if not item:
            return "empty list item"
        upper = item.upper()
        if special == "L" and upper == "L":
            continue
        if special == "nL" and (upper == "L" or (upper.endswith("L") and _cron_value(upper[:-1], low, high, names))):
            continue
        base, sep, step = item.partition("/")
        if sep and not (_is_number(step) and int(step) >= 1):
            return f"step {step!r} is not a positive whole number"
        if base == "*":
            continue
        start, dash, end = base.partition("-")
        if not _cron_value(start, low, high, names):
            return f"{start!r} is outside {low}-{high}" + (f" / {names[0]}-{names[-1]}" if names else "")
        if dash and not _cron_value(end, low, high, names):
            return f"{end!r} is outside {low}-{high}" + (f" / {names[0]}-{names[-1]}" if names else "")
    return None


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


__all__ = ["MAX_INTERVAL", "MIN_INTERVAL", "ScheduleError", "describe_schedule", "parse_schedule"]
