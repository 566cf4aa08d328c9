"""pytest hooks of pytest-snowpipe: thin wiring from pytest to the library's modules.

Nothing heavy is imported at module level: a suite that never marks a gate pays for an
option parser and a marker, nothing else (no Snowpark, snowflake.core, ML or XGBoost).
"""
from __future__ import annotations

import sys
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_snowpipe.local.cache_in_run import Memo
    from pytest_snowpipe.local.run import PipelineRun
    from pytest_snowpipe.pipeline.graph import PipelineGraph
    from pytest_snowpipe.pipeline.run_info import RunInfo
    from pytest_snowpipe.registry.champion import Champion
    from pytest_snowpipe.registry.local import LocalRegistry
    from pytest_snowpipe.reports.evidence import CiState
    from pytest_snowpipe.settings import Settings

settings_key: pytest.StashKey[Settings] = pytest.StashKey()
graph_key: pytest.StashKey[PipelineGraph | None] = pytest.StashKey()
run_key: pytest.StashKey[PipelineRun] = pytest.StashKey()
session_key: pytest.StashKey[Any] = pytest.StashKey()
memo_key: pytest.StashKey[Memo] = pytest.StashKey()  # the stage cache of this run (absent: cache off)
run_store_key: pytest.StashKey[Any] = pytest.StashKey()  # xdist controller: the workers' run-only store (--snowpipe-no-cache)
ci_key: pytest.StashKey[CiState] = pytest.StashKey()  # champions, comparisons, failures: what the CI report adds to the run
engine_owner_key: pytest.StashKey[bool] = pytest.StashKey()  # this run may close the embedded engine (it was not running before)
deep_chain_key: pytest.StashKey[str] = pytest.StashKey()  # a fixture chain too deep for pytest to collect
redactor_key: pytest.StashKey[Any] = pytest.StashKey()  # the run's Redactor, made at the first report to scrub
run_info_key: pytest.StashKey[RunInfo] = pytest.StashKey()  # snowpipe_run: one identity per pytest run (xdist: the controller's)
deploy_code_key: pytest.StashKey[int] = pytest.StashKey()  # --snowpipe-deploy: the deploy command's exit code
RUN_INFO_INPUT = "snowpipe_run_info"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_snowpipe import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    from pytest_snowpipe.settings import INI_KEYS

    group = parser.getgroup("snowpipe", "pytest-snowpipe: ML pipelines as test suites")
    group.addoption(
        "--snowpipe-connection",
        dest="snowpipe_connection",
        metavar="NAME",
        help="run on the Snowflake connection NAME from connections.toml "
        "(default: $SNOWFLAKE_CONNECTION_NAME, else the embedded engine: Snowpark on an in-process Snowflake double)",
    )
    group.addoption(
        "--snowpipe-config",
        dest="snowpipe_config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one key of the snowpipe_config ini option for this run (repeatable)",
    )
    group.addoption("--snowpipe-deploy", dest="snowpipe_deploy", action="store_true",
                    help="compile the pipeline into a Snowflake Task Graph instead of running it as tests")
    group.addoption("--snowpipe-dry-run", dest="snowpipe_dry_run", action="store_true",
                    help="with --snowpipe-deploy: print the plan (tasks, edges, branches, finalizer, Mermaid); deploy nothing")
    group.addoption("--snowpipe-target", dest="snowpipe_target", metavar="TARGET",
                    help="with --snowpipe-deploy: 'local' runs the compiled graph once on the emulator; "
                    "'snowflake' (default) rehearses on the emulator, then deploys")
    group.addoption("--schedule", "--snowpipe-schedule", dest="snowpipe_schedule", metavar="EVERY",
                    help="with --snowpipe-deploy: 30m, 12h, 1d, a bare number of days, or 'cron <m> <h> <dom> <mon> <dow> <tz>'")
    group.addoption("--snowpipe-run", dest="snowpipe_run", action="store_true",
                    help="with --snowpipe-deploy: execute the deployed graph once and wait; exit code = its result")
    group.addoption("--snowpipe-undeploy", dest="snowpipe_undeploy", action="store_true",
                    help="with --snowpipe-deploy: drop the deployed Task Graph and the stage files only it used "
                    "(restored as it was if the drop fails or is interrupted)")
    group.addoption("--snowpipe-write-packages-snapshot", dest="snowpipe_write_packages_snapshot", metavar="PATH",
                    help="with --snowpipe-deploy and a connection: write the account's information_schema.packages "
                    "to PATH (then set ini snowpipe_packages_snapshot = PATH for dry runs without a connection)")
    group.addoption("--snowpipe-dag-name", dest="snowpipe_dag_name", metavar="NAME",
                    help="name of the Task Graph (default: ini snowpipe_dag_name, SNOWPIPE_PIPELINE)")
    group.addoption("--snowpipe-report", dest="snowpipe_report", metavar="DIR",
                    help="write report.json and report.md into DIR at the end of the session (also appended "
                    "to $GITHUB_STEP_SUMMARY when set); write it as --snowpipe-report=DIR; "
                    "default: ini snowpipe_report_dir")
    group.addoption("--snowpipe-remote", dest="snowpipe_remote", metavar="MODE",
                    help="how a local run runs sp.remote stages: 'job' submits them as Snowflake ML Jobs "
                    "(default with a connection; needs one), 'local' runs them in a fresh local process "
                    "(default without a connection)")
    group.addoption("--snowpipe-no-cache", dest="snowpipe_no_cache", action="store_true",
                    help="run every stage: neither read stage outputs from the stage cache nor store them")
    group.addoption("--snowpipe-cache-clear", dest="snowpipe_cache_clear", action="store_true",
                    help="empty the stage cache before the run")
    group.addoption("--snowpipe-replay", dest="snowpipe_replay", metavar="RUN",
                    help="rerun a recorded Task Graph run (an id from `snowpipe runs`, or 'last'): its config and the "
                    "outputs its tasks stored are given, the rest (the failing stage or gate) runs here, e.g. under --pdb")
    for name, kind, default, help_text in INI_KEYS:
        parser.addini(name, help_text, type=kind, default=default)


