"""parse_schedule / describe_schedule: every accepted form and every rejected one."""
from __future__ import annotations

from datetime import timedelta

import pytest
from snowflake.core.task import Cron

from pytest_snowpipe.taskgraph.schedule import ScheduleError, describe_schedule, parse_schedule


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("1d", timedelta(days=1)),
        ("8d", timedelta(days=8)),
        ("90s", timedelta(seconds=90)),
        ("10s", timedelta(seconds=10)),
        ("1m", timedelta(minutes=1)),
        ("11520m", timedelta(days=8)),
        ("691200s", timedelta(days=8)),
        ("192h", timedelta(days=8)),
        ("1", timedelta(days=1)),
        ("8", timedelta(days=8)),
        ("  30M  ", timedelta(minutes=30)),
        ("30 MINUTES", timedelta(minutes=30)),
        ("1 minute", timedelta(minutes=1)),
        ("2 hours", timedelta(hours=2)),
        ("1 day", timedelta(days=1)),
        ("45 SECONDS", timedelta(seconds=45)),
        ("30min", timedelta(minutes=30)),
    ],
)
def test_interval_forms(text: str, expected: timedelta) -> None:
    assert parse_schedule(text) == expected


@pytest.mark.parametrize(
    ("text", "expr", "tz"),
    [
        ("cron 0 6 * * * UTC", "0 6 * * *", "UTC"),
        ("USING CRON 0 6 * * * America/Los_Angeles", "0 6 * * *", "America/Los_Angeles"),
        ("using cron */15 * * * * UTC", "*/15 * * * *", "UTC"),
        ("CRON 0 0 10-20 * TUE,THU America/Los_Angeles", "0 0 10-20 * TUE,THU", "America/Los_Angeles"),
        ("cron 0 0 L * * Europe/Paris", "0 0 L * *", "Europe/Paris"),
        ("cron 0 0 * 4/3 5L UTC", "0 0 * 4/3 5L", "UTC"),
        ("cron 0,30 8-18/2 1 JAN-DEC 1-5 Asia/Tokyo", "0,30 8-18/2 1 JAN-DEC 1-5", "Asia/Tokyo"),
    ],
)
def test_cron_forms(text: str, expr: str, tz: str) -> None:
    sched = parse_schedule(text)
    assert isinstance(sched, Cron)
    assert (sched.expr, sched.timezone) == (expr, tz)


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("9s", "under Snowflake's minimum schedule of 10 seconds"),
        ("1s", "under Snowflake's minimum schedule of 10 seconds"),
        ("9d", "over Snowflake's maximum schedule of 8 days (11520 minutes)"),
        ("9", "over Snowflake's maximum schedule of 8 days"),
        ("11521m", "over Snowflake's maximum schedule of 8 days"),
        ("193h", "over Snowflake's maximum schedule of 8 days"),
        ("691201s", "over Snowflake's maximum schedule of 8 days"),
        ("0m", "not a positive interval"),
        ("0", "not a positive interval"),
        ("-5m", "not a positive interval"),
        ("1.5s", "not a whole number"),
        ("0.5", "not a whole number"),
        ("2.5h", "not a whole number"),
        ("abc", "is not a schedule"),
        ("", "is empty"),
        ("   ", "is empty"),
        ("30x", "unknown unit"),
        ("30 fortnights", "unknown unit"),
        ("m30", "is not a schedule"),
        ("cron 0 6 * * *", "a cron schedule needs 5 fields and a time zone"),
        ("cron 0 6 * * * * UTC", "a cron schedule needs 5 fields and a time zone"),
        ("cron 60 6 * * * UTC", "invalid cron minute field '60'"),
        ("cron 0 24 * * * UTC", "invalid cron hour field '24'"),
        ("cron 0 6 0 * * UTC", "invalid cron day of month field '0'"),
        ("cron 0 6 * 13 * UTC", "invalid cron month field '13'"),
        ("cron 0 6 * FOO * UTC", "invalid cron month field 'FOO'"),
        ("cron 0 6 * * 7 UTC", "invalid cron day of week field '7'"),
        ("cron 0 6 * * MON-XYZ UTC", "invalid cron day of week field"),
        ("cron */0 6 * * * UTC", "step '0' is not a positive whole number"),
        ("cron a 6 * * * UTC", "invalid cron minute field 'a'"),
        ("cron 0,,1 6 * * * UTC", "empty list item"),
        ("cron 0 6 * * * Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("cron 0 6 * * * ../etc", "unknown time zone"),
        ("cron 0 6 * * * America", "unknown time zone 'America'"),
        ("cron 0 6 * * * utc", "unknown time zone 'utc'"),
    ],
)
def test_rejected(text: str, rule: str) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_schedule(text)
    message = str(info.value)
    assert rule in message
    assert repr(text) in message  # names the value
    assert "Valid forms: 30m, 12h, 1d" in message  # and the valid forms


def test_exact_message_for_over_maximum() -> None:
    with pytest.raises(ScheduleError, match=r"^'9d' is over Snowflake's maximum schedule of 8 days \(11520 minutes\)\. Valid forms: "):
        parse_schedule("9d")


def test_schedule_error_is_value_error_and_non_string_rejected() -> None:
    assert issubclass(ScheduleError, ValueError)
    with pytest.raises(ScheduleError, match="not a string"):
        parse_schedule(30)  # type: ignore[arg-type]


def test_parsed_values_are_accepted_by_snowflake_core() -> None:
    """What we return must build a low-level root task (the REST model conversion runs offline)."""
    from snowflake.core.task._task import _to_model_schedule

    assert _to_model_schedule(parse_schedule("90s")).seconds == 30  # type: ignore[union-attr]
    assert _to_model_schedule(parse_schedule("cron 0 6 * * * UTC")).cron_expr == "0 6 * * *"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "described"),
    [
        ("30m", "every 30 minutes"),
        ("1m", "every 1 minute"),
        ("12h", "every 12 hours"),
        ("60m", "every 1 hour"),
        ("1d", "every 1 day"),
        ("3", "every 3 days"),
        ("90s", "every 90 seconds"),
        ("cron 0 6 * * * UTC", "cron 0 6 * * * UTC"),
        ("USING CRON 0 6 * * * America/Los_Angeles", "cron 0 6 * * * America/Los_Angeles"),
    ],
)
def test_describe(text: str, described: str) -> None:
    assert describe_schedule(parse_schedule(text)) == described


def test_describe_none() -> None:
    assert "no schedule" in describe_schedule(None)
