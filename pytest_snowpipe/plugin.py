"""pytest hooks of pytest-snowpipe: thin wiring from pytest to the library's modules.

Nothing heavy is imported at module level: a suite that never marks a gate pays for an
option parser and a marker, nothing else (no Snowpark, snowflake.core, ML or XGBoost).
"""
from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_snowpipe.graph import PipelineGraph
    from pytest_snowpipe.localrun import PipelineRun
    from pytest_snowpipe.registry import LocalRegistry
    from pytest_snowpipe.settings import Settings

settings_key = pytest.StashKey["Settings"]()
graph_key = pytest.StashKey["PipelineGraph | None"]()
run_key = pytest.StashKey["PipelineRun"]()
session_key = pytest.StashKey[Any]()


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
        "(default: $SNOWFLAKE_CONNECTION_NAME, else the embedded local-testing session)",
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
    group.addoption("--snowpipe-dag-name", dest="snowpipe_dag_name", metavar="NAME",
                    help="name of the Task Graph (default: ini snowpipe_dag_name, SNOWPIPE_PIPELINE)")
    for name, kind, default, help_text in INI_KEYS:
        parser.addini(name, help_text, type=kind, default=default)


def pytest_configure(config: pytest.Config) -> None:
    from pytest_snowpipe.gate import MARKER_HELP

    config.addinivalue_line("markers", MARKER_HELP)
    from pytest_snowpipe.backends.connection import ConnectionConfigError, load_connection
    from pytest_snowpipe.config import ConfigError
    from pytest_snowpipe.settings import read_settings

    try:
        settings = read_settings(config.getoption, config.getini, config.rootpath)
        if settings.connection:
            load_connection(settings.connection)
    except (ConfigError, ConnectionConfigError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[settings_key] = settings


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    gates = [i for i in items if isinstance(i, pytest.Function) and i.get_closest_marker("snowpipe_gate")]
    if not gates:
        config.stash[graph_key] = None
        return
    from pytest_snowpipe.errors import GraphError
    from pytest_snowpipe.graph import build_graph
    from pytest_snowpipe.localrun import PipelineRun
    from pytest_snowpipe.registry import LocalRegistry

    try:
        graph = build_graph(gates)
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
        return None
    if graph is None:
        raise pytest.UsageError("--snowpipe-deploy: no test is marked snowpipe_gate, so there is no pipeline to deploy.")
    from pytest_snowpipe.deploy_command import run_deploy

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    write = reporter.write_line if reporter is not None else print
    code = run_deploy(graph, settings, write, session.config)
    if code != 0:
        raise pytest.exit.Exception(f"pytest-snowpipe: the deploy command ended with exit code {code}", returncode=code)
    return True


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Generator[None, object, object]:
    run = request.config.stash.get(run_key, None)
    if run is None or fixturedef.argname not in run.graph:
        return (yield)
    started = run.stage_started()
    try:
        value = yield
    except BaseException as exc:
        from pytest_snowpipe.backends.local import explain_local_testing_gap

        explain_local_testing_gap(exc)
        run.stage_done(fixturedef.argname, started, error=exc)
        raise
    run.stage_done(fixturedef.argname, started, value=value)
    run.check_stage(fixturedef.argname, fixturedef.func, value)  # raises on violation: consumers don't run
    return value


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    run = item.config.stash.get(run_key, None)
    if run is None or run.gate_for(item.nodeid) is None:
        return (yield)
    from pytest_snowpipe.localrun import ERROR, FAIL, PASS, SKIPPED

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


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    run = item.config.stash.get(run_key, None)
    if run is None or call.when != "setup" or call.excinfo is None:
        return
    rec = run.gate_for(item.nodeid)
    if rec is not None:
        from pytest_snowpipe.localrun import ERROR, SKIPPED

        skipped = call.excinfo.errisinstance(pytest.skip.Exception)
        rec.verdict = SKIPPED if skipped else ERROR
        rec.message = "" if skipped else "a stage it depends on failed"


@pytest.hookimpl(trylast=True)
def pytest_snowpipe_artifact_location(stage: Any, config: pytest.Config) -> str | None:
    """The default: every output under the graph's ``snowpipe_stage_location``."""
    deploy = config.stash[settings_key].deploy
    return None if stage is not None or deploy is None else deploy.stage_location


def _connect(connection: str) -> Any:
    """A real session for ``connection``; a failure is a usage error naming it and its file."""
    from pytest_snowpipe.backends.connection import ConnectionConfigError, create_session

    try:
        return create_session(connection)
    except ConnectionConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(session_key, None)
    if session is not None:
        session.close()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    run = config.stash.get(run_key, None)
    if run is None or config.stash[settings_key].deploy is not None:
        return
    from pytest_snowpipe.report import write_summary

    write_summary(run, terminalreporter.write_sep, terminalreporter.write_line)


@pytest.fixture(scope="session")
def snowpipe_config(pytestconfig: pytest.Config) -> Any:
    """The pipeline's config (ini ``snowpipe_config`` + ``--snowpipe-config``), read-only."""
    return pytestconfig.stash[settings_key].config


@pytest.fixture(scope="session")
def snowpipe_session(pytestconfig: pytest.Config) -> Iterator[Any]:
    """A Snowpark session: the real account if a connection is configured, else local testing."""
    existing = pytestconfig.stash.get(session_key, None)
    if existing is not None:  # opened before the run; pytest_unconfigure closes it
        yield existing
        return
    settings = pytestconfig.stash[settings_key]
    if settings.connection:
        session = _connect(settings.connection)
    else:
        from pytest_snowpipe.backends.local import create_local_session

        session = create_local_session()
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(scope="session")
def snowpipe_registry(pytestconfig: pytest.Config) -> LocalRegistry:
    """The local model registry (folder from the ``snowpipe_registry`` ini key)."""
    from pytest_snowpipe.registry import LocalRegistry

    return LocalRegistry(pytestconfig.stash[settings_key].registry)
