"""deploy.execute: dry run, local target, rehearse-then-deploy, and every deploy path against the offline account.

The deploys run snowflake.core's real ``DAGOperation`` and Snowpark's real registration over the real connector;
only the peer is the offline account (doubles/offline_account.py), which records every call and injects failures.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from pytest_snowpipe.doubles.offline_account import OfflineAccount, sequence
from pytest_snowpipe.engines.connection import account_configured
from pytest_snowpipe.pipeline.graph import PipelineGraph
from pytest_snowpipe.release import DeployOptions, DeployUsageError, execute
from pytest_snowpipe.taskgraph.compile import CompileOptions
from pytest_snowpipe.taskgraph.deployed import stage_files_of
from tests.taskgraph.test_compile import explode, gate, pipeline


def options(tmp_path: Any, **kw: Any) -> DeployOptions:
    copts = CompileOptions(
        dag_name="DEMO", config={"threshold": kw.pop("threshold", 0.1), "out": str(tmp_path)},
        registry_path=str(tmp_path / "reg"), database="DB", schema="SCH", notification_integration="NOTIFY",
        schedule=kw.pop("schedule", None), stage_location=kw.pop("stage_location", "@DB.SCH.ST"),
    )
    return DeployOptions(compile=copts, poll_initial_s=0.01, **kw)


DEPLOY_TASKS = ["DEMO", "DEMO$RAW", "DEMO$FEATURES", "DEMO$MODEL", "DEMO$METRICS", "DEMO$QUALITY_GATE",
                "DEMO$QUALITY_GATE_PROMOTE", "DEMO$QUALITY_GATE_ALERT", "DEMO$SNOWPIPE_FINALIZER"]
# dagv1 1.14's creation order (its reversed Kahn sort over predecessors), each child resumed right after it is made
CREATE_ORDER = ["DEMO$RAW", "DEMO$FEATURES", "DEMO$MODEL", "DEMO$METRICS", "DEMO$QUALITY_GATE", "DEMO$SNOWPIPE_FINALIZER",
                "DEMO$QUALITY_GATE_ALERT", "DEMO$QUALITY_GATE_PROMOTE"]
CREATE_REST = ["POST tasks?createMode=errorIfExists"] + [
    c for name in CREATE_ORDER for c in ("POST tasks?createMode=orReplace", f"POST tasks/{name}:resume")
] + ["POST tasks/DEMO:resume"]  # scheduled: dagv1 resumes the root last
# the deploy diff's fetch (404), our snapshot (404), dagv1's drop (404)
FIRST_DEPLOY_REST = ["GET tasks/DEMO", "GET tasks/DEMO", "GET tasks/DEMO", *CREATE_REST]
REDEPLOY_REST = [
    "GET tasks/DEMO", "GET tasks/DEMO/dependents",  # the deploy diff, before the rehearsal
    "GET tasks/DEMO", "GET tasks/DEMO/dependents", "GET tasks/DEMO/current-graphs",  # snapshot; no run executing
    "POST tasks/DEMO:suspend",  # the old root, before anything changes
    "GET tasks/DEMO", "GET tasks/DEMO/dependents",  # DAGOperation.drop(dag, drop_finalizer=True)
    *[c for name in ("DEMO$SNOWPIPE_FINALIZER", "DEMO$QUALITY_GATE_PROMOTE", "DEMO$QUALITY_GATE_ALERT", "DEMO$QUALITY_GATE",
                     "DEMO$METRICS", "DEMO$MODEL", "DEMO$FEATURES", "DEMO$RAW")  # reversed dependents, finalizer too
      for c in (f"POST tasks/{name}:suspend", f"DELETE tasks/{name}")],
    "POST tasks/DEMO:suspend", "DELETE tasks/DEMO",
    "GET tasks/DEMO",  # DAGOperation.deploy's own drop: nothing left
    *CREATE_REST,
    "GET tasks",  # which stage files other tasks of the schema still import
]


@pytest.fixture
def account() -> Iterator[OfflineAccount]:
    with OfflineAccount(schemas=["DB.SCH"], stages=["DB.SCH.ST"]) as acct:
        yield acct


def deploy(account: OfflineAccount, tmp_path: Any, graph: PipelineGraph | None = None, **kw: Any) -> tuple[int, str]:
    """``execute`` against the offline account, with snowflake.core's real DAGOperation (the default factory)."""
    out: list[str] = []
    kw.setdefault("schedule", timedelta(minutes=30))
    kw.setdefault("sandbox", False)  # these tests are about the deploy; the sandboxed rehearsal has its own below
    kw.setdefault("redeploy_unchanged", True)  # they redeploy one graph to test the replace (test_deploy_diff.py: the skip)
    run_once = kw.pop("run_once", False)
    code = execute(graph or pipeline(), options(tmp_path, **kw), target="snowflake", run_once=run_once,
                   session_factory=lambda: account.session("DB", "SCH"), write=out.append, sleep=lambda s: None)
    return code, "\n".join(out)


