"""A contract as Data Metric Functions: schedules, the SQL per rule, rules left to the tests, the same metric SQL
evaluated on the embedded engine (agreeing with the contract's own validation), and reading results back."""
from __future__ import annotations

import datetime
from typing import Any

import pandas as pd
import pytest

import pytest_snowpipe as sp
from pytest_snowpipe.contracts.monitors import (
    MonitorError,
    evaluate,
    latest_monitor_results,
    monitor_plan,
    parse_monitor_schedule,
)
from pytest_snowpipe.doubles.offline_account import OfflineAccount
from pytest_snowpipe.pipeline.checks import ContractTargetError, check_output


@pytest.mark.parametrize(("text", "value"), [
    ("5m", "5 MINUTE"), ("15m", "15 MINUTE"), ("30 minutes", "30 MINUTE"), ("1h", "60 MINUTE"), ("60m", "60 MINUTE"),
    ("12h", "720 MINUTE"), ("1d", "1440 MINUTE"), ("1440m", "1440 MINUTE"), ("24h", "1440 MINUTE"),
    ("trigger_on_changes", "TRIGGER_ON_CHANGES"), ("USING CRON  0 6 * * *  UTC", "USING CRON 0 6 * * * UTC"),
])
def test_a_monitor_schedule_becomes_a_data_metric_schedule(text: str, value: str) -> None:
    assert parse_monitor_schedule(text) == value


@pytest.mark.parametrize(("text", "why"), [
    ("4m", "is 4 minutes"), ("6m", "is 6 minutes"), ("1439m", "is 1439 minutes"), ("1441m", "is 1441 minutes"),
    ("2h", "is 120 minutes"), ("2d", "is 2880 minutes"), ("0m", "is 0 minutes"), ("", "is not a schedule"),
    ("1.5h", "is not a schedule"), ("1w", "is not a schedule"), ("USING CRON 0 6 * * UTC", "has 5 cron parts"),
])
def test_a_schedule_snowflake_does_not_offer_is_refused_with_the_valid_ones(text: str, why: str) -> None:
    with pytest.raises(MonitorError) as info:
        parse_monitor_schedule(text)
    assert why in str(info.value) and "'TRIGGER_ON_CHANGES'" in str(info.value) and "'1h'" in str(info.value)


def test_sp_expect_checks_the_monitor_when_it_is_declared() -> None:
    contract = sp.Contract(ID=sp.column(int))
    with pytest.raises(MonitorError, match="monitor='2h' is 120 minutes"):
        sp.expect(contract, monitor="2h")
    assert sp.expect(contract, monitor="1h")(lambda: None).__snowpipe_contracts__[0].monitor == "60 MINUTE"


CONTRACT = sp.Contract(
    ID=sp.column(int, unique=True, ge=1),
    CODE=sp.column(str, isin=["a", "b'c"], nullable=True, unique=True),
    X=sp.column(float, gt=0, le=10, min_rows=2),
    TS=sp.column(datetime.datetime, lt=datetime.datetime(2025, 1, 1)),
    NAME=sp.column(str, regex=r"[A-Z]+", checks=lambda s: s.str.len() < 5, sql_check=lambda c: c.is_not_null()),
    max_rows=4,
)


