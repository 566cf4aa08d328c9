"""``--snowpipe-deploy``: print the plan, rehearse on the doubles, or rehearse then ship to Snowflake.

What is rehearsed is what ships: the rehearsal deploys the very DAG object to an offline account and
runs each task's procedure as registered there, in the environment Snowflake gives it
(:mod:`pytest_snowpipe.doubles`). Only then does :mod:`pytest_snowpipe.taskgraph.deploy` change the
account. This module sits above both, so neither the doubles nor what ships imports the other's way.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_snowpipe.actions.table import needs
from pytest_snowpipe.engines.connection import create_session
from pytest_snowpipe.engines.tempdirs import owned_temporary_directory
from pytest_snowpipe.pipeline.graph import PipelineGraph
from pytest_snowpipe.pipeline.states import TaskState
from pytest_snowpipe.taskgraph import deploy as account
from pytest_snowpipe.taskgraph import monitors_deploy
from pytest_snowpipe.taskgraph.channel import ChannelError, from_snapshot, write_snapshot
from pytest_snowpipe.taskgraph.compile import (
    CompiledPipeline,
    CompileOptions,
    compile_graph,
    infer_packages,
    pickle_by_value,
    qualify_stage,
)
from pytest_snowpipe.taskgraph.deploy import DeployError, DeployUsageError
from pytest_snowpipe.taskgraph.diff import GraphDiff, fetch_diff, format_diff

if TYPE_CHECKING:
    from pytest_snowpipe.doubles.early_sandbox import EarlyRehearsal
    from pytest_snowpipe.settings import Settings

TARGETS = ("local", "snowflake")
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
    # keep_run(compiled, record, session, rehearsal): called while the run's outputs are still on the engine
    keep_run: Callable[[Any, Any, Any, bool], Any] | None = None
    redeploy_unchanged: bool = False  # deploy even when the deployed graph already is what would ship
    # the context the emulated run's compile and offline deploy run in: they import snowflake.core and
    # the ML Job client (about 1.5 s); the plugin's heap.settled freezes them out of later collections
    loading: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    early: EarlyRehearsal | None = None  # the local run's folder and sandbox, made when the session started


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
    on_diff: Callable[[GraphDiff], Any] | None = None,
) -> int:
    """Do what ``--snowpipe-deploy`` asks; return the exit code (0 = success).

    With a connection, a dry run and a deploy first compare with the deployed graph (``on_diff`` gets the
    :class:`~pytest_snowpipe.taskgraph.diff.GraphDiff`); a deploy that would change nothing deploys nothing.

    Raises :class:`DeployUsageError` (a ValueError) for impossible requests and
    :class:`~pytest_snowpipe.taskgraph.compile.CompileError` when the graph cannot ship.
    """
    if target not in TARGETS:
        raise DeployUsageError(f"--snowpipe-target {target!r} is not valid. Valid targets: {', '.join(TARGETS)}")
    copts = opts.compile
    if write_packages_snapshot is not None:
        session = account.connected(session_factory, "--snowpipe-write-packages-snapshot")
        try:
            rows = write_snapshot(session, write_packages_snapshot)
        except ChannelError as exc:
            write(str(exc))
            return 1
        write(f"wrote {rows} package versions of the account's Python channel to {write_packages_snapshot}; point ini "
              f"snowpipe_packages_snapshot at it so that dry runs without a connection judge against your account")
        return 0
    if dry_run:
        session = session_factory() if session_factory is not None else None
        if session is not None:  # with a connection, the plan is judged against the account itself
            copts = account.against_account(copts, graph, session)
        compiled = compile_graph(graph, copts)
        from pytest_snowpipe.taskgraph.plan import format_plan

        write(format_plan(compiled))
        for warning in compiled.warnings:
            write(f"warning: {warning}")
        if session is not None and _diff(session, compiled, operation_factory, write, on_diff) is None:
            return 1
        write(f"dry run: nothing was deployed or run (packages checked against {compiled.channel})")
        return 0
    if target == "local":
        try:
            return _run_local(graph, copts, opts, write, on_record=on_record)[0]
        except DeployError as exc:
            write(str(exc))
            return 1
    if undeploy:
        session = account.connected(session_factory, "--snowpipe-undeploy")
        copts = account.located(copts, session)
        op = account.operation(operation_factory, session, copts, write)
        if op is None:
            return 1
        try:
            return account.undeploy(op, copts, session, write)
        except DeployError as exc:
            write(str(exc))
            return exc.exit_code

    if run_once and copts.schedule is None:
        raise DeployUsageError(
            "--snowpipe-run deploys and executes a scheduled Task Graph: give --schedule (e.g. 30m, 1d or a cron)"
        )
    if session_factory is None:
        account.connected(session_factory, "deploying to Snowflake")  # the first thing a user is missing: say so first
    alerts = [g.name for g in graph.gates if needs(g.spec, "needs_notification_integration")]
    if alerts and not copts.notification_integration:
        raise DeployUsageError(
            f"gate(s) {', '.join(alerts)} alert, which in Snowflake needs a notification integration: "
            "set ini snowpipe_notification_integration = <integration name> (an e-mail or webhook notification "
            "integration the deploying role may USE)"
        )
    session = account.connected(session_factory, "deploying to Snowflake")
    try:
        copts = account.against_account(copts, graph, session)
    except ChannelError as exc:
        write(str(exc))
        return 1
    compiled = compile_graph(graph, copts)
    try:
        account.check_pools(session, compiled)
    except DeployError as exc:
        write(str(exc))
        return 1
    found = _diff(session, compiled, operation_factory, write, on_diff)
    if found is None:
        return 1
    op, change = found
    if change.unchanged and not opts.redeploy_unchanged:
        write(up_to_date(change, compiled))
        return 0 if not run_once else account.run_and_wait(
            op, compiled, session, write, sleep, initial_s=opts.poll_initial_s, max_s=opts.poll_max_s,
            timeout_s=opts.poll_timeout_s)

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

    try:
        removed = account.deploy(op, compiled, graph, session, write)
    except DeployError as exc:
        write(str(exc))
        return exc.exit_code
    write(f"deployed Task Graph {compiled.dag.name} to {copts.database}.{copts.schema} ({len(compiled.dag.tasks) + 1} tasks)"
          + (f"; removed {len(removed)} superseded stage file(s)" if removed else ""))
    if not run_once:
        return 0
    return account.run_and_wait(op, compiled, session, write, sleep, initial_s=opts.poll_initial_s,
                                max_s=opts.poll_max_s, timeout_s=opts.poll_timeout_s)


def _diff(
    session: Any, compiled: CompiledPipeline, operation_factory: Callable[[Any, str, str], Any] | None,
    write: Callable[[str], Any], on_diff: Callable[[GraphDiff], Any] | None,
) -> tuple[Any, GraphDiff] | None:
    """Compare ``compiled`` with the deployed graph and show it; None (said why) when the account cannot tell."""
    op = account.operation(operation_factory, session, compiled.options, write)
    if op is None:
        return None
    try:
        change = fetch_diff(op, compiled)
    except DeployError as exc:
        write(str(exc))
        return None
    write(format_diff(change))
    if on_diff is not None:
        on_diff(change)
    return op, change


def up_to_date(change: GraphDiff, compiled: CompiledPipeline) -> str:
    """What a deploy that changes nothing says."""
    copts = compiled.options
    line = f"Task Graph {change.dag} is up to date: nothing deployed"
    if change.suspended and copts.schedule is not None:
        line += f" (it is suspended: resume it with ALTER TASK {copts.database}.{copts.schema}.{change.dag} RESUME)"
    return line


def failed_gates(compiled: CompiledPipeline, record: Any) -> list[str]:
    """The gates whose branch took its ``on_fail`` side: every task SUCCEEDED, the quality gate did not."""
    from pytest_snowpipe.taskgraph.compile import KIND_BRANCH

    out = []
    for name, kind in compiled.kinds.items():
        spec = compiled.bodies[name]
        run = record.tasks.get(name)
        if kind == KIND_BRANCH and run is not None and run.state == TaskState.SUCCEEDED and spec.on_fail != spec.on_pass \
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
    (:mod:`pytest_snowpipe.doubles.sandbox`); ``opts.sandbox=False`` runs the task functions in this process.
    """
    from pytest_snowpipe.doubles.emulator import emulate
    from pytest_snowpipe.doubles.sql.embedded import create_embedded_session, engine

    t0 = time.perf_counter()
    monitor_lines: list[str] = []
    with contextlib.ExitStack() as folder:
        early = opts.early
        if early is not None:  # made when the session started, its interpreter importing since
            folder.callback(early.close)
            tmp = str(early.workdir)
        else:
            tmp = folder.enter_context(owned_temporary_directory("snowpipe-rehearsal-"))  # swept if pytest dies
        copts = dataclasses.replace(copts, registry_path=tmp, check_pickle=not rehearsal and copts.check_pickle)
        with contextlib.ExitStack() as stack:
            sandbox = None
            with opts.loading():
                if opts.sandbox:  # its interpreter starts first: its imports overlap the compile and the deploy
                    compiled, sandbox = stack.enter_context(_sandbox(
                        graph, copts, lambda: engine().connection_params(), Path(tmp),
                        early.sandbox if early is not None else None,
                    ))
                else:
                    compiled = compile_graph(graph, copts)
                session = create_embedded_session()
            stack.callback(session.close)
            record = emulate(
                compiled.dag, session=session, config_overrides=dict(opts.config_overrides),
                executor=sandbox.run if sandbox is not None else None,
            )
            monitor_lines = monitors_deploy.rehearse_lines(session, compiled)  # what the DMFs would report
            if opts.keep_run is not None:  # `snowpipe runs` and --snowpipe-replay read it later
                opts.keep_run(compiled, record, session, rehearsal)
    failed = failed_gates(compiled, record)
    where = "in this process"
    if sandbox is not None:
        where = (f"in the shipped environment: offline deploy {sandbox.shipped.ship_s:.1f}s, "
                 f"{len(sandbox.interpreters)} sandbox interpreter(s) ready in {sandbox.start_s:.1f}s")
    write(("rehearsal: " if rehearsal else "") + record.format(width=None if opts.verbose else 40)
          + f"\n(ran {where}; {time.perf_counter() - t0:.1f}s in all, compile included)")
    if monitor_lines:
        write("\n".join(monitor_lines))
    for name in failed:
        spec = next(b for b in compiled.bodies.values() if getattr(b, "name", None) == name and hasattr(b, "on_fail"))
        write(f"quality gate {name} FAILED: its branch took on_fail ({spec.on_fail}); exit 1")
    if on_record is not None:
        on_record(record, failed)
    return (0 if record.state == TaskState.SUCCEEDED and not failed else 1), record


