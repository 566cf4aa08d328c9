"""``pytest --snowpipe-replay RUN``: a recorded graph run's config and stored outputs, the rest rerun here.

The run comes from the kept emulated runs (:mod:`run_history`), or, with a connection, from Snowflake's
history (:mod:`account_runs`; its outputs read through the task runtime's pointers). Its outputs are
handed to the stage cache, the one mechanism that already gives a stage's stored output instead of
running the fixture (:mod:`pytest_snowpipe.local.cache_in_run`): this run's cache is a folder of its
own, filled with the run's outputs under this run's keys, so the stages the run completed are given
(their upstream is not even set up) and the stage that failed, its dependents and the gates run
here, where ``--pdb`` stops in them. The run's config is this run's config (``--snowpipe-config``
still overrides a key). A replay never promotes into your registry (a throwaway one) nor posts a
webhook alert, and runs on the embedded engine. At the end it prints the statement that retries the
run in Snowflake.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_snowpipe.errors import SnowpipeUsageError
from pytest_snowpipe.local.cache_store import MANIFEST
from pytest_snowpipe.reports.run_history import (
    CLEANED,
    HISTORY_KEEP,
    KEEP_HINT,
    KEPT,
    OUTPUT_KEY,
    GraphRun,
    RunHistoryError,
    kept_runs,
    outputs_store,
    pick,
    retry_command,
    stored_outputs,
)

if TYPE_CHECKING:
    from pytest_snowpipe.settings import Settings

NO_WEBHOOK = "SNOWPIPE_REPLAY_SENDS_NO_WEBHOOK"  # the alert webhook variable a replay reads: never set


def start_replay(config: pytest.Config, settings: Settings, memo_of: Callable[[], Any]) -> Settings:
    """Find the run, register the replay's hooks and return this run's settings (the run's config,
    a replay-only stage cache and registry, the embedded engine). Bad input is a SnowpipeUsageError."""
    from pytest_snowpipe.engines.tempdirs import make_owned
    from pytest_snowpipe.pipeline.config import ConfigError, apply_overrides, freeze

    assert settings.replay is not None
    try:
        run, store, latest_failed = _find(settings, lambda key: str(config.getini(key) or "").strip())
    except RunHistoryError as exc:
        raise SnowpipeUsageError(f"--snowpipe-replay: {exc}") from None
    try:
        run_config = apply_overrides(dict(run.config), config.getoption("snowpipe_config") or [])
    except ConfigError as exc:
        raise SnowpipeUsageError(f"--snowpipe-replay: {exc}") from None
    tmp = make_owned("snowpipe-replay-")  # carries our pid: swept if we are killed
    if settings.connection and store is None:  # Snowflake's run: its outputs are read now, from the account
        store = _fetch_outputs(settings.connection, run, tmp / "from-account")
    hooks = ReplayHooks(run, store, tmp, memo_of, latest_failed)
    config.pluginmanager.register(hooks, "snowpipe-replay")
    (tmp / "stages").mkdir()
    return dataclasses.replace(
        settings, config=freeze(run_config), cache_dir=tmp / "stages", no_cache=False, cache_clear=False,
        registry=tmp / "registry", connection=None, remote="local", webhook_env=NO_WEBHOOK,
    )


def _find(settings: Settings, ini: Callable[[str], str]) -> tuple[GraphRun, Path | None, bool]:
    """The run, the folder of its kept outputs (None: read from the account) and whether it is the latest failed one."""
    wanted = str(settings.replay)
    if settings.connection:
        from pytest_snowpipe.engines.connection import create_session
        from pytest_snowpipe.reports.account_runs import HISTORY_WINDOW, fetch_runs

        session = create_session(settings.connection)
        try:
            # where the deploy put the graph: the same ini keys, else the connection's database and schema
            database = (ini("snowpipe_database") or session.get_current_database() or "").strip('"')
            schema = (ini("snowpipe_schema") or session.get_current_schema() or "").strip('"')
            runs = fetch_runs(session, database, schema, ini("snowpipe_dag_name") or "SNOWPIPE_PIPELINE")
        finally:
            session.close()
        run = pick(runs, wanted, f"the history of {database}.{schema}", HISTORY_WINDOW)
        failed = [r for r in runs if r.state in ("FAILED", "CANCELLED")]
        return run, None, bool(runs) and runs[0] is run and run in failed
    runs_dir = settings.runs_dir
    if runs_dir is None:
        raise RunHistoryError("no runs folder (ini snowpipe_runs_dir)")
    run = pick(kept_runs(runs_dir), wanted, f"the kept runs in {runs_dir}",
               f"the last {HISTORY_KEEP} emulated runs of each graph; a deployed graph's runs: pass --snowpipe-connection")
    return run, outputs_store(runs_dir, run), False


def _fetch_outputs(connection: str, run: GraphRun, folder: Path) -> Path:
    """Read the Snowflake run's stage outputs through their pointers into a stage cache folder of the replay.

    A Snowpark frame comes back as a frame on the embedded engine (its rows read once); an output the
    finalizer removed is recorded as CLEANED."""
    from pytest_snowpipe.doubles.sql.embedded import create_embedded_session
    from pytest_snowpipe.engines.connection import create_session
    from pytest_snowpipe.local.cache_store import StageCache
    from pytest_snowpipe.pipeline.frames import is_snowpark_frame
    from pytest_snowpipe.taskgraph.artifacts import load

    store = StageCache(folder, max_bytes=2**62)
    account = create_session(connection)
    local = create_embedded_session()
    try:
        for stage, row in stored_outputs(run):
            try:
                value = load(account, row.return_value)
                store.put(stage, OUTPUT_KEY, _here(value, local, is_snowpark_frame))
                run.outputs[stage] = KEPT
            except Exception as exc:
                run.outputs[stage] = f"{CLEANED} ({type(exc).__name__}: {str(exc)[:200]})"
    finally:
        account.close()
        local.close()
    return folder


def _here(value: Any, local: Any, is_frame: Callable[[Any], bool]) -> Any:
    """An account's Snowpark frame as a frame on the embedded engine (dicts/lists of them element-wise)."""
    if is_frame(value):
        return local.create_dataframe(value.to_pandas())
    if isinstance(value, dict):
        return {k: _here(v, local, is_frame) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_here(v, local, is_frame) for v in value]
        return items if isinstance(value, list) else tuple(items)
    return value


