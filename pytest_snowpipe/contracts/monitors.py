"""A contract as Snowflake Data Metric Functions (DMFs): the rules keep watching a table between runs.

``monitor_plan(contract, schedule)`` turns each rule into one DMF association with an EXPECTATION
(Snowflake docs: CREATE DATA METRIC FUNCTION, ALTER TABLE ... ADD DATA METRIC FUNCTION ... EXPECTATION,
DATA_METRIC_SCHEDULE):

* ``nullable=False``            -> ``SNOWFLAKE.CORE.NULL_COUNT ON (c)``, expectation ``VALUE = 0``;
* ``unique`` (non-null column)  -> ``SNOWFLAKE.CORE.DUPLICATE_COUNT ON (c)``, ``VALUE = 0`` (it counts NULLs
  too, so a nullable unique column gets a custom DMF instead);
* ``min_rows``/``max_rows``     -> ``SNOWFLAKE.CORE.ROW_COUNT ON ()`` with the bounds;
* ranges, ``isin``, ``regex``, a unique nullable column, a column's row bounds -> a custom DMF counting the
  failing rows (``COUNT_IF(...)``), ``VALUE = 0`` (or the bounds). Custom DMFs are named by a hash of their
  body, so one body is created once and never replaced under an association.

Custom ``checks=`` / ``sql_check=`` (Python callables) have no DMF equivalent: they stay test-only and
the plan says so (``MonitorPlan.test_only``). Column presence and types are the watched table's own DDL.
A NaN in a FLOAT column counts as null for the contract but not for NULL_COUNT.

``evaluate`` runs the same metric SQL as a plain query (the rehearsal on the embedded engine);
``latest_monitor_results`` reads an account's latest expectation results back.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_snowpipe.contracts._core import Contract, ContractError
from pytest_snowpipe.errors import SnowpipeUsageError

#: the fixed minute schedules a DMF accepts (DATA_METRIC_SCHEDULE = '<num> MINUTE')
MINUTE_SCHEDULES = (5, 15, 30, 60, 720, 1440)
TRIGGER_ON_CHANGES = "TRIGGER_ON_CHANGES"
_VALID = (
    "a monitor schedule is one of '5m', '15m', '30m', '1h' (= '60m'), '12h' (= '720m'), '1d' (= '24h', '1440m'), "
    "'TRIGGER_ON_CHANGES' or 'USING CRON <min> <hour> <dom> <month> <dow> <time zone>'"
)
_UNITS = {"m": 1, "min": 1, "minute": 1, "minutes": 1, "h": 60, "hour": 60, "hours": 60, "d": 1440, "day": 1440, "days": 1440}
_SQL_TYPES = {"int": "NUMBER(38,0)", "float": "FLOAT", "str": "VARCHAR", "bool": "BOOLEAN", "datetime": "TIMESTAMP_NTZ"}
SYSTEM = "SNOWFLAKE.CORE."


class MonitorError(ContractError, SnowpipeUsageError):
    """A monitor is declared in a way Snowflake cannot schedule or watch; the message says how to fix it
    (a usage error: at plan or deploy time pytest shows it without a traceback)."""


def parse_monitor_schedule(text: Any) -> str:
    """The ``DATA_METRIC_SCHEDULE`` value for ``text``: ``'<n> MINUTE'``, ``TRIGGER_ON_CHANGES`` or ``USING CRON ...``.

    A cron's fields are checked when the plan is built (``taskgraph.schedule``); here only its shape.
    """
    if not isinstance(text, str) or not text.strip():
        raise MonitorError(f"monitor={text!r} is not a schedule; {_VALID}")
    stripped = " ".join(text.split())
    if stripped.upper() == TRIGGER_ON_CHANGES:
        return TRIGGER_ON_CHANGES
    if stripped.upper().startswith("USING CRON "):
        parts = stripped.split(" ")[2:]
        if len(parts) != 6:
            raise MonitorError(f"monitor={text!r} has {len(parts)} cron parts; a cron needs 5 fields and a time zone. {_VALID}")
        return "USING CRON " + " ".join(parts)
    m = re.fullmatch(r"(\d+)\s*([A-Za-z]+)", stripped)
    if not m or m[2].lower() not in _UNITS:
        raise MonitorError(f"monitor={text!r} is not a schedule; {_VALID}")
    minutes = int(m[1]) * _UNITS[m[2].lower()]
    if minutes not in MINUTE_SCHEDULES:
        raise MonitorError(
            f"monitor={text!r} is {minutes} minutes, which Snowflake's DATA_METRIC_SCHEDULE does not offer (only "
            f"{', '.join(map(str, MINUTE_SCHEDULES))} MINUTE); {_VALID}"
        )
    return f"{minutes} MINUTE"


def quote(name: str) -> str:
    """A double-quoted identifier (contract column names are case-sensitive)."""
    return '"' + name.replace('"', '""') + '"'


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text).upper().strip("_") or "C"


def _literal(kind: str, value: Any) -> str:
    """A SQL literal for a bound or an allowed value of a ``kind`` column."""
    if kind == "str":
        return "'" + str(value).replace("'", "''") + "'"
    if kind == "bool":
        return "TRUE" if value else "FALSE"
    if kind == "datetime":
        stamp = value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
        assert isinstance(stamp, _dt.datetime)
        return f"'{stamp.replace(tzinfo=None).isoformat(sep=' ')}'::TIMESTAMP_NTZ"
    number = value.item() if hasattr(value, "item") else value
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(f"{number!r} has no SQL literal")
    return repr(int(number)) if kind == "int" else repr(float(number))


@dataclass(frozen=True)
class CustomDMF:
    """A ``CREATE DATA METRIC FUNCTION`` of ours: one column argument ``ARG_C`` of table ``ARG_T``."""

    arg_type: str
    body: str  # a SELECT over ARG_T returning one number

    @property
    def name(self) -> str:
        """Named by its content: the same body is one function, created once."""
        digest = hashlib.sha256(f"{self.arg_type}\n{self.body}".encode()).hexdigest()[:12].upper()
        return f"SNOWPIPE_DMF_{digest}"

    def create_sql(self, schema: str) -> str:
        return (f"CREATE DATA METRIC FUNCTION IF NOT EXISTS {schema}.{self.name}(ARG_T TABLE(ARG_C {self.arg_type})) "
                f"RETURNS NUMBER AS $${self.body}$$")


@dataclass(frozen=True)
class Metric:
    """One rule of the contract as a DMF association with an expectation ``lo <= VALUE <= hi``."""

    expectation: str  # the expectation's name (unique per table)
    column: str | None  # None: the whole table (ROW_COUNT)
    rules: tuple[str, ...]
    function: str  # SNOWFLAKE.CORE.<NAME>, or the custom DMF's name
    lo: int = 0
    hi: int | None = 0
    custom: CustomDMF | None = None

    @property
    def expression(self) -> str:
        """The EXPECTATION's boolean expression."""
        if self.hi is not None and self.lo == self.hi:
            return f"VALUE = {self.lo}"
        parts = [f"VALUE >= {self.lo}"] if self.lo else []
        if self.hi is not None:
            parts.append(f"VALUE <= {self.hi}")
        return " AND ".join(parts) or "VALUE >= 0"

    def passes(self, value: int) -> bool:
        return value >= self.lo and (self.hi is None or value <= self.hi)

    def function_in(self, schema: str) -> str:
        return self.function if self.custom is None else f"{schema}.{self.function}"

    def add_sql(self, table: str, schema: str) -> str:
        on = quote(self.column) if self.column is not None else ""
        return (f"ALTER TABLE {table} ADD DATA METRIC FUNCTION {self.function_in(schema)} ON ({on}) "
                f"EXPECTATION {self.expectation} ({self.expression})")

    def select_sql(self, table: str) -> str:
        """The metric as a plain query on ``table``: a custom DMF's own body, a system DMF's documented meaning."""
        c = quote(self.column) if self.column is not None else ""
        if self.custom is not None:
            return self.custom.body.replace("ARG_T", table).replace("ARG_C", c)
        if self.function == SYSTEM + "NULL_COUNT":
            return f"SELECT COUNT_IF({c} IS NULL) FROM {table}"
        if self.function == SYSTEM + "DUPLICATE_COUNT":  # values that occur more than once, NULL included
            return (f"SELECT COALESCE(SUM(N), 0) FROM (SELECT COUNT(*) AS N FROM {table} GROUP BY {c} "
                    "HAVING COUNT(*) > 1)")
        return f"SELECT COUNT(*) FROM {table}"  # ROW_COUNT


