"""The emulator's run table with -v, and --snowpipe-report, carry whole return values (issue 13, item 7)."""
from __future__ import annotations

import json
import textwrap

import pytest

CONFTEST = '''
import pytest

@pytest.fixture(scope="session")
def long_stage():
    return {"text": "x" * 60 + "|END"}
'''

GATE = '''
import pytest

@pytest.mark.snowpipe_gate()
def test_gate(long_stage):
    assert long_stage
'''


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(textwrap.dedent(CONFTEST))
    pytester.makepyfile(test_gate=textwrap.dedent(GATE))
    return pytester


def test_the_table_cuts_values_without_v_and_keeps_them_whole_with_v(suite: pytest.Pytester):
    short = suite.runpytest_subprocess("--snowpipe-deploy", "--snowpipe-target", "local")
    assert short.ret == 0
    assert "|END" not in short.stdout.str() and "..." in short.stdout.str()
    whole = suite.runpytest_subprocess("--snowpipe-deploy", "--snowpipe-target", "local", "-v")
    assert whole.ret == 0
    line = next(x for x in whole.stdout.lines if x.startswith("LONG_STAGE "))
    assert json.loads(line.split(None, 3)[3])["value"]["text"].endswith("|END")


def test_the_report_carries_the_whole_values(suite: pytest.Pytester):
    result = suite.runpytest_subprocess("--snowpipe-deploy", "--snowpipe-target", "local", "--snowpipe-report=out")
    assert result.ret == 0
    report = json.loads((suite.path / "out" / "report.json").read_text())
    (run,) = report["task_graph_runs"]
    assert run["state"] == "SUCCEEDED"
    task = next(t for t in run["tasks"] if t["name"] == "LONG_STAGE")
    assert json.loads(task["return_value"])["value"]["text"] == "x" * 60 + "|END"
    markdown = (suite.path / "out" / "report.md").read_text()
    assert "## Task Graph run SNOWPIPE_PIPELINE: SUCCEEDED" in markdown and "x" * 60 + "\\|END" in markdown


def test_format_width_none_keeps_everything():
    import datetime as dt

    from pytest_snowpipe.doubles.emulator import RunRecord, TaskRun

    rec = RunRecord("D", "SUCCEEDED", {"T": TaskRun("T", "SUCCEEDED", return_value="v" * 100, attempt=1)}, None, None,
                    {}, "rg", dt.datetime.now(dt.UTC), 0.1)
    assert "v" * 100 in rec.format(width=None)
    assert "v" * 100 not in rec.format()
