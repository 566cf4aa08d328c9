"""Issue 26 item 4: `pytest --snowpipe-replay RUN` reruns a recorded graph run's failing stage or gate locally.

End to end on runs the emulator recorded (`--snowpipe-deploy --snowpipe-target local` keeps them under
`.snowpipe/runs`), each pytest a fresh process (a rehearsal starts sandbox interpreters and the engine).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import GATE  # the gate the suites of tests/ share: promote, or alert below the threshold

# raw is a Snowpark frame (a per-run table the finalizer drops), model and metrics inline JSON values
STAGES = '''
import pathlib
import pytest

@pytest.fixture(scope="session")
def raw(snowpipe_session):
    return snowpipe_session.create_dataframe([[1], [2], [3], [4]], schema=["X"])

@pytest.fixture(scope="session")
def model(raw, snowpipe_config):
    if snowpipe_config["explode"]:
        raise RuntimeError("training diverged")
    return {"weights": sum(r[0] for r in raw.collect())}

@pytest.fixture(scope="session")
def metrics(model):
    return {"score": model["weights"] / 10}
'''

INI = """
[pytest]
snowpipe_config =
    threshold = 0.5
    explode = false
"""


@pytest.fixture
def suite(pytester: pytest.Pytester):
    def write(ini: str = INI) -> pytest.Pytester:
        pytester.makeconftest(STAGES)
        pytester.makepyfile(test_gate=GATE)
        pytester.makefile(".ini", pytest=ini)
        return pytester

    return write


def kept(pytester: pytest.Pytester) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((pytester.path / ".snowpipe" / "runs").glob("*/*/run.json"))]


def test_a_failing_gate_replays_and_fails_the_same_way(suite):
    """The emulated run's gate took on_fail at threshold=5; the replay (ini says 0.5) fails the same way, from the
    run's config and its stored metrics: model and metrics are given, not computed; the registry is not touched."""
    pytester = suite()
    rehearsal = pytester.runpytest_subprocess("--snowpipe-deploy", "--snowpipe-target", "local", "--snowpipe-config", "threshold=5")
    assert rehearsal.ret == 1, rehearsal.stdout.str()
    (run,) = kept(pytester)
    assert run["state"] == "SUCCEEDED" and run["config"]["threshold"] == 5.0
    assert run["gates"] == [{"task": "TEST_GATE", "branch": "TEST_GATE_ALERT", "metrics": {"score": 1.0}, "state": "SUCCEEDED"}]
    assert run["outputs"]["model"] == run["outputs"]["metrics"] == "kept"
    assert run["outputs"]["raw"].startswith("cleaned by the finalizer")  # its table was dropped

    replay = pytester.runpytest_subprocess(f"--snowpipe-replay={run['run_id'][:18]}")  # a unique start of the id
    assert replay.ret == 1, replay.stdout.str()
    out = replay.stdout.str()
    replay.stdout.fnmatch_lines([
        "*AssertionError: score below threshold*", "*assert 1.0 >= 5.0*",
        "model * ok * cached*", "metrics * ok * cached*",
        f"replay of run {run['run_id']}: stage outputs given: model, metrics",
        "gate test_gate: FAIL*",
        "given from the run: model, metrics; the other stages and the gates ran here",
        "not given, cleaned by the finalizer: raw; set ini snowpipe_keep_outputs = true*",
        f"run {run['run_id']} ran on the emulator: nothing to retry in Snowflake;*EXECUTE TASK SNOWPIPE_PIPELINE RETRY LAST",
    ])
    assert "raw * ok" not in out  # upstream of a given stage: not set up at all
    assert not (pytester.path / ".snowpipe" / "registry").exists()