@contextlib.contextmanager
def _sandbox(
    graph: PipelineGraph, copts: CompileOptions, engine: Callable[[], dict[str, Any]], workdir: Path,
    early: Any = None,
) -> Iterator[tuple[CompiledPipeline, Any]]:
    """Compile ``graph``, ship it to an offline account and open the sandbox its procedures run in:
    (the compiled pipeline, the sandbox). ``engine()`` starts the engine and gives its parameters;
    ``early``: a sandbox made for ``workdir`` when the session started (:mod:`.doubles.early_sandbox`).

    The interpreter for the graph's packages starts first, before the engine: its imports
    (Snowpark, TaskContext, the libraries the stages' modules import: 3-5 s) overlap the engine's
    start, the compile (mostly ``import snowflake.core``, 2.3 s) and the offline deploy, on another
    core; it opens its session when the engine's parameters come.
    """
    from pytest_snowpipe.doubles.sandbox import Sandbox, SandboxError
    from pytest_snowpipe.doubles.shipped import ShipError, ship
    from pytest_snowpipe.engines.job_process import preload_modules
    from pytest_snowpipe.taskgraph.packages import PackageError

    imports = workdir / "imports"
    preload = tuple(preload_modules(stage.func for stage in graph.stages))
    if early is not None:
        early.preload = preload
    try:
        with early if early is not None else Sandbox(None, None, workdir, import_dir=imports, preload=preload) as sandbox:
            with contextlib.suppress(PackageError):  # the compile reports it, as a CompileError
                sandbox.expect(tuple(p.spec for p in infer_packages(graph, copts).packages))
            sandbox.connect(engine())
            compiled = compile_graph(graph, copts)
            with pickle_by_value(compiled.graph):  # as around the real deploy
                shipped = ship(compiled.dag, copts.stage_location, imports, copts.database, copts.schema)
            sandbox.attach(shipped)
            yield compiled, sandbox
    except (ShipError, SandboxError) as exc:
        raise DeployError(f"the rehearsal could not run the shipped graph: {exc}") from None


