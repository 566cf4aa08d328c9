"""Every hookspec of ``pytest_snowpipe.hookspecs`` is implemented by ``snowpipe_hook_plugin``
and changes the outcome it should, in a real pytest session."""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import snowpipe_hook_plugin

from pytest_snowpipe import hookspecs

HERE = Path(__file__).parent


@pytest.fixture
def hooked(pipeline_suite, pytester, monkeypatch, tmp_path):
    """The tiny pipeline with the hook plugin loaded; returns (run, events)."""
    log = tmp_path / "hook-events.jsonl"
    monkeypatch.setenv("HOOKTEST_LOG", str(log))
    monkeypatch.setenv("PYTHONPATH", str(HERE), prepend=":")  # the subprocess imports the plugin
    pipeline_suite()

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess("-p", "snowpipe_hook_plugin", *args)

    def events(name: str) -> list[dict]:
        if not log.exists():
            return []
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        return [r for r in rows if r["event"] == name]

    return run, events


def test_the_test_plugin_implements_every_hookspec():
    specs = {n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("pytest_snowpipe_")}
    implemented = {n for n in dir(snowpipe_hook_plugin) if n.startswith("pytest_snowpipe_")}
    assert specs and specs == implemented


def test_graph_built_sees_the_graph_and_a_veto_stops_the_run(hooked, monkeypatch):
    run, events = hooked
    result = run()
    result.assert_outcomes(passed=1)
    assert events("graph_built") == [
        {"event": "graph_built", "stages": ["raw", "model", "metrics"], "gates": ["test_gate"]}
    ]
    monkeypatch.setenv("HOOKTEST_VETO", "no promotions during the freeze")
    vetoed = run()
    assert vetoed.ret == pytest.ExitCode.USAGE_ERROR
    vetoed.stderr.fnmatch_lines(["*vetoed by a plugin*", "*no promotions during the freeze*"])
    assert "PASSED" not in vetoed.stdout.str()


def test_compile_task_adjusts_every_task(hooked, monkeypatch):
    run, events = hooked
    monkeypatch.setenv("HOOKTEST_MODEL_WAREHOUSE", "GPU_WH")
    result = run("--snowpipe-deploy", "--snowpipe-dry-run")
    assert result.ret == 0, result.stdout.str()
    seen = {e["task"]: (e["kind"], e["node"]) for e in events("compile_task")}
    assert seen["MODEL"] == ("stage", "model")
    assert seen["TEST_GATE"] == ("branch", "test_gate")
    assert seen["SNOWPIPE_FINALIZER"] == ("finalizer", None)
    assert {k for k, _ in seen.values()} == {"stage", "branch", "action", "finalizer"}
    out = result.stdout.str()
    model_block = out.split("MODEL", 1)[1].split("METRICS", 1)[0]
    assert "on warehouse GPU_WH" in model_block
    assert out.count("on warehouse GPU_WH") == 1  # only the model task


def test_artifact_location_moves_outputs(hooked, monkeypatch):
    run, _ = hooked
    monkeypatch.setenv("HOOKTEST_GRAPH_STAGE", "@HOOK_STAGE")
    monkeypatch.setenv("HOOKTEST_MODEL_STAGE", "@ML.MODELS/out")
    plan = run("--snowpipe-deploy", "--snowpipe-dry-run")
    assert plan.ret == 0, plan.stdout.str()
    plan.stdout.fnmatch_lines(["*stage:*@HOOK_STAGE*", "*outputs to @ML.MODELS/out*"])
    assert plan.stdout.str().count("outputs to") == 1
    local = run("--snowpipe-deploy", "--snowpipe-target", "local")
    assert local.ret == 0, local.stdout.str()
    local.stdout.fnmatch_lines(["*MODEL*SUCCEEDED*"])


def test_artifact_location_that_is_not_a_stage_path_is_a_clear_error(hooked, monkeypatch):
    run, _ = hooked
    monkeypatch.setenv("HOOKTEST_MODEL_STAGE", "s3://bucket/x")
    result = run("--snowpipe-deploy", "--snowpipe-dry-run")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*stage 'model'*'s3://bucket/x' is not a stage path*"])


def test_alert_hook_delivers_instead_of_the_default(hooked, monkeypatch):
    run, events = hooked
    monkeypatch.setenv("HOOKTEST_PAGER", "1")
    result = run("--snowpipe-config", "threshold=2")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*gate test_gate: FAIL*-> alert: paged on-call: test_gate FAIL*"])
    (alert,) = events("alert")
    assert alert["verdict"] == "FAIL" and "score below threshold" in alert["text"]


def test_promote_hooks_run_around_the_promote(hooked, pytester):
    run, events = hooked
    run().assert_outcomes(passed=1)
    assert events("promote_before") == [{"event": "promote_before", "model": "model"}]
    assert events("promote_after") == [
        {"event": "promote_after", "model": "model", "version": "v0001"}
    ]


def test_promote_before_that_raises_leaves_the_registry_untouched(hooked, monkeypatch, pytester):
    run, events = hooked
    monkeypatch.setenv("HOOKTEST_FREEZE", "1")
    result = run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*model freeze: model may not change today*"])
    assert events("promote_after") == []
    from pytest_snowpipe.registry.local import LocalRegistry

    registry = LocalRegistry(pytester.path / ".snowpipe" / "registry")
    assert registry.versions("model") == [] and registry.default("model") is None