@dataclass(frozen=True)
class MonitorPlan:
    """What one contract deploys on one table: its columns, schedule, metrics and the rules left to the tests."""

    schedule: str
    columns: tuple[tuple[str, str], ...]  # (name, SQL type)
    metrics: tuple[Metric, ...]
    test_only: tuple[str, ...] = field(default=())  # "column 'X': rule 'check' (...)"

    def customs(self) -> list[CustomDMF]:
        return list(dict.fromkeys(m.custom for m in self.metrics if m.custom is not None))

    def create_table_sql(self, table: str, *, replace: bool = True) -> str:
        cols = ", ".join(f"{quote(n)} {t}" for n, t in self.columns)
        head = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE IF NOT EXISTS"
        return f"{head} {table} ({cols})"

    def statements(self, table: str, schema: str) -> list[str]:
        """Every statement that makes the monitor on an existing ``table`` (custom DMFs first)."""
        out = [c.create_sql(schema) for c in self.customs()]
        out.append(f"ALTER TABLE {table} SET DATA_METRIC_SCHEDULE = '{self.schedule}'")
        out += [m.add_sql(table, schema) for m in self.metrics]
        return out


def _count_if(condition: str) -> str:
    return f"SELECT COUNT_IF({condition}) FROM ARG_T"


def _range_condition(spec: Any) -> str | None:
    parts = []
    for rule, op in (("ge", "<"), ("gt", "<="), ("le", ">"), ("lt", ">=")):
        bound = getattr(spec, rule)
        if bound is not None:
            parts.append(f"ARG_C {op} {_literal(spec.kind, bound)}")
    return " OR ".join(parts) or None


