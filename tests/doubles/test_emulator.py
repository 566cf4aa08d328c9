"""The emulator runs hand-built dagv1 DAGs with Task Graph semantics on a local-testing session."""
from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from snowflake.core.task.context import TaskContext
from snowflake.core.task.dagv1 import DAG, DAGTask, DAGTaskBranch
from snowflake.snowpark import Session

from pytest_snowpipe.doubles.emulator import (
    FAILED,
    NOT_EXECUTED,
    SKIPPED,
    SUCCEEDED,
    EmulatorError,
    RunRecord,
    TaskRun,
    emulate,
    parse_branch_condition,
)


@pytest.fixture(scope="module")
def session(embedded_session: Session) -> Session:
    return embedded_session


def make_dag(name: str, **kwargs: Any) -> DAG:
    kwargs.setdefault("use_func_return_value", True)
    kwargs.setdefault("stage_location", "@pipeline_stage")
    return DAG(name, **kwargs)


def states(record: RunRecord) -> dict[str, str]:
    return {name: run.state for name, run in record.tasks.items()}


# --- linear chain and TaskContext ---------------------------------------------------------------


def test_linear_chain_passes_predecessor_values_through_real_task_context(session: Session) -> None:
    def extract(session: Session) -> str:
        return "10"

    def transform(session: Session) -> str:
        ctx = TaskContext(session)
        assert ctx.get_current_task_name() == "LIN$TRANSFORM"
        assert ctx.get_current_task_short_name() == "TRANSFORM"
        assert ctx.get_current_root_task_name() == "LIN"
        return str(int(ctx.get_predecessor_return_value("extract")) * 2)

    def load(session: Session) -> str:
        ctx = TaskContext(session)
        return f"loaded {ctx.get_predecessor_return_value()} in {ctx.get_current_task_graph_run_group_id()}"

    dag = make_dag("lin")
    with dag:
        e, t, lo = DAGTask("extract", extract), DAGTask("transform", transform), DAGTask("load", load)
        e >> t >> lo
    record = emulate(dag, session=session)
    assert record.state == SUCCEEDED, record.format()
    assert list(record.tasks) == ["extract", "transform", "load"]
    assert states(record) == {"extract": SUCCEEDED, "transform": SUCCEEDED, "load": SUCCEEDED}
    assert record.tasks["transform"].return_value == "20"
    assert record.tasks["load"].return_value == f"loaded 20 in {record.run_group_id}"
    assert record.first_error_task_name is None
    run = record.tasks["extract"]
    assert isinstance(run, TaskRun) and run.attempt == 1 and run.duration_s >= 0 and run.started is not None
    assert run.full_name == "LIN$EXTRACT"


def test_source_task_sees_the_root_as_its_only_predecessor(session: Session) -> None:
    def source(session: Session) -> str:
        return TaskContext(session).get_predecessor_return_value()  # the dummy root sets none: NULL

    dag = make_dag("src")
    with dag:
        DAGTask("source", source)
    record = emulate(dag, session=session)
    assert record.tasks["source"].return_value == "None"


def test_shipped_wrapper_converts_return_value_to_text(session: Session) -> None:
    def number(session: Session) -> int:
        return 42

    def explicit(session: Session) -> None:
        TaskContext(session).set_return_value(7)

    dag = make_dag("wrap")
    with dag:
        DAGTask("number", number)
        DAGTask("explicit", explicit)
    record = emulate(dag, session=session)
    assert record.tasks["number"].return_value == "42"
    assert record.tasks["explicit"].return_value == "7"


def test_without_use_func_return_value_the_return_is_ignored(session: Session) -> None:
    def implicit(session: Session) -> str:
        return "ignored"

    def explicit(session: Session) -> str:
        TaskContext(session).set_return_value("kept")
        return "ignored"

    dag = make_dag("nowrap", use_func_return_value=False)
    with dag:
        DAGTask("implicit", implicit)
        DAGTask("explicit", explicit)
    record = emulate(dag, session=session)
    assert record.tasks["implicit"].return_value is None
    assert record.tasks["explicit"].return_value == "kept"


