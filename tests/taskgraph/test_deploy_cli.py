"""`pytest --snowpipe-deploy ...`: options validated in one place; dry-run and local target end to end."""
from __future__ import annotations

import pytest

from conftest import PURE_STAGES


def xgboost_version() -> str:
    """The installed xgboost module's version (its distribution is xgboost, or xgboost-cpu on Linux)."""
    import xgboost

    return str(xgboost.__version__)

# the shared tiny pipeline, with `raw` as a yield fixture whose teardown leaves a mark
YIELD_STAGES = "import pathlib\n" + PURE_STAGES.replace(
    "    return [1, 2, 3, 4]", '    yield [1, 2, 3, 4]\n    pathlib.Path("finalized.txt").write_text("cleaned")'
)


def test_dry_run_prints_the_plan(pipeline_suite):
    result = pipeline_suite(conftest=YIELD_STAGES).runpytest("--snowpipe-deploy", "--snowpipe-dry-run", "--schedule", "30m")
    assert result.ret == 0
    out = result.stdout.str()
    for expected in ("RAW ", "MODEL ", "METRICS ", "TEST_GATE ", "branch", "TEST_GATE_PROMOTE", "TEST_GATE_ALERT",
                     "SNOWPIPE_FINALIZER", "finalizer", "flowchart", "every 30 minutes",
                     "SYSTEM$GET_PREDECESSOR_RETURN_VALUE('SNOWPIPE_PIPELINE$TEST_GATE') = 'TEST_GATE_PROMOTE'"):
        assert expected in out, expected
    assert "snowpipe pipeline" not in out  # no local run happened


def test_local_target_runs_the_compiled_graph(pipeline_suite):
    pytester = pipeline_suite(conftest=YIELD_STAGES)
    result = pytester.runpytest_subprocess("--snowpipe-deploy", "--snowpipe-target", "local")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["task graph SNOWPIPE_PIPELINE: SUCCEEDED*", "*TEST_GATE_ALERT*SKIPPED*"])
    assert (pytester.path / "finalized.txt").read_text() == "cleaned"
    # the engine's own library warnings (DuckDB on fakesnow's result copy) are not the user's
    assert "Arrow output on a DB-API result" not in result.stdout.str() + result.stderr.str()


def test_local_target_failing_gate_is_a_failed_run_and_the_report_says_so(pipeline_suite):
    """Every task SUCCEEDED, but the gate took on_fail (alert): the verdict is the gate's, exit 1."""
    import json

    pytester = pipeline_suite(conftest=YIELD_STAGES)
    result = pytester.runpytest_subprocess("--snowpipe-deploy", "--snowpipe-target", "local", "--snowpipe-config", "threshold=5",
                                "--snowpipe-report=out")
    assert result.ret == 1, result.stdout.str()
    result.stdout.fnmatch_lines(["*TEST_GATE_PROMOTE*SKIPPED*", "*TEST_GATE_ALERT*SUCCEEDED*", "*SNOWPIPE_FINALIZER*SUCCEEDED*",
                                 "quality gate test_gate FAILED: its branch took on_fail (TEST_GATE_ALERT); exit 1"])
    assert (pytester.path / "finalized.txt").read_text() == "cleaned"
    assert not (pytester.path / ".snowpipe" / "registry" / "model").exists()
    report = json.loads((pytester.path / "out" / "report.json").read_text())
    assert report["verdict"] == "FAIL" and "test_gate took its on_fail branch" in report["verdict_reason"]
    run = report["task_graph_runs"][-1]
    assert run["state"] == "SUCCEEDED" and run["failed_gates"] == ["test_gate"]
    alert = next(t for t in run["tasks"] if t["name"] == "TEST_GATE_ALERT")
    assert alert["state"] == "SUCCEEDED" and alert["duration_s"] is not None and alert["return_value"]
    assert "## Task Graph run SNOWPIPE_PIPELINE: SUCCEEDED" in (pytester.path / "out" / "report.md").read_text()


def test_local_target_never_touches_the_users_registry(pipeline_suite):
    pytester = pipeline_suite(conftest=YIELD_STAGES)
    result = pytester.runpytest_subprocess("--snowpipe-deploy", "--snowpipe-target", "local")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*TEST_GATE_PROMOTE*SUCCEEDED*"])
    assert not (pytester.path / ".snowpipe" / "registry").exists()


