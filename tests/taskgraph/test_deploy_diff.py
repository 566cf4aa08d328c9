"""A deploy is a diff: the dry run (with a connection) and the deploy compare with the deployed graph, task by task.

Against the offline account (doubles/offline_account.py): snowflake.core's real DAGOperation and Snowpark's real
registration over the real connector; only the peer is a double, which records every call.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from importlib.metadata import version
from typing import Any

import pytest

from pytest_snowpipe.doubles.offline_account import OfflineAccount
from pytest_snowpipe.pipeline.graph import PipelineGraph
from pytest_snowpipe.release import DeployOptions, execute
from pytest_snowpipe.reports.deploy_diff import render_diff_markdown
from pytest_snowpipe.taskgraph.compile import CompileOptions
from pytest_snowpipe.taskgraph.diff import GraphDiff, Status
from tests.taskgraph.test_compile import gate, pipeline, stage
from tests.taskgraph.test_deploy import DEPLOY_TASKS

# ------------------------------------------------------------------ changed stage functions (module level: pickle by value)


def model_v2(features):
    return {"mean": float(features["X"].median())}


def metrics_v2(model):
    return {"score": model["mean"] / 10, "rows": 10}


def extra(metrics):
    return len(metrics)


@pytest.fixture
def account() -> Iterator[OfflineAccount]:
    with OfflineAccount(schemas=["DB.SCH"], stages=["DB.SCH.ST"]) as acct:
        yield acct


def options(tmp_path: Any, *, threshold: float = 0.1, schedule: timedelta = timedelta(minutes=30),
            packages: tuple[str, ...] | None = None, **kw: Any) -> DeployOptions:
    copts = CompileOptions(
        dag_name="DEMO", config={"threshold": threshold, "out": str(tmp_path)}, registry_path=str(tmp_path / "reg"),
        database="DB", schema="SCH", notification_integration="NOTIFY", schedule=schedule,
        stage_location="@DB.SCH.ST", packages=packages,
    )
    kw.setdefault("sandbox", False)  # these tests are about the diff; the sandboxed rehearsal is tested in test_deploy
    return DeployOptions(compile=copts, poll_initial_s=0.01, **kw)


def run(account: OfflineAccount, tmp_path: Any, graph: PipelineGraph | None = None, *, dry_run: bool = False,
        run_once: bool = False, **kw: Any) -> tuple[int, str, GraphDiff | None]:
    """``execute`` against the offline account; the exit code, what it wrote and the diff it showed."""
    out: list[str] = []
    diffs: list[GraphDiff] = []
    code = execute(graph or pipeline(), options(tmp_path, **kw), target="snowflake", dry_run=dry_run, run_once=run_once,
                   session_factory=lambda: account.session("DB", "SCH"), write=out.append, sleep=lambda s: None,
                   on_diff=diffs.append)
    return code, "\n".join(out), (diffs[0] if diffs else None)


def with_stage(graph: PipelineGraph, name: str, **changes: Any) -> PipelineGraph:
    stages = tuple(dataclasses.replace(s, **changes) if s.name == name else s for s in graph.stages)
    return PipelineGraph(stages=stages, gates=graph.gates)


def changed(diff: GraphDiff | None) -> dict[str, dict[str, str]]:
    """Task -> {facet: how it changes} for every task a deploy would touch."""
    assert diff is not None
    return {t.name: {c.facet: c.text for c in t.changes} for t in diff.changed}


def only_reads(account: OfflineAccount) -> bool:
    """Every call was a SELECT or a REST GET: nothing created, altered, uploaded or dropped."""
    return all((c.kind == "sql" and c.method == "SELECT") or (c.kind == "rest" and c.method == "GET") for c in account.calls)


def tasks_as_deployed(account: OfflineAccount) -> dict[str, dict[str, Any]]:
    """Every task with its id and creation time: a task re-created has a new id."""
    return {n: account.task(n, schema="SCH") for n in sorted(account.task_names(schema="SCH"))}


@pytest.fixture
def deployed(account: OfflineAccount, tmp_path: Any) -> OfflineAccount:
    code, out, _ = run(account, tmp_path)
    assert code == 0, out
    account.clear_log()
    return account


def test_a_graph_not_yet_deployed_is_all_added(account: OfflineAccount, tmp_path: Any) -> None:
    code, out, diff = run(account, tmp_path, dry_run=True)
    assert code == 0 and diff is not None and not diff.deployed
    assert [t.name for t in diff.tasks] == DEPLOY_TASKS
    assert {t.status for t in diff.tasks} == {Status.ADDED}
    assert "Task Graph DEMO is not deployed in DB.SCH: all 9 tasks would be added" in out
    assert "  + DEMO$QUALITY_GATE_ALERT (action)" in out
    assert only_reads(account) and account.task_names(schema="SCH") == []


def test_changing_the_code_of_one_stage_changes_exactly_its_task(deployed: OfflineAccount, tmp_path: Any) -> None:
    before = tasks_as_deployed(deployed)
    code, out, diff = run(deployed, tmp_path, with_stage(pipeline(), "model", func=model_v2), dry_run=True)
    assert code == 0, out
    assert list(changed(diff)) == ["DEMO$MODEL"] and list(changed(diff)["DEMO$MODEL"]) == ["code"]
    assert diff is not None and diff.count(Status.UNCHANGED) == 8
    assert "deploy diff: Task Graph DEMO in DB.SCH: 0 added, 0 removed, 1 changed, 8 unchanged" in out
    assert "  ~ DEMO$MODEL (stage)\n      code: " in out
    assert only_reads(deployed) and tasks_as_deployed(deployed) == before  # a dry run changes nothing


def test_the_same_code_under_another_name_is_the_same_digest(deployed: OfflineAccount, tmp_path: Any) -> None:
    """What ships is compared, not where it was written: a stage's function re-created from the same code."""
    from tests.taskgraph import test_compile

    f = test_compile.model
    twin = type(f)(f.__code__, f.__globals__, "model", f.__defaults__, f.__closure__)
    _, _, diff = run(deployed, tmp_path, with_stage(pipeline(), "model", func=twin), dry_run=True)
    assert diff is not None and diff.unchanged