def test_each_rule_becomes_one_dmf_with_an_expectation() -> None:
    plan = monitor_plan(CONTRACT, "60 MINUTE")
    got = {m.expectation: (m.function if m.custom is None else "custom", m.column, m.expression) for m in plan.metrics}
    assert got == {
        "TABLE_ROWS": ("SNOWFLAKE.CORE.ROW_COUNT", None, "VALUE <= 4"),
        "ID_NULLABLE": ("SNOWFLAKE.CORE.NULL_COUNT", "ID", "VALUE = 0"),
        "ID_GE": ("custom", "ID", "VALUE = 0"),
        "ID_UNIQUE": ("SNOWFLAKE.CORE.DUPLICATE_COUNT", "ID", "VALUE = 0"),
        "CODE_ISIN": ("custom", "CODE", "VALUE = 0"),
        "CODE_UNIQUE": ("custom", "CODE", "VALUE = 0"),  # nullable: DUPLICATE_COUNT would count its NULLs
        "X_NULLABLE": ("SNOWFLAKE.CORE.NULL_COUNT", "X", "VALUE = 0"),
        "X_GT_LE": ("custom", "X", "VALUE = 0"),
        "X_MIN_ROWS_MAX_ROWS": ("custom", "X", "VALUE >= 2"),
        "TS_NULLABLE": ("SNOWFLAKE.CORE.NULL_COUNT", "TS", "VALUE = 0"),
        "TS_LT": ("custom", "TS", "VALUE = 0"),
        "NAME_NULLABLE": ("SNOWFLAKE.CORE.NULL_COUNT", "NAME", "VALUE = 0"),
        "NAME_REGEX": ("custom", "NAME", "VALUE = 0"),
    }
    assert plan.test_only == (
        "column 'NAME': rule 'check' (a pandas callable: no DMF equivalent)",
        "column 'NAME': rule 'sql_check' (a Python callable: no DMF equivalent)",
    )


def test_the_sql_a_monitor_deploys() -> None:
    contract = sp.Contract(ID=sp.column(int, unique=True, ge=1), CODE=sp.column(str, isin=["a", "b'c"]), min_rows=1)
    plan = monitor_plan(contract, "TRIGGER_ON_CHANGES")
    dmf_ge, dmf_isin = (m.function for m in plan.metrics if m.custom is not None)
    assert plan.create_table_sql("DB.S.T") == 'CREATE OR REPLACE TABLE DB.S.T ("ID" NUMBER(38,0), "CODE" VARCHAR)'
    assert plan.statements("DB.S.T", "DB.S") == [
        f"CREATE DATA METRIC FUNCTION IF NOT EXISTS DB.S.{dmf_ge}(ARG_T TABLE(ARG_C NUMBER(38,0))) RETURNS NUMBER AS "
        "$$SELECT COUNT_IF(ARG_C IS NOT NULL AND (ARG_C < 1)) FROM ARG_T$$",
        f"CREATE DATA METRIC FUNCTION IF NOT EXISTS DB.S.{dmf_isin}(ARG_T TABLE(ARG_C VARCHAR)) RETURNS NUMBER AS "
        "$$SELECT COUNT_IF(ARG_C IS NOT NULL AND ARG_C NOT IN ('a', 'b''c')) FROM ARG_T$$",
        "ALTER TABLE DB.S.T SET DATA_METRIC_SCHEDULE = 'TRIGGER_ON_CHANGES'",
        "ALTER TABLE DB.S.T ADD DATA METRIC FUNCTION SNOWFLAKE.CORE.ROW_COUNT ON () EXPECTATION TABLE_ROWS (VALUE >= 1)",
        'ALTER TABLE DB.S.T ADD DATA METRIC FUNCTION SNOWFLAKE.CORE.NULL_COUNT ON ("ID") EXPECTATION ID_NULLABLE (VALUE = 0)',
        f'ALTER TABLE DB.S.T ADD DATA METRIC FUNCTION DB.S.{dmf_ge} ON ("ID") EXPECTATION ID_GE (VALUE = 0)',
        'ALTER TABLE DB.S.T ADD DATA METRIC FUNCTION SNOWFLAKE.CORE.DUPLICATE_COUNT ON ("ID") EXPECTATION ID_UNIQUE (VALUE = 0)',
        'ALTER TABLE DB.S.T ADD DATA METRIC FUNCTION SNOWFLAKE.CORE.NULL_COUNT ON ("CODE") EXPECTATION CODE_NULLABLE (VALUE = 0)',
        f'ALTER TABLE DB.S.T ADD DATA METRIC FUNCTION DB.S.{dmf_isin} ON ("CODE") EXPECTATION CODE_ISIN (VALUE = 0)',
    ]