def test_local_target_failing_stage_exits_nonzero(pipeline_suite, monkeypatch):
    """The failed task's traceback is shown, and a secret its error quotes is not."""
    monkeypatch.setenv("SNOWPIPE_TEST_API_TOKEN", "s3cr3t-Value-42")
    conftest = YIELD_STAGES.replace(
        'return {"weights": sum(raw)}',
        'raise RuntimeError("diverged, key " + __import__("os").environ["SNOWPIPE_TEST_API_TOKEN"])')
    pytester = pipeline_suite(conftest=conftest)
    result = pytester.runpytest_subprocess("--snowpipe-deploy", "--snowpipe-target", "local")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["task graph SNOWPIPE_PIPELINE: FAILED*first error: MODEL*", "*SNOWPIPE_FINALIZER*SUCCEEDED*",
                                 "traceback of task MODEL*", "*RuntimeError: diverged, key <redacted>"])
    assert "s3cr3t-Value-42" not in result.stdout.str() + result.stderr.str()
    assert (pytester.path / "finalized.txt").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--snowpipe-deploy", "--schedule", "0m"], "--schedule: "),
        (["--snowpipe-deploy", "--schedule", "9s"], "--schedule: "),
        (["--snowpipe-deploy", "--schedule", "9d"], "maximum"),
        (["--snowpipe-deploy", "--schedule", "abc"], "Valid forms"),
        (["--snowpipe-deploy", "--snowpipe-target", "mars"], "'mars' is not a valid target. Valid targets: local, snowflake"),
        (["--schedule", "30m"], "--schedule only apply with --snowpipe-deploy"),
        (["--snowpipe-deploy", "--snowpipe-run", "--schedule", "30m"], "--snowpipe-run executes the deployed graph and needs a Snowflake account"),
        (["--snowpipe-deploy", "--snowpipe-dag-name", "my-dag"], "'my-dag' is not a valid unquoted Snowflake identifier"),
        (["--snowpipe-undeploy"], "--snowpipe-undeploy only apply with --snowpipe-deploy"),
        (["--snowpipe-deploy", "--snowpipe-undeploy"], "--snowpipe-undeploy needs a Snowflake account: pass --snowpipe-connection"),
        (["--snowpipe-deploy", "--snowpipe-undeploy", "--snowpipe-dry-run"], "--snowpipe-undeploy works on the account alone"),
        (["--snowpipe-deploy", "--snowpipe-write-packages-snapshot=p.json"], "--snowpipe-write-packages-snapshot needs a Snowflake account"),
        (["--snowpipe-deploy", "--snowpipe-write-packages-snapshot=p.json", "--snowpipe-target", "local"],
         "--snowpipe-write-packages-snapshot works on the account alone"),
    ],
)
def test_bad_deploy_options(pipeline_suite, args, expected):
    result = pipeline_suite().runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert expected in result.stderr.str()


def test_run_without_schedule(pipeline_suite, monkeypatch, tmp_path):
    home = tmp_path / "sf"
    home.mkdir()
    (home / "connections.toml").write_text('[dev]\naccount = "x"\n')
    monkeypatch.setenv("SNOWFLAKE_HOME", str(home))
    result = pipeline_suite().runpytest("--snowpipe-deploy", "--snowpipe-run", "--snowpipe-connection", "dev")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--snowpipe-run needs --schedule" in result.stderr.str()


def test_deploy_to_snowflake_without_connection_is_a_usage_error(pipeline_suite):
    result = pipeline_suite().runpytest("--snowpipe-deploy", "--schedule", "30m")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "connection" in result.stderr.str().lower()


def test_examples_plan_declares_pinned_packages_pools_and_the_integration():
    """The README's dry-run command on examples/: xgboost and scikit-learn pinned, the ML Job's pool, the integration."""
    import subprocess
    import sys
    from importlib.metadata import version
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "examples/", "-p", "no:cacheprovider", "--snowpipe-deploy", "--snowpipe-dry-run"],
        cwd=repo, capture_output=True, text=True, timeout=600,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for line in (f"xgboost=={xgboost_version()}", f"scikit-learn=={version('scikit-learn')}",
                 "notify:     SNOWPIPE_ALERTS",
                 "ML Job SNOWPIPE_PIPELINE_MODEL on compute pool DEMO_POOL, job stage JOB_STAGE, 2 instance(s)",
                 "checked against the bundled snapshot (a guess, not your account)",
                 "monitors:   1 watched table(s) in <database>.<schema>",  # the raw table's contract, sp.expect(monitor=)
                 "-> SNOWPIPE_SNOWPIPE_PIPELINE_LOANS_LATEST  DATA_METRIC_SCHEDULE = '60 MINUTE'"):
        assert line in out, line
    assert "pytest==" not in out


