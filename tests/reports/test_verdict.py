"""``reports/ci.py`` ``verdict_of``: which verdict wins when several things went wrong (issue 27)."""
from __future__ import annotations

from pytest_snowpipe.reports.ci import verdict_of
from pytest_snowpipe.reports.evidence import CiState


def test_a_failing_gate_and_an_erroring_stage_is_fail_naming_the_gate():
    part = {
        "gates": [{"name": "test_quality", "verdict": "FAIL", "message": "accuracy 0.5 < 0.8", "failure": ""}],
        "stages": [
            {"name": "metrics", "status": "ok", "error": None},
            {"name": "other_model", "status": "error", "error": "ValueError: boom"},
        ],
    }
    assert verdict_of(1, part, CiState()) == ("FAIL", "gate test_quality failed: accuracy 0.5 < 0.8")
    part["gates"][0]["verdict"] = "PASS"  # the same stage error without a failing gate is an ERROR
    assert verdict_of(1, part, CiState()) == ("ERROR", "stage other_model errored: ValueError: boom")