def test_a_schedule_change_is_the_root_s_schedule(deployed: OfflineAccount, tmp_path: Any) -> None:
    _, _, diff = run(deployed, tmp_path, dry_run=True, schedule=timedelta(hours=1))
    assert changed(diff) == {"DEMO": {"schedule": "every 30 minutes -> every 1 hour"}}


def test_a_config_change_is_the_root_s_config(deployed: OfflineAccount, tmp_path: Any) -> None:
    _, out, diff = run(deployed, tmp_path, dry_run=True, threshold=0.5)
    assert changed(diff) == {"DEMO": {"config": "threshold: 0.1 -> 0.5"}}
    assert "  ~ DEMO (root)\n      config: threshold: 0.1 -> 0.5" in out


def test_a_package_version_change_shows_on_every_python_task(deployed: OfflineAccount, tmp_path: Any) -> None:
    installed = version("pandas")
    older = "2.2.3" if installed != "2.2.3" else "2.2.2"  # both in the account's channel (the bundled snapshot)
    _, _, diff = run(deployed, tmp_path, dry_run=True, packages=(f"pandas=={older}",))
    python_tasks = [n for n in DEPLOY_TASKS if n != "DEMO"]
    assert changed(diff) == {n: {"packages": f"pandas {installed} -> {older}"} for n in python_tasks}


