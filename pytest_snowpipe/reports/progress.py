"""Live progress in pytest's terminal: each stage (and each rehearsal task) as it starts and ends.

A run used to be silent from ``collected 5 items`` to the summary, a minute on a real pipeline.
Each stage now gets a line when it starts and one when it ends (computed, cached or remote, its
time, what it returned); a remote stage's line is followed by where its time went (inputs to
pandas, pickle, worker start, the work, result load). On an interactive terminal the start line
stays in place and ticks the elapsed time once a stage runs longer than ``TICK_AFTER_S``, and the
end line replaces it. A rehearsal shows each task the same way.

Lines go through pytest's terminal reporter with capturing suspended, as pytest's live logging
does, so they never land in a test's captured output. ``-q`` keeps the end lines only, ``-qq``
none; ``-v`` keeps values whole. Under pytest-xdist the workers write nothing (their terminal is
not the user's); the controller's summary still shows every stage.
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

PREFIX = "[snowpipe] "
TICK_AFTER_S = 3.0  # a stage (or task) running longer than this gets a ticking elapsed time (tty only)
TICK_EVERY_S = 1.0
SHORT = 70  # characters of a value shown at default verbosity


def _cut(text: str, verbose: bool) -> str:
    text = " ".join(text.split())
    return text if verbose or len(text) <= SHORT else text[: SHORT - 3] + "..."


def _secs(value: float) -> str:
    return f"{value:.2f}s"


class Progress:
    """Writes the live lines of one pytest run (see the module docstring)."""

    def __init__(self, reporter: Any, capman: Any, verbosity: int, interactive: bool,
                 redact: Callable[[str], str] = str) -> None:
        self.reporter = reporter
        self.redact = redact  # errors and values may quote a secret (redact.py)
        self.capman = capman
        self.verbosity = verbosity
        self.interactive = interactive
        self._lock = threading.RLock()
        self._running: dict[str, tuple[str, float]] = {}  # key -> (label, perf_counter at start)
        self._status = ""  # the transient line shown at the bottom (interactive only)
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.wrote = False  # lines were written since pytest last wrote a result

    @classmethod
    def for_config(cls, config: Any, redact: Callable[[str], str] = str) -> Progress | None:
        """The run's progress writer; None under an xdist worker, without a terminal, or at ``-qq``."""
        if hasattr(config, "workerinput"):
            return None
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        verbosity = config.get_verbosity()
        if reporter is None or verbosity <= -2:
            return None
        isatty = getattr(reporter, "isatty", None)
        interactive = bool(isatty()) if callable(isatty) else bool(isatty)
        return cls(reporter, config.pluginmanager.get_plugin("capturemanager"), verbosity, interactive, redact)

    # -- stages ----------------------------------------------------------------------------
    def stage_started(self, name: str, how: str, remote: bool) -> None:
        """``how``: "computing" or "loading from the stage cache"."""
        label = f"{name} (remote)" if remote else name
        self._start(f"stage:{name}", label, f"{label}: {how} ...")

    def stage_ended(self, record: Any, remote: bool, phases: dict[str, float] | None = None) -> None:
        """``record``: the run's StageRecord of the stage (status, source, wall_s, kind, shape, error)."""
        key = f"stage:{record.name}"
        started = self._running.get(key, ("", time.perf_counter()))[1]
        label = f"{record.name} (remote)" if remote else record.name
        verbose = self.verbosity > 0
        if record.status == "error":
            text = f"{label}: error after {_secs(record.wall_s)}: {_cut(record.error, verbose)}"
        else:
            origin = getattr(record, "compute_s", None)
            was = f" (computed in {_secs(origin)} when stored)" if record.source == "cached" and origin else ""
            output = _cut(f"{record.kind} {record.shape}".strip(), verbose)
            text = f"{label}: {record.source} {_secs(record.wall_s)}{was} -> {output}"
        lines = [text]
        if phases and self.verbosity >= 0:
            lines.append("  " + breakdown(phases, started))
        self._end(key, lines)

    # -- rehearsal tasks -------------------------------------------------------------------
    def task_event(self, name: str, run: Any = None) -> None:
        """A rehearsal task started (``run`` None) or settled (its TaskRun)."""
        key = f"task:{name}"
        if run is None:
            self._start(key, f"task {name}", f"task {name}: running ...")
            return
        if run.state in ("SKIPPED", "NOT_EXECUTED"):
            text = f"task {name}: {run.state} ({_cut(run.reason or run.error or '', self.verbosity > 0)})"
        else:
            value = "" if run.return_value is None else f" -> {_cut(str(run.return_value), self.verbosity > 0)}"
            problem = f": {_cut(run.error, self.verbosity > 0)}" if run.error else ""
            text = f"task {name}: {run.state} {_secs(run.duration_s)}{value}{problem}"
        self._end(key, [text])

    @contextlib.contextmanager
    def rehearsal(self) -> Iterator[None]:
        """Around a rehearsal: the emulator tells each task's start and end (doubles/emulator.py)."""
        from pytest_snowpipe.doubles.emulator import task_events

        token = task_events.set(self.task_event)
        try:
            yield
        finally:
            task_events.reset(token)
            self.close()

    # -- the terminal ----------------------------------------------------------------------
    def _start(self, key: str, label: str, text: str) -> None:
        with self._lock:
            self._running[key] = (label, time.perf_counter())
            if self.verbosity < 0:
                return
            if self.interactive and len(self._running) == 1:
                self._show_status(PREFIX + text)
            elif not self.interactive:
                self._write([text])
            self._ensure_ticker()

    def _end(self, key: str, lines: list[str]) -> None:
        with self._lock:
            self._running.pop(key, None)
            self._write(lines if self.verbosity >= 0 else lines[:1])
            if not self._running:
                self._stop_ticker()

    def _write(self, lines: list[str]) -> None:
        """Permanent lines; on a terminal they replace the transient status, which is redrawn below."""
        with self._uncaptured():
            status, self._status = self._status, ""
            self.wrote = True
            for i, line in enumerate(self.redact(text) for text in lines):
                if i == 0 and status:
                    self.reporter.rewrite(PREFIX + line, erase=True)
                    self.reporter.line("")
                else:
                    self.reporter.write_line(PREFIX + line)
            if self._running and self.interactive:
                self._show_status(self._status_text(), uncaptured=True)

    def _show_status(self, text: str, uncaptured: bool = False) -> None:
        with contextlib.nullcontext() if uncaptured else self._uncaptured():
            if self._status:
                self.reporter.rewrite(text, erase=True)
            else:
                self.reporter.ensure_newline()  # after pytest's "file.py " (it prints the file again)
                self.reporter.write(text)
            self._status = text

    def _status_text(self, now: float | None = None) -> str:
        now = time.perf_counter() if now is None else now
        parts = [f"{label} {now - t0:.0f}s" for label, t0 in self._running.values()]
        return PREFIX + "running " + ", ".join(parts)

    def _uncaptured(self) -> contextlib.AbstractContextManager[None]:
        if self.capman is None:
            return contextlib.nullcontext()
        return self.capman.global_and_fixture_disabled()  # type: ignore[no-any-return]

    def _ensure_ticker(self) -> None:
        if not self.interactive or (self._ticker is not None and self._ticker.is_alive()):
            return
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, args=(self._stop,), name="snowpipe-progress", daemon=True)
        self._ticker.start()

    def _tick(self, stop: threading.Event) -> None:
        while not stop.wait(TICK_EVERY_S):
            with self._lock:
                if stop.is_set() or not self._running:
                    return
                self.tick()

    def tick(self, now: float | None = None) -> None:
        """Redraw the status line with the elapsed times, once something has run ``TICK_AFTER_S``."""
        with self._lock:
            now = time.perf_counter() if now is None else now
            if self.interactive and self._running and now - min(t0 for _, t0 in self._running.values()) >= TICK_AFTER_S:
                self._show_status(self._status_text(now))

    def _stop_ticker(self) -> None:
        self._stop.set()
        ticker, self._ticker = self._ticker, None
        if ticker is not None and ticker is not threading.current_thread():
            self._lock.release()  # the ticker may be waiting for the lock
            try:
                ticker.join()
            finally:
                self._lock.acquire()

    def close(self) -> None:
        """End the ticker; clear a status line left behind (a run stopped mid-stage)."""
        with self._lock:
            self._running.clear()
            self._stop_ticker()
            if self._status:
                with self._uncaptured():
                    self.reporter.rewrite("", erase=True)
                    self.reporter.write("\r")
                self._status = ""


