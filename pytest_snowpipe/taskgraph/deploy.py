"""``--snowpipe-deploy``: print the plan, run on the emulator, or rehearse then ship to Snowflake.

What is rehearsed is what ships: the rehearsal deploys the very DAG object to an offline account and
runs each task's procedure as registered there, in the environment Snowflake gives it. Before anything
changes, a real deploy asks the account what it is deploying into (database and schema, qualified
paths, the package versions its channel offers: one query) and compiles against that. A deploy
never leaves a half graph: the deployed graph is fetched first, its root suspended, the new graph
applied through ``DAGOperation.deploy``; on a failure at any step, an interrupt included (SIGINT,
SIGTERM), the old graph is recreated as it was (or, on a first deploy, nothing remains) and what the
failed deploy uploaded is removed. See :func:`_deploy`; ``--snowpipe-undeploy`` is :func:`_undeploy`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_snowpipe.engines.tempdirs import owned_temporary_directory
from pytest_snowpipe.errors import SnowpipeError, first_line
from pytest_snowpipe.pipeline.graph import PipelineGraph
from pytest_snowpipe.taskgraph.channel import ChannelError, from_account, from_snapshot, write_snapshot
from pytest_snowpipe.taskgraph.compile import (
    CompiledPipeline,
    CompileError,
    CompileOptions,
    compile_graph,
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

TARGETS = ("local", "snowflake")
RUNNING_STATES = ("SCHEDULED", "EXECUTING")

if TYPE_CHECKING:
    from pytest_snowpipe.settings import Settings


class DeployUsageError(ValueError):
    """The deploy was asked for in a way that cannot work (the plugin turns it into a UsageError)."""


class DeployError(SnowpipeError):
    """The deploy to Snowflake failed; what was created has been dropped. ``exit_code``: what pytest exits with."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


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
    undeploy: bool = False,
    write_packages_snapshot: str | Path | None = None,
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
    if write_packages_snapshot is not None:
        session = _connected(session_factory, "--snowpipe-write-packages-snapshot")
        try:
            rows = write_snapshot(session, write_packages_snapshot)
        except ChannelError as exc:
            write(str(exc))
            return 1
        write(f"wrote {rows} package versions of the account's Python channel to {write_packages_snapshot}; point ini "
              f"snowpipe_packages_snapshot at it so that dry runs without a connection judge against your account")
        return 0
    if dry_run:
        if session_factory is not None:  # with a connection, the plan is judged against the account itself
            copts = _against_account(copts, graph, session_factory())
        compiled = compile_graph(graph, copts)
        from pytest_snowpipe.taskgraph.plan import format_plan

        write(format_plan(compiled))
        for warning in compiled.warnings:
            write(f"warning: {warning}")
        write(f"dry run: nothing was deployed or run (packages checked against {compiled.channel})")
        return 0
    if target == "local":
        try:
            return _run_local(graph, copts, opts, write, on_record=on_record)[0]
        except DeployError as exc:
            write(str(exc))
            return 1
    if undeploy:
        session = _connected(session_factory, "--snowpipe-undeploy")
        copts = _located(copts, session)
        op = _operation(operation_factory, session, copts, write)
        if op is None:
            return 1
        try:
            return _undeploy(op, copts, session, write)
        except DeployError as exc:
            write(str(exc))
            return exc.exit_code

    if run_once and copts.schedule is None:
        raise DeployUsageError(
            "--snowpipe-run deploys and executes a scheduled Task Graph: give --schedule (e.g. 30m, 1d or a cron)"
        )
    if session_factory is None:
        _connected(session_factory, "deploying to Snowflake")  # the first thing a user is missing: say so first
    alerts = [g.name for g in graph.gates if "alert" in (g.spec.on_pass, g.spec.on_fail)]
    if alerts and not copts.notification_integration:
        raise DeployUsageError(
            f"gate(s) {', '.join(alerts)} alert, which in Snowflake needs a notification integration: "
            "set ini snowpipe_notification_integration = <integration name> (an e-mail or webhook notification "
            "integration the deploying role may USE)"
        )
    session = _connected(session_factory, "deploying to Snowflake")
    try:
        copts = _against_account(copts, graph, session)
    except ChannelError as exc:
        write(str(exc))
        return 1
    compiled = compile_graph(graph, copts)
    try:
        _check_pools(session, compiled)
    except DeployError as exc:
        write(str(exc))
        return 1

    try:
        code, record = _run_local(graph, copts, opts, write, rehearsal=True, on_record=on_record)
    except DeployError as exc:
        write(f"{exc}; nothing was deployed")
        return 1
    for warning in compiled.warnings:  # e.g. a version Snowflake lacks: what ships differs from what was rehearsed
        write(f"warning: {warning}")
    if code != 0:
        why = (f"first error: {record.first_error_task_name}" if record.first_error_task_name
               else "a quality gate took its on_fail branch")
        write(f"rehearsal on the emulator FAILED ({why}); nothing was deployed")
        return 1

    op = _operation(operation_factory, session, copts, write)
    if op is None:
        return 1
    try:
        removed = _deploy(op, compiled, graph, session, write)
    except DeployError as exc:
        write(str(exc))
        return exc.exit_code
    write(f"deployed Task Graph {compiled.dag.name} to {copts.database}.{copts.schema} ({len(compiled.dag.tasks) + 1} tasks)"
          + (f"; removed {len(removed)} superseded stage file(s)" if removed else ""))
    if not run_once:
        return 0
    return _run_and_wait(op, compiled, opts, session, write, sleep)


def _connected(session_factory: Callable[[], Any] | None, what: str) -> Any:
    if session_factory is None:
        raise DeployUsageError(
            f"{what} needs a connection: pass --snowpipe-connection NAME (connections.toml), "
            "or use --snowpipe-target local / --snowpipe-dry-run"
        )
    return session_factory()


def _operation(factory: Callable[[Any, str, str], Any] | None, session: Any, copts: CompileOptions,
               write: Callable[[str], Any]) -> Any:
    assert copts.database and copts.schema
    try:
        return (factory or _default_operation)(session, copts.database, copts.schema)
    except Exception as exc:
        write(f"connecting snowflake.core to {copts.database}.{copts.schema} failed ({first_line(exc)}); "
              "nothing was changed")
        return None


def _located(copts: CompileOptions, session: Any) -> CompileOptions:
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


def _against_account(copts: CompileOptions, graph: PipelineGraph, session: Any) -> CompileOptions:
    """``copts`` located in the account and pinned against its channel (one query, nothing changed)."""
    copts = _located(copts, session)
    return dataclasses.replace(copts, channel=from_account(session, package_names(graph, copts), copts.database))


def _check_pools(session: Any, compiled: CompiledPipeline) -> None:
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
    with owned_temporary_directory("snowpipe-rehearsal-") as tmp:  # its owner's pid: swept if pytest dies
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


def _deploy(
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


def _undeploy(op: Any, copts: CompileOptions, session: Any, write: Callable[[str], Any]) -> int:
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
    write(f"undeployed Task Graph {name} from {where}: dropped {len(old.tasks)} task(s), removed {len(removed)} stage "
          "path(s) only it used")
    return 0


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
        channel=from_snapshot(dep.packages_snapshot),
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
            undeploy=dep.undeploy,
            write_packages_snapshot=dep.write_packages_snapshot,
            session_factory=session_factory,
            write=write,
            on_record=on_record,
        )
    except (DeployUsageError, CompileError, ConnectionConfigError, ChannelError) as exc:  # an unreachable account too
        raise pytest.UsageError(str(exc)) from None
