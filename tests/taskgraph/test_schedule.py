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
        ("cron */0 6 * * * UTC", "invalid cron minute field '*/0'"),
        ("cron a 6 * * * UTC", "invalid cron minute field 'a'"),
        ("cron 0,,1 6 * * * UTC", "invalid cron minute field '0,,1'"),
        ("cron 0 6 * * 9L UTC", "invalid cron day of week field '9L'"),
        ("cron 0 6 * * 5#2 UTC", "invalid cron day of week field '5#2': Snowflake's cron has no '#'"),
        ("cron 0 6 15W * * UTC", "invalid cron day of month field '15W'"),
        ("cron 0 6 LW * * UTC", "invalid cron day of month field 'LW'"),
        ("cron 0 6 ? * * UTC", "invalid cron day of month field '?'"),
        ("cron 0 6 * * 1-7 UTC", "invalid cron day of week field '1-7'"),
        ("cron 0 0 31 6 * UTC", "can never fire: no month '6' has day of month '31'"),
        ("cron 0 0 30 2 * UTC", "can never fire: no month '2' has day of month '30'"),
        ("cron 0 0 30,31 FEB * UTC", "can never fire"),
        ("cron 0 0 31 4,6,9,11 * UTC", "can never fire"),
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


@pytest.mark.parametrize(
    ("expr", "tz", "expected"),
    [
        # Snowflake's L forms: the last day of the month, the last Friday ("5L")
        ("0 0 L * *", "UTC", ["2026-12-31 00:00", "2027-01-31 00:00", "2027-02-28 00:00"]),
        ("30 6 * * 5L", "UTC", ["2026-12-25 06:30", "2027-01-29 06:30", "2027-02-26 06:30"]),
        ("0 0 29 2 *", "UTC", ["2028-02-29 00:00", "2032-02-29 00:00", "2036-02-29 00:00"]),  # fires, rarely
        ("0 6 * * *", "America/Los_Angeles", ["2026-12-06 06:00", "2026-12-07 06:00", "2026-12-08 06:00"]),
    ],
)
def test_next_fire_times_in_the_schedule_time_zone(expr, tz, expected):
    from datetime import UTC, datetime

    from pytest_snowpipe.taskgraph.schedule import next_fire_times

    parse_schedule(f"cron {expr} {tz}")  # accepted
    times = next_fire_times(expr, tz, 3, after=datetime(2026, 12, 6, 12, 0, tzinfo=UTC))
    assert [t.strftime("%Y-%m-%d %H:%M") for t in times] == expected
    assert all(str(t.tzinfo) == tz for t in times)


def test_a_cron_that_never_fires_is_a_usage_error_before_anything_runs(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
import pytest

@pytest.fixture(scope="session")
def metrics():
    print("METRICS RAN")
    return {"score": 1}
""")
    pytester.makepyfile(test_gate="""
import pytest

@pytest.mark.snowpipe_gate(on_fail="alert")
def test_quality(metrics):
    assert metrics["score"] > 0
""")
    result = pytester.runpytest("--snowpipe-deploy", "--snowpipe-dry-run", "--schedule", "cron 0 6 30 2 * UTC", "-s")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "'cron 0 6 30 2 * UTC' can never fire: no month '2' has day of month '30'" in result.stderr.str()
    assert "METRICS RAN" not in result.stdout.str()


def test_the_plan_shows_the_next_three_fire_times_in_the_schedule_time_zone(tmp_path) -> None:
    import calendar
    import re
    from datetime import datetime

    from pytest_snowpipe.taskgraph.compile import compile_graph
    from pytest_snowpipe.taskgraph.plan import format_plan
    from tests.taskgraph.test_compile import opts, pipeline

    plan = format_plan(compile_graph(pipeline(), opts(tmp_path, schedule=parse_schedule("cron 30 6 * * 5L Europe/Paris"))))
    (line,) = [x for x in plan.splitlines() if "next runs:" in x]
    stamps = re.findall(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}) (CET|CEST)", line)
    assert len(stamps) == 3 and line.endswith("(Europe/Paris)")
    for stamp, _zone in stamps:
        day = datetime.strptime(stamp, "%Y-%m-%d %H:%M")
        assert (day.hour, day.minute, day.weekday()) == (6, 30, calendar.FRIDAY)
        assert day.day + 7 > calendar.monthrange(day.year, day.month)[1]  # the last Friday of its month
    assert "next runs:" not in format_plan(compile_graph(pipeline(), opts(tmp_path, schedule=parse_schedule("30m"))))