def run_deploy(
    graph: PipelineGraph, settings: Settings, write: Callable[[str], Any], *,
    artifact_location: Callable[[Any], str | None] | None = None,
    adjust_task: Callable[[Any, str, Any], Any] | None = None,
    verbose: bool = False,
    on_record: Callable[[Any, list[str]], Any] | None = None,
    keep_run: Callable[[Any, Any, Any, bool], Any] | None = None,
    loading: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    early: EarlyRehearsal | None = None,
) -> int:
    """Run the deploy command the settings ask for; returns the exit code.

    ``artifact_location`` (of a stage; of ``None``: the graph's stage) and ``adjust_task`` are the plugin's hooks
    ``pytest_snowpipe_artifact_location`` and ``pytest_snowpipe_compile_task``. A request that cannot
    work raises a :class:`~pytest_snowpipe.errors.SnowpipeUsageError` (shown as pytest's usage error).
    """
    dep = settings.deploy
    assert dep is not None
    stage_location = (artifact_location(None) if artifact_location is not None else None) or dep.stage_location
    copts = CompileOptions(
        dag_name=dep.dag_name,
        schedule=dep.schedule,
        config=dict(settings.config),
        warehouse=dep.warehouse,
        stage_location=qualify_stage(stage_location, dep.database, dep.schema),
        database=dep.database,
        schema=dep.schema,
        packages=tuple(dep.packages),
        channel=from_snapshot(dep.packages_snapshot),
        notification_integration=dep.notification_integration,
        registry_path=str(settings.registry),
        keep_outputs=settings.keep_outputs,
        artifact_location=artifact_location,
        adjust_task=adjust_task,
    )
    session_factory = None
    if settings.connection:
        connection = settings.connection
        session_factory = lambda: create_session(connection)  # noqa: E731
    return execute(
        graph,
        DeployOptions(compile=copts, verbose=verbose, keep_run=keep_run, loading=loading, early=early),
        target=dep.target,
        dry_run=dep.dry_run,
        run_once=dep.run_once,
        undeploy=dep.undeploy,
        write_packages_snapshot=dep.write_packages_snapshot,
        session_factory=session_factory,
        write=write,
        on_record=on_record,
        on_diff=_diff_report(settings, write),
    )


def _diff_report(settings: Settings, write: Callable[[str], Any]) -> Callable[[GraphDiff], Any] | None:
    """With ``--snowpipe-report=DIR``: the deploy diff as ``DIR/deploy-diff.md`` (a pull-request comment)."""
    folder = settings.report_dir
    if folder is None:
        return None
    from pytest_snowpipe.redact import redactor_for
    from pytest_snowpipe.reports.deploy_diff import write_diff_markdown

    scrub = redactor_for(settings).text
    return lambda change: write(f"deploy diff written to {write_diff_markdown(change, folder, scrub)}")


__all__ = ["TARGETS", "DeployError", "DeployOptions", "DeployUsageError", "execute", "failed_gates", "run_deploy"]
