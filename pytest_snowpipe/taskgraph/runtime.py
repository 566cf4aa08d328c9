"""The body every compiled task runs: read inputs, call the user's code, store the output.

The compiler builds one frozen *spec* per task and wraps it with :func:`task_function`, which
returns a function annotated ``(session: Session) -> str`` (Snowpark checks exactly this when
the task's stored procedure is registered). The same function runs on the emulator (a
embedded engine's session behind the emulator's proxy) and in Snowflake: inputs come through
``TaskContext.get_predecessor_return_value`` as pointers (see :mod:`artifacts`), config through
``TaskContext.get_task_graph_config``, and every output is published in the run's index so
actions and the finalizer can find it by (run id, stage name).

Every task ships this package as a stored-procedure import (``compile.plugin_import``), so
the same modules serve both places; Snowpark, snowflake.core and snowflake.ml are imported
inside the functions that need them.
"""
from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pytest_snowpipe.doubles.sql.embedded import is_embedded_session
from pytest_snowpipe.errors import SnowpipeError
from pytest_snowpipe.pipeline.checks import check_output
from pytest_snowpipe.pipeline.remote import materialize
from pytest_snowpipe.taskgraph.artifacts import load, lookup, pointer_text, publish, run_key, store, tables_of
from pytest_snowpipe.taskgraph.monitor_tables import refresh as refresh_watched

SESSION_FIXTURE = "snowpipe_session"
CONFIG_FIXTURE = "snowpipe_config"
CHAMPION_FIXTURE = "snowpipe_champion"
RUN_FIXTURE = "snowpipe_run"
REGISTRY_FIXTURE = "snowpipe_registry"
NO_ACTION = "(no action)"  # a branch value no successor name can equal: nothing runs on that side


@dataclass(frozen=True)
class RunEnv:
    """What every task of one compiled graph shares."""

    dag: str
    stage_location: str
    registry_path: str | None = None
    notification_integration: str | None = None
    keep_outputs: bool = False  # ini snowpipe_keep_outputs: the finalizer keeps the run's tables and files (replay)


@dataclass(frozen=True)
class Input:
    """One argument of a stage or gate: the parameter, the stage it reads and that stage's task."""

    param: str
    stage: str
    task: str


@dataclass(frozen=True)
class CallSpec:
    """A task that calls user code: the function, the stage outputs it reads, its environment."""

    env: RunEnv
    name: str
    task: str
    func: Callable[..., Any]
    inputs: tuple[Input, ...]
    environment: tuple[str, ...]


@dataclass(frozen=True)
class StageSpec(CallSpec):
    """A stage task. ``remote`` is the stage's RemoteSpec (None for a local stage)."""

    is_yield: bool
    remote: Any = None
    output_location: str | None = None  # a stage path for this stage's files (hook artifact_location)


@dataclass(frozen=True)
class GateSpec(CallSpec):
    """A gate branch: returns ``on_pass``/``on_fail`` (successor task names) or NO_ACTION."""

    on_pass: str
    on_fail: str
    model_name: str | None = None  # whose champion ``snowpipe_champion`` reads


@dataclass(frozen=True)
class ActionSpec:
    """An action task after a gate; ``action`` is 'promote', 'alert' or a user function."""

    env: RunEnv
    task: str
    gate: Any  # graph.Gate
    graph: Any  # graph.PipelineGraph
    verdict: str  # "PASS" or "FAIL"
    action: Any


@dataclass(frozen=True)
class Teardown:
    """The statements after a yield stage's ``yield``, compiled into a function of its locals."""

    stage: str
    func: Callable[..., Any]
    params: tuple[str, ...]


@dataclass(frozen=True)
class FinalizerSpec:
    """The finalizer: teardowns in reverse topological order, then drop the run's tables."""

    env: RunEnv
    task: str
    teardowns: tuple[Teardown, ...]
    stages: tuple[str, ...]


class TaskBodyError(SnowpipeError):
    """A task body could not do its job; the message names the task."""


def task_function(spec: Any) -> Callable[..., str]:
    """A ``(session: Session) -> str`` function running ``spec``, named after its task."""
    from snowflake.snowpark import Session

    def body(session: Session) -> str:
        return run(spec, session)

    body.__name__ = body.__qualname__ = f"snowpipe_{spec.task.lower()}"
    body.__annotations__ = {"session": Session, "return": str}
    body.__doc__ = f"pytest-snowpipe task {spec.task} ({type(spec).__name__})"
    return body


def run(spec: Any, session: Any) -> str:
    """Dispatch on the spec's type (one entry point keeps the pickled closure small)."""
    if isinstance(spec, StageSpec):
        return run_stage(spec, session)
    if isinstance(spec, GateSpec):
        return run_gate(spec, session)
    if isinstance(spec, ActionSpec):
        return run_action(spec, session)
    if isinstance(spec, FinalizerSpec):
        return run_finalizer(spec, session)
    raise TaskBodyError(f"unknown task spec {type(spec).__name__}")