def test_one_body_is_one_function_and_a_changed_body_a_new_one() -> None:
    one = monitor_plan(sp.Contract(A=sp.column(int, ge=1), B=sp.column(int, ge=1)), "5 MINUTE")
    assert len(one.customs()) == 1 and one.metrics[1].function == one.metrics[3].function  # A_GE and B_GE share it
    other = monitor_plan(sp.Contract(A=sp.column(int, ge=2)), "5 MINUTE")
    assert other.metrics[1].function != one.metrics[1].function


def test_names_that_clean_to_the_same_expectation_stay_distinct() -> None:
    plan = monitor_plan(sp.Contract({"a b": sp.column(int), "A_B": sp.column(int)}), "5 MINUTE")
    assert [m.expectation for m in plan.metrics] == ["A_B_NULLABLE", "A_B_NULLABLE_2"]


def test_an_infinite_bound_stays_test_only() -> None:
    plan = monitor_plan(sp.Contract(X=sp.column(float, ge=float("-inf"), nullable=True)), "5 MINUTE")
    assert plan.metrics == () and plan.test_only[0].startswith("column 'X': rule(s) ge (-inf has no SQL literal")


# ------------------------------------------------------------------ the same SQL on the embedded engine


ROWS = pd.DataFrame({
    "ID": [1, 2, 2, 0, 5],  # one duplicate pair (2), one below ge=1 (0)
    "CODE": ["a", "b'c", None, "zz", "a"],  # one outside isin, "a" twice (nullable unique)
    "X": [1.0, 10.0, 10.5, 0.0, None],  # 10.5 > le, 0.0 not > gt, one null
    "TS": pd.to_datetime(["2024-01-01 00:00:00", "2024-12-31 23:59:59", "2025-01-01 00:00:00", "2024-06-01 00:00:00", "2024-06-01 00:00:00"]),
    "NAME": ["AB", "ab", "C", "D", None],  # one outside the regex, one null
})


def test_the_metrics_on_the_embedded_engine_agree_with_the_contract(embedded_session: Any) -> None:
    contract = sp.Contract({k: v for k, v in CONTRACT.columns.items()}, max_rows=4)
    table = "SNOWPIPE_TEST_MONITOR_EVAL"
    embedded_session.create_dataframe(ROWS).write.save_as_table(table, mode="overwrite", table_type="temporary")
    try:
        results = {r["expectation"]: r for r in evaluate(embedded_session, table, monitor_plan(contract, "5 MINUTE"))}
        values = {k: r["value"] for k, r in results.items()}
        assert values == {
            "TABLE_ROWS": 5, "ID_NULLABLE": 0, "ID_GE": 1, "ID_UNIQUE": 2, "CODE_ISIN": 1, "CODE_UNIQUE": 1,
            "X_NULLABLE": 1, "X_GT_LE": 2, "X_MIN_ROWS_MAX_ROWS": 4, "TS_NULLABLE": 0, "TS_LT": 1,
            "NAME_NULLABLE": 1, "NAME_REGEX": 1,
        }
        violated = {k for k, r in results.items() if r["violated"]}
        assert violated == set(values) - {"ID_NULLABLE", "TS_NULLABLE", "X_MIN_ROWS_MAX_ROWS"}
        # the contract's own push-down validation counts the same failing rows (unique: extra copies, not all copies)
        own = sp.Contract({k: v for k, v in contract.columns.items() if k != "NAME"}, max_rows=4).validate(
            embedded_session.table(table).drop("NAME"), report_only=True)
        failing = {(v.column, v.rule): v.failing_rows for v in own.violations}
        assert failing[("ID", "ge")] == values["ID_GE"] and failing[("CODE", "isin")] == values["CODE_ISIN"]
        assert failing[("CODE", "unique")] == values["CODE_UNIQUE"] and failing[("X", "nullable")] == values["X_NULLABLE"]
        assert failing[("TS", "lt")] == values["TS_LT"] and failing[("<frame>", "max_rows")] == values["TABLE_ROWS"] - 4
        assert failing[("X", "gt")] + failing[("X", "le")] == values["X_GT_LE"]
    finally:
        embedded_session.sql(f"DROP TABLE IF EXISTS {table}").collect()


