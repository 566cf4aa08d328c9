"""Issue 26 items 3 and 4 on the account side: the SQL sent for a deployed graph's runs, answered by the offline
account (real connector and Snowpark), `snowpipe runs` and `--snowpipe-replay` over it; live where an account is set."""
from __future__ import annotations

import json
import os

import pytest

from pytest_snowpipe.doubles.offline_account import OfflineAccount
from pytest_snowpipe.engines.connection import account_configured
from pytest_snowpipe.reports.cli import parser
from pytest_snowpipe.reports.runs_cli import run_command
from tests.conftest import connections_home
from tests.reports.test_replay import GATE, INI, STAGES

ROOT = "SNOWPIPE_PIPELINE"


def _branch(name: str) -> str:
    return f"SYSTEM$GET_PREDECESSOR_RETURN_VALUE('{ROOT}$TEST_GATE') = '{name}'"


def _pointer(value: object) -> str:
    return json.dumps({"kind": "json", "value": value}, separators=(",", ":"))


def record_runs(account: OfflineAccount) -> tuple[str, str]:
    """Two completed runs of the deployed graph: one whose gate took on_fail, one whose MODEL failed."""
    gated = account.add_graph_run(ROOT, "SUCCEEDED", scheduled_time="2026-12-06T10:00:00.000+00:00", duration_s=42,
                                  config='{"threshold": 5.0, "explode": false}')
    for name, state, value, condition in (
        ("RAW", "SUCCEEDED", '{"kind":"table","name":"SNOWPIPE_SNOWPIPE_PIPELINE_RAW_0A1B2C3D"}', None),
        ("MODEL", "SUCCEEDED", _pointer({"weights": 10}), None),
        ("METRICS", "SUCCEEDED", _pointer({"score": 1.0}), None),
        ("TEST_GATE", "SUCCEEDED", "TEST_GATE_ALERT", None),
        ("TEST_GATE_PROMOTE", "SKIPPED", None, _branch("TEST_GATE_PROMOTE")),
        ("TEST_GATE_ALERT", "SUCCEEDED", "notified", _branch("TEST_GATE_ALERT")),
    ):
        account.add_task_run(gated, f"{ROOT}${name}", state, return_value=value, condition_text=condition, duration_s=3)
    failed = account.add_graph_run(ROOT, "FAILED", scheduled_time="2026-12-06T11:00:00.000+00:00", duration_s=7,
                                   config='{"threshold": 0.5, "explode": true}', first_error_task_name=f"{ROOT}$MODEL",
                                   first_error_message="RuntimeError: training diverged")
    account.add_task_run(failed, f"{ROOT}$RAW", "SUCCEEDED", return_value='{"kind":"table","name":"SNOWPIPE_X_RAW_1"}')
    account.add_task_run(failed, f"{ROOT}$MODEL", "FAILED", error_message="RuntimeError: training diverged")
    account.add_task_run(failed, f"{ROOT}$TEST_GATE_PROMOTE", "SKIPPED", condition_text=_branch("TEST_GATE_PROMOTE"))
    return gated["graph_run_group_id"], failed["graph_run_group_id"]


