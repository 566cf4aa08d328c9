"""report.md draws the gate's metric over the last versions and the candidate; cached stages keep their cost."""
from __future__ import annotations

import json

from test_cli import GATE, INI, STAGES

from pytest_snowpipe.reports.history import gate_charts, xychart


def test_report_charts_the_gated_metric_and_keeps_the_compute_time_of_cached_stages(pipeline_suite):
    pytester = pipeline_suite(conftest=STAGES, gate=GATE, ini=INI)
    pytester.runpytest("--snowpipe-report=rep").assert_outcomes(passed=1)
    first = (pytester.path / "rep" / "report.md").read_text()
    assert "## Metrics over versions" not in first  # one point (the candidate) is no chart
    pytester.runpytest("--snowpipe-report=rep", "--snowpipe-config", "scale=20").assert_outcomes(passed=1)
    markdown = (pytester.path / "rep" / "report.md").read_text()
    assert (
        "## Metrics over versions\n\n```mermaid\nxychart-beta\n"
        '    title "model: score"\n    x-axis ["v0001", "candidate"]\n'
    ) in markdown
    assert "    line [1, 0.5]\n```" in markdown
    report = json.loads((pytester.path / "rep" / "report.json").read_text())
    (gate,) = report["gates"]
    assert [h["version"] for h in gate["history"]] == ["v0001"]  # not v0002: that is this run's candidate
    stages = {s["name"]: s for s in report["stages"]}
    assert stages["model"]["source"] == "cached" and stages["model"]["compute_s"] is not None
    assert stages["metrics"]["source"] == "computed" and stages["metrics"]["compute_s"] is None
    assert "(computed in " in markdown


def test_chart_scales_its_axis_around_the_values():
    assert xychart("m: f1", [("v0001", 0.8), ("candidate", 0.9)]).splitlines()[3] == '    y-axis "value" 0.79 --> 0.91'
    assert gate_charts({"name": "g", "metrics": {"rows": 10}, "history": [{"version": "v1", "metrics": {"rows": 5}}]}) == []