def test_a_predecessor_change_shows_as_predecessors(deployed: OfflineAccount, tmp_path: Any) -> None:
    graph = with_stage(pipeline(), "metrics", func=metrics_v2, predecessors=("model",))
    _, _, diff = run(deployed, tmp_path, graph, dry_run=True)
    assert list(changed(diff)) == ["DEMO$METRICS"]
    facets = changed(diff)["DEMO$METRICS"]
    assert facets["predecessors"] == "DEMO$FEATURES, DEMO$MODEL -> DEMO$MODEL"
    assert set(facets) == {"predecessors", "code"}  # its function reads other inputs: what ships changed too


def test_added_and_removed_tasks_and_a_changed_branch(deployed: OfflineAccount, tmp_path: Any) -> None:
    g = pipeline()
    no_alert = gate(g.gates[0].func, ("metrics",), g.gates[0].upstream, on_fail=None)
    graph = PipelineGraph(stages=(*g.stages, stage(extra, ("metrics",))), gates=(no_alert,))
    _, out, diff = run(deployed, tmp_path, graph, dry_run=True)
    assert diff is not None
    status = {t.name: t.status for t in diff.changed}
    assert status == {"DEMO$EXTRA": Status.ADDED, "DEMO$QUALITY_GATE_ALERT": Status.REMOVED,
                      "DEMO$QUALITY_GATE": Status.CHANGED, "DEMO$SNOWPIPE_FINALIZER": Status.CHANGED}
    assert list(changed(diff)["DEMO$QUALITY_GATE"]) == ["code"]  # it no longer names an on_fail successor
    assert list(changed(diff)["DEMO$SNOWPIPE_FINALIZER"]) == ["code"]  # it now also cleans up after EXTRA
    assert "  + DEMO$EXTRA (stage)" in out and "  - DEMO$QUALITY_GATE_ALERT\n" in out + "\n"


def test_a_deploy_that_changes_nothing_deploys_nothing(deployed: OfflineAccount, tmp_path: Any) -> None:
    before = tasks_as_deployed(deployed)
    files = deployed.list_stage("@DB.SCH.ST")
    code, out, diff = run(deployed, tmp_path)
    assert code == 0, out
    assert diff is not None and diff.unchanged
    assert out.splitlines()[-1] == "Task Graph DEMO is up to date: nothing deployed"
    assert only_reads(deployed)  # no CREATE, ALTER, PUT or REMOVE was sent; no task was created or resumed
    assert not [c for c in deployed.sql_calls() if c.method != "SELECT"]
    assert tasks_as_deployed(deployed) == before and deployed.list_stage("@DB.SCH.ST") == files
    assert "rehearsal" not in out  # nothing to rehearse either


def test_an_unchanged_graph_with_run_once_runs_without_a_deploy(deployed: OfflineAccount, tmp_path: Any) -> None:
    before = tasks_as_deployed(deployed)
    deployed.execute_outcome = "SUCCEEDED"
    code, out, _ = run(deployed, tmp_path, run_once=True)
    assert code == 0, out
    assert "Task Graph DEMO is up to date: nothing deployed" in out and "task graph DEMO: SUCCEEDED" in out
    assert deployed.executions == [{"task": "DEMO", "retry_last": False}]
    assert {n: t["id"] for n, t in tasks_as_deployed(deployed).items()} == {n: t["id"] for n, t in before.items()}
    assert not [c for c in deployed.calls if c.kind == "rest" and c.method in ("DELETE", "PUT")]
    assert not [c for c in deployed.calls if c.kind == "rest" and "createMode" in c.query]


def test_redeploy_unchanged_forces_the_deploy(deployed: OfflineAccount, tmp_path: Any) -> None:
    before = tasks_as_deployed(deployed)
    code, out, _ = run(deployed, tmp_path, redeploy_unchanged=True)
    assert code == 0 and "deployed Task Graph DEMO to DB.SCH (9 tasks)" in out
    assert {n: t["id"] for n, t in tasks_as_deployed(deployed).items()} != {n: t["id"] for n, t in before.items()}


