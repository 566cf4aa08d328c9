"""A deployed graph's recent runs, read from Snowflake's history in the form of :mod:`run_history`.

Two read-only queries (Snowflake docs: "COMPLETE_TASK_GRAPHS" and "TASK_HISTORY", Information Schema
table functions; "EXECUTE TASK" for the retry):

* ``INFORMATION_SCHEMA.COMPLETE_TASK_GRAPHS(ROOT_TASK_NAME => ..., RESULT_LIMIT => ...)``: one row per
  completed graph run of the last 60 minutes (state, scheduled time, first error task and message,
  config, GRAPH_RUN_GROUP_ID; a retry is a new row of the same group, ATTEMPT_NUMBER + 1);
* ``INFORMATION_SCHEMA.TASK_HISTORY(SCHEDULED_TIME_RANGE_START => <7 days ago>, RESULT_LIMIT => 10000)``
  filtered to those run groups: each task's state, RETURN_VALUE (a gate's branch, a stage's output
  pointer), ERROR_MESSAGE and CONDITION_TEXT (where the branches are read from).

Older runs are in ``SNOWFLAKE.ACCOUNT_USAGE`` (longer, delayed up to 45 minutes), not read here.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pytest_snowpipe.reports.run_history import GraphRun, RunHistoryError, TaskRow, gates_of, short_name

HISTORY_WINDOW = "60 minutes of COMPLETE_TASK_GRAPHS, 7 days of TASK_HISTORY"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def _ident(value: str, what: str) -> str:
    if not _IDENT.match(value or ""):
        raise RunHistoryError(f"{what} {value!r} is not an unquoted Snowflake identifier (letters, digits, _ and $)")
    return value.upper()


def graphs_sql(database: str, schema: str, dag: str, limit: int) -> str:
    """The COMPLETE_TASK_GRAPHS query (identifiers checked, so they are safe to inline)."""
    db, sch, root = _ident(database, "database"), _ident(schema, "schema"), _ident(dag, "dag name")
    return (
        "SELECT GRAPH_RUN_GROUP_ID, STATE, SCHEDULED_TIME, QUERY_START_TIME, COMPLETED_TIME, FIRST_ERROR_TASK_NAME, "
        "FIRST_ERROR_MESSAGE, CONFIG, ATTEMPT_NUMBER "
        f"FROM TABLE({db}.INFORMATION_SCHEMA.COMPLETE_TASK_GRAPHS(ROOT_TASK_NAME => '{root}', "
        f"RESULT_LIMIT => {int(limit)})) "
        f"WHERE DATABASE_NAME = '{db}' AND SCHEMA_NAME = '{sch}' ORDER BY SCHEDULED_TIME DESC"
    )


def tasks_sql(database: str, schema: str, groups: list[str]) -> str:
    """The TASK_HISTORY query for the tasks of these graph run groups."""
    db, sch = _ident(database, "database"), _ident(schema, "schema")
    ids = ", ".join("'" + g.replace("'", "''") + "'" for g in groups)
    return (
        "SELECT NAME, STATE, RETURN_VALUE, ERROR_MESSAGE, CONDITION_TEXT, QUERY_START_TIME, COMPLETED_TIME, "
        "GRAPH_RUN_GROUP_ID, ATTEMPT_NUMBER "
        f"FROM TABLE({db}.INFORMATION_SCHEMA.TASK_HISTORY(SCHEDULED_TIME_RANGE_START => "
        "DATEADD('DAY', -7, CURRENT_TIMESTAMP()), RESULT_LIMIT => 10000)) "
        f"WHERE DATABASE_NAME = '{db}' AND SCHEMA_NAME = '{sch}' AND GRAPH_RUN_GROUP_ID IN ({ids}) "
        "ORDER BY QUERY_START_TIME"
    )


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _seconds(start: Any, end: Any) -> float | None:
    a, b = _time(start), _time(end)
    return None if a is None or b is None else round((b - a).total_seconds(), 3)


def _config(value: Any) -> dict[str, Any]:
    import json

    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value) if value else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def fetch_runs(session: Any, database: str, schema: str, dag: str, limit: int = 20) -> list[GraphRun]:
    """The graph's completed runs, newest first, each with its tasks (the latest attempt of each)."""
    rows = [r.as_dict() for r in session.sql(graphs_sql(database, schema, dag, limit)).collect()]
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:  # a retried run: one row per attempt, the same group id
        group = str(row["GRAPH_RUN_GROUP_ID"])
        if group not in latest or int(row.get("ATTEMPT_NUMBER") or 1) > int(latest[group].get("ATTEMPT_NUMBER") or 1):
            latest[group] = row
    if not latest:
        return []
    task_rows = [r.as_dict() for r in session.sql(tasks_sql(database, schema, list(latest))).collect()]
    by_group: dict[str, dict[str, TaskRow]] = {g: {} for g in latest}
    for t in task_rows:
        group = str(t["GRAPH_RUN_GROUP_ID"])
        name = short_name(dag, str(t["NAME"]))
        if group in by_group:  # later attempts (a retry) replace earlier rows of a task
            by_group[group][name] = TaskRow(
                name=name, state=str(t["STATE"]), return_value=t.get("RETURN_VALUE"), error=t.get("ERROR_MESSAGE"),
                duration_s=_seconds(t.get("QUERY_START_TIME"), t.get("COMPLETED_TIME")), condition=t.get("CONDITION_TEXT"),
            )
    runs = []
    for group, row in latest.items():
        tasks = list(by_group[group].values())
        scheduled = _time(row.get("SCHEDULED_TIME"))
        first = row.get("FIRST_ERROR_TASK_NAME")
        runs.append(GraphRun(
            run_id=group, dag=dag.upper(), source="snowflake", state=str(row["STATE"]),
            scheduled=scheduled.isoformat() if scheduled else str(row.get("SCHEDULED_TIME")),
            duration_s=_seconds(row.get("QUERY_START_TIME"), row.get("COMPLETED_TIME")),
            first_error_task=short_name(dag, str(first)) if first else None,
            first_error_message=row.get("FIRST_ERROR_MESSAGE"), config=_config(row.get("CONFIG")),
            tasks=tasks, gates=gates_of(dag, tasks), database=database.upper(), schema=schema.upper(),
            stages={t.name.lower(): t.name for t in tasks if _is_pointer(t.return_value)},
        ))
    return sorted(runs, key=lambda r: r.scheduled, reverse=True)


def _is_pointer(text: str | None) -> bool:
    return bool(text) and str(text).startswith('{"kind"')


__all__ = ["HISTORY_WINDOW", "fetch_runs", "graphs_sql", "tasks_sql"]
