"""The run's state on one object, registered at configure; the hooks that read or change it are its methods.

The way pytest-xdist keeps a distributed run on ``DSession``: :class:`SnowpipeRun` holds the settings,
the run's identity, the pipeline graph, the local run, the stage cache, the CI report's state, the
Snowpark session opened for the run and the xdist run-only store. ``plugin.py`` registers it (options,
hookspecs, fixtures and registration stay there); fixtures read it with :func:`run_state_of`.

The library raises :class:`~pytest_snowpipe.errors.SnowpipeUsageError` for a run asked for in a way
that cannot work; :func:`usage_errors` is the one place that turns it into ``pytest.UsageError``.
Nothing heavy is imported here: a suite that never marks a gate pays for none of it.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_snowpipe.errors import SnowpipeUsageError

if TYPE_CHECKING:
    from pytest_snowpipe.local.cache_in_run import Memo
    from pytest_snowpipe.local.run import PipelineRun
    from pytest_snowpipe.pipeline.graph import PipelineGraph
    from pytest_snowpipe.pipeline.run_info import RunInfo
    from pytest_snowpipe.redact import Redactor
    from pytest_snowpipe.reports.evidence import CiState
    from pytest_snowpipe.settings import Settings

PLUGIN_NAME = "snowpipe-run"
RUN_INFO_INPUT = "snowpipe_run_info"  # xdist workerinput: the controller's run identity


@contextlib.contextmanager
def usage_errors() -> Iterator[None]:
    """The one conversion point: a library usage error becomes pytest's (a message, no traceback)."""
    try:
        yield
    except SnowpipeUsageError as exc:
        raise pytest.UsageError(str(exc)) from None


def run_state_of(config: pytest.Config) -> SnowpipeRun:
    """The run object the plugin registered at configure."""
    state = config.pluginmanager.get_plugin(PLUGIN_NAME)
    assert isinstance(state, SnowpipeRun), "pytest-snowpipe: the run object is registered at configure"
    return state


