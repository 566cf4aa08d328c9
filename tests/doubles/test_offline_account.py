"""The offline account itself: the real ``DAGOperation.deploy`` (snowflake.core 1.14, Snowpark 1.56, connector 4.8)
against it, and what it records. These pin what the real clients do, so a client upgrade that changes it shows here."""
from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from snowflake.core import CreateMode, Root
from snowflake.core.exceptions import ConflictError, ServerError
from snowflake.core.task.dagv1 import DAG, DAGOperation, DAGTask, DAGTaskBranch
from snowflake.snowpark import Session

from pytest_snowpipe.doubles.offline_account import OfflineAccount, sequence

warnings.filterwarnings("ignore", category=DeprecationWarning)


def extract(session: Session) -> str:
    return "rows=10"


def choose(session: Session) -> str:
    return "TRAIN"


def train(session: Session) -> str:
    return "model-1"


def cleanup(session: Session) -> str:
    return "cleaned"


def build_dag(helper: Path, **kw: Any) -> DAG:
    """Root DEMO + EXTRACT >> CHOOSE (branch) >> [TRAIN, REPORT(SQL)], finalizer CLEANUP."""
    with DAG(
        "DEMO",
        schedule=timedelta(minutes=30),
        stage_location="@DB.S.ST",
        use_func_return_value=True,
        config={"threshold": 0.5, "mode": "fast"},
        packages=kw.pop("packages", ["snowflake-snowpark-python", "pandas"]),
        imports=[str(helper)],
        **kw,
    ) as dag:
        t_extract = DAGTask("EXTRACT", definition=extract)
        branch = DAGTaskBranch("CHOOSE", definition=choose)
        t_train = DAGTask("TRAIN", definition=train)
        t_report = DAGTask("REPORT", definition="select 'report'")
        DAGTask("CLEANUP", definition=cleanup, is_finalizer=True)
        t_extract >> branch >> [t_train, t_report]
    return dag


GRAPH = ["DEMO", "DEMO$EXTRACT", "DEMO$CHOOSE", "DEMO$TRAIN", "DEMO$REPORT", "DEMO$CLEANUP"]

# The REST calls of a first deploy (dagv1 1.14: children in dagv1's topological order).
FIRST_DEPLOY_REST = [
    "GET tasks/DEMO",  # drop(dag): 404, nothing to drop
    "POST tasks?createMode=errorIfExists",  # the root, always errorIfExists
    "POST tasks?createMode=orReplace", "POST tasks/DEMO$EXTRACT:resume",
    "POST tasks?createMode=orReplace", "POST tasks/DEMO$CHOOSE:resume",
    "POST tasks?createMode=orReplace", "POST tasks/DEMO$CLEANUP:resume",
    "POST tasks?createMode=orReplace", "POST tasks/DEMO$REPORT:resume",
    "POST tasks?createMode=orReplace", "POST tasks/DEMO$TRAIN:resume",
    "POST tasks/DEMO:resume",  # scheduled: the root is resumed last
]


@pytest.fixture
def helper(tmp_path: Path) -> Path:
    p = tmp_path / "pipeline_helpers.py"
    p.write_text("THRESHOLD = 0.5\n")
    return p


@pytest.fixture
def account() -> Iterator[OfflineAccount]:
    with OfflineAccount(schemas=["DB.S"], stages=["DB.S.ST"]) as acct:
        yield acct


@pytest.fixture
def session(account: OfflineAccount) -> Iterator[Session]:
    s = account.session()
    yield s
    s.close()


@pytest.fixture
def op(account: OfflineAccount, session: Session) -> DAGOperation:
    root = account.root(session)
    account.clear_log()  # Root's own SELECT SYSTEM$CLIENT_VERSION_INFO()
    return DAGOperation(root.databases["DB"].schemas["S"])


def test_root_and_session_are_the_real_clients(account: OfflineAccount, session: Session) -> None:
    root = account.root(session)
    assert type(root) is Root and type(session) is Session
    assert session.get_current_database() == '"DB"' and session.get_current_schema() == '"S"'
    assert root.connection is session._conn._conn  # one account, one connection, both clients


