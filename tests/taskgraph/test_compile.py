"""The Task Graph compiler: names, kinds, edges, branch conditions, finalizer, limits, and a full
emulated run of a compiled pipeline on a local-testing session."""
from __future__ import annotations

import inspect
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_snowpipe.pipeline.gate import GateSpec
from pytest_snowpipe.pipeline.graph import Gate, PipelineGraph, Stage
from pytest_snowpipe.taskgraph.artifacts import ArtifactError, load, pointer_text, store
from pytest_snowpipe.taskgraph.compile import (
    FINALIZER_NAME,
    CompileError,
    CompileOptions,
    compile_graph,
    plugin_import,
)
from pytest_snowpipe.taskgraph.plan import format_plan

ENV = ("snowpipe_session", "snowpipe_config")


# ------------------------------------------------------------------ a small pipeline (module level: pickles by value)


def raw(snowpipe_session):
    return snowpipe_session.create_dataframe([(i, float(i)) for i in range(10)], schema=["ID", "X"])


def features(raw, snowpipe_config):
    out = snowpipe_config["out"]
    frame = raw.to_pandas()
    yield frame
    with open(os.path.join(out, "teardown.txt"), "w") as fh:
        fh.write(f"closed {len(frame)} rows")


def model(features):
    return {"mean": float(features["X"].mean())}


def metrics(model, features):
    return {"score": model["mean"] / 10, "rows": len(features)}


def quality_gate(metrics, snowpipe_config):
    assert metrics["score"] >= snowpipe_config["threshold"], "score below threshold"


def stage(func: Callable[..., Any], preds: tuple[str, ...] = (), env: tuple[str, ...] = (), name: str | None = None) -> Stage:
    return Stage(
        name=name or func.__name__, func=func, predecessors=preds, environment=env,
        is_yield=inspect.isgeneratorfunction(func), remote=None, location="here", key="k",
    )


def gate(func: Callable[..., Any], reads: tuple[str, ...], upstream: tuple[str, ...], *, on_pass: Any = "promote",
         on_fail: Any = "alert", model_stage: str | None = "model", metrics_stage: str | None = "metrics",
         env: tuple[str, ...] = ("snowpipe_config",), name: str | None = None) -> Gate:
    return Gate(
        name=name or func.__name__, nodeid=f"t.py::{func.__name__}", func=func, reads=reads, environment=env,
        upstream=upstream, spec=GateSpec(on_pass, on_fail, model_stage, metrics_stage, None),
        model_stage=model_stage, metrics_stage=metrics_stage, location="here", key="g",
    )


def pipeline() -> PipelineGraph:
    return PipelineGraph(
        stages=(
            stage(raw, env=("snowpipe_session",)),
            stage(features, ("raw",), ("snowpipe_config",)),
            stage(model, ("features",)),
            stage(metrics, ("model", "features")),
        ),
        gates=(gate(quality_gate, ("metrics",), ("raw", "features", "model", "metrics")),),
    )


def opts(tmp_path: Any = None, **kw: Any) -> CompileOptions:
    kw.setdefault("config", {"threshold": 0.1, "out": str(tmp_path or "/tmp")})
    kw.setdefault("registry_path", str(tmp_path / "registry") if tmp_path else None)
    return CompileOptions(dag_name="DEMO", **kw)


# ------------------------------------------------------------------ shape


def test_compiled_names_kinds_edges_and_branch_conditions(tmp_path: Any) -> None:
    compiled = compile_graph(pipeline(), opts(tmp_path))
    tasks = compiled.tasks
    assert compiled.kinds == {
        "RAW": "stage", "FEATURES": "stage", "MODEL": "stage", "METRICS": "stage",
        "QUALITY_GATE": "branch", "QUALITY_GATE_PROMOTE": "action", "QUALITY_GATE_ALERT": "action",
        FINALIZER_NAME: "finalizer",
    }
    low = {n: t._to_low_level_task() for n, t in tasks.items()}
    assert low["RAW"].predecessors == ["DEMO"]  # source task hangs off the root
    assert sorted(low["METRICS"].predecessors) == ["DEMO$FEATURES", "DEMO$MODEL"]
    assert low["QUALITY_GATE"].predecessors == ["DEMO$METRICS"]
    assert low["QUALITY_GATE_PROMOTE"].condition == (
        "SYSTEM$GET_PREDECESSOR_RETURN_VALUE('DEMO$QUALITY_GATE') = 'QUALITY_GATE_PROMOTE'"
    )
    assert low["QUALITY_GATE_ALERT"].condition.endswith("= 'QUALITY_GATE_ALERT'")
    assert low[FINALIZER_NAME].finalize == "DEMO" and not low[FINALIZER_NAME].predecessors
    assert compiled.finalizer is tasks[FINALIZER_NAME]
    assert compiled.dag.use_func_return_value and compiled.dag.config["threshold"] == 0.1
    from importlib.metadata import version

    assert f"snowflake-ml-python=={version('snowflake-ml-python')}" in compiled.dag.packages  # a gate promotes: pinned
    assert not any(p.startswith("pytest") for p in compiled.dag.packages)  # the task runtime needs no pytest
    # the branch returns exactly the successor names dagv1 compares against
    spec = compiled.bodies["QUALITY_GATE"]
    assert (spec.on_pass, spec.on_fail) == ("QUALITY_GATE_PROMOTE", "QUALITY_GATE_ALERT")
    # every body is a (session: Session) -> str function, as Snowpark's sproc registration demands
    from snowflake.snowpark import Session

    definition = low["MODEL"].definition
    fn = inspect.unwrap(definition.func)
    assert fn.__annotations__ == {"session": Session, "return": str}
    assert definition._stage_location == "@SNOWPIPE_STAGE"
    # the plugin ships with every task, so its runtime (and users' contracts) import in Snowflake
    package_dir, import_path = plugin_import()
    assert import_path == "pytest_snowpipe" and (Path(package_dir) / "taskgraph" / "runtime.py").is_file()
    assert all((package_dir, import_path) in task.definition._imports for task in low.values())