def pytest_configure(config: pytest.Config) -> None:
    from pytest_snowpipe.pipeline.gate import MARKER_HELP

    config.addinivalue_line("markers", MARKER_HELP)
    from pytest_snowpipe.local import heap

    heap.watch(config)  # what heap.settle froze goes back to the collector after pytest's last collections
    # DuckDB's note on fakesnow's result copy (the embedded engine's internals, not the user's code)
    config.addinivalue_line("filterwarnings", "ignore:Arrow output on a DB-API result:UserWarning")
    # the Snowflake connector's own deprecation noise (pandas APIs it calls in write_pandas), 8-9 per
    # computed run: only warnings attributed to its modules, never the user's code
    config.addinivalue_line("filterwarnings", r"ignore::DeprecationWarning:snowflake\.connector\.")
    engines = sys.modules.get("pytest_snowpipe.doubles.sql.embedded")
    config.stash[engine_owner_key] = engines is None or engines.running_engine() is None
    from pytest_snowpipe.pipeline.config import ConfigError
    from pytest_snowpipe.settings import read_settings, report_option_misread

    misread = report_option_misread(
        config.invocation_params.args, getattr(config.option, "file_or_dir", None) or [], config.invocation_params.dir
    )
    if misread:
        raise pytest.UsageError(misread)
    try:
        settings = read_settings(config.getoption, config.getini, config.rootpath)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    if settings.connection:  # the connections file is read only when a connection is asked for
        from pytest_snowpipe.engines.connection import ConnectionConfigError, load_connection

        try:
            load_connection(settings.connection)
        except ConnectionConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
    if settings.replay:  # the run's config and outputs; registers the replay's hooks (reports/replay.py)
        from pytest_snowpipe.reports.replay import start_replay

        settings = start_replay(config, settings, lambda: config.stash.get(memo_key, None))
    config.stash[settings_key] = settings
    from pytest_snowpipe.pipeline.run_info import RunInfo, new_local_run

    given = getattr(config, "workerinput", {}).get(RUN_INFO_INPUT)  # an xdist worker: the controller's run
    config.stash[run_info_key] = (
        RunInfo.from_json(given, settings.config) if given else new_local_run(settings.config)
    )
    if settings.cache_clear:  # --snowpipe-cache-clear, before anything runs (xdist workers: done already)
        from pytest_snowpipe.local.cache_in_run import clear_at_start

        clear_at_start(config, settings)
    if settings.report_dir is not None:
        _ci_state(config)  # starts the report's clock
    config.pluginmanager.register(_CiHooks(config), "snowpipe-ci-report")
    from pytest_snowpipe.reports.progress import ProgressHooks

    def redact_of() -> Any:
        from pytest_snowpipe.redact import redactor_for

        return redactor_for(config.stash[settings_key]).text

    run_of, memo_of = (lambda: config.stash.get(run_key, None)), (lambda: config.stash.get(memo_key, None))
    config.pluginmanager.register(ProgressHooks(config, run_of, memo_of, redact_of), "snowpipe-progress")


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: pytest.Module | pytest.Class, name: str, obj: object) -> Generator[None, object, object]:
    """A fixture chain too deep for pytest's recursive closure walk: one GraphError, not a RecursionError."""
    try:
        return (yield)
    except RecursionError:
        from pytest_snowpipe.pipeline.graph import deep_fixture_chain

        message = deep_fixture_chain(collector, obj) if callable(obj) else None
        if message is None:
            raise
        collector.config.stash[deep_chain_key] = message
        raise collector.CollectError(message) from None


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Generator[None, object, object]:
    """Collection imports the suite's libraries: without full collections walking them again and again."""
    from pytest_snowpipe.local import heap

    with heap.quiet():
        return (yield)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if deep_chain_key in config.stash:
        raise pytest.UsageError(config.stash[deep_chain_key])
    gates = [i for i in items if isinstance(i, pytest.Function) and i.get_closest_marker("snowpipe_gate")]
    if not gates:
        config.stash[graph_key] = None
        return
    from pytest_snowpipe.errors import GraphError
    from pytest_snowpipe.local.run import PipelineRun
    from pytest_snowpipe.pipeline.graph import build_graph
    from pytest_snowpipe.registry.local import LocalRegistry

    try:
        graph = build_graph(gates, config=config.stash[settings_key].config, root=config.rootpath)
    except GraphError as exc:
        raise pytest.UsageError(str(exc)) from None
    vetoes = [r for r in config.hook.pytest_snowpipe_graph_built(graph=graph, config=config) if r]
    if vetoes:
        raise pytest.UsageError("the pipeline graph was vetoed by a plugin:\n" + "\n".join(f"  - {r}" for r in vetoes))
    config.stash[graph_key] = graph
    settings = config.stash[settings_key]
    config.stash[run_key] = PipelineRun(
        graph=graph,
        config=settings.config,
        registry=LocalRegistry(settings.registry),
        webhook_env=settings.webhook_env,
        hook=config.hook,
        info=config.stash[run_info_key],
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> object:
    """With --snowpipe-deploy, compile/emulate/deploy instead of running the tests."""
    settings = session.config.stash[settings_key]
    if session.config.option.collectonly:
        return None
    graph = session.config.stash.get(graph_key, None)
    if settings.deploy is None:
        if settings.connection and graph is not None:  # connect up front: a broken one is a usage error
            session.config.stash[session_key] = _connect(settings.connection)
        if graph is not None:
            session.config.stash[run_key].sweep_registry()  # staging folders of killed promotes
        memo = None
        if graph is not None:  # stage cache: keys, hits, and the hits' upstream cut from the closures
            from pytest_snowpipe.local.cache_in_run import prepare

            memo = prepare(session.config, session.items, graph, session.config.stash[run_key], settings, session_key)
            if memo is not None:
                session.config.stash[memo_key] = memo
        if graph is not None and settings.remote == "local":
            hits = memo.hits if memo is not None else {}
            remote = [s.func for s in graph.stages if s.remote is not None and s.name not in hits]
            if remote:  # a warm interpreter imports their libraries while the earlier stages run
                from pytest_snowpipe.engines.job_process import preload_modules, prestart

                prestart(preload_modules(remote), trips=len(remote))
        return None
    if graph is None:
        raise pytest.UsageError("--snowpipe-deploy: no test is marked snowpipe_gate, so there is no pipeline to deploy.")
    from pytest_snowpipe.errors import SnowpipeUsageError
    from pytest_snowpipe.redact import redactor_for
    from pytest_snowpipe.release import run_deploy
    from pytest_snowpipe.reports import run_history

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    line_out = reporter.write_line if reporter is not None else print
    redactor = redactor_for(settings)  # task errors and tracebacks may quote a secret

    def write(text: str) -> None:
        line_out(redactor.text(text))

    config = session.config

    def keep_record(record: Any, failed: list[str]) -> None:  # the report shows the compiled run
        _ci_state(config).task_graph_runs.append(record.to_json(failed))

    hook = config.hook
    try:
        code = run_deploy(
            graph, settings, write,
            artifact_location=lambda stage: hook.pytest_snowpipe_artifact_location(stage=stage, config=config),
            adjust_task=lambda task, kind, node: hook.pytest_snowpipe_compile_task(
                task=task, kind=kind, node=node, config=config
            ),
            verbose=int(getattr(config.option, "verbose", 0) or 0) > 0,
            on_record=keep_record,
            keep_run=run_history.keeper(settings.runs_dir, write),
        )
    except SnowpipeUsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    if settings.deploy.dry_run and code == 0:
        from pytest_snowpipe.taskgraph.plan import format_plan_notes

        write(format_plan_notes(graph, session.items))
    config.stash[deploy_code_key] = code  # the session's exit status (pytest_sessionfinish): no Exit banner
    return True


@pytest.hookimpl(wrapper=True, specname="pytest_runtestloop")
def pytest_runtestloop_remote_jobs(session: pytest.Session) -> Generator[None, object, object]:
    """With --snowpipe-remote=job, remote stages of this run are submitted as ML Jobs on the run's session."""
    settings = session.config.stash[settings_key]
    if settings.remote != "job" or settings.deploy is not None or session.config.stash.get(graph_key, None) is None:
        return (yield)
    from pytest_snowpipe.pipeline.remote import jobs_via

    config = session.config

    def job_session() -> Any:
        if session_key not in config.stash:
            config.stash[session_key] = _connect(settings.connection or "")
        return config.stash[session_key]

    with jobs_via(job_session):
        return (yield)


@pytest.hookimpl(tryfirst=True, specname="pytest_fixture_setup")
def pytest_fixture_setup_from_cache(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> object | None:
    """A stage stored in the stage cache is loaded instead of run; otherwise its key's lock is taken."""
    memo = request.config.stash.get(memo_key, None)
    return None if memo is None else memo.setup(fixturedef, request)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Generator[None, object, object]:
    run = request.config.stash.get(run_key, None)
    if run is None or fixturedef.argname not in run.graph:
        return (yield)
    __tracebackhide__ = True  # a stage's own error shows the stage's frames, a violation its table
    memo = request.config.stash.get(memo_key, None)
    started = run.stage_started()
    try:
        value = yield
    except BaseException as exc:
        run.stage_done(fixturedef.argname, started, error=exc)
        if memo is not None:
            memo.abandon(fixturedef.argname)
        raise
    run.stage_done(fixturedef.argname, started, value=value)
    from pytest_snowpipe.local import heap

    heap.settle()  # the libraries and data the stage loaded: no full collection walks them again
    try:
        run.check_stage(fixturedef.argname, fixturedef.func, value)  # raises on violation: consumers don't run
    except BaseException:
        if memo is not None:
            memo.abandon(fixturedef.argname)
        raise
    finally:
        run.stage_checked(fixturedef.argname, started)
    if memo is not None:
        try:
            memo.stored(fixturedef.argname, value)  # only outputs that passed their checks are stored
        except Exception as exc:  # e.g. a lazy frame that cannot be evaluated: the stage's fault, not its consumer's
            run.stage_done(fixturedef.argname, started, error=exc)
            run.stages[fixturedef.argname].error = f"storing its output in the stage cache failed: {run.stages[fixturedef.argname].error}"
            exc.add_note(f"pytest-snowpipe: stage {fixturedef.argname!r} ran, but storing its output in the stage cache failed")
            raise
    return value


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    run = item.config.stash.get(run_key, None)
    if run is None or run.gate_for(item.nodeid) is None:
        return (yield)
    from pytest_snowpipe.local.run import ERROR, FAIL, PASS, SKIPPED

    memo = item.config.stash.get(memo_key, None)
    if memo is not None:  # while the gate's action runs, a cached stage it reads is loaded on demand
        memo.bind(item)
        item.addfinalizer(lambda: memo.bind(None))
    try:
        result = yield
    except (AssertionError, pytest.fail.Exception) as exc:
        try:
            run.decide(item.nodeid, FAIL, str(exc))
        except Exception as action_exc:
            exc.add_note(f"pytest-snowpipe: the on_fail action also failed: {action_exc}")
        raise
    except pytest.skip.Exception:
        run.decide(item.nodeid, SKIPPED)
        raise
    except BaseException as exc:
        run.decide(item.nodeid, ERROR, f"{type(exc).__name__}: {exc}")
        raise
    run.decide(item.nodeid, PASS)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """Around a gate's body: note its champion (before its promote runs), record its comparisons."""
    run = pyfuncitem.config.stash.get(run_key, None)
    if run is None or run.gate_for(pyfuncitem.nodeid) is None:
        return (yield)
    from pytest_snowpipe.registry.champion import recording
    from pytest_snowpipe.reports.evidence import note_champion

    state = _ci_state(pyfuncitem.config)
    note_champion(run, state, pyfuncitem.nodeid)
    with recording(state.gate(pyfuncitem.nodeid).comparisons):
        return (yield)


@pytest.hookimpl(wrapper=True, specname="pytest_runtest_makereport")
def pytest_runtest_makereport_failure_first(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """A deliberate failure's summary line shows its message (see reports/failures.py)."""
    if call.excinfo is None:
        return (yield)
    from pytest_snowpipe.reports.failures import message_first

    report = yield
    message_first(item, report, call.excinfo)
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    run = item.config.stash.get(run_key, None)
    if run is not None and call.when == "teardown" and run.gate_for(item.nodeid) is not None:
        from pytest_snowpipe.reports.evidence import gate_properties  # JUnit <property>s of the gate's test case

        item.user_properties.extend(
            gate_properties(run, _ci_state(item.config), item.nodeid, item.config.stash[settings_key])
        )
    if run is None or call.when != "setup" or call.excinfo is None:
        return
    rec = run.gate_for(item.nodeid)
    if rec is not None:
        from pytest_snowpipe.local.run import ERROR, SKIPPED

        skipped = call.excinfo.errisinstance(pytest.skip.Exception)
        rec.verdict = SKIPPED if skipped else ERROR
        rec.message = "" if skipped else run.setup_failure(rec, call.excinfo.value)


@pytest.hookimpl(wrapper=True, specname="pytest_runtest_makereport")
def pytest_runtest_makereport_redacted(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """No secret in what pytest prints or writes of a test: tracebacks, -l locals, JUnit."""
    report = yield
    _scrub(item.config, report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, Any]:
    report = yield
    _scrub(collector.config, report)
    return report


def _scrub(config: pytest.Config, report: Any) -> None:
    settings = config.stash.get(settings_key, None)
    if settings is None or (report.longrepr is None and not report.sections):
        return
    from pytest_snowpipe.redact import redactor_for, scrub_report

    redactor = config.stash.get(redactor_key, None)
    if redactor is None:
        redactor = config.stash[redactor_key] = redactor_for(settings)
    scrub_report(report, redactor)


def stage_cache_of(config: pytest.Config) -> Memo | None:
    """The run's stage cache (keys for the current code, the store), once the test loop started; for sp.load."""
    return config.stash.get(memo_key, None)


def _connect(connection: str) -> Any:
    """A real session for ``connection``; a failure is a usage error naming it and its file."""
    from pytest_snowpipe.engines.connection import ConnectionConfigError, create_session

    try:
        return create_session(connection)
    except ConnectionConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _ci_state(config: pytest.Config) -> CiState:
    state = config.stash.get(ci_key, None)
    if state is None:
        from pytest_snowpipe.reports.evidence import CiState

        state = config.stash[ci_key] = CiState()
    return state


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the CI report (every case: pass, fail, stage error, Ctrl-C, pytest.exit, collection errors)."""
    code = session.config.stash.get(deploy_code_key, 0)
    if code and exitstatus == 0:  # the deploy command's verdict is the run's (pytest reads it back after this hook)
        session.exitstatus = exitstatus = code
    settings = session.config.stash.get(settings_key, None)
    is_worker = hasattr(session.config, "workerinput")  # xdist: the controller summarises every worker's part
    if settings is None or (settings.report_dir is None and not is_worker):
        return
    from pytest_snowpipe.reports.ci import finish_session

    finish_session(session, int(exitstatus), session.config.stash.get(run_key, None), _ci_state(session.config), settings)


class _CiHooks:
    """The report's hooks whose arguments lack the config (registered per config at configure)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def _wanted(self) -> bool:
        settings = self.config.stash.get(settings_key, None)
        return run_key in self.config.stash or (settings is not None and settings.report_dir is not None)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed and self._wanted():
            _ci_state(self.config).record_report(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and self._wanted():
            _ci_state(self.config).record_report(report)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        if self._wanted():
            _ci_state(self.config).record_interrupt(excinfo)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """pytest-xdist's controller: keep the worker's part (for the summary and the report)."""
        from pytest_snowpipe.reports.ci import WORKER_KEY

        state = _ci_state(self.config)
        part = getattr(node, "workeroutput", {}).get(WORKER_KEY)
        if part:
            state.worker_parts.append(part)
        if error:
            state.problems.append(f"pytest-xdist worker went down: {error}")

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        state = self.config.stash.get(ci_key, None)
        for path in state.written if state is not None else []:
            terminalreporter.write_line(f"snowpipe report: {path}")
        for problem in state.problems if state is not None else []:
            terminalreporter.write_line(f"snowpipe report: {problem}", red=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    job_process = sys.modules.get("pytest_snowpipe.engines.job_process")
    if job_process is not None:
        job_process.stop_warm()  # a warm worker no remote stage used
    session = config.stash.get(session_key, None)
    if session is not None:
        session.close()
    engines = sys.modules.get("pytest_snowpipe.doubles.sql.embedded")  # imported only if a stage needed it
    if engines is not None and config.stash.get(engine_owner_key, False):
        engines.shutdown()  # an engine that was running before this run (an outer pytest's) stays
    store = config.stash.get(run_store_key, None)
    if store is not None:
        import shutil

        shutil.rmtree(store, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist controller: under --snowpipe-no-cache the workers share a store for this run only,
    so each stage still runs once (the controller removes it at the end)."""
    from pytest_snowpipe.local.cache_in_run import RUN_STORE_KEY, run_store_for_workers

    config = node.config
    node.workerinput[RUN_INFO_INPUT] = config.stash[run_info_key].to_json()
    if run_store_key not in config.stash:
        config.stash[run_store_key] = run_store_for_workers(config.stash[settings_key])
    if config.stash[run_store_key] is not None:
        node.workerinput[RUN_STORE_KEY] = str(config.stash[run_store_key])


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    run = config.stash.get(run_key, None)
    if config.stash[settings_key].deploy is not None or getattr(config.option, "no_summary", False):
        return
    if run is None:  # an xdist controller: the workers ran the pipeline and sent their parts
        parts = config.stash[ci_key].worker_parts if ci_key in config.stash else []
        if parts:
            from pytest_snowpipe.reports.ci import merge_parts
            from pytest_snowpipe.reports.terminal import write_worker_summary

            write_worker_summary(merge_parts(parts), terminalreporter.write_sep, terminalreporter.write_line)
        return
    from pytest_snowpipe.reports.evidence import bootstrap_notes
    from pytest_snowpipe.reports.terminal import write_summary

    notes = bootstrap_notes(config.stash[ci_key]) if ci_key in config.stash else None
    write_summary(run, terminalreporter.write_sep, terminalreporter.write_line, notes)


@pytest.fixture(scope="session")
def snowpipe_config(pytestconfig: pytest.Config) -> Any:
    """The pipeline's config (ini ``snowpipe_config`` + ``--snowpipe-config``), read-only."""
    return pytestconfig.stash[settings_key].config


@pytest.fixture(scope="session")
def snowpipe_run(pytestconfig: pytest.Config) -> RunInfo:
    """This run's identity: ``run_id``, ``scheduled`` (datetime), ``target`` ('local' here; 'emulator'
    or 'snowflake' inside a compiled task, read from TaskContext) and ``config``. A stage reading it
    is keyed on the fields it reads."""
    return pytestconfig.stash[run_info_key]


@pytest.fixture(scope="session")
def snowpipe_session(pytestconfig: pytest.Config) -> Iterator[Any]:
    """A Snowpark session: the real account if a connection is configured, else the embedded engine."""
    existing = pytestconfig.stash.get(session_key, None)
    if existing is not None:  # opened before the run; pytest_unconfigure closes it
        yield existing
        return
    settings = pytestconfig.stash[settings_key]
    if settings.connection:
        session = _connect(settings.connection)
    else:
        from pytest_snowpipe.doubles.sql.embedded import create_embedded_session
        from pytest_snowpipe.local import heap

        with heap.quiet():  # Snowpark, the connector, DuckDB, fakesnow: imported without full collections
            session = create_embedded_session()
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def snowpipe_champion(request: pytest.FixtureRequest) -> Champion | None:
    """The production version of this gate's model: the registry's default before this run promotes.

    ``None`` on the first run (nothing promoted yet). Function-scoped: each gate has its own
    model. Requested outside a gate, or with an unreachable registry, the test errors with
    the reason and the fix (no action runs).
    """
    from pytest_snowpipe.registry.champion import ChampionError
    from pytest_snowpipe.reports.evidence import champion_for_gate

    try:
        return champion_for_gate(request.config.stash.get(run_key, None), _ci_state(request.config), request.node.nodeid)
    except ChampionError as exc:
        raise pytest.fail.Exception(f"pytest-snowpipe: {exc}", pytrace=False) from None


@pytest.fixture(scope="session")
def snowpipe_registry(pytestconfig: pytest.Config) -> LocalRegistry:
    """The local model registry (folder from the ``snowpipe_registry`` ini key)."""
    from pytest_snowpipe.registry.local import LocalRegistry

    return LocalRegistry(pytestconfig.stash[settings_key].registry)