def test_first_deploy_call_sequence(account: OfflineAccount, op: DAGOperation, helper: Path) -> None:
    op.deploy(build_dag(helper), mode=CreateMode.or_replace)

    assert sequence(account.rest_calls()) == FIRST_DEPLOY_REST
    assert account.rest_calls()[0].status == 404
    created = [c.body["name"] for c in account.rest_calls() if c.method == "POST" and c.path.endswith("/tasks")]
    assert created == ["DEMO", "DEMO$EXTRACT", "DEMO$CHOOSE", "DEMO$CLEANUP", "DEMO$REPORT", "DEMO$TRAIN"]

    sql = [c.sql for c in account.sql_calls()]
    # once per session: the default artifact repository; per Python task: the package check
    assert sql[0].startswith("SELECT SYSTEM$GET_DEFAULT_PYTHON_ARTIFACT_REPOSITORY('3.11'")
    package_checks = [s for s in sql if "array_agg" in s and "information_schema.packages" in s]
    assert len(package_checks) == 4  # EXTRACT, CHOOSE, CLEANUP, TRAIN (REPORT is SQL)
    assert "\"PACKAGE_NAME\" IN ('snowflake-snowpark-python', 'pandas')" in package_checks[0]
    # the import is uploaded once (content-addressed directory), after a LIST of the stage
    puts = [s for s in sql if s.startswith("PUT ")]
    assert len(puts) == 1 and "pipeline_helpers.py.zip" in puts[0] and "'@DB.S.ST/" in puts[0]
    # all Python task code is small: inlined, nothing under task_handler_sp/
    assert [f.name.split("/")[1] for f in account.list_stage("@DB.S.ST")] == ["pipeline_helpers.py.zip"]
    # every create comes before its resume, and after its predecessors
    names = [c.path.rsplit("/", 1)[-1].split(":")[0] if ":" in c.path else c.body["name"] for c in account.rest_calls()[1:]]
    assert names.index("DEMO$CHOOSE") > names.index("DEMO$EXTRACT")
    assert names.index("DEMO$TRAIN") > names.index("DEMO$CHOOSE") < names.index("DEMO$REPORT")


def test_task_bodies_round_trip_through_snowflake_core(account: OfflineAccount, op: DAGOperation, helper: Path) -> None:
    op.deploy(build_dag(helper), mode=CreateMode.or_replace)
    tasks = op.schema.tasks
    assert sorted(account.task_names()) == sorted(GRAPH)

    root = tasks["DEMO"].fetch()  # the real client deserialises the account's JSON
    assert root.state == "started" and root.schedule == timedelta(minutes=30)
    assert root.config == {"threshold": 0.5, "mode": "fast"}
    assert json.loads(root.task_relations)["FinalizerTask"] == "DB.S.DEMO$CLEANUP"

    train_task = tasks["DEMO$TRAIN"].fetch()
    d = train_task.definition
    assert d.strip().startswith("WITH task_handler_sp AS PROCEDURE ()") and d.rstrip().endswith("CALL task_handler_sp()")
    assert "RETURNS STRING" in d and "LANGUAGE PYTHON" in d and f"RUNTIME_VERSION={sys.version_info[0]}.{sys.version_info[1]}" in d
    assert "PACKAGES=('snowflake-snowpark-python','pandas','cloudpickle>=" in d
    assert "IMPORTS=('@DB.S.ST/" in d and "/pipeline_helpers.py.zip')" in d
    assert "HANDLER='compute'" in d and "pickle.loads(bytes.fromhex(" in d  # inlined, <= 8192 bytes
    assert train_task.predecessors == ["DEMO$CHOOSE"]
    assert train_task.condition == "SYSTEM$GET_PREDECESSOR_RETURN_VALUE('DEMO$CHOOSE') = 'TRAIN'"
    assert train_task.state == "started"

    assert tasks["DEMO$REPORT"].fetch().definition == "select 'report'"
    fin = tasks["DEMO$CLEANUP"].fetch()
    assert fin.finalize == "DEMO" and not fin.predecessors
    assert [t.name for t in tasks["DEMO"].fetch_task_dependents()] == [
        "DEMO", "DEMO$EXTRACT", "DEMO$CHOOSE", "DEMO$REPORT", "DEMO$TRAIN", "DEMO$CLEANUP"]


