"""Live progress: each stage (and each rehearsal task) as it starts and ends, in pytest's terminal."""
from __future__ import annotations

import io
import re

import pytest
from _pytest.terminal import TerminalReporter

from pytest_snowpipe.reports import progress as progress_module
from pytest_snowpipe.reports.progress import Progress, breakdown

STAGES = '''
import pytest
import pytest_snowpipe as sp

@pytest.fixture(scope="session")
def raw():
    print("raw prints this")  # captured output of the stage: no progress line may land beside it
    return list(range(50))

@pytest.fixture(scope="session")
@sp.remote(compute_pool="POOL", stage_name="JOB_STAGE")
def model(raw):
    return {"weights": sum(raw)}

@pytest.fixture(scope="session")
def metrics(model, snowpipe_config):
    return {"score": model["weights"] / 10, "label": "a long value " * 10}
'''

GATE = '''
import pytest

@pytest.mark.snowpipe_gate(on_pass="promote", on_fail="alert")
def test_gate(metrics, snowpipe_config):
    print("the gate prints this")
    assert metrics["score"] >= snowpipe_config["threshold"], "score below threshold"
'''

INI = "[pytest]\nsnowpipe_config =\n    threshold = 1000.0\n"
PHASES = ("inputs to pandas", "pickle", "worker start", "work", "result pickle", "worker exit", "result load")


def _progress_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("[snowpipe] ")]


def test_each_stage_starts_and_ends_with_a_line_and_the_remote_breakdown(pipeline_suite):
    result = pipeline_suite(conftest=STAGES, gate=GATE, ini=INI).runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    lines = _progress_lines(result.stdout.str())
    assert lines[:2] == ["[snowpipe] raw: computing ...", lines[1]]
    assert re.fullmatch(r"\[snowpipe\] raw: computed \d+\.\d\ds -> list len 50", lines[1])
    assert lines[2] == "[snowpipe] model (remote): computing ..."
    assert re.fullmatch(r"\[snowpipe\] model \(remote\): computed \d+\.\d\ds -> dict weights=1225", lines[3])
    assert lines[4].startswith("[snowpipe]   remote: ")
    for phase in PHASES:
        assert re.search(rf"{phase} \d+\.\d\ds", lines[4]), (phase, lines[4])
    assert lines[5] == "[snowpipe] metrics: computing ..."
    assert lines[6].startswith("[snowpipe] metrics: computed ") and lines[6].endswith("...")  # long value cut
    assert len(lines) == 7
    # pytest's result letter still follows its file's name; nothing went into captured output
    result.stdout.fnmatch_lines(["[[]snowpipe] metrics: computed *", "", "test_gate.py F*"])
    captured = result.stdout.str().split("Captured stdout")[1:]
    assert captured and all("[snowpipe]" not in part.split("=====")[0] for part in captured)
    assert "raw prints this" in result.stdout.str()


def test_quiet_keeps_the_end_lines_and_very_quiet_none(pipeline_suite):
    pytester = pipeline_suite(conftest=STAGES, gate=GATE, ini=INI)
    quiet = _progress_lines(pytester.runpytest("-q", "-p", "no:cacheprovider").stdout.str())
    assert [line.split(":")[0] for line in quiet] == ["[snowpipe] raw", "[snowpipe] model (remote)", "[snowpipe] metrics"]
    assert not any("computing ..." in line or "remote: " in line for line in quiet)
    assert _progress_lines(pytester.runpytest("-qq", "-p", "no:cacheprovider").stdout.str()) == []


def test_verbose_keeps_values_whole(pipeline_suite):
    result = pipeline_suite(conftest=STAGES, gate=GATE, ini=INI).runpytest("-v", "-p", "no:cacheprovider")
    metrics = next(line for line in _progress_lines(result.stdout.str()) if line.startswith("[snowpipe] metrics: computed"))
    assert metrics.endswith("a long value a long value")  # the whole value (spaces folded)
    result.stdout.fnmatch_lines(["test_gate.py::test_gate FAILED*"])  # pytest's location line again after ours