def test_tasks_share_one_session(session: Session) -> None:
    def write(session: Session) -> str:
        session.create_dataframe([(1,), (2,), (3,)], schema=["A"]).write.save_as_table(
            "EMU_SHARED", mode="overwrite"
        )
        return "EMU_SHARED"

    def read(session: Session) -> str:
        return str(session.table(TaskContext(session).get_predecessor_return_value()).count())

    dag = make_dag("shared")
    with dag:
        DAGTask("write", write) >> DAGTask("read", read)
    record = emulate(dag, session=session)
    assert record.tasks["read"].return_value == "3", record.format()


def test_unknown_predecessor_name_fails_the_task(session: Session) -> None:
    def a(session: Session) -> str:
        return "a"

    def b(session: Session) -> str:
        return TaskContext(session).get_predecessor_return_value("nope")

    dag = make_dag("unk")
    with dag:
        DAGTask("a", a) >> DAGTask("b", b)
    record = emulate(dag, session=session)
    assert record.state == FAILED
    assert record.tasks["b"].state == FAILED
    assert "'UNK$NOPE' is not a predecessor of UNK$B" in record.tasks["b"].error  # type: ignore[operator]
    assert record.first_error_task_name == "b"
    # the failed task's traceback is in the table and the report, ending in the body's own line
    shown = record.format()
    assert "traceback of task b" in shown and "get_predecessor_return_value(\"nope\")" in shown
    assert "traceback of task a" not in shown
    tasks = {t["name"]: t for t in record.to_json()["tasks"]}
    assert "get_predecessor_return_value" in tasks["b"]["traceback"] and "traceback" not in tasks["a"]


def test_unnamed_predecessor_lookup_needs_exactly_one_predecessor(session: Session) -> None:
    def a(session: Session) -> str:
        return "a"

    def join(session: Session) -> str:
        return TaskContext(session).get_predecessor_return_value()

    dag = make_dag("two")
    with dag:
        DAGTask("join", join) << [DAGTask("a", a), DAGTask("b", a)]
    record = emulate(dag, session=session)
    assert record.tasks["join"].state == FAILED
    assert "needs exactly one predecessor; this task has 2" in record.tasks["join"].error  # type: ignore[operator]


# --- branches ------------------------------------------------------------------------------------


def build_branch_dag(name: str, side: str) -> DAG:
    def start(session: Session) -> str:
        return side

    def decide(session: Session) -> str:
        return TaskContext(session).get_predecessor_return_value("start")

    def step(session: Session) -> str:
        return TaskContext(session).get_current_task_short_name()

    dag = make_dag(name)
    with dag:
        st = DAGTask("start", start)
        br = DAGTaskBranch("decide", decide)
        left, right = DAGTask("left", step), DAGTask("right", step)
        left_child, right_child = DAGTask("left_child", step), DAGTask("right_child", step)
        join = DAGTask("join", step)
        st >> br >> [left, right]  # type: ignore[operator]
        left >> left_child
        right >> right_child
        join << [left_child, right_child]
    return dag


@pytest.mark.parametrize(("side", "other"), [("left", "right"), ("right", "left")])
def test_branch_runs_the_named_side_and_skips_the_other_with_descendants(
    session: Session, side: str, other: str
) -> None:
    dag = build_branch_dag(f"br_{side}", side)
    record = emulate(dag, session=session)
    assert record.state == SUCCEEDED, record.format()  # skipped children do not fail a run
    assert record.tasks["decide"].return_value == side
    assert record.tasks[side].state == SUCCEEDED
    assert record.tasks[f"{side}_child"].state == SUCCEEDED
    assert record.tasks[other].state == SKIPPED
    assert "condition false" in (record.tasks[other].reason or "")
    assert record.tasks[f"{other}_child"].state == SKIPPED
    # the join has one SUCCEEDED and one SKIPPED predecessor: it runs
    assert record.tasks["join"].state == SUCCEEDED
    assert record.tasks["join"].return_value == "JOIN"


