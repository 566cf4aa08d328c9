"""``snowpipe runs``: the deployed graph's recent runs, or the emulated ones kept offline.

A console command rather than a pytest option: listing runs needs neither the suite collected nor
its libraries imported (a pytest option would import every stage's code first), and it sits with the
registry's other look-around commands. It reads the ini keys the deploy reads (``snowpipe_connection``,
``snowpipe_dag_name``, ``snowpipe_database``, ``snowpipe_schema``, ``snowpipe_runs_dir``) from the
project's pytest ini file (``pytest.ini``, ``pyproject.toml``, ``tox.ini`` or ``setup.cfg`` found from the
current folder upwards, as pytest finds it); options override them.

With a connection (``--connection``, ini ``snowpipe_connection`` or ``$SNOWFLAKE_CONNECTION_NAME``)
the runs come from Snowflake's history (:mod:`account_runs`); without one, or with ``--local``, from
the runs the emulator kept (:mod:`run_history`).
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pytest_snowpipe.reports.run_history import (
    HISTORY_KEEP,
    GraphRun,
    RunHistoryError,
    format_run,
    format_runs,
    kept_runs,
    pick,
    retry_command,
)

KEYS = ("snowpipe_connection", "snowpipe_dag_name", "snowpipe_database", "snowpipe_schema", "snowpipe_runs_dir")


def find_ini(start: Path) -> tuple[Path, dict[str, str]] | None:
    """The first pytest ini file from ``start`` upwards and the snowpipe keys it sets (pytest's order per folder)."""
    import tomllib

    import iniconfig

    for folder in (start, *start.parents):
        for name, section in (("pytest.ini", "pytest"), (".pytest.ini", "pytest"), ("pyproject.toml", None),
                              ("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
            path = folder / name
            if not path.is_file():
                continue
            if section is None:
                tool = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("pytest", {})
                options = tool.get("ini_options", tool) if isinstance(tool, dict) else None
                if isinstance(options, dict) and options:
                    return path, {k: str(v) for k, v in options.items() if k in KEYS}
                continue
            ini = iniconfig.IniConfig(str(path))
            if section in ini or name in ("pytest.ini", ".pytest.ini"):
                return path, {k: str(ini[section][k]).strip() for k in KEYS if section in ini and k in ini[section]}
    return None


def add_parser(sub: Any) -> None:
    s = sub.add_parser("runs", help="the deployed Task Graph's recent runs (or the emulated ones kept offline); "
                       "with RUN: that run's tasks and the statement that retries it")
    s.add_argument("run", nargs="?", help="a run id (or a unique start of one, or 'last'): show it in detail")
    s.add_argument("--connection", metavar="NAME", help="Snowflake connection from connections.toml "
                   "(default: ini snowpipe_connection, else $SNOWFLAKE_CONNECTION_NAME)")
    s.add_argument("--dag", metavar="NAME", help="the Task Graph's root task (default: ini snowpipe_dag_name)")
    s.add_argument("--database", help="default: ini snowpipe_database, else the connection's")
    s.add_argument("--schema", help="default: ini snowpipe_schema, else the connection's")
    s.add_argument("--runs-dir", metavar="DIR", help="the emulated runs' folder (default: ini snowpipe_runs_dir)")
    s.add_argument("--local", action="store_true", help="list the emulated runs kept here even with a connection")
    s.add_argument("--limit", type=int, default=20, help="at most this many runs (default 20)")


def run_command(args: argparse.Namespace, session_for: Callable[[str], Any] | None = None) -> list[str]:
    """The lines ``snowpipe runs`` prints; RunHistoryError (and the CLI's usage errors) for bad input."""
    found = find_ini(Path.cwd())
    root, ini = (found[0].parent, found[1]) if found else (Path.cwd(), {})
    if args.limit < 1:
        raise RunHistoryError(f"--limit {args.limit}: give at least 1")
    dag = (args.dag or ini.get("snowpipe_dag_name") or "SNOWPIPE_PIPELINE").upper()
    connection = None if args.local else (
        args.connection or ini.get("snowpipe_connection") or os.environ.get("SNOWFLAKE_CONNECTION_NAME"))
    if connection:
        return _account(args, connection, dag, ini, session_for)
    folder = Path(args.runs_dir or ini.get("snowpipe_runs_dir") or ".snowpipe/runs").expanduser()
    folder = folder if folder.is_absolute() else (Path.cwd() if args.runs_dir else root) / folder
    runs = kept_runs(folder, dag)
    where = f"the emulated runs of {dag} kept in {folder}"
    return _lines(runs, args, where, f"the last {HISTORY_KEEP} emulated runs of each graph", latest_failed=False)


def _account(args: argparse.Namespace, connection: str, dag: str, ini: dict[str, str],
             session_for: Callable[[str], Any] | None) -> list[str]:
    from pytest_snowpipe.reports.account_runs import HISTORY_WINDOW, fetch_runs

    if session_for is None:
        from pytest_snowpipe.engines.connection import create_session

        session_for = create_session
    session = session_for(connection)
    try:
        database = (args.database or ini.get("snowpipe_database") or session.get_current_database() or "").strip('"')
        schema = (args.schema or ini.get("snowpipe_schema") or session.get_current_schema() or "").strip('"')
        try:
            runs = fetch_runs(session, database, schema, dag, limit=args.limit)
        except RunHistoryError:
            raise
        except Exception as exc:  # e.g. no privilege on the tasks: say what was read and what is needed
            raise RunHistoryError(
                f"reading the task history of {database}.{schema}.{dag} failed: {type(exc).__name__}: {exc}; the role "
                "needs OWNERSHIP, MONITOR or OPERATE on the tasks (or MONITOR EXECUTION) and USAGE on the database and schema"
            ) from None
        latest_failed = bool(runs) and runs[0].state in ("FAILED", "CANCELLED")
        lines = _lines(runs, args, f"the history of {database}.{schema}.{dag}", HISTORY_WINDOW, latest_failed)
        if not args.run:  # the listing ends with the monitors; one run's view ends with its retry command
            lines += monitor_lines(session, database, schema, dag)
    finally:
        session.close()
    return lines


def _lines(runs: Sequence[GraphRun], args: argparse.Namespace, where: str, keeps: str, latest_failed: bool) -> list[str]:
    if args.run:
        run = pick(runs, args.run, where, keeps)
        return [*format_run(run), retry_command(run, latest_failed and runs[0] is run)]
    if not runs:
        return [f"no run in {where} (it keeps {keeps})"]
    return [f"{len(runs[: args.limit])} run(s) of {where}, newest first", *format_runs(runs[: args.limit])]


def monitor_lines(session: Any, database: str, schema: str, dag: str) -> list[str]:
    """The latest result of every expectation on the graph's watched tables (its contracts' monitors)."""
    from pytest_snowpipe.contracts.monitors import latest_monitor_results
    from pytest_snowpipe.taskgraph.monitors_deploy import existing_tables

    try:
        tables = existing_tables(session, f"{database}.{schema}", dag)
        rows = latest_monitor_results(session, [f"{database}.{schema}.{t}" for t in sorted(tables)])
    except Exception as exc:  # an account without DMFs, or no privilege on the results view: say so, keep the runs
        return [f"monitors: unavailable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"]
    if not tables:
        return ["monitors: none deployed (sp.expect(contract, monitor=...) deploys one)"]
    if not rows:
        return [f"monitors on {', '.join(sorted(tables))}: no result yet (the first scheduled evaluation is pending)"]
    out = ["monitors (latest result of each expectation):"]
    for row in rows:
        verdict = "VIOLATED" if row["violated"] else "met"
        out.append(f"  {row['table'].split('.')[-1]:<40} {row['expectation']:<32} {verdict:<8} value {row['value']} "
                   f"at {row['measured_at']}")
    return out


__all__ = ["add_parser", "find_ini", "monitor_lines", "run_command"]