def test_a_changed_graph_is_deployed_and_then_up_to_date(deployed: OfflineAccount, tmp_path: Any) -> None:
    graph = with_stage(pipeline(), "model", func=model_v2)
    code, out, diff = run(deployed, tmp_path, graph)
    assert code == 0 and list(changed(diff)) == ["DEMO$MODEL"] and "deployed Task Graph DEMO" in out
    deployed.clear_log()
    code, out, diff = run(deployed, tmp_path, graph)
    assert code == 0 and diff is not None and diff.unchanged and only_reads(deployed)


@pytest.mark.parametrize("dry_run", [True, False])
def test_an_account_answering_badly_is_a_clear_error_and_changes_nothing(
    deployed: OfflineAccount, tmp_path: Any, dry_run: bool
) -> None:
    before = tasks_as_deployed(deployed)
    deployed.fail_when(lambda c: c.kind == "rest" and c.path.endswith("/dependents"), status=500,
                       message="internal error", times=-1)
    code, out, diff = run(deployed, tmp_path, with_stage(pipeline(), "model", func=model_v2), dry_run=dry_run)
    assert code == 1 and diff is None
    last = out.splitlines()[-1]
    assert last.startswith("reading the deployed Task Graph DEMO from DB.SCH to compare it failed (")
    assert "nothing was changed" in last and "SHOW TASKS LIKE 'DEMO%' IN SCHEMA DB.SCH" in last
    assert "Traceback" not in out
    deployed.clear_failures()
    assert tasks_as_deployed(deployed) == before


def test_the_diff_as_markdown_for_a_pull_request(deployed: OfflineAccount, tmp_path: Any) -> None:
    _, _, diff = run(deployed, tmp_path, with_stage(pipeline(), "model", func=model_v2), dry_run=True, threshold=0.5)
    assert diff is not None
    page = render_diff_markdown(diff)
    assert page.startswith("## Deploy diff: Task Graph `DEMO` in `DB.SCH`\n")
    assert "A deploy changes 2 of 9 tasks: 0 added, 0 removed, **2 changed**, 7 unchanged." in page
    assert "| 🟡 changed | `DEMO` | root | **config**: `threshold: 0.1 -> 0.5` |" in page
    assert "| 🟡 changed | `DEMO$MODEL` | stage | **code**: `" in page
    assert "<details><summary>7 unchanged task(s)</summary>" in page and "`DEMO$RAW`" in page


def quality_gate_v2(metrics, snowpipe_config):
    assert metrics["score"] > snowpipe_config["threshold"], "score at or below threshold"


def test_changing_the_gate_s_test_changes_the_gate_not_its_actions(deployed: OfflineAccount, tmp_path: Any) -> None:
    g = pipeline()
    graph = PipelineGraph(stages=g.stages, gates=(dataclasses.replace(g.gates[0], func=quality_gate_v2),))
    _, _, diff = run(deployed, tmp_path, graph, dry_run=True)
    assert changed(diff) == {"DEMO$QUALITY_GATE": {"code": changed(diff)["DEMO$QUALITY_GATE"]["code"]}}


