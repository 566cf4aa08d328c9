"""The dry-run plan says what does not ship (and why) and where each contract runs."""
from __future__ import annotations

CONFTEST = '''
import pandas as pd
import pytest
import pytest_snowpipe as sp

raw_contract = sp.Contract(A=sp.column(int, ge=0), B=sp.column(str))

@pytest.fixture(scope="session")
@sp.expect(raw_contract)
def raw():
    return pd.DataFrame({"A": [1, 2], "B": ["x", "y"]})

@pytest.fixture(scope="session")
def model(raw):
    return {"weights": int(raw["A"].sum())}

@pytest.fixture(scope="session")
def metrics(model):
    return {"score": 1.0}
'''

TESTS = '''
import pytest
from hypothesis import given, strategies as st

@pytest.mark.snowpipe_gate(on_pass="promote", on_fail="alert")
def test_gate(metrics):
    assert metrics["score"] >= 0.5

def test_ordinary(raw):
    assert len(raw) == 2

@given(st.integers())
def test_property(x):
    assert x == x
'''


def test_plan_lists_what_does_not_ship_and_where_contracts_run(pipeline_suite):
    pytester = pipeline_suite(conftest=CONFTEST, gate=TESTS)
    result = pytester.runpytest("--snowpipe-deploy", "--snowpipe-dry-run")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "dry run: nothing was deployed or run (packages checked against the bundled snapshot*",
            "not shipped: 2 test(s) run in pytest only (only gates become tasks):",
            "  test_gate.py::test_ordinary * an ordinary test (no snowpipe_gate mark)*",
            "  test_gate.py::test_property * a property test (hypothesis)*",
            "contracts (sp.expect) run inside their stage's task, after the stage returns;*",
            "  raw output * a contract on 2 column(s), in task RAW",
        ]
    )
    assert "test_gate.py::test_gate " not in result.stdout.str()  # the gate ships: it is a task
