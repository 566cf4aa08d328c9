"""Deploy a compiled graph to a Snowflake account, never leaving half a graph; undeploy it.

Before anything changes, a deploy asks the account what it is deploying into (database and schema,
qualified paths, the package versions its channel offers: one query) and compiles against that
(:func:`against_account`). :func:`deploy` fetches the deployed graph first, suspends its root and
applies the new graph through ``DAGOperation.deploy``; on a failure at any step, an interrupt
included (SIGINT, SIGTERM), the old graph is recreated as it was (or, on a first deploy, nothing
remains) and what the failed deploy uploaded is removed. ``--snowpipe-undeploy`` is :func:`undeploy`.
The rehearsal that comes first, and the command that chooses between them, live in
:mod:`pytest_snowpipe.release`.
"""
from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Any

from pytest_snowpipe.errors import SnowpipeError, SnowpipeUsageError, first_line
from pytest_snowpipe.pipeline.graph import PipelineGraph
from pytest_snowpipe.pipeline.states import RUNNING, TaskState
from pytest_snowpipe.taskgraph import monitors_deploy
from pytest_snowpipe.taskgraph.channel import from_account
from pytest_snowpipe.taskgraph.compile import (
    CompiledPipeline,
    CompileOptions,
    package_names,
    pickle_by_value,
    qualify_stage,
)
from pytest_snowpipe.taskgraph.deployed import (
    Snapshot,
    job_stage_paths_of,
    restore,
    snapshot,
    stage_files_of,
)
from pytest_snowpipe.taskgraph.interrupts import Interrupted, deferred, interruptible
from pytest_snowpipe.taskgraph.ml_job_task import bound, job_tasks

RUNNING_STATES = RUNNING

class DeployUsageError(SnowpipeUsageError):
    """The deploy was asked for in a way that cannot work (the plugin turns it into a UsageError)."""


