"""What a first deploy to a real account meets: its package channel, ML Job tasks, qualified paths, a graph the
user suspended, uploads of a failed deploy, interrupts, an outage, undeploy.

Everything runs through the real clients (snowflake.core's DAGOperation, Snowpark, snowflake-ml-python's job
registration, the connector); only the peer is the offline account, which records every call and injects failures.
"""
from __future__ import annotations

import json
import os
import re
import signal
import threading
from collections.abc import Iterator
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from pytest_snowpipe.doubles.offline_account import OfflineAccount
from pytest_snowpipe.doubles.shipped import ShipError, parse_ml_job
from pytest_snowpipe.pipeline.graph import PipelineGraph, Stage
from pytest_snowpipe.pipeline.remote import remote, remote_spec
from pytest_snowpipe.release import DeployOptions, execute
from pytest_snowpipe.taskgraph.channel import BUNDLED, Channel, from_account, from_snapshot, write_snapshot
from pytest_snowpipe.taskgraph.compile import CompileError, CompileOptions
from pytest_snowpipe.taskgraph.packages import PackageError, installed_version, resolve
from tests.taskgraph.test_compile import pipeline


@remote(compute_pool="POOL", stage_name="JOB_STAGE", target_instances=2, env_vars={"MODE": "fit"})
def remote_model(features):
    return {"mean": float(features["X"].mean()), "rows": len(features)}


def other_model(features):
    return {"mean": float(features["X"].median()), "rows": len(features)}


def broken_model(features):
    raise RuntimeError("the job's own failure: out of memory in fit()")


def remote_pipeline(func: Any = remote_model) -> PipelineGraph:
    base = pipeline()
    spec = remote_spec(remote_model)
    model = Stage(name="model", func=func, predecessors=("features",), environment=(), is_yield=False,
                  remote=spec, location="here", key="r")
    return PipelineGraph(stages=(base.stages[0], base.stages[1], model, base.stages[3]), gates=base.gates)


def lagging_snapshot(path: Path, drop: tuple[str, ...] = ()) -> Path:
    """The bundled channel one release behind this machine: every installed version removed (``drop``: whole packages)."""
    rows = json.loads(BUNDLED.read_text())["rows"]
    kept = []
    for row in rows:
        installed = installed_version(row["package_name"])
        if row["version"] != installed and row["package_name"] not in drop:
            kept.append(row)
    path.write_text(json.dumps({"rows": kept}))
    return path


@pytest.fixture
def account(tmp_path: Path) -> Iterator[OfflineAccount]:
    with OfflineAccount(schemas=["DB.SCH"], stages=["DB.SCH.ST", "DB.SCH.JOB_STAGE"], compute_pools=["POOL"],
                        packages_snapshot=lagging_snapshot(tmp_path / "lagging.json")) as acct:
        yield acct


def options(tmp_path: Path, **kw: Any) -> DeployOptions:
    copts = CompileOptions(
        dag_name="DEMO", config={"threshold": 0.1, "out": str(tmp_path)}, registry_path=str(tmp_path / "reg"),
        database=kw.pop("database", "DB"), schema=kw.pop("schema", "SCH"), notification_integration="NOTIFY",
        schedule=kw.pop("schedule", timedelta(minutes=30)), stage_location=kw.pop("stage_location", "@DB.SCH.ST"),
        packages=kw.pop("packages", ()),
    )
    return DeployOptions(compile=copts, poll_initial_s=0.01, **kw)


def deploy(account: OfflineAccount, tmp_path: Path, graph: PipelineGraph | None = None, *, session_schema: str = "SCH",
           **kw: Any) -> tuple[int, str]:
    out: list[str] = []
    kw.setdefault("sandbox", False)
    kw.setdefault("redeploy_unchanged", True)  # these tests redeploy one graph to test the replace and its undo
    flags = {k: kw.pop(k) for k in ("undeploy", "dry_run") if k in kw}
    code = execute(graph or remote_pipeline(), options(tmp_path, **kw), target="snowflake",
                   session_factory=lambda: account.session("DB", session_schema), write=out.append, **flags)
    return code, "\n".join(out)


def state(account: OfflineAccount) -> dict[str, dict[str, Any]]:
    return {n: {k: v for k, v in account.task(n, schema="SCH").items() if k not in ("id", "created_on")}
            for n in sorted(account.task_names(schema="SCH"))}


# ------------------------------------------------------------------ packages: the account is the authority