def test_plan_lists_tasks_conditions_finalizer_and_mermaid(tmp_path: Any) -> None:
    from datetime import timedelta

    plan = format_plan(compile_graph(pipeline(), opts(tmp_path, schedule=timedelta(minutes=30), warehouse="WH")))
    assert "every 30 minutes" in plan and "WH" in plan and "threshold=0.1" in plan
    assert "= 'QUALITY_GATE_ALERT'" in plan
    assert "finalize = DEMO" in plan and "teardown of features" in plan
    assert "flowchart LR" in plan and "QUALITY_GATE -- pass --> QUALITY_GATE_PROMOTE" in plan


# ------------------------------------------------------------------ a full emulated run


@pytest.fixture(scope="module")
def session(embedded_session: Any) -> Any:
    return embedded_session


def test_emulated_run_pass_promotes_and_skips_alert(tmp_path: Any, session: Any) -> None:
    from pytest_snowpipe.doubles.emulator import emulate
    from pytest_snowpipe.registry.local import LocalRegistry

    compiled = compile_graph(pipeline(), opts(tmp_path))
    record = emulate(compiled.dag, session=session)
    states = {n: r.state for n, r in record.tasks.items()}
    assert record.state == "SUCCEEDED", record.format()
    assert states["QUALITY_GATE_PROMOTE"] == "SUCCEEDED"
    assert states["QUALITY_GATE_ALERT"] == "SKIPPED"
    assert record.tasks["QUALITY_GATE"].return_value == "QUALITY_GATE_PROMOTE"
    assert json.loads(record.tasks["RAW"].return_value)["kind"] == "table"
    assert json.loads(record.tasks["FEATURES"].return_value)["kind"] == "parquet"
    assert json.loads(record.tasks["METRICS"].return_value) == {"kind": "json", "value": {"score": 0.45, "rows": 10}}
    version = LocalRegistry(tmp_path / "registry").default("model")
    assert version is not None and version.load() == {"mean": 4.5} and version.metrics["score"] == 0.45
    assert (tmp_path / "teardown.txt").read_text() == "closed 10 rows"
    assert "dropped 1 table" in record.tasks[FINALIZER_NAME].return_value
    table = json.loads(record.tasks["RAW"].return_value)["name"]
    from snowflake.snowpark.exceptions import SnowparkSQLException

    with pytest.raises(SnowparkSQLException, match="does not exist"):
        session.table(table).collect()  # the finalizer dropped the run's table


def test_emulated_run_failing_gate_alerts_and_finalizer_still_runs(tmp_path: Any, session: Any) -> None:
    from pytest_snowpipe.doubles.emulator import emulate

    compiled = compile_graph(pipeline(), opts(tmp_path))
    record = emulate(compiled.dag, session=session, config_overrides={"threshold": 0.9})
    states = {n: r.state for n, r in record.tasks.items()}
    assert record.state == "SUCCEEDED", record.format()  # taking the alert side is a successful run
    assert states["QUALITY_GATE_ALERT"] == "SUCCEEDED" and states["QUALITY_GATE_PROMOTE"] == "SKIPPED"
    assert "score below threshold" in record.tasks["QUALITY_GATE_ALERT"].return_value
    assert states[FINALIZER_NAME] == "SUCCEEDED"
    assert (tmp_path / "teardown.txt").read_text() == "closed 10 rows"


def explode(metrics):
    raise RuntimeError("boom")