def graph_state(account: OfflineAccount) -> dict[str, dict[str, Any]]:
    """Every task as snowflake.core's model returns it, without what a re-creation changes (id, time)."""
    return {n: {k: v for k, v in account.task(n, schema="SCH").items() if k not in ("id", "created_on")}
            for n in sorted(account.task_names(schema="SCH"))}


def fetched(account: OfflineAccount, name: str) -> Any:
    """The task through the real client: snowflake.core's Root -> tasks[name].fetch()."""
    session = account.session("DB", "SCH")
    try:
        return account.root(session).databases["DB"].schemas["SCH"].tasks[name].fetch()
    finally:
        session.close()


def test_dry_run_prints_the_plan_without_an_account(tmp_path: Any) -> None:
    out: list[str] = []
    assert execute(pipeline(), options(tmp_path), target="snowflake", dry_run=True, write=out.append) == 0
    text = "\n".join(out)
    assert "Task Graph DEMO -> DB.SCH" in text and "QUALITY_GATE_PROMOTE" in text and "nothing was deployed" in text


def test_local_target_a_gate_that_takes_on_fail_exits_1(tmp_path: Any) -> None:
    """Every task SUCCEEDED (the alert ran), but the quality gate failed: the verdict is the gate's."""
    out: list[str] = []
    records: list[Any] = []
    opts = options(tmp_path, config_overrides={"threshold": 0.9})
    assert execute(pipeline(), opts, target="local", write=out.append, on_record=lambda r, f: records.append((r, f))) == 1
    assert "QUALITY_GATE_ALERT" in out[0] and "task graph DEMO: SUCCEEDED" in out[0]
    assert out[1] == "quality gate quality_gate FAILED: its branch took on_fail (QUALITY_GATE_ALERT); exit 1"
    record, failed = records[0]
    assert failed == ["quality_gate"] and record.to_json(failed)["failed_gates"] == ["quality_gate"]
    assert (tmp_path / "teardown.txt").exists()


def test_local_target_failed_run_is_nonzero(tmp_path: Any) -> None:
    g = pipeline()
    graph = PipelineGraph(stages=g.stages, gates=(gate(explode, ("metrics",), g.gates[0].upstream, env=()),))
    assert execute(graph, options(tmp_path), target="local", write=lambda s: None) == 1