def test_a_channel_one_release_behind_pins_the_nearest_lower_version_and_warns(account: OfflineAccount, tmp_path: Path) -> None:
    code, out = deploy(account, tmp_path)
    assert code == 0, out
    definition = account.task("DEMO$METRICS", schema="SCH")["definition"]
    pandas, pyarrow = version("pandas"), version("pyarrow")
    assert "'pandas==2.2.3'" in definition and f"'pandas=={pandas}'" not in definition  # 2.3.3 installed, absent there
    assert "'pyarrow==19.0.1'" in definition
    assert (f"warning: package pandas: the rehearsal runs {pandas}, Snowflake gets 2.2.3 (the account's "
            f"information_schema.packages has no {pandas})") in out
    assert f"the rehearsal runs {pyarrow}, Snowflake gets 19.0.1" in out
    queries = [c.sql for c in account.sql_calls() if c.sql.startswith("select package_name, version from DB.information_schema")]
    assert len(queries) == 1 and account.calls[0].sql == queries[0]  # one query, before anything else


def test_a_package_the_account_lacks_in_every_version_stops_before_anything_changes(tmp_path: Path) -> None:
    snapshot = lagging_snapshot(tmp_path / "no_cloudpickle.json", drop=("cloudpickle",))
    with OfflineAccount(schemas=["DB.SCH"], stages=["DB.SCH.ST", "DB.SCH.JOB_STAGE"], compute_pools=["POOL"],
                        packages_snapshot=snapshot) as acct:
        with pytest.raises(CompileError, match=r"package 'cloudpickle' \(the task runtime\) is not in the account's "
                                               r"information_schema.packages in any version"):
            deploy(acct, tmp_path)
        assert [c.summary for c in acct.calls] == ["SQL SELECT"] and acct.task_names(schema="SCH") == []


def test_a_snapshot_judges_softly_and_an_unknown_package_is_a_warning_not_an_error() -> None:
    res = resolve({"requests": "task X imports requests"}, channel=from_snapshot())
    assert res.warnings == ["package 'requests' (task X imports requests) is not in the bundled snapshot (a guess, not "
                            "your account): checked against the account at deploy"]
    with pytest.raises(PackageError, match="package 'requests' .* is not in the account's"):
        resolve({"requests": "task X imports requests"}, channel=Channel({}, "the account's information_schema.packages",
                                                                          authoritative=True))


def test_bare_names_in_snowpipe_packages_are_pinned_and_a_users_specifier_wins() -> None:
    channel = Channel({"xgboost": ("2.1.4", str(installed_version("xgboost")), "9.9.9"), "pandas": ("2.2.2",)}, "acct", True)
    res = resolve({}, channel=channel, user=["xgboost", "pandas>=2"])
    assert res.specs == [f"xgboost=={installed_version('xgboost')}", "pandas"]  # bare: the installed one; a range: as written
    assert [p.note for p in res.packages] == ["", "pandas>=2"]


@pytest.mark.parametrize(("offered", "pinned"), [(("1.0", "2.0", "99.0"), "2.0"), (("2.0",), "2.0")])
def test_the_nearest_version_is_the_newest_below_the_installed_one(offered: tuple[str, ...], pinned: str) -> None:
    res = resolve({"xgboost": "x"}, channel=Channel({"xgboost": offered}, "acct", True))
    assert res.specs == [f"xgboost=={pinned}"]


def test_an_installed_version_older_than_the_whole_channel_is_refused_naming_the_oldest() -> None:
    with pytest.raises(PackageError, match=r"installed .* is older than every version acct offers \(oldest 98\.0\); "
                                           r"install xgboost==98\.0 here"):
        resolve({"xgboost": "x"}, channel=Channel({"xgboost": ("99.0", "98.0")}, "acct", True))


def test_a_users_snapshot_is_written_from_the_account_and_read_back(account: OfflineAccount, tmp_path: Path) -> None:
    session = account.session("DB", "SCH")
    try:
        rows = write_snapshot(session, tmp_path / "mine.json")
        assert rows == len(account.packages)
        mine = from_snapshot(tmp_path / "mine.json")
        assert mine.versions == from_account(session).versions and not mine.authoritative
        assert "the packages snapshot" in mine.describe()
    finally:
        session.close()


# ------------------------------------------------------------------ remote stages as the seed's ML Job tasks