def breakdown(phases: dict[str, float], stage_started: float) -> str:
    """One line: where a remote stage's time went (engines/job_process.py measures the trip)."""
    parts = [f"inputs to pandas {_secs(max(0.0, phases.get('entered', stage_started) - stage_started))}"]
    parts.append(f"pickle {_secs(phases.get('pickle', 0.0))}")
    if "trip" in phases:
        parts.append(f"worker trip {_secs(phases['trip'])}")
    else:
        warm = " (warm)" if phases.get("warm") else ""
        parts.append(f"worker start {_secs(phases.get('worker start', 0.0))}{warm}")
        parts.append(f"work {_secs(phases.get('work', 0.0))}")
        parts.append(f"result pickle {_secs(phases.get('result pickle', 0.0))}")
        parts.append(f"worker exit {_secs(phases.get('worker exit', 0.0))}")
    parts.append(f"result load {_secs(phases.get('result load', 0.0))}")
    return "remote: " + ", ".join(parts)


class ProgressHooks:
    """The hooks that feed :class:`Progress` (registered by the plugin at configure, after its own
    hooks, so its fixture wrapper is the outer one: a stage's end line comes after its checks and
    its store). ``run_of`` / ``memo_of`` return the run's PipelineRun and stage cache, or None."""

    def __init__(self, config: Any, run_of: Any, memo_of: Any, redact_of: Any) -> None:
        self.config = config
        self.run_of = run_of
        self.memo_of = memo_of
        self.redact_of = redact_of  # () -> the run's redaction of a text
        self._progress: Progress | None = None
        self._made = False

    def progress(self) -> Progress | None:
        if not self._made:  # the terminal reporter is registered after the plugin's configure
            self._made = True
            self._progress = Progress.for_config(self.config, self.redact_of())
        return self._progress

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Generator[None, object, object]:
        __tracebackhide__ = True  # a stage's failure shows the stage, not this wrapper
        run = self.run_of()
        progress = self.progress() if run is not None and fixturedef.argname in run.graph else None
        if progress is None:
            return (yield)
        name = fixturedef.argname
        remote = run.graph.stage(name).remote is not None
        memo = self.memo_of()
        cached = memo is not None and name in memo.hits
        progress.stage_started(name, "loading from the stage cache" if cached else "computing", remote and not cached)
        try:
            value = yield
        except BaseException:
            self._ended(progress, run, name, remote)
            raise
        self._ended(progress, run, name, remote)
        return value

    @staticmethod
    def _ended(progress: Progress, run: Any, name: str, remote: bool) -> None:
        record = run.stages[name]
        phases = None
        if remote and record.source != "cached":
            from pytest_snowpipe.engines.job_process import trip_phases

            phases = trip_phases(name)
        progress.stage_ended(record, remote and record.source != "cached", phases)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: Any) -> Generator[None, object, object]:
        progress = self.progress() if getattr(self.config.option, "snowpipe_deploy", False) else None
        if progress is None:
            return (yield)
        with progress.rehearsal():
            return (yield)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: Any) -> None:
        """After stage lines, pytest's next result letter goes behind its file's name again."""
        progress = self._progress
        if progress is not None and progress.wrote and progress.verbosity <= 0:
            progress.wrote = False
            progress.reporter.write_fspath_result(report.nodeid, "")

    def pytest_unconfigure(self) -> None:
        if self._progress is not None:
            self._progress.close()
