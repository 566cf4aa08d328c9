"""``--snowpipe-deploy``: print the plan, run on the emulator, or rehearse then ship to Snowflake.

What is rehearsed is what ships: the emulator runs the very DAG object that is deployed. A
deploy that fails part-way is rolled back (``DAGOperation.drop(dag, drop_finalizer=True)`` and
the root suspended), so no half-made graph is left resumed.
"""
from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from pytest_snowpipe.errors import SnowpipeError
from pytest_snowpipe.pipeline.graph import PipelineGraph
from pytest_snowpipe.taskgraph.compile import (
    CompiledPipeline,
    CompileError,
    CompileOptions,
    compile_graph,
    default_packages,
    pickle_by_value,
)

TARGETS = ("local", "snowflake")
RUNNING_STATES = ("SCHEDULED", "EXECUTING")

if TYPE_CHECKING:
    from pytest_snowpipe.settings import Settings


class DeployUsageError(ValueError):
    """The deploy was asked for in a way that cannot work (the plugin turns it into a UsageError)."""


class DeployError(SnowpipeError):
    """The deploy to Snowflake failed; what was created has been dropped."""


@dataclass(frozen=True)
class DeployOptions:
    """What to compile and how to run it; ``config_overrides`` is EXECUTE TASK ... USING CONFIG."""

    compile: CompileOptions = field(default_factory=CompileOptions)
    config_overrides: Mapping[str, Any] = field(default_factory=dict)
    poll_initial_s: float = 2.0
    poll_max_s: float = 60.0
    poll_timeout_s: float = 3600.0
    verbose: bool = False  # -v: the emulator's table shows whole return values
    on_record: Callable[[Any], Any] | None = None  # receives each emulator RunRecord (the CI report keeps them)


def _default_operation(session: Any, database: str, schema: str) -> Any:
    from snowflake.core import Root
    from snowflake.core.task.dagv1 import DAGOperation

    return DAGOperation(Root(session).databases[database].schemas[schema])


def execute(
    graph: PipelineGraph,
    opts: DeployOptions,
    *,
    target: str = "local",
    dry_run: bool = False,
    run_once: bool = False,
    session_factory: Callable[[], Any] | None = None,
    write: Callable[[str], Any] = print,
    operation_factory: Callable[[Any, str, str], Any] | None = None,
    sleep: Callable[[float], Any] = time.sleep,
) -> int:
    """Do what ``--snowpipe-deploy`` asks; return the exit code (0 = success).

    Raises :class:`DeployUsageError` (a ValueError) for impossible requests and
    :class:`~pytest_snowpipe.taskgraph.compile.CompileError` when the graph cannot ship.
    """
    if target not in TARGETS:
        raise DeployUsageError(f"--snowpipe-target {target!r} is not valid. Valid targets: {', '.join(TARGETS)}")
    copts = opts.compile
    if dry_run:
        from pytest_snowpipe.taskgraph.plan import format_plan

        write(format_plan(compile_graph(graph, copts)))
        write("dry run: nothing was deployed or run")
        return 0
    if target == "local":
        return _run_local(graph, copts, opts, write)[0]

    if run_once and copts.schedule is None:
        raise DeployUsageError(
            "--snowpipe-run deploys and executes a scheduled Task Graph: give --schedule (e.g. 30m, 1d or a cron)"
        )
    if session_factory is None:
        raise DeployUsageError(
            "deploying to Snowflake needs a connection: pass --snowpipe-connection NAME (connections.toml), "
            "or use --snowpipe-target local / --snowpipe-dry-run"
        )
    alerts = [g.name for g in graph.gates if "alert" in (g.spec.on_pass, g.spec.on_fail)]
    if alerts and not copts.notification_integration:
        raise DeployUsageError(
            f"gate(s) {', '.join(alerts)} alert, which in Snowflake needs a notification integration: "
            "set one (CompileOptions.notification_integration)"
        )
    compiled = compile_graph(graph, copts)

    code, record = _run_local(graph, copts, opts, write, rehearsal=True)
    if code != 0:
        write(f"rehearsal on the emulator FAILED (first error: {record.first_error_task_name}); nothing was deployed")
        return 1

    session = session_factory()
    database = copts.database or _current(session, "get_current_database")
    schema = copts.schema or _current(session, "get_current_schema")
    if not database or not schema:
        raise DeployUsageError("deploying needs a database and schema: set them or use a connection that has them")
    op = (operation_factory or _default_operation)(session, database, schema)
    try:
        _deploy(op, compiled, graph)
    except DeployError as exc:
        write(str(exc))
        return 1
    write(f"deployed Task Graph {compiled.dag.name} to {database}.{schema} ({len(compiled.dag.tasks) + 1} tasks)")
    if not run_once:
        return 0
    return _run_and_wait(op, compiled, opts, session, write, sleep)