def test_first_deploy_call_sequence_bodies_packages_and_imports(account: OfflineAccount, tmp_path: Any) -> None:
    from importlib.metadata import version

    code, out = deploy(account, tmp_path)
    assert code == 0, out
    assert "deployed Task Graph DEMO to DB.SCH (9 tasks)" in out
    assert sequence(account.rest_calls()) == FIRST_DEPLOY_REST
    sql = [c.sql for c in account.sql_calls()]
    assert sql[0].startswith("select package_name, version from DB.information_schema.packages where language = 'python' "
                             "and package_name in (")  # one query: the account's channel, before anything else
    assert "'xgboost'" not in sql[0] and "'snowflake-snowpark-python'" in sql[0]  # only what the tasks need
    assert account.calls[0].sql == sql[0]
    assert sql[2] == "LS @DB.SCH.ST"  # the stage is checked before anything is made (after Root's version query)
    assert len([s for s in sql if "array_agg" in s]) == 8  # Snowpark checks the packages once per Python task
    puts = [s for s in sql if s.startswith("PUT ")]
    assert "pytest_snowpipe.zip" in puts[0] and "'@DB.SCH.ST/" in puts[0]  # the plugin: once, content-addressed

    assert sorted(account.task_names(schema="SCH")) == sorted(DEPLOY_TASKS)
    root = fetched(account, "DEMO")
    assert root.state == "started" and root.schedule == timedelta(minutes=30)
    assert root.config == {"threshold": 0.1, "out": str(tmp_path)}
    assert json.loads(root.task_relations)["FinalizerTask"] == "DB.SCH.DEMO$SNOWPIPE_FINALIZER"
    model = fetched(account, "DEMO$MODEL")
    assert model.predecessors == ["DEMO$FEATURES"] and model.state == "started"
    d = model.definition
    pins = [f"'snowflake-snowpark-python=={version('snowflake-snowpark-python')}'",
            f"'snowflake.core=={version('snowflake-core')}'", f"'cloudpickle=={version('cloudpickle')}'",
            f"'pandas=={version('pandas')}'", f"'pyarrow=={version('pyarrow')}'",
            f"'snowflake-ml-python=={version('snowflake-ml-python')}'"]
    assert "PACKAGES=(" + ",".join(pins) + ")" in d and "pytest'" not in d
    assert re.search(r"IMPORTS=\('@DB\.SCH\.ST/[0-9a-f]{64}/pytest_snowpipe\.zip'\)", d)
    alert = fetched(account, "DEMO$QUALITY_GATE_ALERT")
    assert alert.condition == "SYSTEM$GET_PREDECESSOR_RETURN_VALUE('DEMO$QUALITY_GATE') = 'QUALITY_GATE_ALERT'"
    fin = fetched(account, "DEMO$SNOWPIPE_FINALIZER")
    assert fin.finalize == "DEMO" and not fin.predecessors
    # the rehearsal promoted into a throwaway registry, never the configured one
    assert not (tmp_path / "reg").exists()


def test_redeploy_replaces_the_graph_and_removes_superseded_stage_files(account: OfflineAccount, tmp_path: Any) -> None:
    assert deploy(account, tmp_path)[0] == 0
    first_files = {f.name for f in account.list_stage("@DB.SCH.ST")}
    account.clear_log()
    code, out = deploy(account, tmp_path)
    assert code == 0, out
    assert [c for c in sequence(account.rest_calls())] == REDEPLOY_REST
    assert {account.task(n, schema="SCH")["state"] for n in DEPLOY_TASKS} == {"started"}
    files = {f.name for f in account.list_stage("@DB.SCH.ST")}
    imported = set().union(*(stage_files_of(account.task(n, schema="SCH")["definition"]) for n in DEPLOY_TASKS))
    assert {f"@DB.SCH.ST/{f}" for f in files} == imported  # nothing left behind, nothing missing
    removed = [c.sql for c in account.sql_calls() if c.method == "REMOVE"]
    assert removed and all(r.split("/", 1)[1].rstrip("'") in first_files for r in removed)
    assert "removed 2 superseded stage file(s)" in out