def test_a_failing_stage_reruns_locally_from_the_kept_table(suite, capsys, monkeypatch):
    """With snowpipe_keep_outputs the finalizer leaves raw's table: the replay gives raw (read back as a Snowpark
    frame) and reruns model, which fails as it failed in the graph; `snowpipe runs` lists the failed run."""
    from pytest_snowpipe.reports.cli import main

    pytester = suite(INI + "snowpipe_keep_outputs = true\n")
    rehearsal = pytester.runpytest_subprocess("--snowpipe-deploy", "--snowpipe-target", "local", "--snowpipe-config", "explode=true")
    assert rehearsal.ret == 1
    rehearsal.stdout.fnmatch_lines(["*task SNOWPIPE_FINALIZER: SUCCEEDED*kept the run's outputs (snowpipe_keep_outputs)",
                                    "task graph SNOWPIPE_PIPELINE: FAILED*first error: MODEL*"])
    (run,) = kept(pytester)
    assert run["outputs"]["raw"] == "kept" and run["outputs"]["model"].startswith("none: its task MODEL FAILED")

    replay = pytester.runpytest_subprocess("--snowpipe-replay", "last")
    assert replay.ret == 1
    replay.stdout.fnmatch_lines(["*RuntimeError: training diverged*", "raw * ok * cached*",
                                 f"replayed run {run['run_id']} of SNOWPIPE_PIPELINE (emulator, FAILED, first error: MODEL)"])
    assert "not given, cleaned" not in replay.stdout.str()

    monkeypatch.chdir(pytester.path)
    monkeypatch.delenv("SNOWFLAKE_CONNECTION_NAME", raising=False)
    assert main(["runs"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(run["run_id"]))
    assert "FAILED  MODEL" in " ".join(row.split()).replace("FAILED MODEL", "FAILED  MODEL")
    assert "TEST_GATE -> NOT_EXECUTED" in row


def test_snowpipe_runs_lists_the_kept_runs(suite, capsys, monkeypatch):
    """The rows: run id, scheduled time, state, first error task, each gate's branch and metrics, duration."""
    from pytest_snowpipe.reports.cli import main

    pytester = suite()
    assert pytester.runpytest_subprocess("--snowpipe-deploy", "--snowpipe-target", "local").ret == 0
    (run,) = kept(pytester)
    monkeypatch.chdir(pytester.path)
    monkeypatch.delenv("SNOWFLAKE_CONNECTION_NAME", raising=False)
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    assert "run id" in out and "first error" in out and "gates: branch (metrics)" in out
    row = next(line for line in out.splitlines() if line.startswith(run["run_id"]))
    assert "SUCCEEDED" in row and "TEST_GATE -> TEST_GATE_PROMOTE (score=1.0000)" in row and row.rstrip().endswith("emulator")
    assert main(["runs", run["run_id"]]) == 0
    detail = capsys.readouterr().out
    assert "TEST_GATE_PROMOTE" in detail and "config: threshold=0.5000, explode=False" in detail
    assert main(["runs", "emulator-0000"]) == 2
    err = capsys.readouterr().err
    assert "run 'emulator-0000' is not in the emulated runs" in err and "older than the history keeps" in err
    assert run["run_id"] in err  # the latest runs are named


def test_replay_of_an_unknown_run_is_a_usage_error(suite):
    pytester = suite()
    result = pytester.runpytest("--snowpipe-replay", "emulator-does-not-exist")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--snowpipe-replay: run 'emulator-does-not-exist' is not in the kept runs" in err
    assert "older than the history keeps (the last 20 emulated runs" in err and "pass --snowpipe-connection" in err


@pytest.mark.parametrize(("args", "message"), [
    (["--snowpipe-replay="], "--snowpipe-replay needs a run id"),
    (["--snowpipe-replay=last", "--snowpipe-deploy", "--snowpipe-dry-run"], "drop --snowpipe-deploy"),
])
def test_replay_option_misuse(suite, args, message):
    result = suite().runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_the_history_keeps_the_newest_runs_exactly(tmp_path: Path):
    """At the limit nothing goes; one over, the oldest goes."""
    import os

    from pytest_snowpipe.reports.run_history import HISTORY_KEEP, prune

    dag = tmp_path / "SNOWPIPE_PIPELINE"
    for i in range(HISTORY_KEEP):
        (dag / f"run{i:02d}").mkdir(parents=True)
        (dag / f"run{i:02d}" / "run.json").write_text("{}")
        os.utime(dag / f"run{i:02d}" / "run.json", (1000 + i, 1000 + i))
    prune(dag)
    assert len(list(dag.iterdir())) == HISTORY_KEEP
    (dag / "newest").mkdir()
    (dag / "newest" / "run.json").write_text("{}")
    prune(dag)
    names = {p.name for p in dag.iterdir()}
    assert len(names) == HISTORY_KEEP and "run00" not in names and "newest" in names and "run01" in names