def _context(session: Any) -> tuple[Any, str, Any]:
    from snowflake.core.task.context import TaskContext

    ctx = TaskContext(session)
    run_id = str(ctx.get_current_task_graph_run_group_id())
    config = MappingProxyType(dict(ctx.get_task_graph_config() or {}))
    return ctx, run_id, config


def run_info(session: Any, ctx: Any = None, config: Any = None) -> Any:
    """``snowpipe_run`` inside a task: from TaskContext; target 'emulator' on a local session."""
    from pytest_snowpipe.pipeline.run_info import from_task_context

    if ctx is None:
        from snowflake.core.task.context import TaskContext

        ctx = TaskContext(session)
    if config is None:
        config = MappingProxyType(dict(ctx.get_task_graph_config() or {}))
    return from_task_context(ctx, "emulator" if is_embedded_session(session) else "snowflake", config)


def _env_value(name: str, session: Any, config: Any, spec: Any = None) -> Any:
    if name == SESSION_FIXTURE:
        return session
    if name == CONFIG_FIXTURE:
        return config
    if name == RUN_FIXTURE:
        return run_info(session, config=config)
    if name == REGISTRY_FIXTURE:
        env = getattr(spec, "env", None)
        return registry_for(session, getattr(env, "registry_path", None))
    if name == CHAMPION_FIXTURE and isinstance(spec, GateSpec):  # read before this run's promote task
        from pytest_snowpipe.registry.champion import champion_in_task

        return champion_in_task(session, spec.model_name, spec.env.registry_path)
    raise TaskBodyError(f"fixture {name!r} is not available in a Task Graph task")