def test_branch_returning_no_successor_name_skips_both_sides(session: Session) -> None:
    record = emulate(build_branch_dag("br_none", "LEFT"), session=session)  # names are case-sensitive
    assert record.state == SUCCEEDED
    for name in ("left", "right", "left_child", "right_child", "join"):
        assert record.tasks[name].state == SKIPPED, name
    assert record.tasks["join"].reason == "all predecessors skipped"


def test_branch_decision_reads_the_condition_that_ships(session: Session) -> None:
    dag = build_branch_dag("br_cond", "left")
    right = dag.get_task("right")
    assert right is not None
    # rewrite the shipped condition to point at the other name: the emulator must follow it
    right.condition = "SYSTEM$GET_PREDECESSOR_RETURN_VALUE('BR_COND$DECIDE') = 'left'"
    record = emulate(dag, session=session)
    assert record.tasks["right"].state == SUCCEEDED
    assert record.tasks["left"].state == SUCCEEDED


def test_unsupported_condition_fails_the_task_naming_it(session: Session) -> None:
    dag = build_branch_dag("br_bad", "left")
    left = dag.get_task("left")
    assert left is not None
    left.condition = "SYSTEM$STREAM_HAS_DATA('S')"
    record = emulate(dag, session=session)
    assert record.tasks["left"].state == FAILED
    assert "task left: cannot evaluate its condition \"SYSTEM$STREAM_HAS_DATA('S')\"" in record.tasks["left"].error  # type: ignore[operator]
    assert record.tasks["left_child"].state == NOT_EXECUTED
    assert record.state == FAILED


def test_parse_branch_condition_forms() -> None:
    assert parse_branch_condition("SYSTEM$GET_PREDECESSOR_RETURN_VALUE('D$B') = 'x'") == [("D$B", "x")]
    assert parse_branch_condition(
        "SYSTEM$GET_PREDECESSOR_RETURN_VALUE('D$B') = 'it''s' and SYSTEM$GET_PREDECESSOR_RETURN_VALUE('D$C') = 'a\\\\b'"
    ) == [("D$B", "it's"), ("D$C", "a\\b")]
    for bad in ["", "1 = 1", "SYSTEM$GET_PREDECESSOR_RETURN_VALUE('D$B') = 'x' or 1=1",
                "SYSTEM$GET_PREDECESSOR_RETURN_VALUE('D$B') != 'x'"]:
        with pytest.raises(ValueError):
            parse_branch_condition(bad)


def test_task_after_two_branches_needs_both_conditions(session: Session) -> None:
    def pick(session: Session) -> str:
        return "both"

    def other(session: Session) -> str:
        return "nope"

    def step(session: Session) -> str:
        return "ran"

    dag = make_dag("twobr")
    with dag:
        b1, b2 = DAGTaskBranch("b1", pick), DAGTaskBranch("b2", other)
        both = DAGTask("both", step)
        b1 >> both
        b2 >> both
    assert " and " in (both.condition or "")
    record = emulate(dag, session=session)
    assert record.tasks["both"].state == SKIPPED  # b2 returned 'nope'


# --- failure and finalizer -----------------------------------------------------------------------