def test_a_remote_stage_ships_as_an_ml_job_task_through_the_real_dag_operation(account: OfflineAccount, tmp_path: Path) -> None:
    code, out = deploy(account, tmp_path)
    assert code == 0, out
    definition = account.task("DEMO$MODEL", schema="SCH")["definition"]
    job = parse_ml_job("MODEL", definition)
    assert definition.startswith("CALL SYSTEM$EXECUTE_ML_JOB('DB.SCH.DEMO_MODEL_', 'POOL', ")
    assert job is not None and job["options"]["ASYNC"] is False and job["options"]["TARGET_INSTANCES"] == 2
    assert re.fullmatch(r"@DB\.SCH\.JOB_STAGE/[0-9a-f]{16}/DEMO_MODEL", job["spec"]["STAGE_PATH"])
    assert job["spec"]["ENV_VARS"]["MODE"] == "fit" and job["entry"].endswith(".py") and job["main"] == "func"
    assert "LANGUAGE PYTHON" not in definition  # no procedure waits on the job
    payload = {f.name for f in account.list_stage("@DB.SCH.JOB_STAGE")}
    folder = job["spec"]["STAGE_PATH"].split("/", 1)[1]
    assert {f"{folder}/app/{job['entry']}", f"{folder}/app/pytest_snowpipe.zip"} <= payload
    account.clear_log()
    assert deploy(account, tmp_path)[0] == 0  # a redeploy overwrites the payload under the same name
    assert {f.name for f in account.list_stage("@DB.SCH.JOB_STAGE")} == payload  # unchanged code, same folder
    assert parse_ml_job("MODEL", account.task("DEMO$MODEL", schema="SCH")["definition"])["id"] == "DB.SCH.DEMO_MODEL_"


def test_a_failed_redeploy_of_a_changed_job_keeps_the_deployed_jobs_payload(account: OfflineAccount, tmp_path: Path) -> None:
    assert deploy(account, tmp_path)[0] == 0
    before, old = state(account), {f.name: f.md5 for f in account.list_stage("@DB.SCH.JOB_STAGE")}
    account.fail_when(lambda c: c.summary == "POST tasks/DEMO$MODEL:resume")  # after the changed job was uploaded
    code, out = deploy(account, tmp_path, remote_pipeline(other_model))
    account.clear_failures()
    assert code == 1 and "the previous graph was restored" in out
    assert state(account) == before  # the restored task still names the old payload folder ...
    assert {f.name: f.md5 for f in account.list_stage("@DB.SCH.JOB_STAGE")} == old  # ... whose bytes are untouched
    assert deploy(account, tmp_path, remote_pipeline(other_model))[0] == 0  # a good redeploy: new folder, old one gone
    now = parse_ml_job("MODEL", account.task("DEMO$MODEL", schema="SCH")["definition"])["spec"]["STAGE_PATH"]
    assert {f.name.rsplit("/app/", 1)[0].rsplit("/system/", 1)[0] for f in account.list_stage("@DB.SCH.JOB_STAGE")} == \
        {now.split("/", 1)[1]}


def test_the_rehearsal_runs_the_shipped_job_and_its_failure_fails_the_deploy(account: OfflineAccount, tmp_path: Path) -> None:
    records: list[Any] = []
    out_lines: list[str] = []
    good = execute(remote_pipeline(), options(tmp_path), target="local", write=out_lines.append,
                   on_record=lambda record, failed: records.append(record))
    assert good == 0, "\n".join(out_lines)
    model = records[0].tasks["MODEL"]
    assert model.state == "SUCCEEDED" and json.loads(model.return_value)["value"]["rows"] == 10
    assert "ML job started" in model.output and "ML job finished" in model.output  # snowflake-ml-python's launcher ran it
    account.clear_log()
    spec_failing = remote_pipeline(broken_model)
    code, out = deploy(account, tmp_path, spec_failing, sandbox=True)
    assert code == 1 and "rehearsal on the emulator FAILED (first error: MODEL); nothing was deployed" in out
    assert "the job's own failure: out of memory in fit()" in out
    # channel and pool lookups, the deploy diff's read (nothing deployed yet): nothing changed
    assert {c.summary for c in account.calls} == {"SQL SELECT", "SQL SHOW", "GET tasks/DEMO"}


def test_a_compute_pool_that_does_not_exist_stops_before_anything_changes(tmp_path: Path) -> None:
    with OfflineAccount(schemas=["DB.SCH"], stages=["DB.SCH.ST", "DB.SCH.JOB_STAGE"], compute_pools=["OTHER"]) as acct:
        code, out = deploy(acct, tmp_path)
        assert code == 1 and acct.task_names(schema="SCH") == []
        assert "compute pool POOL does not exist or the role cannot see it" in out and "nothing was changed" in out