class ReplayHooks:
    """Gives the run's outputs to this run's stage cache once it is prepared; says what was replayed."""

    def __init__(self, run: GraphRun, store: Path | None, tmp: Path, memo_of: Callable[[], Any], latest_failed: bool) -> None:
        self.run = run
        self.store = store
        self.tmp = tmp
        self.memo_of = memo_of
        self.latest_failed = latest_failed
        self.given: list[str] = []

    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """After the plugin prepared the (empty) replay cache and before the tests run: fill it, find the hits."""
        memo = self.memo_of()
        if memo is None or session.config.option.collectonly:
            return
        self.given = give_outputs(self.store, self.run, memo)
        if self.given:
            memo.find_hits(session.items)
        memo.run.cache_note = f"replay of run {self.run.run_id}: stage outputs given: {', '.join(self.given) or 'none'}"

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        write = terminalreporter.write_line
        terminalreporter.write_sep("=", "snowpipe replay")
        run = self.run
        write(f"replayed run {run.run_id} of {run.dag} ({run.source}, {run.state}"
              + (f", first error: {run.first_error_task}" if run.first_error_task else "") + ")")
        write(f"given from the run: {', '.join(self.given) or 'none'}; the other stages and the gates ran here")
        cleaned = [s for s, state in run.outputs.items() if state.startswith(CLEANED)]
        if cleaned:
            write(f"not given, {CLEANED}: {', '.join(cleaned)}; {KEEP_HINT}", yellow=True)
        write(retry_command(run, self.latest_failed))

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def give_outputs(store: Path | None, run: GraphRun, memo: Any) -> list[str]:
    """Copy each kept output of the run into this run's stage cache under the stage's current key."""
    if store is None or not store.is_dir():
        return []
    root = Path(memo.store.root)
    root.mkdir(parents=True, exist_ok=True)
    given = []
    for stage in memo.graph.stages:
        key = memo.keys.get(stage.name)
        source = store / f"{stage.name}.{OUTPUT_KEY}"
        if key is None or run.outputs.get(stage.name) != KEPT or not source.is_dir():
            continue
        target = root / f"{stage.name}.{key}"
        shutil.copytree(source, target, dirs_exist_ok=True)
        manifest = json.loads((target / MANIFEST).read_text(encoding="utf-8"))
        manifest["key"] = key
        (target / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
        given.append(stage.name)
    return given


__all__ = ["NO_WEBHOOK", "ReplayHooks", "give_outputs", "start_replay"]