def test_large_code_goes_to_the_stage_with_a_new_name_each_deploy(account: OfflineAccount, op: DAGOperation) -> None:
    blob = "x" * 20_000

    def big(session: Session) -> str:
        return blob[:1]

    with DAG("BIGDAG", stage_location="@DB.S.ST", packages=["pandas"]) as dag:
        DAGTask("BIG", definition=big)
    op.deploy(dag, mode=CreateMode.or_replace)
    op.deploy(dag, mode=CreateMode.or_replace)
    zips = [f.name for f in account.list_stage("@DB.S.ST/task_handler_sp")]
    assert len(zips) == 2  # the first deploy's zip is left behind
    d = account.task("BIGDAG$BIG")["definition"]
    assert f"IMPORTS=('@DB.S.ST/{zips[0]}')" in d or f"IMPORTS=('@DB.S.ST/{zips[1]}')" in d
    assert "HANDLER='udf_py_" in d and "snowflake-snowpark-python==" in d  # client's Snowpark pinned


def test_redeploy_drops_and_recreates(account: OfflineAccount, op: DAGOperation, helper: Path) -> None:
    dag = build_dag(helper)
    op.deploy(dag, mode=CreateMode.or_replace)
    first_ids = {n: account.task(n)["id"] for n in GRAPH}
    account.clear_log()

    op.deploy(dag, mode=CreateMode.or_replace)
    assert sequence(account.rest_calls()) == [
        "GET tasks/DEMO",
        "POST tasks/DEMO:suspend",  # it was started
        "GET tasks/DEMO/dependents",
        # reversed dependents; the finalizer is kept (drop_finalizer=False)
        "POST tasks/DEMO$TRAIN:suspend", "DELETE tasks/DEMO$TRAIN",
        "POST tasks/DEMO$REPORT:suspend", "DELETE tasks/DEMO$REPORT",
        "POST tasks/DEMO$CHOOSE:suspend", "DELETE tasks/DEMO$CHOOSE",
        "POST tasks/DEMO$EXTRACT:suspend", "DELETE tasks/DEMO$EXTRACT",
        "POST tasks/DEMO:suspend", "DELETE tasks/DEMO",
        *FIRST_DEPLOY_REST[1:],
    ]
    assert all(account.task(n)["id"] != first_ids[n] for n in GRAPH)  # all replaced
    assert {account.task(n)["state"] for n in GRAPH} == {"started"}
    # the second deploy finds the import on the stage (LIST) and does not upload it again
    assert not [c for c in account.sql_calls() if c.method == "PUT"]


def test_if_not_exists_on_an_existing_graph_conflicts(account: OfflineAccount, op: DAGOperation, helper: Path) -> None:
    dag = build_dag(helper)
    op.deploy(dag, mode=CreateMode.or_replace)
    with pytest.raises(ConflictError):
        op.deploy(dag, mode=CreateMode.if_not_exists)


def test_a_package_missing_from_the_channel_fails_the_deploy(account: OfflineAccount, op: DAGOperation, helper: Path) -> None:
    with pytest.raises(Exception, match="Cannot add package hypothesis"):
        op.deploy(build_dag(helper, packages=["hypothesis"]), mode=CreateMode.or_replace)
    # ... after the root was created: a half-made graph
    assert account.task_names() == ["DEMO"]


def test_a_pinned_version_the_channel_lacks_fails(account: OfflineAccount, op: DAGOperation, helper: Path) -> None:
    with pytest.raises(Exception, match="pandas==0.0.1"):
        op.deploy(build_dag(helper, packages=["pandas==0.0.1"]), mode=CreateMode.or_replace)