def test_gate_error_fails_the_run_but_the_finalizer_runs(tmp_path: Any, session: Any) -> None:
    from pytest_snowpipe.doubles.emulator import emulate

    g = pipeline()
    graph = PipelineGraph(stages=g.stages, gates=(gate(explode, ("metrics",), g.gates[0].upstream, env=()),))
    record = emulate(compile_graph(graph, opts(tmp_path)).dag, session=session)
    assert record.state == "FAILED" and record.first_error_task_name == "EXPLODE"
    assert record.tasks["EXPLODE_PROMOTE"].state == "NOT_EXECUTED"
    assert record.tasks[FINALIZER_NAME].state == "SUCCEEDED"
    assert (tmp_path / "teardown.txt").exists()


# ------------------------------------------------------------------ bad inputs


def nop(**kw: Any) -> int:
    return 1


def problems_of(graph: PipelineGraph, **kw: Any) -> str:
    with pytest.raises(CompileError) as info:
        compile_graph(graph, CompileOptions(dag_name="BAD", **kw))
    return str(info.value)


def chk(**kw: Any) -> None:
    pass


def test_cycle_is_reported_before_anything_is_built() -> None:
    graph = PipelineGraph(stages=(stage(nop, ("b",), name="a"), stage(nop, ("a",), name="b")), gates=())
    assert "stages a, b form a cycle" in problems_of(graph)


def test_too_many_tasks() -> None:
    stages = tuple(stage(nop, (f"s{i - 1}",) if i % 10 else (), name=f"s{i}") for i in range(1001))
    text = problems_of(PipelineGraph(stages=stages, gates=()), check_pickle=False)
    assert "1003 tasks" in text and "at most 1000" in text


def test_too_many_predecessors_children_and_sources() -> None:
    srcs = tuple(stage(nop, name=f"s{i}") for i in range(101))
    join = stage(nop, tuple(s.name for s in srcs), name="join")
    text = problems_of(PipelineGraph(stages=(*srcs, join), gates=()), check_pickle=False)
    assert "stage 'join' has 101 predecessors; a task may have at most 100" in text
    assert "101 stages have no predecessor" in text
    fan = tuple(stage(nop, ("root",), name=f"c{i}") for i in range(101))
    text = problems_of(PipelineGraph(stages=(stage(nop, name="root"), *fan), gates=()), check_pickle=False)
    assert "stage 'root' has 101 children" in text


def test_case_collision_and_bad_identifier() -> None:
    graph = PipelineGraph(
        stages=(stage(nop, name="model"), stage(nop, name="MODEL"), stage(nop, name="bad-name")), gates=()
    )
    text = problems_of(graph)
    assert "stage 'MODEL' and stage 'model' both become task MODEL" in text
    assert "stage 'bad-name': task name 'BAD-NAME' is not an unquoted Snowflake identifier" in text


def test_name_over_255_characters() -> None:
    text = problems_of(PipelineGraph(stages=(stage(nop, name="x" * 260),), gates=()))
    assert "longer than 255 characters" in text


LOCK = threading.Lock()


def holds_lock():
    return LOCK.locked()


def test_unpicklable_body_is_named() -> None:
    text = problems_of(PipelineGraph(stages=(stage(holds_lock),), gates=()))
    assert "task HOLDS_LOCK: its body cannot be pickled" in text and "lock" in text


def test_gate_action_naming_no_task() -> None:
    graph = PipelineGraph(
        stages=(stage(nop, name="model"), stage(nop, ("model",), name="metrics")),
        gates=(gate(chk, ("metrics",), ("model", "metrics"), on_pass="deploy", env=()),),
    )
    assert "gate 'chk': on_pass='deploy' names no action task" in problems_of(graph)


def yield_in_try():
    try:
        yield 1
    finally:
        pass


def test_yield_inside_try_is_refused() -> None:
    text = problems_of(PipelineGraph(stages=(stage(yield_in_try),), gates=()))
    assert "stage 'yield_in_try'" in text and "top-level statement" in text


def test_pointer_over_10kb_is_a_clear_error(session: Any) -> None:
    import pandas

    frames = [pandas.DataFrame({"a": [i]}) for i in range(200)]
    pointer = store(session, frames, dag="D", stage="wide", run_id="r1", stage_location="@S")
    with pytest.raises(ArtifactError, match=r"stage 'wide'.*over the Task Graph return-value limit of 10 kB"):
        pointer_text(pointer, "wide")
    # and a stage returning it fails its task with that message, on the emulator
    from pytest_snowpipe.doubles.emulator import emulate

    def wide():
        return [pandas.DataFrame({"a": [i]}) for i in range(200)]

    record = emulate(compile_graph(PipelineGraph(stages=(stage(wide),), gates=()), CompileOptions(check_pickle=False)).dag,
                     session=session)
    assert record.tasks["WIDE"].state == "FAILED" and "10 kB" in record.tasks["WIDE"].error