def test_an_asynchronous_ml_job_is_refused_by_the_rehearsal() -> None:
    sql = ("CALL SYSTEM$EXECUTE_ML_JOB('DB.S.J_', 'POOL', '{\"STAGE_PATH\": \"@DB.S.ST/J\", \"ARGS\": "
           "[\"/mnt/job_stage/app/func.py\", \"--script_main_func\", \"func\"]}', '{\"ASYNC\": true}')")
    with pytest.raises(ShipError, match="runs asynchronously .* must run with ASYNC false"):
        parse_ml_job("MODEL", sql)
    assert parse_ml_job("MODEL", sql.replace("true", "false"))["entry"] == "func.py"
    assert parse_ml_job("MODEL", "WITH p AS PROCEDURE () LANGUAGE PYTHON ...") is None


# ------------------------------------------------------------------ qualified paths


def test_only_the_schema_set_ships_paths_qualified_with_the_sessions_database(account: OfflineAccount, tmp_path: Path) -> None:
    with OfflineAccount(schemas=["DB.SCH", "DB.OTHER"], stages=["DB.SCH.ST", "DB.SCH.JOB_STAGE"],
                        compute_pools=["POOL"]) as acct:
        code, out = deploy(acct, tmp_path, database=None, schema="SCH", stage_location="@ST", session_schema="OTHER")
        assert code == 0, out
        assert "to DB.SCH" in out and acct.task_names(schema="OTHER") == []
        metrics = acct.task("DEMO$METRICS", schema="SCH")["definition"]
        assert "IMPORTS=('@DB.SCH.ST/" in metrics
        job = parse_ml_job("MODEL", acct.task("DEMO$MODEL", schema="SCH")["definition"])
        assert job["spec"]["STAGE_PATH"].startswith("@DB.SCH.JOB_STAGE/") and job["id"].startswith("DB.SCH.")


# ------------------------------------------------------------------ restore as snowflake.core reads a graph


class RelationsOnlyAccount(OfflineAccount):
    """Reports the finalizer relation only in ``task_relations`` (no ``finalize`` field), as dagv1 reads it."""

    def _task_json(self, task: Any) -> dict[str, Any]:
        body = super()._task_json(task)
        body.pop("finalize", None)
        return body


def test_restore_finds_the_finalizer_through_task_relations(tmp_path: Path) -> None:
    with RelationsOnlyAccount(schemas=["DB.SCH"], stages=["DB.SCH.ST", "DB.SCH.JOB_STAGE"],
                              compute_pools=["POOL"]) as acct:
        assert deploy(acct, tmp_path, pipeline())[0] == 0
        before = state(acct)
        acct.fail_when(lambda c: c.summary == "POST tasks?createMode=orReplace")  # the first child of the new graph
        code, out = deploy(acct, tmp_path, pipeline())
        acct.clear_failures()
        assert code == 1 and "the previous graph was restored" in out
        assert state(acct) == before
        assert json.loads(acct.task("DEMO", schema="SCH")["task_relations"])["FinalizerTask"] == \
            "DB.SCH.DEMO$SNOWPIPE_FINALIZER"


def test_restore_resumes_children_before_the_root(account: OfflineAccount, tmp_path: Path) -> None:
    assert deploy(account, tmp_path, pipeline())[0] == 0
    account.clear_log()
    account.fail_when(lambda c: c.summary == "POST tasks/DEMO$METRICS:resume")
    assert deploy(account, tmp_path, pipeline())[0] == 1
    resumes = [c.summary for c in account.calls if c.summary.endswith(":resume") and c.error is None]
    restore_part = resumes[resumes.index("POST tasks/DEMO$RAW:resume", 1):]  # after the failed creation
    assert restore_part[-1] == "POST tasks/DEMO:resume" and len(restore_part) == 9  # 8 children, then the root


# ------------------------------------------------------------------ a deploy that respects the account


def test_a_graph_the_user_suspended_stays_suspended(account: OfflineAccount, tmp_path: Path) -> None:
    assert deploy(account, tmp_path, pipeline())[0] == 0
    account.root(account.session("DB", "SCH")).databases["DB"].schemas["SCH"].tasks["DEMO"].suspend()
    code, out = deploy(account, tmp_path, pipeline())
    assert code == 0 and account.task("DEMO", schema="SCH")["state"] == "suspended"
    assert account.task("DEMO$METRICS", schema="SCH")["state"] == "started"
    assert "was suspended before this deploy and stays suspended" in out and "ALTER TASK DB.SCH.DEMO RESUME" in out


