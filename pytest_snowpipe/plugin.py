"""pytest hooks of pytest-snowpipe: options, hookspecs, fixtures, and the run object's registration.

The run's state and the hooks that read it live on one object, :class:`~pytest_snowpipe.run_state.SnowpipeRun`,
registered here at configure. Nothing heavy is imported at module level: a suite that never marks a
gate pays for an option parser and a marker, nothing else (no Snowpark, snowflake.core, ML or XGBoost).
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import pytest

from pytest_snowpipe.run_state import PLUGIN_NAME, RUN_INFO_INPUT, SnowpipeRun, run_state_of, usage_errors

if TYPE_CHECKING:
    from pytest_snowpipe.local.cache_in_run import Memo
    from pytest_snowpipe.pipeline.run_info import RunInfo
    from pytest_snowpipe.registry.champion import Champion
    from pytest_snowpipe.registry.local import LocalRegistry


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
    engine_owner = engines is None or engines.running_engine() is None
    from pytest_snowpipe.settings import read_settings, report_option_misread

    misread = report_option_misread(
        config.invocation_params.args, getattr(config.option, "file_or_dir", None) or [], config.invocation_params.dir
    )
    if misread:
        raise pytest.UsageError(misread)
    with usage_errors():
        settings = read_settings(config.getoption, config.getini, config.rootpath)
        if settings.connection:  # the connections file is read only when a connection is asked for
            from pytest_snowpipe.engines.connection import load_connection

            load_connection(settings.connection)
        if settings.replay:  # the run's config and outputs; registers the replay's hooks (reports/replay.py)
            from pytest_snowpipe.reports.replay import start_replay

            settings = start_replay(config, settings, lambda: run_state_of(config).memo)
    from pytest_snowpipe.pipeline.run_info import RunInfo, new_local_run

    given = getattr(config, "workerinput", {}).get(RUN_INFO_INPUT)  # an xdist worker: the controller's run
    info = RunInfo.from_json(given, settings.config) if given else new_local_run(settings.config)
    if settings.cache_clear:  # --snowpipe-cache-clear, before anything runs (xdist workers: done already)
        from pytest_snowpipe.local.cache_in_run import clear_at_start

        clear_at_start(getattr(config, "cache", None), settings, hasattr(config, "workerinput"))
    state = SnowpipeRun(config, settings, info, engine_owner)
    if settings.report_dir is not None:
        state.ci_state()  # starts the report's clock
    config.pluginmanager.register(state, PLUGIN_NAME)
    state.start_rehearsal()  # --snowpipe-deploy to the local target: its sandbox imports while pytest collects
    from pytest_snowpipe.reports.progress import ProgressHooks

    hooks = ProgressHooks(config, lambda: state.run, lambda: state.memo, lambda: state.redact)
    config.pluginmanager.register(hooks, "snowpipe-progress")


def stage_cache_of(config: pytest.Config) -> Memo | None:
    """The run's stage cache (keys for the current code, the store), once the test loop started; for sp.load."""
    return run_state_of(config).memo


@pytest.fixture(scope="session")
def snowpipe_config(pytestconfig: pytest.Config) -> Any:
    """The pipeline's config (ini ``snowpipe_config`` + ``--snowpipe-config``), read-only."""
    return run_state_of(pytestconfig).settings.config


@pytest.fixture(scope="session")
def snowpipe_run(pytestconfig: pytest.Config) -> RunInfo:
    """This run's identity: ``run_id``, ``scheduled`` (datetime), ``target`` ('local' here; 'emulator'
    or 'snowflake' inside a compiled task, read from TaskContext) and ``config``. A stage reading it
    is keyed on the fields it reads."""
    return run_state_of(pytestconfig).info


@pytest.fixture(scope="session")
def snowpipe_session(pytestconfig: pytest.Config) -> Any:
    """A Snowpark session: the real account if a connection is configured, else the embedded engine.

    The run's one session (the stage cache reads sources on it too); the run object closes it at unconfigure.
    """
    return run_state_of(pytestconfig).run_session()


@pytest.fixture
def snowpipe_champion(request: pytest.FixtureRequest) -> Champion | None:
    """The production version of this gate's model: the registry's default before this run promotes.

    ``None`` on the first run (nothing promoted yet). Function-scoped: each gate has its own
    model. Requested outside a gate, or with an unreachable registry, the test errors with
    the reason and the fix (no action runs).
    """
    from pytest_snowpipe.registry.champion import ChampionError
    from pytest_snowpipe.reports.evidence import champion_for_gate

    state = run_state_of(request.config)
    try:
        return champion_for_gate(state.run, state.ci_state(), request.node.nodeid)
    except ChampionError as exc:
        raise pytest.fail.Exception(f"pytest-snowpipe: {exc}", pytrace=False) from None


@pytest.fixture(scope="session")
def snowpipe_registry(pytestconfig: pytest.Config) -> LocalRegistry:
    """The local model registry (folder from the ``snowpipe_registry`` ini key)."""
    from pytest_snowpipe.registry.local import LocalRegistry

    return LocalRegistry(run_state_of(pytestconfig).settings.registry)