def test_runs_come_from_complete_task_graphs_and_task_history(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ini file: the default dag name, the connection's database and schema
    with OfflineAccount(schemas=["DB.S"]) as account:
        gated, failed = record_runs(account)
        lines = run_command(parser().parse_args(["runs", "--connection", "offline"]), lambda name: account.session())
        sql = [c.sql for c in account.sql_calls()]
        detail = run_command(parser().parse_args(["runs", failed[:12], "--connection", "offline"]), lambda name: account.session())
        with pytest.raises(Exception, match="is not in the history of DB.S.SNOWPIPE_PIPELINE: it does not exist or is older"):
            run_command(parser().parse_args(["runs", "nope", "--connection", "offline"]), lambda name: account.session())
    history = next(s for s in sql if "COMPLETE_TASK_GRAPHS" in s)
    assert "FROM TABLE(DB.INFORMATION_SCHEMA.COMPLETE_TASK_GRAPHS(ROOT_TASK_NAME => 'SNOWPIPE_PIPELINE', RESULT_LIMIT => 20))" in history
    assert "WHERE DATABASE_NAME = 'DB' AND SCHEMA_NAME = 'S'" in history and "GRAPH_RUN_GROUP_ID" in history
    tasks = next(s for s in sql if "TASK_HISTORY" in s)
    assert "RETURN_VALUE" in tasks and "CONDITION_TEXT" in tasks and f"'{gated}'" in tasks and f"'{failed}'" in tasks
    assert lines[0].startswith("2 run(s) of the history of DB.S.SNOWPIPE_PIPELINE")
    newest, older = lines[2], lines[3]  # newest first
    assert newest.startswith(failed) and "FAILED" in newest and " MODEL " in newest and "7.0s" in newest
    assert older.startswith(gated) and "TEST_GATE -> TEST_GATE_ALERT (score=1.0000)" in older and "42.0s" in older
    assert "2026-12-06 10:00:00" in older and older.rstrip().endswith("snowflake")
    assert any("RuntimeError: training diverged" in line for line in detail)
    assert detail[-1] == (f"retry it in Snowflake (from its failed tasks, within 14 days): EXECUTE TASK DB.S.SNOWPIPE_PIPELINE "
                          f"RETRY GRAPH RUN GROUP '{failed}'  (it is the latest run: EXECUTE TASK DB.S.SNOWPIPE_PIPELINE "
                          "RETRY LAST does the same)")


def test_replay_a_deployed_run_from_the_account(pytester: pytest.Pytester, tmp_path, monkeypatch):
    """The gated run: its config and the metrics its task returned are given, the gate fails the same way locally.
    The failed run: RAW's table is gone from the (offline) account, so it is computed here and MODEL fails the same way;
    the retry statement names the run's group."""
    pytester.makeconftest(STAGES)
    pytester.makepyfile(test_gate=GATE)
    pytester.makefile(".ini", pytest=INI)
    with OfflineAccount(schemas=["DB.S"]) as account:
        gated, failed = record_runs(account)
        monkeypatch.setenv("SNOWFLAKE_HOME", str(connections_home(tmp_path, account.connection_parameters("DB", "S"))))
        first = pytester.runpytest_subprocess(f"--snowpipe-replay={gated}", "--snowpipe-connection", "offline")
        second = pytester.runpytest_subprocess(f"--snowpipe-replay={failed}", "--snowpipe-connection", "offline")
    assert first.ret == 1, first.stdout.str()
    first.stdout.fnmatch_lines(["*assert 1.0 >= 5.0*", "metrics * ok * cached*",
                                f"replayed run {gated} of SNOWPIPE_PIPELINE (snowflake, SUCCEEDED)",
                                "given from the run: model, metrics*",
                                f"run {gated} SUCCEEDED: Snowflake retries only a FAILED or CANCELLED run"])
    assert second.ret == 1, second.stdout.str()
    second.stdout.fnmatch_lines(["*RuntimeError: training diverged*", "raw * ok * computed*",
                                 "not given, cleaned by the finalizer: raw;*",
                                 f"*EXECUTE TASK DB.S.SNOWPIPE_PIPELINE RETRY GRAPH RUN GROUP '{failed}'*"])


@pytest.mark.skipif(not account_configured(), reason="no Snowflake account configured (connections.toml / "
                    "SNOWFLAKE_CONNECTION_NAME): the history of a deployed graph is read only from a real account")
def test_live_history_reads(monkeypatch, tmp_path):  # pragma: no cover - account
    """Against a real account the two queries run (the graph may have no runs: then the listing says so)."""
    monkeypatch.chdir(tmp_path)
    name = os.environ.get("SNOWFLAKE_CONNECTION_NAME") or "default"
    lines = run_command(parser().parse_args(["runs", "--connection", name]))
    assert lines and ("run(s) of the history of" in lines[0] or lines[0].startswith("no run in the history of"))


def test_snowpipe_runs_shows_the_monitors_latest_results():
    """The runs command reads the graph's watched tables and each expectation's latest result."""
    from pytest_snowpipe.doubles.offline_account import OfflineAccount
    from pytest_snowpipe.reports.runs_cli import monitor_lines
    from pytest_snowpipe.taskgraph.monitor_tables import monitor_table

    table = monitor_table("PIPE", "raw")
    with OfflineAccount(schemas=["DB.SCH"]) as account:
        session = account.session("DB", "SCH")
        try:
            assert monitor_lines(session, "DB", "SCH", "PIPE") == [
                "monitors: none deployed (sp.expect(contract, monitor=...) deploys one)"]
            session.sql(f'CREATE TABLE DB.SCH.{table} ("ID" NUMBER(38,0))').collect()
            assert "no result yet" in monitor_lines(session, "DB", "SCH", "PIPE")[0]
            account.monitors.results.append({
                "table_database": "DB", "table_schema": "SCH", "table_name": table, "metric_name": "NULL_COUNT",
                "expectation_name": "ID_NULLABLE", "expectation_expression": "VALUE = 0", "value": "2",
                "expectation_violated": True, "measurement_time": "2026-12-06 10:00:00"})
            lines = monitor_lines(session, "DB", "SCH", "PIPE")
        finally:
            session.close()
    assert lines[0] == "monitors (latest result of each expectation):"
    assert table in lines[1] and "ID_NULLABLE" in lines[1] and "VIOLATED" in lines[1] and "value 2" in lines[1]