def test_readme_deploy_command_on_examples_against_the_offline_account(tmp_path):
    """`pytest examples/ --snowpipe-deploy --schedule 30m --snowpipe-connection NAME`, as the README writes it,
    with NAME in connections.toml pointing at the offline account (real connector, Snowpark, snowflake.core,
    snowflake-ml-python's job registration), whose channel lags this machine by one release; only
    snowpipe_schema is set (the database comes from the connection)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from pytest_snowpipe.doubles.offline_account import OfflineAccount
    from pytest_snowpipe.doubles.shipped import parse_ml_job
    from tests.conftest import connections_home
    from tests.taskgraph.test_first_contact import lagging_snapshot

    repo = Path(__file__).resolve().parents[2]
    with OfflineAccount(schemas=["DB.SCH", "DB.PUBLIC"], stages=["DB.SCH.SNOWPIPE_STAGE", "DB.SCH.JOB_STAGE"],
                        compute_pools=["DEMO_POOL"], packages_snapshot=lagging_snapshot(tmp_path / "lag.json")) as account:
        home = connections_home(tmp_path, account.connection_parameters("DB", "PUBLIC"))
        env = dict(os.environ, SNOWFLAKE_HOME=str(home))
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "examples/", "-p", "no:cacheprovider", "--snowpipe-deploy", "--schedule", "30m",
             "--snowpipe-connection", "offline", "-o", "snowpipe_schema=SCH"],
            cwd=repo, env=env, capture_output=True, text=True, timeout=900,
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        assert "deployed Task Graph SNOWPIPE_PIPELINE to DB.SCH (16 tasks)" in result.stdout
        assert len(account.task_names(schema="SCH")) == 16
        metrics = account.task("SNOWPIPE_PIPELINE$WINE_METRICS", schema="SCH")
        assert metrics["state"] == "started" and "'xgboost==3.0.2'" in metrics["definition"]  # 3.2.0 lags: nearest lower
        assert "IMPORTS=('@DB.SCH.SNOWPIPE_STAGE/" in metrics["definition"]  # qualified with the connection's database
        assert f"warning: package xgboost: the rehearsal runs {xgboost_version()}, Snowflake gets 3.0.2" in result.stdout
        job = parse_ml_job("MODEL", account.task("SNOWPIPE_PIPELINE$MODEL", schema="SCH")["definition"])
        assert job["pool"] == "DEMO_POOL" and job["options"]["TARGET_INSTANCES"] == 2 and job["options"]["ASYNC"] is False
        assert job["spec"]["STAGE_PATH"].startswith("@DB.SCH.JOB_STAGE/")
        assert job["spec"]["STAGE_PATH"].endswith("/SNOWPIPE_PIPELINE_MODEL")
        assert account.task_names(schema="PUBLIC") == []
        # the raw table's contract deployed as a monitor: in the double's SQL log, with what the rehearsal saw
        watched = account.monitors.tables[("DB", "SCH", "SNOWPIPE_SNOWPIPE_PIPELINE_LOANS_LATEST")]
        assert watched.schedule == "60 MINUTE" and len(watched.metrics) == 17
        sql = [c.sql for c in account.sql_calls()]
        assert ('ALTER TABLE DB.SCH.SNOWPIPE_SNOWPIPE_PIPELINE_LOANS_NEXT ADD DATA METRIC FUNCTION '
                'SNOWFLAKE.CORE.DUPLICATE_COUNT ON ("LOAN_ID") EXPECTATION LOAN_ID_UNIQUE (VALUE = 0)') in sql
        assert "monitors: 1 watched table(s), 17 Data Metric Function(s) with expectations in DB.SCH" in result.stdout
        assert "SNOWPIPE_SNOWPIPE_PIPELINE_LOANS_LATEST (loans): 17 of 17 expectation(s) met" in result.stdout
