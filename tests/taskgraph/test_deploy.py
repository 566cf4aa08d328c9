"""deploy.execute: dry run, local target, rehearse-then-deploy, rollback of a failed deploy, run-once."""
from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_snowpipe.engines.connection import account_configured
from pytest_snowpipe.pipeline.graph import PipelineGraph
from pytest_snowpipe.taskgraph.compile import CompileOptions
from pytest_snowpipe.taskgraph.deploy import DeployOptions, DeployUsageError, execute
from tests.taskgraph.test_compile import explode, gate, pipeline


def options(tmp_path: Any, **kw: Any) -> DeployOptions:
    copts = CompileOptions(
        dag_name="DEMO", config={"threshold": 0.1, "out": str(tmp_path)}, registry_path=str(tmp_path / "reg"),
        database="DB", schema="SCH", notification_integration="NOTIFY", schedule=kw.pop("schedule", None),
    )
    return DeployOptions(compile=copts, poll_initial_s=0.01, **kw)


class FakeTasks:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def __getitem__(self, name: str) -> Any:
        return SimpleNamespace(suspend=lambda: self.log.append(f"suspend {name}"))


class FakeOperation:
    """Stands for DAGOperation: records calls; deploy can fail part-way, runs can be scripted."""

    def __init__(self, fail_deploy: bool = False, final_state: str = "SUCCEEDED") -> None:
        self.log: list[str] = []
        self.schema = SimpleNamespace(tasks=FakeTasks(self.log))
        self.fail_deploy = fail_deploy
        self.final_state = final_state
        self.polls = 0

    def drop(self, dag: Any, *, drop_finalizer: bool = False) -> None:
        self.log.append(f"drop {dag.name} finalizer={drop_finalizer}")

    def deploy(self, dag: Any, mode: Any = None) -> None:
        import cloudpickle

        self.log.append(f"deploy {dag.name} {mode.name}")
        for task in dag.tasks:  # what dagv1 does: pickle each body while creating tasks one by one
            cloudpickle.dumps(task._to_low_level_task().definition.func)
            self.log.append(f"create {task.name}")
            if self.fail_deploy and task.name == "MODEL":
                raise RuntimeError("warehouse suspended")

    def run(self, dag: Any) -> None:
        self.log.append(f"run {dag.name}")

    def get_complete_dag_runs(self, dag: Any, *, error_only: bool = True) -> list[Any]:
        assert error_only is False
        if "run DEMO" not in self.log:
            return [SimpleNamespace(run_id=1, state="FAILED", first_error_task_name="X", first_error_message="old")]
        self.polls += 1
        if self.polls < 3:
            return [SimpleNamespace(run_id=1, state="FAILED", first_error_task_name="X", first_error_message="old")]
        return [SimpleNamespace(run_id=2, state=self.final_state, first_error_task_name=None, first_error_message=None)]

    def get_current_dag_runs(self, dag: Any) -> list[Any]:
        return [SimpleNamespace(state="EXECUTING")]


def fake_session() -> Any:
    return SimpleNamespace(sql=lambda *a, **k: (_ for _ in ()).throw(RuntimeError("offline")))


def test_dry_run_prints_the_plan_without_an_account(tmp_path: Any) -> None:
    out: list[str] = []
    assert execute(pipeline(), options(tmp_path), target="snowflake", dry_run=True, write=out.append) == 0
    text = "\n".join(out)
    assert "Task Graph DEMO -> DB.SCH" in text and "QUALITY_GATE_PROMOTE" in text and "nothing was deployed" in text


def test_local_target_emulates_and_a_gate_fail_is_still_success(tmp_path: Any) -> None:
    out: list[str] = []
    opts = options(tmp_path, config_overrides={"threshold": 0.9})
    assert execute(pipeline(), opts, target="local", write=out.append) == 0
    assert "QUALITY_GATE_ALERT" in out[0] and "SUCCEEDED" in out[0]
    assert (tmp_path / "teardown.txt").exists()


def test_local_target_failed_run_is_nonzero(tmp_path: Any) -> None:
    g = pipeline()
    graph = PipelineGraph(stages=g.stages, gates=(gate(explode, ("metrics",), g.gates[0].upstream, env=()),))
    assert execute(graph, options(tmp_path), target="local", write=lambda s: None) == 1


def test_failed_deploy_is_rolled_back(tmp_path: Any) -> None:
    op = FakeOperation(fail_deploy=True)
    out: list[str] = []
    code = execute(pipeline(), options(tmp_path), target="snowflake", session_factory=fake_session,
                   operation_factory=lambda s, db, sch: op, write=out.append)
    assert code == 1
    assert "create MODEL" in op.log
    after = op.log[op.log.index("create MODEL") + 1:]
    assert after[0] == "drop DEMO finalizer=True" and "suspend DEMO" in after
    assert "deploying Task Graph DEMO failed (RuntimeError: warehouse suspended)" in out[-1]


def test_rehearsal_failure_aborts_before_any_deploy(tmp_path: Any) -> None:
    g = pipeline()
    graph = PipelineGraph(stages=g.stages, gates=(gate(explode, ("metrics",), g.gates[0].upstream, env=()),))
    op = FakeOperation()
    out: list[str] = []
    code = execute(graph, options(tmp_path), target="snowflake", session_factory=fake_session,
                   operation_factory=lambda s, db, sch: op, write=out.append)
    assert code == 1 and op.log == [] and "nothing was deployed" in out[-1]


@pytest.mark.parametrize(("final", "code"), [("SUCCEEDED", 0), ("FAILED", 1)])
def test_deploy_and_run_once_waits_for_the_new_run(tmp_path: Any, final: str, code: int) -> None:
    op = FakeOperation(final_state=final)
    out: list[str] = []
    sleeps: list[float] = []
    got = execute(pipeline(), options(tmp_path, schedule=timedelta(minutes=30)), target="snowflake", run_once=True,
                  session_factory=fake_session, operation_factory=lambda s, db, sch: op, write=out.append,
                  sleep=sleeps.append)
    assert got == code
    assert op.log[:2] == ["drop DEMO finalizer=True", "deploy DEMO or_replace"] and "run DEMO" in op.log
    assert sleeps == [0.01, 0.02]  # exponential backoff until the new run completed
    assert f"task graph DEMO: {final}" in "\n".join(out)
    # the real account's registry was not touched by the rehearsal
    assert not (tmp_path / "reg").exists()


def test_usage_errors(tmp_path: Any) -> None:
    with pytest.raises(DeployUsageError, match="--schedule"):
        execute(pipeline(), options(tmp_path), target="snowflake", run_once=True, session_factory=fake_session)
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