def test_a_failed_first_deploy_removes_what_it_uploaded(account: OfflineAccount, tmp_path: Path) -> None:
    account.fail_when(lambda c: c.summary == "POST tasks/DEMO$MODEL:resume")  # after the job's payload was uploaded
    code, out = deploy(account, tmp_path)
    assert code == 1 and account.task_names(schema="SCH") == []
    assert "removed the" in out and "file(s) it had uploaded" in out
    assert account.list_stage("@DB.SCH.ST") == [] and account.list_stage("@DB.SCH.JOB_STAGE") == []


def test_listing_tasks_failing_after_a_redeploy_removes_no_stage_file(account: OfflineAccount, tmp_path: Path) -> None:
    assert deploy(account, tmp_path, pipeline())[0] == 0
    files = {f.name for f in account.list_stage("@DB.SCH.ST")}
    account.fail_when(lambda c: c.summary == "GET tasks")  # "which files are still in use?" cannot be answered
    code, out = deploy(account, tmp_path, pipeline())
    assert code == 0 and "superseded" not in out
    assert files <= {f.name for f in account.list_stage("@DB.SCH.ST")}  # nothing the old or new graph imports went


def test_an_outage_that_outlasts_the_undo_names_what_is_left_and_how_to_remove_it(account: OfflineAccount, tmp_path: Path) -> None:
    assert deploy(account, tmp_path, pipeline())[0] == 0
    account.fail_when(lambda c: c.summary == "POST tasks?createMode=orReplace" and str((c.body or {}).get("name", "")).startswith("DEMO$"),
                      times=-1)  # every child fails, in the deploy and in its undo: the root alone is left
    code, out = deploy(account, tmp_path, pipeline())
    assert code == 1 and "restoring the previous graph failed too" in out
    left = sorted(account.task_names(schema="SCH"))
    assert left == ["DEMO"] and "left in DB.SCH: DEMO." in out
    assert "--snowpipe-undeploy" in out and "DROP TASK IF EXISTS DB.SCH.DEMO" in out


def _interrupt_at(account: OfflineAccount, summary: str, signum: int, also_during_restore: bool = False) -> None:
    """Send ``signum`` to this process when the account sees ``summary`` (the deploy's main thread gets it)."""
    pid = os.getpid()
    fired: list[bool] = []

    def fire(call: Any) -> bool:
        if call.summary == summary and not fired:
            fired.append(True)
            os.kill(pid, signum)
        elif also_during_restore and fired and call.summary == "POST tasks?createMode=orReplace" and len(fired) == 1:
            fired.append(True)
            os.kill(pid, signal.SIGINT)  # a second signal while the old graph is being recreated
        return False

    account.fail_when(fire, times=-1)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_redeploy_restores_the_old_graph(account: OfflineAccount, tmp_path: Path, signum: int) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    assert deploy(account, tmp_path, pipeline())[0] == 0
    before = state(account)
    _interrupt_at(account, "POST tasks?createMode=orReplace", signum, also_during_restore=True)
    code, out = deploy(account, tmp_path, pipeline())
    account.clear_failures()
    name = signal.Signals(signum).name
    assert code == 128 + signum, out
    assert f"was interrupted by {name} while creating the new graph; the previous graph was restored" in out
    assert "SIGINT received during the undo was held until it finished" in out
    assert state(account) == before


def test_undeploy_drops_the_graph_and_its_files_and_is_safe_to_repeat(account: OfflineAccount, tmp_path: Path) -> None:
    assert deploy(account, tmp_path)[0] == 0
    assert account.list_stage("@DB.SCH.JOB_STAGE")
    code, out = deploy(account, tmp_path, undeploy=True)
    assert code == 0 and account.task_names(schema="SCH") == [], out
    assert "undeployed Task Graph DEMO from DB.SCH: dropped 9 task(s)" in out
    assert account.list_stage("@DB.SCH.ST") == [] and account.list_stage("@DB.SCH.JOB_STAGE") == []
    assert deploy(account, tmp_path, undeploy=True) == (0, "nothing to undeploy: there is no Task Graph DEMO in DB.SCH")


def test_an_undeploy_that_fails_midway_restores_the_graph(account: OfflineAccount, tmp_path: Path) -> None:
    assert deploy(account, tmp_path)[0] == 0
    before = state(account)
    account.fail_when(lambda c: c.summary == "DELETE tasks/DEMO$METRICS")
    code, out = deploy(account, tmp_path, undeploy=True)
    assert code == 1 and "the graph was restored as it was" in out
    assert state(account) == before