def test_dry_run_with_a_connection_writes_the_diff_for_a_pull_request(
    pipeline_suite: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: ``pytest --snowpipe-deploy --snowpipe-dry-run --snowpipe-connection NAME --snowpipe-report=DIR``."""
    from tests.conftest import PURE_STAGES, connections_home

    with OfflineAccount(schemas=["DB.S"]) as acct:
        home = tmp_path / "sfhome"
        home.mkdir()
        monkeypatch.setenv("SNOWFLAKE_HOME", str(connections_home(home, acct.connection_parameters())))
        pytester = pipeline_suite(conftest=PURE_STAGES)
        result = pytester.runpytest("--snowpipe-deploy", "--snowpipe-dry-run", "--snowpipe-connection", "offline",
                                    "--schedule", "1h", "--snowpipe-report=out")
        out = result.stdout.str()
        assert result.ret == 0, out
        assert "deploy diff: Task Graph SNOWPIPE_PIPELINE is not deployed in DB.S: all 8 tasks would be added" in out
        page = (pytester.path / "out" / "deploy-diff.md").read_text()
        assert page.startswith("## Deploy diff: Task Graph `SNOWPIPE_PIPELINE` in `DB.S`")
        assert "Not deployed yet: a deploy **adds all 8 tasks**." in page
        assert "| 🟢 added | `SNOWPIPE_PIPELINE$TEST_GATE` | branch | new task |" in page
        assert {c.method for c in acct.calls if c.kind == "rest"} == {"GET"}
        assert acct.task_names(schema="S") == []


def test_an_unchanged_suspended_graph_stays_suspended_and_says_how_to_resume(
    deployed: OfflineAccount, tmp_path: Any
) -> None:
    session = deployed.session("DB", "SCH")
    try:
        deployed.root(session).databases["DB"].schemas["SCH"].tasks["DEMO"].suspend()
    finally:
        session.close()
    deployed.clear_log()
    code, out, diff = run(deployed, tmp_path)
    assert code == 0 and diff is not None and diff.unchanged and only_reads(deployed)
    assert out.splitlines()[-1] == ("Task Graph DEMO is up to date: nothing deployed (it is suspended: resume it with "
                                    "ALTER TASK DB.SCH.DEMO RESUME)")
    assert deployed.task("DEMO", schema="SCH")["state"] == "suspended"
    assert "The deployed graph is **suspended**; a deploy keeps it so." in render_diff_markdown(diff)


def test_another_facet_joins_the_comparison(deployed: OfflineAccount, tmp_path: Any) -> None:
    """The facets are a list: a new one (the monitors of a stage's table, say) is compared like the others."""
    from pytest_snowpipe.taskgraph.compile import compile_graph
    from pytest_snowpipe.taskgraph.deployed import snapshot
    from pytest_snowpipe.taskgraph.diff import FACETS, Facet, compare

    session = deployed.session("DB", "SCH")
    try:
        old = snapshot(deployed.root(session).databases["DB"].schemas["SCH"].tasks, "DEMO")
    finally:
        session.close()
    compiled = compile_graph(pipeline(), options(tmp_path).compile)
    monitors = Facet("monitors", lambda p: "NULL_COUNT(ID) = 0" if p.name == "DEMO$RAW" else None, lambda t: None)
    assert compare(compiled, old).unchanged
    diff = compare(compiled, old, [*FACETS, monitors])
    assert changed(diff) == {"DEMO$RAW": {"monitors": "(none) -> NULL_COUNT(ID) = 0"}}


def test_a_changed_monitor_is_a_change_of_its_stage_and_is_deployed(account: OfflineAccount, tmp_path: Any) -> None:
    """A monitor lives on a table, not in the task: its digest in the stage task's COMMENT makes a changed
    schedule a change (so an 'up to date' graph also has the monitors the suite asks for)."""
    from tests.taskgraph.test_monitors_deploy import TABLE, monitored, raw, raw_every_5m

    code, out, _ = run(account, tmp_path, monitored(raw))
    assert code == 0, out
    account.clear_log()
    code, out, diff = run(account, tmp_path, monitored(raw), dry_run=True)
    assert code == 0 and diff is not None and diff.unchanged, out
    code, out, diff = run(account, tmp_path, monitored(raw_every_5m), dry_run=True)
    assert code == 0, out
    assert list(changed(diff)) == ["DEMO$RAW"], out  # the shipped spec holds the expectation too: its code digest moves
    assert "monitors" in changed(diff)["DEMO$RAW"] and "Data Metric Functions" in changed(diff)["DEMO$RAW"]["monitors"]
    code, out, _ = run(account, tmp_path, monitored(raw_every_5m))
    assert code == 0 and "up to date" not in out, out
    assert account.monitors.tables[TABLE].schedule == "5 MINUTE"