class SnowpipeRun:
    """One pytest run of a pipeline suite: its state, and the hooks that read or change it.

    Every hook method's name starts with ``pytest_`` (pytest only looks at those); a second
    implementation of one hook names it with ``specname``.
    """

    def __init__(self, config: pytest.Config, settings: Settings, info: RunInfo, engine_owner: bool) -> None:
        self.config = config
        self.settings = settings
        self.info = info  # snowpipe_run: one identity per pytest run (xdist: the controller's)
        self.engine_owner = engine_owner  # this run may close the embedded engine (it was not running before)
        self.graph: PipelineGraph | None = None  # None: no gate collected
        self.run: PipelineRun | None = None  # the local run of the graph (absent under --snowpipe-deploy's loop)
        self.memo: Memo | None = None  # the stage cache of this run (None: cache off)
        self.session: Any = None  # a Snowpark session opened for the run (closed at unconfigure)
        self.run_store: Path | None = None  # xdist controller: the workers' run-only store (--snowpipe-no-cache)
        self.ci: CiState | None = None  # champions, comparisons, failures: what the CI report adds to the run
        self.redactor: Redactor | None = None  # made at the first report to scrub
        self.deep_chain: str | None = None  # a fixture chain too deep for pytest to collect
        self.deploy_code = 0  # --snowpipe-deploy: the deploy command's exit code
        self.is_worker = hasattr(config, "workerinput")
        self.early_rehearsal: Any = None  # doubles.early_sandbox.EarlyRehearsal: the local deploy run's, started early

    def start_rehearsal(self) -> None:
        """With ``--snowpipe-deploy`` to the local target, the run's sandbox interpreter starts now and
        imports what every task needs (Snowpark, TaskContext: ~2.5 s) while pytest collects."""
        deploy = self.settings.deploy
        if deploy is None or not deploy.runs_locally or self.is_worker or self.config.option.collectonly:
            return
        from pytest_snowpipe.doubles.early_sandbox import prepare_rehearsal

        self.early_rehearsal = prepare_rehearsal()

    # ------------------------------------------------------------------ state helpers

    def ci_state(self) -> CiState:
        if self.ci is None:
            from pytest_snowpipe.reports.evidence import CiState

            self.ci = CiState()
        return self.ci

    def run_session(self) -> Any:
        """The run's one Snowpark session, opened now if needed: the stage cache, ML Job submission and
        the ``snowpipe_session`` fixture share it; closed at unconfigure. A broken connection is a usage error."""
        if self.session is None:
            with usage_errors():
                if self.settings.connection:
                    from pytest_snowpipe.engines.connection import create_session

                    self.session = create_session(self.settings.connection)
                else:
                    from pytest_snowpipe.doubles.sql.embedded import create_embedded_session
                    from pytest_snowpipe.local import heap

                    with heap.quiet():  # Snowpark, the connector, DuckDB, fakesnow: no full collections meanwhile
                        self.session = create_embedded_session()
        return self.session

    def redact(self, text: str) -> str:
        return self._redactor().text(text)

    def _redactor(self) -> Redactor:
        if self.redactor is None:
            from pytest_snowpipe.redact import redactor_for

            self.redactor = redactor_for(self.settings)
        return self.redactor

    def _report_wanted(self) -> bool:
        return self.run is not None or self.settings.report_dir is not None

    # ------------------------------------------------------------------ collection

    @pytest.hookimpl(wrapper=True)
    def pytest_pycollect_makeitem(
        self, collector: pytest.Module | pytest.Class, name: str, obj: object
    ) -> Generator[None, object, object]:
        """A fixture chain too deep for pytest's recursive closure walk: one GraphError, not a RecursionError."""
        try:
            return (yield)
        except RecursionError:
            from pytest_snowpipe.pipeline.graph import deep_fixture_chain

            message = deep_fixture_chain(collector, obj) if callable(obj) else None
            if message is None:
                raise
            self.deep_chain = message
            raise collector.CollectError(message) from None

    @pytest.hookimpl(wrapper=True)
    def pytest_collection(self, session: pytest.Session) -> Generator[None, object, object]:
        """Collection imports the suite's libraries: without full collections walking them again and again."""
        from pytest_snowpipe.local import heap

        with heap.quiet():
            return (yield)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
        """The pipeline graph from the collected gates (after every other plugin chose the items)."""
        if self.deep_chain is not None:
            raise pytest.UsageError(self.deep_chain)
        gates = [i for i in items if isinstance(i, pytest.Function) and i.get_closest_marker("snowpipe_gate")]
        if not gates:
            return
        from pytest_snowpipe.local.run import PipelineRun
        from pytest_snowpipe.pipeline.graph import build_graph
        from pytest_snowpipe.registry.local import LocalRegistry

        with usage_errors():
            graph = build_graph(gates, config=self.settings.config, root=config.rootpath)
        vetoes = [r for r in config.hook.pytest_snowpipe_graph_built(graph=graph, config=config) if r]
        if vetoes:
            raise pytest.UsageError("the pipeline graph was vetoed by a plugin:\n" + "\n".join(f"  - {r}" for r in vetoes))
        self.graph = graph
        self.run = PipelineRun(
            graph=graph, config=self.settings.config, registry=LocalRegistry(self.settings.registry),
            webhook_env=self.settings.webhook_env, hook=config.hook, info=self.info,
        )

    # ------------------------------------------------------------------ the test loop

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> object:
        """Prepare the local run (connection, cache, warm worker); with --snowpipe-deploy, deploy instead."""
        if session.config.option.collectonly:
            return None
        with usage_errors():
            if self.settings.deploy is None:
                self._prepare_local(session)
                return None
            return self._deploy(session)

    def _prepare_local(self, session: pytest.Session) -> None:
        if self.graph is None or self.run is None:
            return
        if self.settings.connection:  # connect up front: a broken one is a usage error
            self.run_session()
        self.run.sweep_registry()  # staging folders of killed promotes
        from pytest_snowpipe.local.cache_in_run import cache_location, prepare

        option = self.config.option
        where, off = cache_location(
            getattr(self.config, "cache", None), getattr(self.config, "workerinput", {}), self.settings,
            setup_only=bool(getattr(option, "setupplan", False) or getattr(option, "setuponly", False)),
        )
        if off is not None:
            self.run.cache_note = off
        if where is not None:  # stage cache: keys, hits, and the hits' upstream cut from the closures
            self.memo = prepare(session.items, self.graph, self.run, self.settings, where, self.run_session)
        if self.settings.remote == "local":
            hits = self.memo.hits if self.memo is not None else {}
            remote = [s.func for s in self.graph.stages if s.remote is not None and s.name not in hits]
            if remote:  # a warm interpreter imports their libraries while the earlier stages run
                from pytest_snowpipe.engines.job_process import preload_modules, prestart

                prestart(preload_modules(remote), trips=len(remote))

    def _deploy(self, session: pytest.Session) -> bool:
        if self.graph is None:
            raise pytest.UsageError("--snowpipe-deploy: no test is marked snowpipe_gate, so there is no pipeline to deploy.")
        from pytest_snowpipe.local import heap
        from pytest_snowpipe.release import run_deploy
        from pytest_snowpipe.reports import run_history

        config = self.config
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        line_out = reporter.write_line if reporter is not None else print

        def write(text: str) -> None:  # task errors and tracebacks may quote a secret
            line_out(self.redact(text))

        def keep_record(record: Any, failed: list[str]) -> None:  # the report shows the compiled run
            self.ci_state().task_graph_runs.append(record.to_json(failed))

        hook = config.hook
        early, self.early_rehearsal = self.early_rehearsal, None
        code = run_deploy(
            self.graph, self.settings, write,
            artifact_location=lambda stage: hook.pytest_snowpipe_artifact_location(stage=stage, config=config),
            adjust_task=lambda task, kind, node: hook.pytest_snowpipe_compile_task(
                task=task, kind=kind, node=node, config=config
            ),
            verbose=int(getattr(config.option, "verbose", 0) or 0) > 0,
            on_record=keep_record,
            keep_run=run_history.keeper(self.settings.runs_dir, write),
            loading=heap.settled,  # the compile and offline deploy's imports: frozen once loaded
            early=early,
        )
        heap.settle()  # what the deploy and the emulated run loaded: pytest's last collections skip it
        assert self.settings.deploy is not None
        if self.settings.deploy.dry_run and code == 0:
            from pytest_snowpipe.taskgraph.plan import format_plan_notes

            write(format_plan_notes(self.graph, session.items))
        self.deploy_code = code  # the session's exit status (pytest_sessionfinish): no Exit banner
        return True

    @pytest.hookimpl(wrapper=True, specname="pytest_runtestloop")
    def pytest_runtestloop_remote_jobs(self, session: pytest.Session) -> Generator[None, object, object]:
        """With --snowpipe-remote=job, remote stages of this run are submitted as ML Jobs on the run's session."""
        if self.settings.remote != "job" or self.settings.deploy is not None or self.graph is None:
            return (yield)
        from pytest_snowpipe.pipeline.remote import jobs_via

        with jobs_via(self.run_session):  # --snowpipe-remote=job always has a connection (settings)
            return (yield)

    # ------------------------------------------------------------------ stages and gates

    @pytest.hookimpl(tryfirst=True, specname="pytest_fixture_setup")
    def pytest_fixture_setup_from_cache(self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> object | None:
        """A stage stored in the stage cache is loaded instead of run; otherwise its key's lock is taken."""
        return None if self.memo is None else self.memo.setup(fixturedef, request)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Generator[None, object, object]:
        run = self.run
        if run is None or fixturedef.argname not in run.graph:
            return (yield)
        __tracebackhide__ = True  # a stage's own error shows the stage's frames, a violation its table
        memo, name = self.memo, fixturedef.argname
        started = run.stage_started()
        try:
            value = yield
        except BaseException as exc:
            run.stage_done(name, started, error=exc)
            if memo is not None:
                memo.abandon(name)
            raise
        run.stage_done(name, started, value=value)
        from pytest_snowpipe.local import heap

        heap.settle()  # the libraries and data the stage loaded: no full collection walks them again
        try:
            run.check_stage(name, fixturedef.func, value)  # raises on violation: consumers don't run
        except BaseException:
            if memo is not None:
                memo.abandon(name)
            raise
        finally:
            run.stage_checked(name, started)
        if memo is not None:
            try:
                memo.stored(name, value)  # only outputs that passed their checks are stored
            except Exception as exc:  # e.g. a lazy frame that cannot be evaluated: the stage's fault, not its consumer's
                run.stage_done(name, started, error=exc)
                run.stages[name].error = f"storing its output in the stage cache failed: {run.stages[name].error}"
                exc.add_note(f"pytest-snowpipe: stage {name!r} ran, but storing its output in the stage cache failed")
                raise
        return value

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        run = self.run
        if run is None or run.gate_for(item.nodeid) is None:
            return (yield)
        from pytest_snowpipe.pipeline.states import Verdict

        memo = self.memo
        if memo is not None:  # while the gate's action runs, a cached stage it reads is loaded on demand
            memo.bind(item)
            item.addfinalizer(lambda: memo.bind(None))
        try:
            result = yield
        except (AssertionError, pytest.fail.Exception) as exc:
            try:
                run.decide(item.nodeid, Verdict.FAIL, str(exc))
            except Exception as action_exc:
                exc.add_note(f"pytest-snowpipe: the on_fail action also failed: {action_exc}")
            raise
        except pytest.skip.Exception:
            run.decide(item.nodeid, Verdict.SKIPPED)
            raise
        except BaseException as exc:
            run.decide(item.nodeid, Verdict.ERROR, f"{type(exc).__name__}: {exc}")
            raise
        run.decide(item.nodeid, Verdict.PASS)
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> Generator[None, object, object]:
        """Around a gate's body: note its champion (before its promote runs), record its comparisons."""
        run = self.run
        if run is None or run.gate_for(pyfuncitem.nodeid) is None:
            return (yield)
        from pytest_snowpipe.registry.champion import recording
        from pytest_snowpipe.reports.evidence import note_champion

        state = self.ci_state()
        note_champion(run, state, pyfuncitem.nodeid)
        with recording(state.gate(pyfuncitem.nodeid).comparisons):
            return (yield)

    # ------------------------------------------------------------------ reports

    @pytest.hookimpl(wrapper=True, specname="pytest_runtest_makereport")
    def pytest_runtest_makereport_failure_first(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        """A deliberate failure's summary line shows its message (see reports/failures.py)."""
        if call.excinfo is None:
            return (yield)
        from pytest_snowpipe.reports.failures import message_first

        report = yield
        message_first(item, report, call.excinfo)
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> None:
        run = self.run
        if run is not None and call.when == "teardown" and run.gate_for(item.nodeid) is not None:
            from pytest_snowpipe.reports.evidence import gate_properties  # JUnit <property>s of the gate's test case

            item.user_properties.extend(gate_properties(run, self.ci_state(), item.nodeid, self.settings))
        if run is None or call.when != "setup" or call.excinfo is None:
            return
        rec = run.gate_for(item.nodeid)
        if rec is not None:
            from pytest_snowpipe.pipeline.states import Verdict

            skipped = call.excinfo.errisinstance(pytest.skip.Exception)
            rec.verdict = str(Verdict.SKIPPED if skipped else Verdict.ERROR)
            rec.message = "" if skipped else run.setup_failure(rec, call.excinfo.value)

    @pytest.hookimpl(wrapper=True, specname="pytest_runtest_makereport")
    def pytest_runtest_makereport_redacted(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        """No secret in what pytest prints or writes of a test: tracebacks, -l locals, JUnit."""
        report = yield
        self._scrub(report)
        return report

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Generator[None, Any, Any]:
        report = yield
        self._scrub(report)
        return report

    def _scrub(self, report: Any) -> None:
        if report.longrepr is None and not report.sections:
            return
        from pytest_snowpipe.redact import scrub_report

        scrub_report(report, self._redactor())

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed and self._report_wanted():
            self.ci_state().record_report(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and self._report_wanted():
            self.ci_state().record_report(report)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        if self._report_wanted():
            self.ci_state().record_interrupt(excinfo)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Write the CI report (every case: pass, fail, stage error, Ctrl-C, pytest.exit, collection errors)."""
        if self.deploy_code and exitstatus == 0:  # the deploy command's verdict is the run's
            session.exitstatus = exitstatus = self.deploy_code
        if self.settings.report_dir is None and not self.is_worker:  # xdist: the controller summarises
            return
        from pytest_snowpipe.reports.ci import finish_session

        finish_session(session, int(exitstatus), self.run, self.ci_state(), self.settings)

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        if self.settings.deploy is not None or getattr(config.option, "no_summary", False):
            return
        if self.run is None:  # an xdist controller: the workers ran the pipeline and sent their parts
            parts = self.ci.worker_parts if self.ci is not None else []
            if parts:
                from pytest_snowpipe.reports.ci import merge_parts
                from pytest_snowpipe.reports.terminal import write_worker_summary

                write_worker_summary(merge_parts(parts), terminalreporter.write_sep, terminalreporter.write_line)
            return
        from pytest_snowpipe.reports.evidence import bootstrap_notes
        from pytest_snowpipe.reports.terminal import write_summary

        notes = bootstrap_notes(self.ci) if self.ci is not None else None
        write_summary(self.run, terminalreporter.write_sep, terminalreporter.write_line, notes)

    @pytest.hookimpl(trylast=True, specname="pytest_terminal_summary")
    def pytest_terminal_summary_report_paths(self, terminalreporter: Any) -> None:
        for path in self.ci.written if self.ci is not None else []:
            terminalreporter.write_line(f"snowpipe report: {path}")
        for problem in self.ci.problems if self.ci is not None else []:
            terminalreporter.write_line(f"snowpipe report: {problem}", red=True)

    # ------------------------------------------------------------------ xdist

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """pytest-xdist controller: under --snowpipe-no-cache the workers share a store for this run only,
        so each stage still runs once (the controller removes it at the end)."""
        from pytest_snowpipe.local.cache_in_run import RUN_STORE_KEY, run_store_for_workers

        node.workerinput[RUN_INFO_INPUT] = self.info.to_json()
        if self.run_store is None:
            self.run_store = run_store_for_workers(self.settings)
        if self.run_store is not None:
            node.workerinput[RUN_STORE_KEY] = str(self.run_store)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """pytest-xdist's controller: keep the worker's part (for the summary and the report)."""
        from pytest_snowpipe.reports.ci import WORKER_KEY

        state = self.ci_state()
        part = getattr(node, "workeroutput", {}).get(WORKER_KEY)
        if part:
            state.worker_parts.append(part)
        if error:
            state.problems.append(f"pytest-xdist worker went down: {error}")

    # ------------------------------------------------------------------ the end

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.early_rehearsal is not None:  # the deploy never ran (a usage error, an interrupted collection)
            self.early_rehearsal.close()
            self.early_rehearsal = None
        job_process = sys.modules.get("pytest_snowpipe.engines.job_process")
        if job_process is not None:
            job_process.stop_warm()  # a warm worker no remote stage used
        if self.session is not None:
            self.session.close()
        engines = sys.modules.get("pytest_snowpipe.doubles.sql.embedded")  # imported only if a stage needed it
        if engines is not None and self.engine_owner:
            engines.shutdown()  # an engine that was running before this run (an outer pytest's) stays
        if self.run_store is not None:
            import shutil

            shutil.rmtree(self.run_store, ignore_errors=True)


__all__ = ["PLUGIN_NAME", "RUN_INFO_INPUT", "SnowpipeRun", "run_state_of", "usage_errors"]
