"""``--snowpipe-deploy``: print the plan, run on the emulator, or rehearse then ship to Snowflake.

What is rehearsed is what ships: the rehearsal deploys the very DAG object to an offline account and
runs each task's procedure as registered there, in the environment Snowflake gives it. A deploy
never leaves a half graph: the deployed graph is fetched first, its root suspended, the new graph
applied through ``DAGOperation.deploy``; on a failure at any step the old graph is recreated as it
was (or, on a first deploy, nothing remains). See :func:`_deploy`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_snowpipe.errors import SnowpipeError
from pytest_snowpipe.pipeline.graph import PipelineGraph
from pytest_snowpipe.taskgraph.compile import (
    CompiledPipeline,
    CompileError,
    CompileOptions,
    compile_graph,
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
    sandbox: bool = True  # rehearse the shipped procedures in their own environment (False: in this process)


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
    on_record: Callable[[Any, list[str]], Any] | None = None,
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
        try:
            return _run_local(graph, copts, opts, write, on_record=on_record)[0]
        except DeployError as exc:
            write(str(exc))
            return 1

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
            "set ini snowpipe_notification_integration = <integration name> (an e-mail or webhook notification "
            "integration the deploying role may USE)"
        )
    compiled = compile_graph(graph, copts)

    try:
        code, record = _run_local(graph, copts, opts, write, rehearsal=True, on_record=on_record)
    except DeployError as exc:
        write(f"{exc}; nothing was deployed")
        return 1
    if code != 0:
        why = (f"first error: {record.first_error_task_name}" if record.first_error_task_name
               else "a quality gate took its on_fail branch")
        write(f"rehearsal on the emulator FAILED ({why}); nothing was deployed")
        return 1

    session = session_factory()
    database = copts.database or _current(session, "get_current_database")
    schema = copts.schema or _current(session, "get_current_schema")
    if not database or not schema:
        raise DeployUsageError("deploying needs a database and schema: set them or use a connection that has them")
    try:
        op = (operation_factory or _default_operation)(session, database, schema)
    except Exception as exc:
        write(f"connecting snowflake.core to {database}.{schema} failed ({_first_line(exc)}); nothing was deployed")
        return 1
    try:
        removed = _deploy(op, compiled, graph, session)
    except DeployError as exc:
        write(str(exc))
        return 1
    write(f"deployed Task Graph {compiled.dag.name} to {database}.{schema} ({len(compiled.dag.tasks) + 1} tasks)"
          + (f"; removed {len(removed)} superseded stage file(s)" if removed else ""))
    if not run_once:
        return 0
    return _run_and_wait(op, compiled, opts, session, write, sleep)


def qualify_stage(location: str, database: str | None, schema: str | None) -> str:
    """``@ST/path`` -> ``@DB.SCH.ST/path`` when the graph's database and schema are set (else as given).

    Tasks are created in DB.SCH; an unqualified stage would resolve against the session's schema.
    A name qualified with a schema only (``@SCH.ST``) gets the database.
    """
    if not database or not location.startswith("@") or location.startswith("@~") or location.startswith("@%"):
        return location
    name, sep, path = location[1:].partition("/")
    parts = re.findall(r'"(?:[^"]|"")+"|[^.]+', name)
    if len(parts) == 1 and schema:
        name = f"{database}.{schema}.{name}"
    elif len(parts) == 2:
        name = f"{database}.{name}"
    return f"@{name}{sep}{path}"


def _current(session: Any, method: str) -> str | None:
    try:
        value = getattr(session, method)()
    except Exception:
        return None
    return value.strip('"') if isinstance(value, str) else None


def failed_gates(compiled: CompiledPipeline, record: Any) -> list[str]:
    """The gates whose branch took its ``on_fail`` side: every task SUCCEEDED, the quality gate did not."""
    from pytest_snowpipe.taskgraph.compile import KIND_BRANCH
    from pytest_snowpipe.taskgraph.emulator import SUCCEEDED

    out = []
    for name, kind in compiled.kinds.items():
        spec = compiled.bodies[name]
        run = record.tasks.get(name)
        if kind == KIND_BRANCH and run is not None and run.state == SUCCEEDED and spec.on_fail != spec.on_pass \
                and run.return_value == spec.on_fail:
            out.append(spec.name)
    return out


def _run_local(
    graph: PipelineGraph, copts: CompileOptions, opts: DeployOptions, write: Callable[[str], Any],
    rehearsal: bool = False, on_record: Callable[[Any, list[str]], Any] | None = None,
) -> tuple[int, Any]:
    """Compile and run once on the emulator, always with a throwaway registry (the user's is never touched).

    Exit 0 only when the graph run SUCCEEDED and no gate took its on_fail branch: the verdict is the gate's.
    What runs is what ships: the graph is deployed to an offline account and each task's procedure, as
    registered there, runs in a sandbox interpreter holding only what Snowflake would give it
    (:mod:`pytest_snowpipe.taskgraph.sandbox`); ``opts.sandbox=False`` runs the task functions in this process.
    """
    from pytest_snowpipe.engines.embedded import create_embedded_session, engine
    from pytest_snowpipe.taskgraph.emulator import SUCCEEDED, emulate

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="snowpipe-rehearsal-") as tmp:
        copts = dataclasses.replace(copts, registry_path=tmp, check_pickle=not rehearsal and copts.check_pickle)
        compiled = compile_graph(graph, copts)
        session = create_embedded_session()
        try:
            with contextlib.ExitStack() as stack:
                sandbox = None
                if opts.sandbox:
                    sandbox = stack.enter_context(_sandbox(compiled, engine().connection_params(), Path(tmp)))
                record = emulate(
                    compiled.dag, session=session, config_overrides=dict(opts.config_overrides),
                    executor=sandbox.run if sandbox is not None else None,
                )
        finally:
            session.close()
    failed = failed_gates(compiled, record)
    where = "in this process"
    if sandbox is not None:
        where = (f"in the shipped environment: offline deploy {sandbox.shipped.ship_s:.1f}s, "
                 f"{len(sandbox.interpreters)} sandbox interpreter(s) ready in {sandbox.start_s:.1f}s")
    write(("rehearsal: " if rehearsal else "") + record.format(width=None if opts.verbose else 40)
          + f"\n(ran {where}; {time.perf_counter() - t0:.1f}s in all, compile included)")
    for name in failed:
        spec = next(b for b in compiled.bodies.values() if getattr(b, "name", None) == name and hasattr(b, "on_fail"))
        write(f"quality gate {name} FAILED: its branch took on_fail ({spec.on_fail}); exit 1")
    if on_record is not None:
        on_record(record, failed)
    return (0 if record.state == SUCCEEDED and not failed else 1), record


@contextlib.contextmanager
def _sandbox(compiled: CompiledPipeline, engine: dict[str, Any], workdir: Path) -> Iterator[Any]:
    """Ship ``compiled`` to an offline account and open the sandbox its procedures run in."""
    from pytest_snowpipe.taskgraph.sandbox import Sandbox, SandboxError
    from pytest_snowpipe.taskgraph.shipped import ShipError, ship

    copts = compiled.options
    try:
        with pickle_by_value(compiled.graph):  # as around the real deploy
            shipped = ship(compiled.dag, copts.stage_location, workdir / "imports", copts.database, copts.schema)
        with Sandbox(shipped, engine, workdir) as sandbox:
            yield sandbox
    except (ShipError, SandboxError) as exc:
        raise DeployError(f"the rehearsal could not run the shipped graph: {exc}") from None


IMPORTS_RE = re.compile(r"IMPORTS\s*=\s*\(([^)]*)\)", re.IGNORECASE)


def stage_files_of(definition: str | None) -> set[str]:
    """The stage files a task definition imports (``IMPORTS=('@DB.S.ST/x/a.zip', ...)``)."""
    out: set[str] = set()
    for group in IMPORTS_RE.findall(definition or ""):
        out.update(f for f in re.findall(r"'([^']*)'", group) if f.startswith("@"))
    return out


@dataclass
class Snapshot:
    """The deployed graph before a deploy: every task as snowflake.core fetched it (root first)."""

    root: Any
    children: list[Any]  # predecessors before successors
    finalizer: Any | None

    @property
    def tasks(self) -> list[Any]:
        return [self.root, *self.children, *([self.finalizer] if self.finalizer is not None else [])]


def snapshot(tasks: Any, name: str) -> Snapshot | None:
    """Fetch the deployed graph ``name`` (None when there is none)."""
    from snowflake.core.exceptions import NotFoundError

    try:
        root = tasks[name].fetch()
    except NotFoundError:
        return None
    fetched = [t for t in tasks[name].fetch_task_dependents() if t.name.upper() != root.name.upper()]
    finalizer = next((t for t in fetched if getattr(t, "finalize", None)), None)
    rest = [t for t in fetched if t is not finalizer]
    done: set[str] = {root.name.upper()}
    ordered: list[Any] = []
    while rest:  # predecessors first (the graph is acyclic: Snowflake checked it)
        ready = [t for t in rest if all(p.split(".")[-1].upper() in done for p in (t.predecessors or []))] or rest[:1]
        for t in ready:
            ordered.append(t)
            done.add(t.name.upper())
            rest.remove(t)
    return Snapshot(root=root, children=ordered, finalizer=finalizer)


def _writable(task: Any) -> Any:
    """A fetched task as a create body: read-only fields (id, state, owner, ...) dropped."""
    from snowflake.core.task import Task
    from snowflake.core.task._generated.models import Task as TaskModel

    return Task._from_rest_model(TaskModel.from_dict(task.to_dict(hide_readonly_properties=True)))


def restore(op: Any, dag_name: str, old: Snapshot | None) -> None:
    """Drop whatever exists of graph ``dag_name``, then recreate ``old`` as it was (states included)."""
    from snowflake.core import CreateMode

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        op.drop(dag_name, drop_finalizer=True)
    if old is None:
        return
    tasks = op.schema.tasks
    for task in old.tasks:
        tasks.create(_writable(task), mode=CreateMode.or_replace)
    for task in [*old.children, *([old.finalizer] if old.finalizer is not None else [])]:
        if task.state == "started":
            tasks[task.name].resume()
    if old.root.state == "started":
        tasks[old.root.name].resume()


def _check_not_running(op: Any, dag: Any) -> None:
    running = [r for r in op.get_current_dag_runs(dag) if getattr(r, "state", "") == "EXECUTING"]
    if running:
        raise DeployError(
            f"Task Graph {dag.name} has a run in progress (run id {running[0].run_id}): nothing was changed. "
            f"Wait for it to finish, or cancel it (SELECT SYSTEM$USER_TASK_CANCEL_ONGOING_EXECUTIONS('{dag.name}')), "
            "then deploy again"
        )


def _check_stage(session: Any, stage_location: str) -> None:
    try:
        session.sql(f"LS {stage_location}").collect()
    except Exception as exc:
        raise DeployError(
            f"the stage {stage_location} (ini snowpipe_stage_location) cannot be listed: {_first_line(exc)}. "
            f"Create it (CREATE STAGE {stage_location.lstrip('@').split('/')[0]}) or point snowpipe_stage_location "
            "at a stage the connection's role can read and write; nothing was changed"
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _deploy(op: Any, compiled: CompiledPipeline, graph: PipelineGraph, session: Any = None) -> list[str]:
    """Replace the deployed graph by ``compiled`` as one step; return the superseded stage files removed.

    Before anything changes: the stage must be listable, no run may be executing, and the old graph
    is fetched (snowflake.core's models). Then the old root is suspended, the old graph dropped
    (finalizer included) and the new one created by ``DAGOperation.deploy`` (children resumed; the
    root resumed when scheduled). A failure at any step drops what was made and recreates the old
    graph from the snapshot with its states, or leaves nothing on a first deploy. Only after a
    successful deploy are the stage files that only the old tasks imported removed.
    """
    from snowflake.core import CreateMode

    dag = compiled.dag
    tasks = op.schema.tasks
    if session is not None:
        _check_stage(session, compiled.options.stage_location)
    try:
        old = snapshot(tasks, dag.name)
        if old is not None:
            _check_not_running(op, dag)
    except DeployError:
        raise
    except Exception as exc:
        raise DeployError(f"reading the deployed Task Graph {dag.name} failed ({_first_line(exc)}); nothing was changed") from exc
    step = "suspending the old root"
    try:
        if old is not None:
            if old.root.state == "started":
                tasks[dag.name].suspend()
            step = "dropping the old graph"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                op.drop(dag, drop_finalizer=True)  # dagv1's own drop keeps an old finalizer
        step = "creating the new graph"
        with pickle_by_value(graph), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            op.deploy(dag, mode=CreateMode.or_replace)
    except Exception as exc:
        what = "the previous graph was restored" if old is not None else "what was created was dropped"
        try:
            restore(op, dag.name, old)
        except Exception as undo:
            what = (
                f"restoring the previous graph failed too ({_first_line(undo)}): check the tasks of {dag.name} "
                f"(SHOW TASKS LIKE '{dag.name}%') and deploy again"
            )
        raise DeployError(f"deploying Task Graph {dag.name} failed while {step} ({_first_line(exc)}); {what}") from exc
    if old is None or session is None:
        return []
    return _remove_superseded(op, dag.name, old, session)


def _remove_superseded(op: Any, dag_name: str, old: Snapshot, session: Any) -> list[str]:
    """Remove the stage files only the old graph's tasks imported (kept if any task of the schema still does)."""
    old_files = set().union(*(stage_files_of(t.definition) for t in old.tasks))
    try:
        in_use = set().union(*(stage_files_of(t.definition) for t in op.schema.tasks.iter()))
    except Exception:
        return []  # cannot tell what is in use: keep everything
    removed = []
    for path in sorted(old_files - in_use):
        try:
            session.sql(f"REMOVE '{path}'").collect()
            removed.append(path)
        except Exception:
            pass  # a leftover file costs storage, not correctness
    return removed


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


__all__ = ["TARGETS", "DeployError", "DeployOptions", "DeployUsageError", "execute", "failed_gates", "qualify_stage"]


def run_deploy(
    graph: PipelineGraph, settings: Settings, write: Callable[[str], Any], config: pytest.Config | None = None,
    on_record: Callable[[Any, list[str]], Any] | None = None,
) -> int:
    """Run the deploy command; usage problems become ``pytest.UsageError``; returns the exit code.

    With ``config``, the plugin's hooks shape the compile: ``pytest_snowpipe_artifact_location``
    (where outputs live) and ``pytest_snowpipe_compile_task`` (a last look at every task).
    """
    dep = settings.deploy
    assert dep is not None
    packages = tuple(dep.packages)
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
        stage_location=qualify_stage(stage_location, dep.database, dep.schema),
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
                compile=copts,
                verbose=config is not None and int(getattr(config.option, "verbose", 0) or 0) > 0,
            ),
            target=dep.target,
            dry_run=dep.dry_run,
            run_once=dep.run_once,
            session_factory=session_factory,
            write=write,
            on_record=on_record,
        )
    except (DeployUsageError, CompileError, ConnectionConfigError) as exc:  # an unreachable account too
        raise pytest.UsageError(str(exc)) from None