def test_failure_mid_graph(session: Session) -> None:
    finished: list[str] = []
    lock = threading.Lock()

    def make(name: str, fail: bool = False) -> Any:
        def body(session: Session) -> str:
            if fail:
                raise ValueError(f"{name} exploded")
            with lock:
                finished.append(name)
            return name

        body.__name__ = name
        return body

    def finalize(session: Session) -> str:
        with lock:
            finished.append("cleanup")
        return "cleaned"

    dag = make_dag("fail")
    with dag:
        a = DAGTask("a", make("a"))
        bad = DAGTask("bad", make("bad", fail=True))
        after, after2 = DAGTask("after", make("after")), DAGTask("after2", make("after2"))
        indep, indep2 = DAGTask("indep", make("indep")), DAGTask("indep2", make("indep2"))
        DAGTask("cleanup", finalize, is_finalizer=True)
        a >> bad >> after >> after2
        a >> indep >> indep2
    record = emulate(dag, session=session)
    assert record.state == FAILED
    assert record.first_error_task_name == "bad"
    assert record.first_error_message == "ValueError: bad exploded"
    assert states(record) == {
        "a": SUCCEEDED, "bad": FAILED, "after": NOT_EXECUTED, "after2": NOT_EXECUTED,
        "indep": SUCCEEDED, "indep2": SUCCEEDED, "cleanup": SUCCEEDED,
    }
    assert record.tasks["bad"].error == "ValueError: bad exploded"
    assert "Traceback" in (record.tasks["bad"].traceback or "") and "exploded" in (record.tasks["bad"].traceback or "")
    assert record.tasks["after"].attempt == 0 and record.tasks["after"].started is None
    assert finished[-1] == "cleanup"  # the finalizer ran after everything else
    assert record.tasks["cleanup"].return_value == "cleaned"
    assert list(record.tasks)[-1] == "cleanup"


def test_finalizer_runs_on_success_and_its_failure_fails_the_run(session: Session) -> None:
    def ok(session: Session) -> str:
        return "ok"

    def broken_finalizer(session: Session) -> str:
        raise RuntimeError("could not clean up")

    dag = make_dag("finfail")
    with dag:
        DAGTask("work", ok)
        DAGTask("fin", broken_finalizer, is_finalizer=True)
    assert dag.get_finalizer_task() is not None
    record = emulate(dag, session=session)
    assert states(record) == {"work": SUCCEEDED, "fin": FAILED}
    assert record.state == FAILED
    assert record.first_error_task_name == "fin"
    assert record.tasks["fin"].error == "RuntimeError: could not clean up"


# --- config --------------------------------------------------------------------------------------


def test_config_override_is_merged_key_by_key_and_visible_to_tasks(session: Session) -> None:
    def read(session: Session) -> str:
        ctx = TaskContext(session)
        assert ctx.get_task_graph_config_property("metric_threshold") == 1.01
        return json.dumps(ctx.get_task_graph_config(), sort_keys=True)

    dag = make_dag("cfg", config={"metric_threshold": 0.9, "model": "xgb", "retrain": True})
    with dag:
        DAGTask("read", read)
    record = emulate(dag, session=session, config_overrides={"metric_threshold": 1.01, "extra": 3})
    assert record.state == SUCCEEDED, record.format()
    assert json.loads(record.tasks["read"].return_value or "") == {
        "metric_threshold": 1.01, "model": "xgb", "retrain": True, "extra": 3,
    }
    assert dag.config == {"metric_threshold": 0.9, "model": "xgb", "retrain": True}  # not mutated


def test_no_config_reads_as_none(session: Session) -> None:
    def read(session: Session) -> str:
        return repr(TaskContext(session).get_task_graph_config())

    dag = make_dag("nocfg")
    with dag:
        DAGTask("read", read)
    assert emulate(dag, session=session).tasks["read"].return_value == "None"


@pytest.mark.parametrize("bad", [[1, 2], {"a": 1}, None])
def test_config_values_must_be_scalars(session: Session, bad: Any) -> None:
    dag = make_dag("badcfg", config={"ok": 1})
    with dag:
        DAGTask("t", lambda session: "x")
    with pytest.raises(EmulatorError, match="config key 'bad' of badcfg has a .* value; Snowflake accepts only"):
        emulate(dag, session=session, config_overrides={"bad": bad})


# --- concurrency ---------------------------------------------------------------------------------


def build_barrier_dag(name: str, barrier: threading.Barrier) -> DAG:
    def meet(session: Session) -> str:
        return str(barrier.wait())

    dag = make_dag(name)
    with dag:
        DAGTask("one", meet)
        DAGTask("two", meet)
    return dag


