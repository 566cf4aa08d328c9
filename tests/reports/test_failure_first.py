"""The failure first: a failing gate or contract shows its message at once, not the plugin's source."""
from __future__ import annotations

import pytest

from pytest_snowpipe.errors import hide_deliberate

GATE = '''
import pytest
import pytest_snowpipe as sp

@pytest.mark.snowpipe_gate(on_pass="promote", on_fail="alert")
def test_gate(metrics, snowpipe_config):
    sp.assert_metric(metrics, "score", ge=snowpipe_config["threshold"])
'''

CONTRACT = '''
import pytest
import pandas as pd
import pytest_snowpipe as sp

raw_contract = sp.Contract(A=sp.column(int, ge=0))

@pytest.fixture(scope="session")
@sp.expect(raw_contract)
def raw():
    return pd.DataFrame({"A": [1, -5, 3]})

@pytest.fixture(scope="session")
def model(raw):
    return {"weights": int(raw["A"].sum())}

@pytest.fixture(scope="session")
def metrics(model):
    return {"score": 1.0}
'''

PLUGIN_SOURCE = ("def assert_metric", "def check_output", "def check_stage", "def pytest_fixture_setup", "raise GateCheckFailed")


def _section(lines: list[str], title: str) -> list[str]:
    """The lines of pytest's FAILURES/ERRORS section, from its header on."""
    start = next(i for i, line in enumerate(lines) if f" {title} " in line and line.startswith("="))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("=") and "snowpipe" in lines[i])
    return lines[start:end]


def test_failing_gate_shows_the_message_right_under_the_users_line(pipeline_suite):
    result = pipeline_suite(gate=GATE, ini="[pytest]\nsnowpipe_config =\n    threshold = 1.5\n").runpytest()
    result.assert_outcomes(failed=1)
    section = _section(result.outlines, "FAILURES")
    text = "\n".join(section)
    assert not any(marker in text for marker in PLUGIN_SOURCE), text
    assert "pytest_snowpipe/" not in text, text  # no frame of the plugin's files
    message = next(i for i, line in enumerate(section) if "score = 1.0000 fails the absolute threshold >= 1.5" in line)
    assert section[message].startswith("E ")
    assert message <= 8, text  # header, its arguments, the gate's def and call (">" line), then E
    assert section[message - 1].lstrip().startswith('>       sp.assert_metric(metrics, "score"'), text
    result.stdout.fnmatch_lines(["FAILED test_gate.py::test_gate - score = 1.0000 fails the absolute*"])


def test_violated_contract_shows_its_table_first(pipeline_suite):
    result = pipeline_suite(conftest=CONTRACT).runpytest()
    result.assert_outcomes(errors=1)
    section = _section(result.outlines, "ERRORS")
    text = "\n".join(section)
    assert not any(marker in text for marker in PLUGIN_SOURCE), text
    assert "pytest_snowpipe/" not in text, text
    first_e = next(i for i, line in enumerate(section) if line.startswith("E "))
    assert first_e <= 3, text
    assert "stage 'raw' output violates its contract" in section[first_e]
    table = section[first_e + 1 : first_e + 4]
    assert table[1].split() == ["column", "rule", "failing_rows", "examples", "/", "detail"], text
    assert table[2].split()[:3] == ["A", "ge", "1"], text
    result.stdout.fnmatch_lines(["ERROR test_gate.py::test_gate - stage 'raw' output violates its contract*"])


def test_full_trace_still_shows_the_plugins_frames(pipeline_suite):
    result = pipeline_suite(gate=GATE, ini="[pytest]\nsnowpipe_config =\n    threshold = 1.5\n").runpytest("--full-trace")
    result.assert_outcomes(failed=1)
    assert "raise GateCheckFailed" in result.stdout.str()


def test_an_unexpected_error_keeps_its_frames():
    """A bug of the plugin (not an error it raises on purpose) is not hidden."""
    with pytest.raises(KeyError) as bug:
        raise KeyError("x")
    with pytest.raises(AssertionError) as user_assert:
        raise AssertionError("the user's own")
    assert hide_deliberate(bug) is False
    assert hide_deliberate(user_assert) is False
    from pytest_snowpipe.registry.champion import GateCheckFailed

    with pytest.raises(GateCheckFailed) as check:
        raise GateCheckFailed("x")
    assert hide_deliberate(check) is True
