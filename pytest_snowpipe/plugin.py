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
    config.stash[graph_key] = graph
    settings = config.stash[settings_key]
    config.stash[run_key] = PipelineRun(
        graph=graph,
        config=settings.config,
        registry=LocalRegistry(settings.registry),
        webhook_env=settings.webhook_env,
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    settings = session.config.stash[settings_key]
    if settings.connection and session.config.stash.get(graph_key, None) is not None:
        from pytest_snowpipe.backends.connection import ConnectionConfigError, create_session

        try:
            session.config.stash[session_key] = create_session(settings.connection)
        except ConnectionConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
    return (yield)


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


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(session_key, None)
    if session is not None:
        session.close()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    run = config.stash.get(run_key, None)
    if run is None:
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
    if existing is not None:
        yield existing
        return
    settings = pytestconfig.stash[settings_key]
    if settings.connection:
        from pytest_snowpipe.backends.connection import ConnectionConfigError, create_session

        try:
            session = create_session(settings.connection)
        except ConnectionConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
    else:
        from pytest_snowpipe.backends.local import create_local_session

        session = create_local_session()
    pytestconfig.stash[session_key] = session
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(scope="session")
def snowpipe_registry(pytestconfig: pytest.Config) -> LocalRegistry:
    """The local model registry (folder from the ``snowpipe_registry`` ini key)."""
    from pytest_snowpipe.registry import LocalRegistry

    return LocalRegistry(pytestconfig.stash[settings_key].registry)