def test_a_cached_stage_says_so_with_its_original_time(pipeline_suite):
    pytester = pipeline_suite(conftest=STAGES, gate=GATE, ini=INI)
    pytester.runpytest()
    lines = _progress_lines(pytester.runpytest().stdout.str())
    assert lines[0] == "[snowpipe] metrics: loading from the stage cache ..."
    assert re.fullmatch(r"\[snowpipe\] metrics: cached \d+\.\d\ds \(computed in \d+\.\d\ds when stored\) -> .*", lines[1])
    assert len(lines) == 2  # the stages upstream of a cached one are not set up at all


def test_xdist_workers_write_no_progress(pipeline_suite):
    result = pipeline_suite(conftest=STAGES, gate=GATE, ini=INI).runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    assert _progress_lines(result.stdout.str()) == []
    assert "[snowpipe]" not in result.stderr.str()
    result.stdout.fnmatch_lines(["*snowpipe pipeline*"])  # the controller's summary is still there


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def tty(pytestconfig):
    """A real TerminalReporter writing to an interactive-looking buffer."""
    out = _Tty()
    return Progress(TerminalReporter(pytestconfig, out), None, 0, True), out


class _Record:
    def __init__(self, name, **fields):
        self.name, self.status, self.source, self.wall_s = name, "ok", "computed", 1.5
        self.kind, self.shape, self.error = "dict", "a=1", ""
        self.__dict__.update(fields)


def test_on_a_terminal_the_start_line_ticks_in_place_and_the_end_line_replaces_it(tty, monkeypatch):
    progress, out = tty
    progress.stage_started("model", "computing", remote=True)
    started = progress._running["stage:model"][1]
    try:
        assert out.getvalue().endswith("[snowpipe] model (remote): computing ...")
        progress.tick(now=started + progress_module.TICK_AFTER_S - 0.01)  # under the limit: nothing
        assert "running" not in out.getvalue()
        progress.tick(now=started + 12.2)
        assert out.getvalue().rstrip(" ").endswith("...\r[snowpipe] running model (remote) 12s")  # in place
        progress.stage_ended(_Record("model"), remote=True, phases={"entered": started + 0.5, "pickle": 0.25, "warm": 1.0})
    finally:
        progress.close()
    text = out.getvalue()
    assert "\r[snowpipe] model (remote): computed 1.50s -> dict a=1" in text
    assert text.endswith("[snowpipe]   remote: inputs to pandas 0.50s, pickle 0.25s, worker start 0.00s (warm), work 0.00s, "
                         "result pickle 0.00s, worker exit 0.00s, result load 0.00s\n")
    assert progress._ticker is None


def test_not_a_terminal_no_ticking(pytestconfig):
    out = io.StringIO()
    progress = Progress(TerminalReporter(pytestconfig, out), None, 0, False)
    progress.stage_started("raw", "computing", remote=False)
    progress.tick(now=progress._running["stage:raw"][1] + 60)
    progress.stage_ended(_Record("raw", status="error", error="ValueError: bad"), remote=False)
    assert out.getvalue() == "[snowpipe] raw: computing ...\n[snowpipe] raw: error after 1.50s: ValueError: bad\n"
    assert progress._ticker is None


def test_breakdown_without_the_workers_timing_gives_the_whole_trip():
    line = breakdown({"entered": 10.0, "pickle": 0.1, "trip": 3.0, "result load": 0.2}, stage_started=9.0)
    assert line == "remote: inputs to pandas 1.00s, pickle 0.10s, worker trip 3.00s, result load 0.20s"


def test_a_rehearsal_shows_each_task_as_it_starts_and_settles(pipeline_suite):
    result = pipeline_suite().runpytest("--snowpipe-deploy", "--snowpipe-target", "local", "-p", "no:cacheprovider")
    lines = _progress_lines(result.stdout.str())
    for task in ("RAW", "MODEL", "METRICS", "TEST_GATE", "TEST_GATE_PROMOTE"):
        start = lines.index(f"[snowpipe] task {task}: running ...")
        end = next(i for i, line in enumerate(lines) if line.startswith(f"[snowpipe] task {task}: SUCCEEDED "))
        assert start < end, lines
    assert "[snowpipe] task TEST_GATE: running ..." in lines
    gate = next(line for line in lines if line.startswith("[snowpipe] task TEST_GATE: SUCCEEDED"))
    assert gate.endswith("-> TEST_GATE_PROMOTE")  # the branch it took
    assert any(line.startswith("[snowpipe] task TEST_GATE_ALERT: SKIPPED (condition false") for line in lines)
