"""Monitors (``sp.expect(contract, monitor=...)``) at deploy: planned, listed in the plan, applied, rehearsed.

Each monitored stage output gets a watched table (:mod:`~pytest_snowpipe.taskgraph.monitor_tables`). A deploy
applies them after the graph, never half: every monitor is first built complete on a staging table
(``..._NEXT``: the table, the custom DMFs, the schedule, every association with its expectation), then each
staging table is swapped in (``ALTER TABLE ... SWAP WITH``: the old table, with its old associations, goes
to the staging name) or renamed in on a first deploy; only then are the old tables and the watched tables no
monitor names any more dropped. A failure or an interrupt before that point swaps back, drops what was
made, and raises, so :func:`~pytest_snowpipe.taskgraph.deploy.deploy` restores the previous graph too.
An account without Data Metric Functions ("Unsupported feature", below Enterprise Edition) gets a
clear error and keeps what it had.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_snowpipe.contracts.monitors import MonitorError, MonitorPlan, evaluate, monitor_plan
from pytest_snowpipe.errors import SnowpipeError, first_line
from pytest_snowpipe.taskgraph.monitor_tables import SUFFIX, monitor_table, monitored


class MonitorDeployError(SnowpipeError):
    """Applying the monitors failed; what they changed was undone."""


@dataclass(frozen=True)
class PlannedMonitor:
    """One watched table: the stage (and dict key) it copies, the contract's DMFs."""

    stage: str
    key: str | None
    table: str
    plan: MonitorPlan

    @property
    def label(self) -> str:
        return self.stage + (f"[{self.key!r}]" if self.key is not None else "")


def planned_monitors(graph: Any, dag_name: str) -> list[PlannedMonitor]:
    """Every monitor of the graph; MonitorError for one Snowflake could not watch."""
    out: list[PlannedMonitor] = []
    for stage in graph.stages:
        seen: set[str | None] = set()
        for exp in monitored(stage.func):
            label = stage.name + (f"[{exp.key!r}]" if exp.key is not None else "")
            if stage.remote is not None:
                raise MonitorError(
                    f"stage {label}: sp.expect(..., monitor={exp.monitor!r}) is on a remote stage (an ML Job), whose "
                    "output is stored as pandas, not as a Snowflake table; put the monitor on a Snowpark stage that "
                    "reads or returns its data, or drop monitor="
                )
            if exp.key in seen:
                raise MonitorError(f"stage {label}: two sp.expect(..., monitor=...) on one output; one watched table "
                                   "takes one contract: merge them or drop monitor= from one")
            seen.add(exp.key)
            assert exp.monitor is not None
            if exp.monitor.startswith("USING CRON "):
                from pytest_snowpipe.taskgraph.schedule import ScheduleError, parse_schedule

                try:
                    parse_schedule(exp.monitor)
                except ScheduleError as exc:
                    raise MonitorError(f"stage {label}: monitor: {exc}") from None
            table = monitor_table(dag_name, stage.name, exp.key)
            out.append(PlannedMonitor(stage.name, exp.key, table, monitor_plan(exp.contract, exp.monitor)))
    return out


MONITORS_TAG = "snowpipe-monitors"
MONITORS_TAG_RE = re.compile(rf"\[{MONITORS_TAG}:([0-9a-f]{{12}})\]")


def monitors_in(comment: str | None) -> str | None:
    """The monitors digest a stage task's COMMENT records (None: it deployed no monitor)."""
    found = MONITORS_TAG_RE.search(comment or "")
    return found.group(1) if found else None


def stamp_monitors(dag: Any, graph: Any, database: str | None, schema: str | None) -> None:
    """Record in each monitored stage's task COMMENT a digest of the monitor SQL it deploys.

    A monitor lives on a table, not in the task, so the deploy diff compares this digest: a changed
    contract or schedule is a change of that stage's task, and an "up to date" graph has its monitors too.
    """
    where = ".".join(x for x in (database, schema) if x) or "<database>.<schema>"
    by_task: dict[str, list[str]] = {}
    for monitor in planned_monitors(graph, dag.name):
        by_task.setdefault(monitor.stage.upper(), []).extend(statements(monitor, where))
    for task in dag.tasks:
        sql = by_task.get(task.name.upper())
        if sql:
            digest = hashlib.sha256("\n".join(sql).encode()).hexdigest()[:12]
            kept = MONITORS_TAG_RE.sub("", task.comment or "").strip()
            task.comment = f"{kept} [{MONITORS_TAG}:{digest}]".strip()


def _where(compiled: Any) -> str:
    opts = compiled.options
    return ".".join(x for x in (opts.database, opts.schema) if x) or "<database>.<schema>"


def plan_lines(compiled: Any) -> list[str]:
    """The plan's monitor section: each watched table, its schedule, its DMFs and the rules left to the tests."""
    monitors = planned_monitors(compiled.graph, compiled.dag.name)
    if not monitors:
        return []
    where = _where(compiled)
    lines = ["", f"  monitors:   {len(monitors)} watched table(s) in {where}, Data Metric Functions applied after the "
                 "graph (each graph run refills the table with the stage's output)"]
    for m in monitors:
        lines.append(f"  {m.label:<32} -> {m.table}  DATA_METRIC_SCHEDULE = '{m.plan.schedule}'")
        for metric in m.plan.metrics:
            on = metric.column if metric.column is not None else ""
            what = metric.function if metric.custom is None else f"{metric.function} ({', '.join(metric.rules)})"
            lines.append(f"  {'':<32}    {metric.expectation:<32} {what} ON ({on}) EXPECT {metric.expression}")
        for note in m.plan.test_only:
            lines.append(f"  {'':<32}    test-only: {note}")
    return lines