def _steps(calls: list[str]) -> list[int]:
    """One step (1-based) per distinct kind of call, plus the last one of each kind."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for i, c in enumerate(calls, 1):
        key = re.sub(r"DEMO\$\w+", "DEMO$X", c)
        first.setdefault(key, i)
        last[key] = i
    return sorted(set(first.values()) | set(last.values()))


def test_a_redeploy_failing_at_any_step_leaves_the_previous_graph_as_it_was(account: OfflineAccount, tmp_path: Any) -> None:
    assert deploy(account, tmp_path)[0] == 0
    before = graph_state(account)
    files = account.list_stage("@DB.SCH.ST")
    account.clear_log()
    assert deploy(account, tmp_path)[0] == 0
    baseline = sequence(account.calls)
    deploy_part = baseline[: baseline.index("GET tasks")]  # after it the new graph is in place
    problems = []
    for k in _steps(deploy_part):
        before = graph_state(account)
        files = {f.name for f in account.list_stage("@DB.SCH.ST")}
        account.clear_log()
        account.fail_at(k)
        code, out = deploy(account, tmp_path)
        account.clear_failures()
        if account.calls[k - 1].error is None:
            problems.append(f"step {k} ({deploy_part[k - 1]}): the failure was not injected")
        elif code == 0:  # the client shrugged it off (Root's client-version query): the new graph is whole
            if {account.task(n, schema="SCH")["state"] for n in DEPLOY_TASKS} != {"started"}:
                problems.append(f"step {k} ({deploy_part[k - 1]}): exit 0 with a broken graph")
        elif graph_state(account) != before:
            problems.append(f"step {k} ({deploy_part[k - 1]}): the graph changed: {out.splitlines()[-1]}")
        elif not {f.name for f in account.list_stage("@DB.SCH.ST")} >= files:
            problems.append(f"step {k}: stage files the old graph imports were removed")
        elif "the previous graph was restored" not in out and "nothing was changed" not in out:
            problems.append(f"step {k}: {out.splitlines()[-1]}")
    assert not problems, "\n".join(problems)


def test_a_first_deploy_failing_at_any_step_leaves_nothing(account: OfflineAccount, tmp_path: Any) -> None:
    assert deploy(account, tmp_path)[0] == 0
    first = sequence(account.calls)
    problems = []
    for k in _steps(first):
        with OfflineAccount(schemas=["DB.SCH"], stages=["DB.SCH.ST"]) as fresh:
            fresh.fail_at(k)
            code, _ = deploy(fresh, tmp_path)
            tolerated = code == 0 and len(fresh.task_names(schema="SCH")) == len(DEPLOY_TASKS)  # Root's version query
            if not tolerated and (code != 1 or fresh.task_names(schema="SCH")):
                problems.append(f"step {k} ({first[k - 1]}): exit {code}, left {fresh.task_names(schema='SCH')}")
    assert not problems, "\n".join(problems)


def test_a_failing_upload_is_named_and_rolled_back(account: OfflineAccount, tmp_path: Any) -> None:
    account.fail_when(lambda c: c.kind == "sql" and c.method == "PUT", message="stage is full")
    code, out = deploy(account, tmp_path)
    assert code == 1 and account.task_names(schema="SCH") == []
    assert "deploying Task Graph DEMO failed while creating the new graph (ProgrammingError: " in out
    assert "stage is full" in out and "what was created was dropped" in out


def test_cleanup_failure_after_a_good_deploy_keeps_the_graph(account: OfflineAccount, tmp_path: Any) -> None:
    assert deploy(account, tmp_path)[0] == 0
    account.fail_when(lambda c: c.kind == "sql" and c.method == "REMOVE", times=-1)
    code, out = deploy(account, tmp_path)
    assert code == 0 and "superseded" not in out
    assert {account.task(n, schema="SCH")["state"] for n in DEPLOY_TASKS} == {"started"}


def test_a_running_graph_is_not_replaced(account: OfflineAccount, tmp_path: Any) -> None:
    assert deploy(account, tmp_path)[0] == 0
    before = graph_state(account)
    account.add_graph_run("DEMO", "EXECUTING", schema="SCH")
    code, out = deploy(account, tmp_path)
    assert code == 1 and graph_state(account) == before
    assert "has a run in progress" in out and "SYSTEM$USER_TASK_CANCEL_ONGOING_EXECUTIONS('DEMO')" in out


def test_a_missing_stage_names_the_ini_key(account: OfflineAccount, tmp_path: Any) -> None:
    code, out = deploy(account, tmp_path, stage_location="@OTHER_DB.SCH.ST")
    assert code == 1 and account.task_names(schema="SCH") == []
    assert "the stage @OTHER_DB.SCH.ST (ini snowpipe_stage_location) cannot be listed" in out
    assert "CREATE STAGE OTHER_DB.SCH.ST" in out


def _read_only(account: OfflineAccount) -> bool:
    """Only reads reached it (the account's channel first, then the deploy diff's): nothing was changed or uploaded."""
    return {c.summary for c in account.calls} <= {"SQL SELECT", "GET tasks/DEMO", "GET tasks/DEMO/dependents"} \
        and "information_schema.packages" in account.calls[0].sql


def test_rehearsal_failure_aborts_before_any_deploy(account: OfflineAccount, tmp_path: Any) -> None:
    g = pipeline()
    graph = PipelineGraph(stages=g.stages, gates=(gate(explode, ("metrics",), g.gates[0].upstream, env=()),))
    code, out = deploy(account, tmp_path, graph, sandbox=True)
    assert code == 1 and _read_only(account) and "nothing was deployed" in out


def test_a_failing_gate_in_the_rehearsal_blocks_the_deploy(account: OfflineAccount, tmp_path: Any) -> None:
    code, out = deploy(account, tmp_path, threshold=0.9, sandbox=True)
    assert code == 1 and _read_only(account)
    assert "quality gate quality_gate FAILED: its branch took on_fail (QUALITY_GATE_ALERT)" in out
    assert "a quality gate took its on_fail branch); nothing was deployed" in out


@pytest.mark.parametrize(("final", "code"), [("SUCCEEDED", 0), ("FAILED", 1)])
def test_deploy_and_run_once_waits_for_the_new_run(account: OfflineAccount, tmp_path: Any, final: str, code: int) -> None:
    account.add_graph_run("DEMO", "FAILED", schema="SCH")  # an older run: not the one we wait for
    account.execute_outcome = final
    got, out = deploy(account, tmp_path, run_once=True)
    assert got == code, out
    assert account.executions == [{"task": "DEMO", "retry_last": False}]
    assert f"task graph DEMO: {final}" in out


def test_usage_errors(tmp_path: Any) -> None:
    with pytest.raises(DeployUsageError, match="--schedule"):
        execute(pipeline(), options(tmp_path), target="snowflake", run_once=True, session_factory=lambda: None)
    with pytest.raises(DeployUsageError, match="needs a connection"):
        execute(pipeline(), options(tmp_path, schedule=timedelta(hours=1)), target="snowflake", run_once=True)
    with pytest.raises(DeployUsageError, match="Valid targets: local, snowflake"):
        execute(pipeline(), options(tmp_path), target="cloud")
    assert issubclass(DeployUsageError, ValueError)


@pytest.mark.skipif(not account_configured(), reason="no Snowflake account configured (connections.toml / "
                    "SNOWFLAKE_CONNECTION_NAME): the live deploy is tested only against a real account")
def test_live_deploy_and_run(tmp_path: Any) -> None:  # pragma: no cover - needs an account
    import os

    from pytest_snowpipe.engines.connection import create_session

    name = os.environ.get("SNOWFLAKE_CONNECTION_NAME", "default")
    opts = options(tmp_path, schedule=timedelta(days=1))
    opts = DeployOptions(compile=CompileOptions(**{**opts.compile.__dict__, "database": None, "schema": None,
                                                   "dag_name": "SNOWPIPE_TEST_PIPELINE"}))
    assert execute(pipeline(), opts, target="snowflake", run_once=True, session_factory=lambda: create_session(name)) == 0