def test_a_failure_at_a_predicate_leaves_a_half_made_graph(account: OfflineAccount, op: DAGOperation, helper: Path) -> None:
    account.fail_when(lambda c: c.kind == "rest" and c.path.endswith("DEMO$CHOOSE:resume"), status=500)
    with pytest.raises(ServerError):
        op.deploy(build_dag(helper), mode=CreateMode.or_replace)
    assert sorted(account.task_names()) == ["DEMO", "DEMO$CHOOSE", "DEMO$EXTRACT"]
    assert account.task("DEMO")["state"] == "suspended" and account.task("DEMO$CHOOSE")["state"] == "suspended"
    assert account.calls[-1].error == "injected failure" and account.calls[-1].status == 500


def test_sql_failure_surfaces_as_the_connectors_error(account: OfflineAccount, op: DAGOperation, helper: Path) -> None:
    from snowflake.connector.errors import ProgrammingError

    account.fail_when(lambda c: c.kind == "sql" and c.method == "PUT", message="stage is full")
    # Snowpark's upload_stream does not wrap: dagv1 sees the connector's own ProgrammingError
    with pytest.raises(ProgrammingError, match="stage is full"):
        op.deploy(build_dag(helper), mode=CreateMode.or_replace)


def test_failure_injected_at_every_step_then_a_redeploy_heals(
    account: OfflineAccount, session: Session, op: DAGOperation, helper: Path
) -> None:
    """Fail the k-th call of a warm deploy for every k; the deploy raises there, a retry rebuilds the graph."""
    dag = build_dag(helper)
    op.deploy(dag, mode=CreateMode.or_replace)  # warm-up: artifact repo cached, import on the stage
    account.clear_log()
    op.deploy(dag, mode=CreateMode.or_replace)
    baseline = sequence(account.calls)
    assert len(baseline) > 30

    problems = []
    for k in range(1, len(baseline) + 1):
        account.clear_log()
        account.fail_at(k)
        try:
            op.deploy(dag, mode=CreateMode.or_replace)
            problems.append(f"step {k} ({baseline[k - 1]}): the deploy did not fail")
        except Exception:
            pass
        got = sequence(account.calls)
        if got != baseline[:k] or account.calls[-1].error is None:
            problems.append(f"step {k}: calls {got[-3:]} != {baseline[max(0, k - 3):k]}")
        account.clear_failures()
        account.clear_log()
        op.deploy(dag, mode=CreateMode.or_replace)  # a redeploy after any interruption heals
        if sorted(account.task_names()) != sorted(GRAPH) or {account.task(n)["state"] for n in GRAPH} != {"started"}:
            problems.append(f"step {k}: redeploy left {account.task_names()}")
    assert not problems, "\n".join(problems)


def test_stage_files_through_snowpark(account: OfflineAccount, session: Session) -> None:
    import io

    session.file.put_stream(io.BytesIO(b"hello"), "@DB.S.ST/dir/a.txt", auto_compress=False)
    account.put_file("@DB.S.ST", "dir/b.txt", b"world")
    assert account.get_file("@DB.S.ST", "dir/a.txt") == b"hello"
    assert [r["name"] for r in session.sql("LIST @DB.S.ST/dir").collect()] == ["st/dir/a.txt", "st/dir/b.txt"]
    assert account.remove("@DB.S.ST/dir/a") == ["dir/a.txt"]
    assert [f.name for f in account.list_stage("@DB.S.ST")] == ["dir/b.txt"]
    with pytest.raises(Exception, match="does not exist"):
        session.sql("LIST @DB.S.NOPE").collect()


def test_task_crud_through_the_real_task_collection(account: OfflineAccount, op: DAGOperation) -> None:
    from snowflake.core.task import Task

    tasks = op.schema.tasks
    tasks.create(Task("T1", definition="select 1"))
    with pytest.raises(ConflictError):
        tasks.create(Task("T1", definition="select 2"))
    tasks.create(Task("T1", definition="select 2"), mode=CreateMode.if_not_exists)
    assert tasks["T1"].fetch().definition == "select 1"
    tasks.create(Task("T1", definition="select 3"), mode=CreateMode.or_replace)
    assert tasks["T1"].fetch().definition == "select 3"
    tasks["T1"].execute()
    assert account.executions == [{"task": "T1", "retry_last": False}]
    assert [t.name for t in tasks.iter(like="t%")] == ["T1"]
    tasks["T1"].drop()
    assert account.task_names() == []