def test_artifacts_round_trip(session: Any) -> None:
    import pandas

    df = session.create_dataframe([(1, 2.0)], schema=["A", "B"])
    value = {"frame": df, "pdf": pandas.DataFrame({"x": [1, 2]}), "n": 3}
    pointer = store(session, value, dag="D", stage="s", run_id="run", stage_location="@S")
    back = load(session, pointer_text(pointer, "s"))
    assert back["frame"].collect() == df.collect() and back["pdf"]["x"].tolist() == [1, 2] and back["n"] == 3
    assert load(session, store(session, (1, 2), dag="D", stage="t", run_id="run", stage_location="@S")) == (1, 2)
    assert store(session, [1, "a"], dag="D", stage="u", run_id="r", stage_location="@S")["kind"] == "json"


from pytest_snowpipe.pipeline.remote import remote  # noqa: E402


@remote(compute_pool="POOL", stage_name="JOB_STAGE")
def trained(features):
    return {"n": len(features), "pid_differs": os.getpid()}


def test_remote_stage_compiles_to_an_ml_job_task_and_runs_on_the_emulator(tmp_path: Any, session: Any) -> None:
    from pytest_snowpipe.doubles.emulator import emulate
    from pytest_snowpipe.pipeline.remote import remote_spec
    from pytest_snowpipe.taskgraph.ml_job_task import MLJobTask, MLJobTaskError

    base = pipeline()
    remote_stage = Stage(name="trained", func=trained, predecessors=("features",), environment=(), is_yield=False,
                         remote=remote_spec(trained), location="here", key="r")
    graph = PipelineGraph(stages=(*base.stages[:2], remote_stage), gates=())
    compiled = compile_graph(graph, opts(tmp_path))
    assert compiled.kinds["TRAINED"] == "remote ML Job"
    definition = compiled.tasks["TRAINED"].definition
    assert isinstance(definition, MLJobTask) and definition.job_name == "DEMO_TRAINED"  # stable across deploys
    assert definition.job_options()["overwrite"] is True and definition.job_options()["name"] == "DEMO_TRAINED"
    with pytest.raises(MLJobTaskError, match="only when deployed with a session"):
        compiled.tasks["TRAINED"]._to_low_level_task()  # dagv1 asks for the SQL: no session, no guess
    record = emulate(compiled.dag, session=session)
    assert record.state == "SUCCEEDED", record.format()
    value = json.loads(record.tasks["TRAINED"].return_value)["value"]
    assert value["n"] == 10  # the job read its input through TaskContext and set its pointer as the return value


def test_schedule_bounds_agree_with_the_schedule_parser(tmp_path):
    from datetime import timedelta

    from pytest_snowpipe.taskgraph.schedule import parse_schedule

    ok = compile_graph(pipeline(), opts(tmp_path, schedule=parse_schedule("30s")))
    assert ok.dag.schedule == timedelta(seconds=30)
    with pytest.raises(CompileError, match="between 10 seconds and 8 days"):
        compile_graph(pipeline(), opts(tmp_path, schedule=timedelta(seconds=5)))


def test_secret_looking_config_key_never_reaches_a_dag_config(tmp_path):
    with pytest.raises(CompileError) as info:
        compile_graph(pipeline(), opts(tmp_path, config={"threshold": 0.1, "api_token": "s3cr3t-PLANTED"}))
    text = str(info.value)
    assert "config key 'api_token' looks like a secret" in text and "s3cr3t-PLANTED" not in text


def test_ordinary_key_names_are_not_taken_for_secrets(tmp_path):
    compiled = compile_graph(pipeline(), opts(tmp_path, config={"threshold": 0.1, "model_key": "m", "partition_key": "p"}))
    assert compiled.dag.config["model_key"] == "m"


@remote("DEMO_POOL", stage_name="JOB_STAGE", database="SNOWBANK", schema="DEV", target_instances=2,
        pip_requirements=["xgboost"], env_vars={"A": "1"})
def trained_seed(features):
    return len(features)


def test_plan_shows_every_ml_job_option(tmp_path: Any) -> None:
    from pytest_snowpipe.pipeline.remote import remote_spec

    base = pipeline()
    remote_stage = Stage(name="trained_seed", func=trained_seed, predecessors=("features",), environment=(),
                         is_yield=False, remote=remote_spec(trained_seed), location="here", key="r")
    plan = format_plan(compile_graph(PipelineGraph(stages=(*base.stages[:2], remote_stage), gates=()), opts(tmp_path)))
    assert (
        "ML Job DEMO_TRAINED_SEED on compute pool DEMO_POOL, job stage JOB_STAGE, 2 instance(s), pip_requirements=['xgboost'], "
        "database='SNOWBANK', schema='DEV', env_vars={'A': '1'}: CALL SYSTEM$EXECUTE_ML_JOB (ASYNC false)"
    ) in plan