def test_independent_tasks_run_concurrently(session: Session) -> None:
    barrier = threading.Barrier(2, timeout=10)  # both must be inside at once to pass
    record = emulate(build_barrier_dag("conc", barrier), session=session, max_workers=2)
    assert record.state == SUCCEEDED, record.format()
    assert {record.tasks["one"].return_value, record.tasks["two"].return_value} == {"0", "1"}


def test_barrier_proof_is_meaningful_with_one_worker(session: Session) -> None:
    barrier = threading.Barrier(2, timeout=0.2)  # the only wait: a serial run cannot meet it
    record = emulate(build_barrier_dag("serial", barrier), session=session, max_workers=1)
    assert record.state == FAILED
    assert "BrokenBarrierError" in (record.tasks["one"].error or "")


# --- return value limit --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ok"),
    [("x" * 10000, True), ("x" * 10001, False), ("é" * 5000, True), ("é" * 5001, False)],
)
def test_return_value_limit_is_10_kb_of_utf8(session: Session, value: str, ok: bool) -> None:
    def big(session: Session) -> str:
        return value

    dag = make_dag("big")
    with dag:
        DAGTask("big", big)
    record = emulate(dag, session=session)
    run = record.tasks["big"]
    if ok:
        assert run.state == SUCCEEDED and run.return_value == value
    else:
        assert run.state == FAILED and run.return_value is None
        assert run.error is not None
        assert run.error.startswith("task big: return value is ")
        assert "over Snowflake's limit of 10 kB (10000 bytes)" in run.error


# --- non-Python definitions and runners ----------------------------------------------------------


class FakeMLJob:
    """Stands in for an ML Job definition: SQL-convertible, but only with a live session."""

    def to_sql(self) -> str:
        raise AssertionError("the emulator must not call to_sql()")

    def __call__(self) -> None:
        raise AssertionError("the emulator must not call the job")


def test_sql_definition_without_runner_fails_clearly(session: Session) -> None:
    dag = make_dag("sqlt")
    with dag:
        DAGTask("sql_step", "select 1") >> DAGTask("after", lambda session: "x")
        DAGTask("job", FakeMLJob())
    record = emulate(dag, session=session)
    assert record.tasks["sql_step"].state == FAILED
    assert record.tasks["sql_step"].error is not None
    assert record.tasks["sql_step"].error.startswith(
        "task sql_step: the emulator runs Python-function tasks only; got str (SQL)"
    )
    assert record.tasks["job"].error is not None
    assert record.tasks["job"].error.startswith("task job: the emulator runs Python-function tasks only; got FakeMLJob")
    assert record.tasks["after"].state == NOT_EXECUTED
    assert record.state == FAILED


def test_runner_hook_runs_non_python_tasks(session: Session) -> None:
    def prepare(session: Session) -> str:
        return "features_v1"

    def after(session: Session) -> str:
        return "got " + TaskContext(session).get_predecessor_return_value("train")

    seen: dict[str, Any] = {}

    def train_runner(session: Any, ctx: TaskContext) -> str:
        seen["name"] = ctx.get_current_task_short_name()
        seen["threshold"] = ctx.get_task_graph_config_property("metric_threshold")
        return f"model from {ctx.get_predecessor_return_value()}"

    def sql_runner(session: Any, ctx: TaskContext) -> None:
        ctx.set_return_value("sql done")

    dag = make_dag("runners", config={"metric_threshold": 0.5})
    with dag:
        p, t, a = DAGTask("prepare", prepare), DAGTask("train", FakeMLJob()), DAGTask("after", after)
        p >> t >> a
        DAGTask("sql_step", "select 1")
    record = emulate(dag, session=session, runners={"train": train_runner, "sql_step": sql_runner})
    assert record.state == SUCCEEDED, record.format()
    assert record.tasks["train"].return_value == "model from features_v1"
    assert record.tasks["after"].return_value == "got model from features_v1"
    assert record.tasks["sql_step"].return_value == "sql done"
    assert seen == {"name": "TRAIN", "threshold": 0.5}