def _current(session: Any, method: str) -> str | None:
    try:
        value = getattr(session, method)()
    except Exception:
        return None
    return value.strip('"') if isinstance(value, str) else None


def _run_local(
    graph: PipelineGraph, copts: CompileOptions, opts: DeployOptions, write: Callable[[str], Any], rehearsal: bool = False
) -> tuple[int, Any]:
    """Compile and run once on the emulator; a rehearsal promotes into a throw-away registry."""
    from pytest_snowpipe.engines.embedded import create_embedded_session
    from pytest_snowpipe.taskgraph.emulator import SUCCEEDED, emulate

    with tempfile.TemporaryDirectory(prefix="snowpipe-rehearsal-") as tmp:
        if rehearsal:
            copts = dataclasses.replace(copts, registry_path=tmp, check_pickle=False)
        compiled = compile_graph(graph, copts)
        session = create_embedded_session()
        try:
            record = emulate(compiled.dag, session=session, config_overrides=dict(opts.config_overrides))
        finally:
            session.close()
    write(("rehearsal: " if rehearsal else "") + record.format(width=None if opts.verbose else 40))
    if opts.on_record is not None:
        opts.on_record(record)
    return (0 if record.state == SUCCEEDED else 1), record


def _deploy(op: Any, compiled: CompiledPipeline, graph: PipelineGraph) -> None:
    """Deploy or roll back: on any failure drop what was created and suspend the root."""
    from snowflake.core import CreateMode

    dag = compiled.dag
    try:
        with contextlib.suppress(Exception):  # an old finalizer survives deploy's own drop: remove it
            op.drop(dag, drop_finalizer=True)
        with pickle_by_value(graph):
            op.deploy(dag, mode=CreateMode.or_replace)
    except Exception as exc:
        problems = []
        try:
            op.drop(dag, drop_finalizer=True)
        except Exception as drop_exc:
            problems.append(f"drop failed too ({type(drop_exc).__name__}: {drop_exc})")
        try:
            op.schema.tasks[dag.name].suspend()
        except Exception:
            pass
        extra = f"; {'; '.join(problems)}: drop {dag.name} by hand" if problems else "; what was created was dropped"
        raise DeployError(f"deploying Task Graph {dag.name} failed ({type(exc).__name__}: {exc}){extra}") from exc