def test_at_the_row_bounds_an_expectation_is_met_exactly(embedded_session: Any) -> None:
    table = "SNOWPIPE_TEST_MONITOR_BOUNDS"
    embedded_session.create_dataframe(pd.DataFrame({"ID": [1, 2, 3]})).write.save_as_table(
        table, mode="overwrite", table_type="temporary")
    try:
        for lo, hi, violated in ((3, 3, False), (3, None, False), (4, None, True), (0, 2, True), (1, 3, False)):
            plan = monitor_plan(sp.Contract(ID=sp.column(int), min_rows=lo, max_rows=hi), "5 MINUTE")
            rows = evaluate(embedded_session, table, plan)[0]
            assert (rows["value"], rows["violated"]) == (3, violated), (lo, hi)
    finally:
        embedded_session.sql(f"DROP TABLE IF EXISTS {table}").collect()


# ------------------------------------------------------------------ bad input


def test_a_monitor_on_a_stage_returning_pandas_is_refused_clearly() -> None:
    @sp.expect(sp.Contract(ID=sp.column(int)), monitor="1h")
    def loans() -> None: ...

    with pytest.raises(ContractTargetError) as info:
        check_output("loans", loans, pd.DataFrame({"ID": [1]}))
    assert "monitor='60 MINUTE') watches a Snowflake table" in str(info.value)
    assert "session.create_dataframe(df)" in str(info.value)
    assert check_output("loans", sp.expect(sp.Contract(ID=sp.column(int)))(lambda: None), pd.DataFrame({"ID": [1]}))


# ------------------------------------------------------------------ reading results back


def test_latest_monitor_results_reads_the_latest_row_per_expectation() -> None:
    with OfflineAccount(schemas=["DB.SCH"]) as account:
        def row(table: str, name: str, value: int, at: str, violated: bool) -> dict[str, Any]:
            return {"table_database": "DB", "table_schema": "SCH", "table_name": table, "metric_name": "NULL_COUNT",
                    "expectation_name": name, "expectation_expression": "VALUE = 0", "value": str(value),
                    "expectation_violated": violated, "measurement_time": at}
        account.monitors.results += [
            row("T1", "ID_NULLABLE", 3, "2026-12-06 10:00:00", True),
            row("T1", "ID_NULLABLE", 0, "2026-12-06 11:00:00", False),
            row("T1", "X_NULLABLE", 1, "2026-12-06 09:00:00", True),
            row("OTHER", "ID_NULLABLE", 7, "2026-12-06 12:00:00", True),
        ]
        session = account.session("DB", "SCH")
        try:
            account.clear_log()
            assert latest_monitor_results(session, []) == [] and account.sql_calls() == []
            got = latest_monitor_results(session, ["db.sch.t1"])
        finally:
            session.close()
        sql = next(c.sql for c in account.sql_calls() if "DATA_QUALITY" in c.sql)
    assert "FROM SNOWFLAKE.LOCAL.DATA_QUALITY_MONITORING_EXPECTATION_STATUS WHERE UPPER(table_name) IN ('T1')" in sql
    assert "QUALIFY ROW_NUMBER() OVER (PARTITION BY table_database, table_schema, table_name, expectation_name" in sql
    assert [(r["table"], r["expectation"], r["value"], r["violated"]) for r in got] == [
        ("DB.SCH.T1", "ID_NULLABLE", 0, False), ("DB.SCH.T1", "X_NULLABLE", 1, True)]  # VALUE is a VARIANT: parsed