def test_runner_for_unknown_task_is_an_error(session: Session) -> None:
    dag = make_dag("badrunner")
    with dag:
        DAGTask("t", lambda session: "x")
    with pytest.raises(EmulatorError, match="runners name tasks not in task graph badrunner: tain"):
        emulate(dag, session=session, runners={"tain": lambda s, c: None})


# --- graph-level errors and the report -----------------------------------------------------------


def test_cycle_is_an_error_before_anything_runs(session: Session) -> None:
    ran: list[str] = []

    def t(session: Session) -> str:
        ran.append("x")
        return "x"

    dag = make_dag("cyc")
    with dag:
        a, b, c = DAGTask("a", t), DAGTask("b", t), DAGTask("c", t)
        a >> b >> c
        c >> a
    with pytest.raises(EmulatorError, match="cyc has a cycle through: a, b, c"):
        emulate(dag, session=session)
    assert ran == []


def test_missing_stage_location_fails_like_deploy_would(session: Session) -> None:
    dag = DAG("nostage", use_func_return_value=True)
    with dag:
        DAGTask("t", lambda session: "x")
    record = emulate(dag, session=session)
    assert record.tasks["t"].state == FAILED
    assert "could not build the task that would be deployed" in (record.tasks["t"].error or "")
    assert "stage_location" in (record.tasks["t"].error or "")


def test_format_is_a_readable_table(session: Session) -> None:
    def long(session: Session) -> str:
        return "v" * 500

    def bad(session: Session) -> str:
        raise KeyError("missing column")

    dag = make_dag("fmt")
    with dag:
        DAGTask("long_value", long)
        DAGTask("bad", bad) >> DAGTask("never", long)
    text = emulate(dag, session=session).format()
    lines = text.splitlines()
    assert lines[0].startswith("task graph fmt: FAILED in ") and "first error: bad" in lines[0]
    assert lines[1].split() == ["task", "state", "duration", "return", "value", "error"]
    assert any(line.startswith("long_value") and "SUCCEEDED" in line and "vvv..." in line for line in lines)
    assert any(line.startswith("bad") and "FAILED" in line and "KeyError: 'missing column'" in line for line in lines)
    assert any(line.startswith("never") and "NOT_EXECUTED" in line and "predecessor bad" in line for line in lines)
    assert "v" * 100 not in text


def test_stored_procedure_call_definition_and_runtime_info(session: Session) -> None:
    from datetime import datetime

    from snowflake.core.task import StoredProcedureCall

    def body(session: Session) -> str:
        ctx = TaskContext(session)
        assert isinstance(ctx.get_current_task_graph_original_schedule(), datetime)
        assert ctx.get_last_successful_task_graph_run_group_id() is None
        assert ctx.get_current_root_task_uuid()
        return "via sproc call"

    dag = make_dag("spc")
    with dag:
        DAGTask("spc", StoredProcedureCall(body, stage_location="@other_stage"))
    record = emulate(dag, session=session)
    assert record.state == SUCCEEDED, record.format()
    assert record.tasks["spc"].return_value == "via sproc call"  # dagv1 wrapped it: return -> return value


def test_a_task_in_process_has_text_streams_with_a_buffer(session: Session) -> None:
    """The rehearsal without the sandbox: sys.stdout is the emulator's, and must be a stream too."""
    import sys

    def writes(session: Session) -> str:
        sys.stdout.buffer.write("raw \u00e9\n".encode())
        print(sys.stdout.encoding.lower(), sys.stdout.isatty(), file=sys.stderr)
        return "ok"

    dag = make_dag("streams")
    with dag:
        DAGTask("writes", writes)
    record = emulate(dag, session=session)
    run = record.tasks["writes"]
    assert run.state == SUCCEEDED, run.error
    assert run.output.splitlines() == ["raw é", f"{(sys.stdout.encoding or 'utf-8').lower()} False"]