def _run_and_wait(
    op: Any, compiled: CompiledPipeline, opts: DeployOptions, session: Any, write: Callable[[str], Any],
    sleep: Callable[[float], Any],
) -> int:
    """EXECUTE the graph once, poll with bounded exponential backoff, print task states."""
    dag = compiled.dag
    before = {getattr(r, "run_id", None) for r in op.get_complete_dag_runs(dag, error_only=False)}
    op.run(dag)
    write(f"executing Task Graph {dag.name} once ...")
    delay, waited = opts.poll_initial_s, 0.0
    while waited <= opts.poll_timeout_s:
        done = [r for r in op.get_complete_dag_runs(dag, error_only=False) if getattr(r, "run_id", None) not in before]
        if done:
            run = done[0]
            write(f"task graph {dag.name}: {run.state}"
                  + (f" (first error: {run.first_error_task_name}: {run.first_error_message})"
                     if getattr(run, "first_error_task_name", None) else ""))
            _print_task_states(session, dag.name, getattr(run, "run_id", None), write)
            return 0 if run.state == "SUCCEEDED" else 1
        current = [r.state for r in op.get_current_dag_runs(dag)]
        write(f"  ... {', '.join(current) or 'waiting'} ({waited:.0f}s)")
        sleep(delay)
        waited += delay
        delay = min(delay * 2, opts.poll_max_s)
    write(f"task graph {dag.name} did not complete within {opts.poll_timeout_s:.0f}s; it keeps running in Snowflake")
    return 1


def _print_task_states(session: Any, dag_name: str, run_id: Any, write: Callable[[str], Any]) -> None:
    try:
        rows = session.sql(
            "select name, state, error_message from table(information_schema.task_history("
            "scheduled_time_range_start => dateadd('hour', -24, current_timestamp()))) "
            "where run_id = ? and (name = ? or startswith(name, ?)) order by query_start_time",
            params=[run_id, dag_name, f"{dag_name}$"],
        ).collect()
    except Exception as exc:
        write(f"  (task states unavailable: {type(exc).__name__})")
        return
    for row in rows:
        write(f"  {row[0]:<40} {row[1]:<12} {row[2] or ''}")


__all__ = ["TARGETS", "DeployError", "DeployOptions", "DeployUsageError", "execute"]


def run_deploy(
    graph: PipelineGraph, settings: Settings, write: Callable[[str], Any], config: pytest.Config | None = None,
    on_record: Callable[[Any], Any] | None = None,
) -> int:
    """Run the deploy command; usage problems become ``pytest.UsageError``; returns the exit code.

    With ``config``, the plugin's hooks shape the compile: ``pytest_snowpipe_artifact_location``
    (where outputs live) and ``pytest_snowpipe_compile_task`` (a last look at every task).
    """
    dep = settings.deploy
    assert dep is not None
    packages = None
    if dep.packages:
        packages = tuple(dict.fromkeys((*default_packages(graph), *dep.packages)))
    stage_location = dep.stage_location
    artifact_location = adjust_task = None
    if config is not None:
        hook = config.hook
        stage_location = hook.pytest_snowpipe_artifact_location(stage=None, config=config) or stage_location
        artifact_location = lambda stage: hook.pytest_snowpipe_artifact_location(  # noqa: E731
            stage=stage, config=config
        )
        adjust_task = lambda task, kind, node: hook.pytest_snowpipe_compile_task(  # noqa: E731
            task=task, kind=kind, node=node, config=config
        )
    copts = CompileOptions(
        dag_name=dep.dag_name,
        schedule=dep.schedule,
        config=dict(settings.config),
        warehouse=dep.warehouse,
        stage_location=stage_location,
        database=dep.database,
        schema=dep.schema,
        packages=packages,
        notification_integration=dep.notification_integration,
        registry_path=str(settings.registry),
        artifact_location=artifact_location,
        adjust_task=adjust_task,
    )
    from pytest_snowpipe.engines.connection import ConnectionConfigError

    session_factory = None
    if settings.connection:
        from pytest_snowpipe.engines.connection import create_session

        connection = settings.connection
        session_factory = lambda: create_session(connection)  # noqa: E731
    try:
        return execute(
            graph,
            DeployOptions(
                compile=copts, on_record=on_record,
                verbose=config is not None and int(getattr(config.option, "verbose", 0) or 0) > 0,
            ),
            target=dep.target,
            dry_run=dep.dry_run,
            run_once=dep.run_once,
            session_factory=session_factory,
            write=write,
        )
    except (DeployUsageError, CompileError, ConnectionConfigError) as exc:  # an unreachable account too
        raise pytest.UsageError(str(exc)) from None