def _inputs(spec: CallSpec, session: Any, ctx: Any, config: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for inp in spec.inputs:
        text = ctx.get_predecessor_return_value(inp.task)
        if text in (None, "None"):
            raise TaskBodyError(f"task {spec.task}: predecessor {inp.task} returned no pointer")
        kwargs[inp.param] = load(session, text)
    for name in spec.environment:
        kwargs[name] = _env_value(name, session, config, spec)
    return kwargs


def _finish(spec: Any, session: Any, run_id: str, value: Any, name: str | None = None) -> str:
    env = spec.env
    name = name or spec.name
    location = getattr(spec, "output_location", None) or env.stage_location
    pointer = store(session, value, dag=env.dag, stage=name, run_id=run_id, stage_location=location)
    text = pointer_text(pointer, name)
    publish(session, env.stage_location, run_id, name, text)
    return text


def run_stage(spec: StageSpec, session: Any) -> str:
    """Run one stage; return its output pointer (JSON)."""
    ctx, run_id, config = _context(session)
    kwargs = _inputs(spec, session, ctx, config)
    if spec.remote is not None:  # compile ships it as an ML Job task (ml_job_task), never as a procedure
        raise TaskBodyError(f"task {spec.task}: a remote stage runs as an ML Job (run_job_stage), not as a procedure")
    if spec.is_yield:
        func = inspect.unwrap(spec.func)
        gen = func(**kwargs)
        value = next(gen)
        captured = dict(gen.gi_frame.f_locals) if gen.gi_frame is not None else {}
        gen.close()  # the yield is top-level (checked at compile): close() runs no teardown code
        keep = {k: v for k, v in captured.items() if k not in (SESSION_FIXTURE, CONFIG_FIXTURE, RUN_FIXTURE, REGISTRY_FIXTURE)}
        _finish(spec, session, run_id, keep, name=f"_LOCALS_{spec.name}")
    else:
        value = spec.func(**kwargs)
    refresh_watched(spec.env.dag, spec.name, spec.func, value, session)  # sp.expect(monitor=): every run's output
    check_output(spec.name, spec.func, value)  # a blocking check: a violation fails this task
    return _finish(spec, session, run_id, value)


def run_job_stage(spec: StageSpec, session: Any = None) -> None:
    """The body of a remote stage's ML Job (``ml_job_task.job_function``): no arguments, as Snowflake runs it.

    Inputs come through ``TaskContext`` as in any task and are read into pandas, as a job reads its
    data; the output is stored like any stage's and its pointer becomes the task's return value
    (``set_return_value``: an ML Job's Python result is not the task's). ``session`` is given by the
    rehearsal; in Snowflake the job opens its own.
    """
    if session is None:
        from snowflake.snowpark import Session

        session = Session.builder.getOrCreate()
    ctx, run_id, config = _context(session)
    kwargs = _inputs(spec, session, ctx, config)
    args = {k: materialize(v) for k, v in kwargs.items()}
    value = inspect.unwrap(spec.func)(**args)
    check_output(spec.name, spec.func, value)
    ctx.set_return_value(_finish(spec, session, run_id, value))


def registry_for(session: Any, registry_path: str | None) -> Any:
    """``snowpipe_registry`` inside a task: the folder registry on the emulator, Snowflake's on an account."""
    if is_embedded_session(session):
        from pytest_snowpipe.registry.local import LocalRegistry

        return LocalRegistry(registry_path or ".snowpipe/registry")
    from pytest_snowpipe.registry.snowflake import SnowflakeRegistry

    return SnowflakeRegistry(session)


def run_gate(spec: GateSpec, session: Any) -> str:
    """Run the gate's test: pass -> on_pass's task name, AssertionError -> on_fail's; else raise."""
    ctx, run_id, config = _context(session)
    kwargs = _inputs(spec, session, ctx, config)
    try:
        spec.func(**kwargs)
    except AssertionError as exc:
        verdict, message = "FAIL", str(exc)
    else:
        verdict, message = "PASS", ""
    text = json.dumps({"kind": "json", "value": {"verdict": verdict, "message": message[:4000]}})
    publish(session, spec.env.stage_location, run_id, f"_VERDICT_{spec.name}", text)
    if verdict == "FAIL" and spec.on_fail == NO_ACTION:
        # nothing handles the failure: the task (and the graph run) fails, as the test fails locally
        raise TaskBodyError(f"gate {spec.name} FAILED and has no on_fail action: {message[:4000]}")
    return spec.on_pass if verdict == "PASS" else spec.on_fail


def _load_published(session: Any, env: RunEnv, run_id: str, name: str) -> Any:
    text = lookup(session, env.stage_location, run_id, name)
    return None if text is None else load(session, text)


def run_action(spec: ActionSpec, session: Any) -> str:
    """Run a gate's action with the outputs of the gate's upstream stages of this run."""
    ctx, run_id, config = _context(session)
    env, gate = spec.env, spec.gate
    verdict = _load_published(session, env, run_id, f"_VERDICT_{gate.name}") or {}
    message = verdict.get("message", "") if isinstance(verdict, dict) else ""
    stages: dict[str, Any] = {}
    for name in gate.upstream:
        text = lookup(session, env.stage_location, run_id, name)
        if text is not None:
            stages[name] = load(session, text)
    from pytest_snowpipe.actions.context import ActionContext
    from pytest_snowpipe.actions.run import run_action as run_gate_action

    actx = ActionContext(
        gate=gate, verdict=spec.verdict, message=message, stages=stages, config=config,
        graph=spec.graph, registry=registry_for(session, env.registry_path), run=run_info(session, ctx, config),
        notify=None if is_embedded_session(session) else (lambda text: _notify(spec, session, text)),
    )
    outcome = run_gate_action(spec.action, actx)
    return f"{spec.task}: {outcome.detail if outcome else 'done'}"[:1000]


def _notify(spec: ActionSpec, session: Any, text: str) -> str:
    """An alert in Snowflake: through the graph's notification integration."""
    integration = spec.env.notification_integration
    if not integration:
        raise TaskBodyError(f"task {spec.task}: alert needs a notification integration: set ini snowpipe_notification_integration")
    session.sql(
        "CALL SYSTEM$SEND_SNOWFLAKE_NOTIFICATION(SNOWFLAKE.NOTIFICATION.TEXT_PLAIN(?), "
        "SNOWFLAKE.NOTIFICATION.INTEGRATION(?))",
        params=[text, integration],
    ).collect()
    return f"notified {integration}"


def run_finalizer(spec: FinalizerSpec, session: Any) -> str:
    """Teardowns (reverse topological order, each guarded), then drop the run's tables."""
    _, run_id, config = _context(session)
    env = spec.env
    done: list[str] = []
    failed: list[str] = []
    for td in spec.teardowns:
        captured = _load_published(session, env, run_id, f"_LOCALS_{td.stage}")
        if captured is None:
            continue  # the stage never reached its yield: nothing to tear down
        kwargs = {p: captured.get(p) for p in td.params}
        for name in (SESSION_FIXTURE, CONFIG_FIXTURE, RUN_FIXTURE, REGISTRY_FIXTURE):
            if name in td.params:
                kwargs[name] = _env_value(name, session, config, spec)
        try:
            td.func(**kwargs)
            done.append(td.stage)
        except Exception as exc:
            failed.append(f"{td.stage}: {type(exc).__name__}: {exc}")
    dropped = 0
    if not env.keep_outputs:  # ini snowpipe_keep_outputs keeps them for --snowpipe-replay
        dropped = _drop_outputs(spec, session, run_id, failed)
    if failed:
        raise TaskBodyError(f"finalizer {spec.task}: " + "; ".join(failed))
    if env.keep_outputs:
        return f"teardown: {', '.join(done) or 'none'}; kept the run's outputs (snowpipe_keep_outputs)"
    return f"teardown: {', '.join(done) or 'none'}; dropped {dropped} table(s)"


def _drop_outputs(spec: FinalizerSpec, session: Any, run_id: str, failed: list[str]) -> int:
    """Drop the run's output tables and (on an account) remove its stage files; return the tables dropped."""
    env = spec.env
    dropped = 0
    for name in spec.stages:
        text = lookup(session, env.stage_location, run_id, name)
        for table in tables_of(text) if text else []:
            try:
                session.table(table).drop_table()
                dropped += 1
            except Exception as exc:
                failed.append(f"drop {table}: {type(exc).__name__}: {exc}")
    if not is_embedded_session(session):
        try:
            session.sql(f"REMOVE {env.stage_location.rstrip('/')}/{run_key(run_id)}/").collect()
        except Exception as exc:
            failed.append(f"remove run files: {type(exc).__name__}: {exc}")
    return dropped
