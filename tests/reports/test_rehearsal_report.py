"""A failing rehearsal agrees with itself: one verdict line, exit 1, no Exit banner, and a report
whose gates show the verdict and branch they took on the emulator, and whose stages show their task."""
from __future__ import annotations

import json

INI = "[pytest]\nsnowpipe_config =\n    threshold = 5.0\n"  # the gate fails: score is 1.0


def test_failing_rehearsal_ends_with_one_verdict_and_exit_1(pipeline_suite):
    pytester = pipeline_suite(ini=INI)
    result = pytester.runpytest(
        "--snowpipe-deploy", "--snowpipe-target", "local", "-p", "no:cacheprovider", "--snowpipe-report=rep"
    )
    assert result.ret == 1
    out = result.stdout.str()
    assert "Exit" not in out and "!!!" not in out  # no pytest.exit banner, which read like a crash
    verdicts = [line for line in result.outlines if line.startswith("quality gate ")]
    assert verdicts == ["quality gate test_gate FAILED: its branch took on_fail (TEST_GATE_ALERT); exit 1"]
    report = json.loads((pytester.path / "rep" / "report.json").read_text())
    assert report["verdict"] == "FAIL" and report["exit_status"] == 1
    (gate,) = report["gates"]
    assert gate["verdict"] == "FAIL"
    assert gate["branch"] == "TEST_GATE_ALERT"
    assert gate["action"]["name"] == "alert" and gate["action"]["detail"].startswith("task TEST_GATE_ALERT SUCCEEDED")
    stages = {s["name"]: s for s in report["stages"]}
    assert set(stages) == {"raw", "model", "metrics"}
    for stage in stages.values():
        assert stage["status"] == "ok" and stage["source"] == "task SUCCEEDED", stage
        assert stage["wall_s"] is not None and stage["wall_s"] >= 0
    markdown = (pytester.path / "rep" / "report.md").read_text()
    assert "NOT RUN" not in markdown and "| not run |" not in markdown
    assert "| `test_gate` | ❌ FAIL | alert: task TEST_GATE_ALERT SUCCEEDED" in markdown


def test_passing_rehearsal_exits_0_with_the_gate_passed(pipeline_suite):
    pytester = pipeline_suite()
    result = pytester.runpytest(
        "--snowpipe-deploy", "--snowpipe-target", "local", "-p", "no:cacheprovider", "--snowpipe-report=rep"
    )
    assert result.ret == 0
    (gate,) = json.loads((pytester.path / "rep" / "report.json").read_text())["gates"]
    assert (gate["verdict"], gate["branch"], gate["action"]["name"]) == ("PASS", "TEST_GATE_PROMOTE", "promote")