def statements(monitor: PlannedMonitor, where: str, table: str | None = None) -> list[str]:
    """What one monitor deploys on ``table`` (default: its watched table), in order."""
    target = f"{where}.{table or monitor.table}"
    return [monitor.plan.create_table_sql(target), *monitor.plan.statements(target, where)]


def _staging(table: str) -> str:
    return table[: -len(SUFFIX)] + "_NEXT"


def _unsupported(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "unsupported feature" in text or ("data metric function" in text and "not supported" in text)


def existing_tables(session: Any, where: str, dag_name: str) -> set[str]:
    """The watched tables of ``dag_name`` already in the schema (by name pattern)."""
    prefix = monitor_table(dag_name, "X")[: -len("X" + SUFFIX)]
    rows = session.sql(f"SHOW TABLES LIKE '{prefix}%{SUFFIX}' IN SCHEMA {where}").collect()
    return {str(r["name"]) for r in rows if str(r["name"]).endswith(SUFFIX) and str(r["name"]).startswith(prefix)}


def apply(session: Any, compiled: Any, graph: Any, write: Callable[[str], Any] = print) -> list[str]:
    """Make the graph's monitors what ``compiled`` says, all or nothing; return the watched tables."""
    if session is None:
        return []
    monitors = planned_monitors(graph, compiled.dag.name)
    where = _where(compiled)
    try:
        existing = existing_tables(session, where, compiled.dag.name)
    except Exception as exc:
        if not monitors:
            return []  # nothing to apply, and no way to tell whether an earlier deploy left watched tables
        raise MonitorDeployError(f"listing the watched tables in {where} failed ({first_line(exc)}); "
                                 "the monitors were left as they were") from exc
    if not monitors and not existing:
        return []
    made: list[str] = []
    moved: list[tuple[str, str, bool]] = []  # (staging, final, swapped)

    def run(sql: str) -> None:
        session.sql(sql).collect()

    try:
        for m in monitors:
            staging = _staging(m.table)
            made.append(f"{where}.{staging}")
            for sql in statements(m, where, staging):
                run(sql)
        for m in monitors:
            staging, final = f"{where}.{_staging(m.table)}", f"{where}.{m.table}"
            swap = m.table in existing
            run(f"ALTER TABLE {staging} SWAP WITH {final}" if swap else f"ALTER TABLE {staging} RENAME TO {final}")
            moved.append((staging, final, swap))
    except BaseException as exc:
        undo = _undo(run, moved, made)
        if _unsupported(exc):
            raise MonitorDeployError(
                f"this account does not support Data Metric Functions ({first_line(exc)}): monitors need Snowflake "
                f"Enterprise Edition or higher; remove monitor= from sp.expect to deploy without them; {undo}"
            ) from exc
        raise MonitorDeployError(f"applying the monitors failed ({first_line(exc)}); {undo}") from exc
    for staging, _, swap in moved:  # committed: the old watched tables (now at the staging names) go
        if swap:
            _quietly(run, f"DROP TABLE IF EXISTS {staging}")
    for stale in sorted(existing - {m.table for m in monitors}):
        _quietly(run, f"DROP TABLE IF EXISTS {where}.{stale}")
    if monitors:
        write(f"monitors: {len(monitors)} watched table(s), "
              f"{sum(len(m.plan.metrics) for m in monitors)} Data Metric Function(s) with expectations in {where}")
    return [m.table for m in monitors]


def _quietly(run: Callable[[str], None], sql: str) -> bool:
    try:
        run(sql)
        return True
    except Exception:
        return False


def _undo(run: Callable[[str], None], moved: list[tuple[str, str, bool]], made: list[str]) -> str:
    """Swap back, rename back and drop what was made; say whether everything was undone."""
    ok = True
    for staging, final, swap in reversed(moved):
        ok &= _quietly(run, f"ALTER TABLE {staging} SWAP WITH {final}" if swap else f"ALTER TABLE {final} RENAME TO {staging}")
    for table in made:
        ok &= _quietly(run, f"DROP TABLE IF EXISTS {table}")
    if ok:
        return "the monitors were left as they were"
    return f"undoing it failed too: check the tables {', '.join(made)} (drop them) and their watched tables"


def remove(session: Any, where: str, dag_name: str) -> list[str]:
    """Drop the graph's watched tables (their DMF associations go with them): the undeploy's part."""
    try:
        tables = existing_tables(session, where, dag_name)
    except Exception:
        return []  # cannot list them: the graph is gone either way
    run = lambda sql: session.sql(sql).collect()  # noqa: E731
    return [t for t in sorted(tables) if _quietly(run, f"DROP TABLE IF EXISTS {where}.{t}")]


def rehearse_lines(session: Any, compiled: Any) -> list[str]:
    """What the monitors would report now on the emulator's watched tables (the same metric SQL)."""
    monitors = planned_monitors(compiled.graph, compiled.dag.name)
    if not monitors:
        return []
    lines = ["monitors (the DMFs' metrics evaluated on the emulator's watched tables):"]
    for m in monitors:
        try:
            results = evaluate(session, m.table, m.plan)
        except Exception as exc:
            lines.append(f"  {m.table}: not evaluated ({first_line(exc)})")
            continue
        bad = [r for r in results if r["violated"]]
        lines.append(f"  {m.table} ({m.label}): {len(results) - len(bad)} of {len(results)} expectation(s) met")
        for r in results:
            lines.append(f"    {r['expectation']:<32} value {r['value']:<8} {r['expression']:<30} "
                         + ("VIOLATED" if r["violated"] else "ok"))
    return lines


__all__ = ["MonitorDeployError", "PlannedMonitor", "apply", "existing_tables", "plan_lines", "planned_monitors",
           "rehearse_lines", "remove", "statements"]