class DeployError(SnowpipeError):
    """The deploy to Snowflake failed; what was created has been dropped. ``exit_code``: what pytest exits with."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _default_operation(session: Any, database: str, schema: str) -> Any:
    from snowflake.core import Root
    from snowflake.core.task.dagv1 import DAGOperation

    return DAGOperation(Root(session).databases[database].schemas[schema])


def connected(session_factory: Callable[[], Any] | None, what: str) -> Any:
    if session_factory is None:
        raise DeployUsageError(
            f"{what} needs a connection: pass --snowpipe-connection NAME (connections.toml), "
            "or use --snowpipe-target local / --snowpipe-dry-run"
        )
    return session_factory()


def operation(factory: Callable[[Any, str, str], Any] | None, session: Any, copts: CompileOptions,
               write: Callable[[str], Any]) -> Any:
    assert copts.database and copts.schema
    try:
        return (factory or _default_operation)(session, copts.database, copts.schema)
    except Exception as exc:
        write(f"connecting snowflake.core to {copts.database}.{copts.schema} failed ({first_line(exc)}); "
              "nothing was changed")
        return None


def located(copts: CompileOptions, session: Any) -> CompileOptions:
    """Database and schema known (the session's fill in what ini leaves unset), the stage qualified with them.

    With only one of ``snowpipe_database``/``snowpipe_schema`` set, the tasks would go to that database or
    schema while the code was uploaded to the session's, and IMPORTS read an unqualified stage: resolve
    both first, then qualify every path with them.
    """
    database = copts.database or _current(session, "get_current_database")
    schema = copts.schema or _current(session, "get_current_schema")
    if not database or not schema:
        raise DeployUsageError(
            "deploying needs a database and a schema: set ini snowpipe_database and snowpipe_schema, or use a "
            f"connection that has them (the connection gives database={database!r}, schema={schema!r})"
        )
    return dataclasses.replace(
        copts, database=database, schema=schema, stage_location=qualify_stage(copts.stage_location, database, schema)
    )


def against_account(copts: CompileOptions, graph: PipelineGraph, session: Any) -> CompileOptions:
    """``copts`` located in the account and pinned against its channel (one query, nothing changed)."""
    copts = located(copts, session)
    return dataclasses.replace(copts, channel=from_account(session, package_names(graph, copts), copts.database))


def check_pools(session: Any, compiled: CompiledPipeline) -> None:
    """Every remote stage's compute pool exists and is visible to the role (before anything changes)."""
    for task in job_tasks(compiled.dag):
        pool = task.definition.remote.compute_pool
        try:
            rows = session.sql("SHOW COMPUTE POOLS LIKE ?", params=[pool.strip('"')]).collect()
        except Exception as exc:
            raise DeployError(
                f"remote stage {task.definition.spec.name!r}: looking up its compute pool {pool} failed "
                f"({first_line(exc)}); nothing was changed"
            ) from exc
        if not rows:
            raise DeployError(
                f"remote stage {task.definition.spec.name!r}: compute pool {pool} does not exist or the role cannot "
                f"see it (SHOW COMPUTE POOLS LIKE '{pool}' is empty): create it (CREATE COMPUTE POOL {pool} ...), "
                "grant USAGE on it, or name another in sp.remote(compute_pool=...); nothing was changed"
            )


def _current(session: Any, method: str) -> str | None:
    try:
        value = getattr(session, method)()
    except Exception:
        return None
    return value.strip('"') if isinstance(value, str) else None


def _fetch_idle(op: Any, dag: Any) -> Snapshot | None:
    """The deployed graph (None if there is none); DeployError when it cannot be read or a run is executing."""
    name = getattr(dag, "name", dag)
    try:
        old = snapshot(op.schema.tasks, name)
        if old is not None:
            _check_not_running(op, dag)
    except DeployError:
        raise
    except Exception as exc:
        raise DeployError(f"reading the deployed Task Graph {name} failed ({first_line(exc)}); nothing was changed") from exc
    return old


def _cause(exc: BaseException, step: str) -> tuple[str, int]:
    """How a change ended (for the message) and the exit code: 128 + the signal for an interrupt, else 1."""
    if isinstance(exc, Interrupted):
        return f"was interrupted by {exc.name} while {step}", 128 + exc.signum
    if isinstance(exc, KeyboardInterrupt):
        return f"was interrupted (KeyboardInterrupt) while {step}", 130
    return f"failed while {step} ({first_line(exc)})", 1


def _check_not_running(op: Any, dag: Any) -> None:
    name = getattr(dag, "name", dag)
    running = [r for r in op.get_current_dag_runs(dag) if getattr(r, "state", "") == "EXECUTING"]
    if running:
        raise DeployError(
            f"Task Graph {name} has a run in progress (run id {running[0].run_id}): nothing was changed. "
            f"Wait for it to finish, or cancel it (SELECT SYSTEM$USER_TASK_CANCEL_ONGOING_EXECUTIONS('{name}')), "
            "then deploy again"
        )


def _check_stage(session: Any, stage_location: str) -> None:
    try:
        session.sql(f"LS {stage_location}").collect()
    except Exception as exc:
        raise DeployError(
            f"the stage {stage_location} (ini snowpipe_stage_location) cannot be listed: {first_line(exc)}. "
            f"Create it (CREATE STAGE {stage_location.lstrip('@').split('/')[0]}) or point snowpipe_stage_location "
            "at a stage the connection's role can read and write; nothing was changed"
        ) from exc


def deploy(
    op: Any, compiled: CompiledPipeline, graph: PipelineGraph, session: Any = None, write: Callable[[str], Any] = print,
) -> list[str]:
    """Replace the deployed graph by ``compiled`` as one step; return the superseded stage files removed.

    Before anything changes: the stage must be listable, no run may be executing, and the old graph
    is fetched (snowflake.core's models). Then the old root is suspended, the old graph dropped
    (finalizer included) and the new one created by ``DAGOperation.deploy`` (children resumed; the
    root resumed when scheduled, and suspended again when the user had suspended the old graph).
    A failure at any step, or SIGINT/SIGTERM, drops what was made, recreates the old graph from the
    snapshot with its states (or leaves nothing on a first deploy) and removes the files the deploy
    uploaded; a signal during that undo waits for it. Only after a successful deploy are the stage
    files that only the old tasks imported removed.
    """
    from snowflake.core import CreateMode

    dag = compiled.dag
    copts = compiled.options
    tasks = op.schema.tasks
    if session is not None:
        _check_stage(session, copts.stage_location)
    old = _fetch_idle(op, dag)
    with pickle_by_value(graph):  # a job's payload folder is named by its code as shipped
        folders = _upload_folders(compiled)
    before = _listing(session, folders) if session is not None else None
    step = "suspending the old root"
    try:
        with interruptible():
            if old is not None:
                if old.root.state == "started":
                    tasks[dag.name].suspend()
                step = "dropping the old graph"
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    op.drop(dag, drop_finalizer=True)  # dagv1's own drop keeps an old finalizer
            step = "creating the new graph"
            with pickle_by_value(graph), bound(dag, session, copts.database, copts.schema), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                op.deploy(dag, mode=CreateMode.or_replace)
            if old is not None and old.suspended and copts.schedule is not None:
                step = "keeping the graph suspended"
                tasks[dag.name].suspend()
            step = "applying the monitors"
            monitors_deploy.apply(session, compiled, graph, write)  # all or nothing; a failure restores the graph
    except BaseException as exc:
        raise _undone(op, compiled, old, session, folders, before, step, exc) from exc
    if old is not None and old.suspended and copts.schedule is not None:
        write(f"Task Graph {dag.name} was suspended before this deploy and stays suspended: resume it with "
              f"ALTER TASK {copts.database}.{copts.schema}.{dag.name} RESUME")
    if old is None or session is None:
        return []
    return _remove_superseded(op, compiled, old, session)


def _undone(
    op: Any, compiled: CompiledPipeline, old: Snapshot | None, session: Any, folders: list[str],
    before: set[str] | None, step: str, exc: BaseException,
) -> DeployError:
    """Undo a failed or interrupted change (signals wait for it); the error that says what happened."""
    dag = compiled.dag
    cause, code = _cause(exc, step)
    with deferred() as late:
        what = "the previous graph was restored" if old is not None else "what was created was dropped"
        try:
            restore(op, dag.name, old)
        except BaseException as undo:
            what = f"restoring the previous graph failed too ({first_line(undo)}); {_leftovers(op, compiled, old)}"
        if session is not None and before is not None:
            removed = _remove_new_files(session, folders, before)
            if removed:
                what += f"; removed the {len(removed)} file(s) it had uploaded"
    if late:
        what += f" ({', '.join(_signal_name(s) for s in late)} received during the undo was held until it finished)"
    return DeployError(f"deploying Task Graph {dag.name} {cause}; {what}", exit_code=code)


def _signal_name(signum: int) -> str:
    import signal

    return signal.Signals(signum).name


def _leftovers(op: Any, compiled: CompiledPipeline, old: Snapshot | None) -> str:
    """The exact tasks of the graph left in the schema (listed when the account answers), and how to remove them."""
    dag, copts = compiled.dag, compiled.options
    where = f"{copts.database}.{copts.schema}"
    try:
        left = sorted(t.name for t in op.schema.tasks.iter(like=f"{dag.name}%"))
        found = f"left in {where}: {', '.join(left) or 'nothing'}"
    except Exception:
        left = sorted({dag.name, *(t.full_name for t in dag.tasks), *(old.names if old else [])})
        found = f"the account did not answer; what may be left in {where}: {', '.join(left)}"
    if not left:
        return f"nothing of {dag.name} is left in {where}: deploy again to recreate it"
    drops = "; ".join(f"DROP TASK IF EXISTS {where}.{name}" for name in left)
    return (f"{found}. Remove it with `pytest --snowpipe-deploy --snowpipe-undeploy --snowpipe-connection NAME` "
            f"once the account answers, or by hand: ALTER TASK {where}.{dag.name} SUSPEND; {drops}")


def _upload_folders(compiled: CompiledPipeline) -> list[str]:
    """Where a deploy of ``compiled`` uploads: the graph's stage and each ML Job's payload folder."""
    copts = compiled.options
    folders = [copts.stage_location.rstrip("/")]
    for task in job_tasks(compiled.dag):
        folders.append(task.definition.payload_folder(copts.database, copts.schema))
    return folders


def _listing(session: Any, folders: list[str]) -> set[str]:
    """Every file under ``folders`` (as ``@<stage>/<path>``); a folder that cannot be listed counts as empty."""
    out: set[str] = set()
    for folder in folders:
        stage = folder.split("/", 1)[0]
        try:
            rows = session.sql(f"LS {folder}").collect()
        except Exception:
            continue
        for row in rows:
            name = str(row[0])
            out.add(f"{stage}/{name.split('/', 1)[1] if '/' in name else name}")
    return out


def _remove(session: Any, paths: list[str]) -> list[str]:
    """REMOVE each stage path (a file, or a folder ending in ``/``); return those removed."""
    removed = []
    for path in paths:
        try:
            session.sql(f"REMOVE '{path}'").collect()
            removed.append(path)
        except Exception:
            pass  # a leftover file costs storage, not correctness
    return removed


def _remove_new_files(session: Any, folders: list[str], before: set[str]) -> list[str]:
    """Remove what a failed deploy uploaded (files under ``folders`` that were not there ``before``)."""
    return _remove(session, sorted(_listing(session, folders) - before))


def _remove_unused(op: Any, old: Snapshot, session: Any, keep_jobs: AbstractSet[str] = frozenset()) -> list[str]:
    """Remove the stage files the ``old`` tasks imported and the ML Job payload folders they read, unless a
    task of the schema still uses them (or ``keep_jobs`` names them); remove nothing when that cannot be told."""
    old_files = set().union(*(stage_files_of(t.definition) for t in old.tasks))
    old_jobs = set().union(*(job_stage_paths_of(t.definition) for t in old.tasks))
    try:
        current = list(op.schema.tasks.iter())
    except Exception:
        return []  # cannot tell what is in use: keep everything
    in_use = set().union(*(stage_files_of(t.definition) for t in current))
    jobs_in_use = set().union(*(job_stage_paths_of(t.definition) for t in current)) | keep_jobs
    return _remove(session, sorted(old_files - in_use) + sorted(p.rstrip("/") + "/" for p in old_jobs - jobs_in_use))


def _remove_superseded(op: Any, compiled: CompiledPipeline, old: Snapshot, session: Any) -> list[str]:
    """After a redeploy: what only the old graph used (the new graph's job folders are in use already)."""
    return _remove_unused(op, old, session, keep_jobs={f.rstrip("/") for f in _upload_folders(compiled)[1:]})


def undeploy(op: Any, copts: CompileOptions, session: Any, write: Callable[[str], Any]) -> int:
    """Drop the deployed graph (finalizer included) and the stage files only it used, with the deploy's safety."""
    name = copts.dag_name
    where = f"{copts.database}.{copts.schema}"
    tasks = op.schema.tasks
    old = _fetch_idle(op, name)
    if old is None:
        write(f"nothing to undeploy: there is no Task Graph {name} in {where}")
        return 0
    step = "suspending the root"
    try:
        with interruptible():
            if old.root.state == "started":
                tasks[name].suspend()
            step = "dropping the graph"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                op.drop(name, drop_finalizer=True)
    except BaseException as exc:
        cause, code = _cause(exc, step)
        with deferred():
            try:
                restore(op, name, old)
                what = "the graph was restored as it was"
            except BaseException as undo:
                what = f"restoring it failed too ({first_line(undo)}): check SHOW TASKS LIKE '{name}%' in {where}"
        raise DeployError(f"undeploying Task Graph {name} {cause}; {what}", exit_code=code) from exc
    removed = _remove_unused(op, old, session)
    monitors_deploy.remove(session, where, name)  # the watched tables and their DMF associations
    write(f"undeployed Task Graph {name} from {where}: dropped {len(old.tasks)} task(s), removed {len(removed)} stage "
          "path(s) only it used")
    return 0


def run_and_wait(
    op: Any, compiled: CompiledPipeline, session: Any, write: Callable[[str], Any], sleep: Callable[[float], Any],
    *, initial_s: float, max_s: float, timeout_s: float,
) -> int:
    """EXECUTE the graph once, poll with bounded exponential backoff, print task states."""
    dag = compiled.dag
    before = {getattr(r, "run_id", None) for r in op.get_complete_dag_runs(dag, error_only=False)}
    op.run(dag)
    write(f"executing Task Graph {dag.name} once ...")
    delay, waited = initial_s, 0.0
    while waited <= timeout_s:
        done = [r for r in op.get_complete_dag_runs(dag, error_only=False) if getattr(r, "run_id", None) not in before]
        if done:
            run = done[0]
            write(f"task graph {dag.name}: {run.state}"
                  + (f" (first error: {run.first_error_task_name}: {run.first_error_message})"
                     if getattr(run, "first_error_task_name", None) else ""))
            _print_task_states(session, dag.name, getattr(run, "run_id", None), write)
            return 0 if run.state == TaskState.SUCCEEDED else 1
        current = [r.state for r in op.get_current_dag_runs(dag)]
        write(f"  ... {', '.join(current) or 'waiting'} ({waited:.0f}s)")
        sleep(delay)
        waited += delay
        delay = min(delay * 2, max_s)
    write(f"task graph {dag.name} did not complete within {timeout_s:.0f}s; it keeps running in Snowflake")
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


__all__ = ["DeployError", "DeployUsageError", "against_account", "check_pools", "connected", "deploy", "located", "operation", "qualify_stage", "run_and_wait", "stage_files_of", "undeploy"]