def monitor_plan(contract: Contract, schedule: str) -> MonitorPlan:
    """The DMFs that watch ``contract``'s rules (``schedule``: a ``parse_monitor_schedule`` value)."""
    metrics: list[Metric] = []
    test_only: list[str] = []
    names: set[str] = set()

    def add(column: str | None, rules: Sequence[str], function: str, lo: int = 0, hi: int | None = 0,
            custom: CustomDMF | None = None) -> None:
        base = f"{_clean(column) if column is not None else 'TABLE'}_{_clean('_'.join(rules))}"
        name, i = base, 2
        while name in names:
            name, i = f"{base}_{i}", i + 1
        names.add(name)
        metrics.append(Metric(name, column, tuple(rules), function, lo, hi, custom))

    if contract.min_rows or contract.max_rows is not None:
        add(None, ["rows"], SYSTEM + "ROW_COUNT", contract.min_rows, contract.max_rows)
    for name, spec in contract.columns.items():
        arg = _SQL_TYPES[spec.kind]
        if not spec.nullable:
            add(name, ["nullable"], SYSTEM + "NULL_COUNT")
        ranges = [r for r in ("ge", "gt", "le", "lt") if getattr(spec, r) is not None]
        if ranges:
            try:
                cond = _range_condition(spec)
            except ValueError as exc:
                test_only.append(f"column {name!r}: rule(s) {', '.join(ranges)} ({exc}: no SQL bound)")
            else:
                add(name, ranges, "", custom=CustomDMF(arg, _count_if(f"ARG_C IS NOT NULL AND ({cond})")))
        if spec.isin is not None:
            values = ", ".join(_literal(spec.kind, v) for v in spec.isin)
            add(name, ["isin"], "", custom=CustomDMF(arg, _count_if(f"ARG_C IS NOT NULL AND ARG_C NOT IN ({values})")))
        if spec.unique:
            if spec.nullable:  # DUPLICATE_COUNT counts NULLs; the contract never does
                add(name, ["unique"], "", custom=CustomDMF(arg, "SELECT COUNT(ARG_C) - COUNT(DISTINCT ARG_C) FROM ARG_T"))
            else:
                add(name, ["unique"], SYSTEM + "DUPLICATE_COUNT")
        if spec.regex is not None:
            if "$$" in spec.regex:
                test_only.append(f"column {name!r}: rule 'regex' (its pattern holds '$$', which ends a DMF body)")
            else:
                pattern = spec.regex.replace("'", "''")
                add(name, ["regex"], "", custom=CustomDMF(arg, _count_if(f"ARG_C IS NOT NULL AND NOT RLIKE(ARG_C, '{pattern}')")))
        if spec.min_rows or spec.max_rows is not None:
            add(name, ["min_rows", "max_rows"], "", spec.min_rows, spec.max_rows,
                custom=CustomDMF(arg, "SELECT COUNT(ARG_C) FROM ARG_T"))
        for rule in (["check"] if len(spec.checks) == 1 else [f"check[{i}]" for i in range(len(spec.checks))]):
            test_only.append(f"column {name!r}: rule {rule!r} (a pandas callable: no DMF equivalent)")
        if spec.sql_check is not None:
            test_only.append(f"column {name!r}: rule 'sql_check' (a Python callable: no DMF equivalent)")
    metrics = [m if m.custom is None else _named(m) for m in metrics]
    columns = tuple((n, _SQL_TYPES[s.kind]) for n, s in contract.columns.items())
    if not contract.strict:
        test_only.append("strict=False: only the contract's columns are copied into the watched table")
    return MonitorPlan(schedule, columns, tuple(metrics), tuple(test_only))


def _named(metric: Metric) -> Metric:
    assert metric.custom is not None
    return Metric(metric.expectation, metric.column, metric.rules, metric.custom.name, metric.lo, metric.hi, metric.custom)


def evaluate(session: Any, table: str, plan: MonitorPlan) -> list[dict[str, Any]]:
    """Run every metric of ``plan`` on ``table`` now (one query): what the monitors would report."""
    if not plan.metrics:
        return []
    parts = [f"({m.select_sql(table)}) AS M{i}" for i, m in enumerate(plan.metrics)]
    row = session.sql("SELECT " + ", ".join(parts)).collect()[0]
    out = []
    for i, metric in enumerate(plan.metrics):
        value = int(row[i] or 0)
        out.append({"table": table, "expectation": metric.expectation, "metric": metric.function,
                    "column": metric.column, "value": value, "expression": metric.expression,
                    "violated": not metric.passes(value)})
    return out


def _variant(value: Any) -> Any:
    """A VARIANT column comes back as JSON text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


RESULTS_VIEW = "SNOWFLAKE.LOCAL.DATA_QUALITY_MONITORING_EXPECTATION_STATUS"


def latest_monitor_results(session: Any, tables: Iterable[str]) -> list[dict[str, Any]]:
    """The latest result of every expectation on ``tables`` (names, optionally ``DB.SCHEMA.NAME``), as dicts.

    Read from ``SNOWFLAKE.LOCAL.DATA_QUALITY_MONITORING_EXPECTATION_STATUS`` (it carries the value and
    ``expectation_violated``; DATA_QUALITY_MONITORING_RESULTS has no expectation columns). Keys: table,
    metric, expectation, expression, value, violated, measured_at. No table -> no query.
    """
    names = sorted({t.split(".")[-1].strip('"').upper() for t in tables})
    if not names:
        return []
    marks = ", ".join("?" for _ in names)
    rows = session.sql(
        "SELECT table_database, table_schema, table_name, metric_name, expectation_name, expectation_expression, "
        f"value, expectation_violated, measurement_time FROM {RESULTS_VIEW} WHERE UPPER(table_name) IN ({marks}) "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY table_database, table_schema, table_name, expectation_name "
        "ORDER BY measurement_time DESC) = 1 ORDER BY table_name, expectation_name",
        params=names,
    ).collect()
    return [
        {"table": f"{r[0]}.{r[1]}.{r[2]}", "metric": r[3], "expectation": r[4], "expression": r[5],
         "value": _variant(r[6]), "violated": r[7], "measured_at": r[8]}
        for r in rows
    ]


__all__ = [
    "MINUTE_SCHEDULES",
    "TRIGGER_ON_CHANGES",
    "CustomDMF",
    "Metric",
    "MonitorError",
    "MonitorPlan",
    "evaluate",
    "latest_monitor_results",
    "monitor_plan",
    "parse_monitor_schedule",
]
