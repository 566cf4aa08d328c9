"""sp.expect: a contract on a stage is a blocking check, locally and in the compiled graph."""
from __future__ import annotations

CHECKED = '''
import pytest
import pytest_snowpipe as sp
import pandas as pd

raw_contract = sp.Contract(A=sp.column(int, ge=0), B=sp.column(str, isin=["x", "y"]))

@pytest.fixture(scope="session")
@sp.expect(raw_contract)
def raw(snowpipe_config):
    return pd.DataFrame({"A": [1, snowpipe_config["low"], 3], "B": ["x", "y", "x"]})

@pytest.fixture(scope="session")
def model(raw):
    return {"weights": int(raw["A"].sum())}

@pytest.fixture(scope="session")
def metrics(model):
    return {"score": 1.0}
'''

INI = "[pytest]\nsnowpipe_config =\n    threshold = 0.5\n    low = 2\n"


def test_valid_output_passes_the_check(pipeline_suite):
    result = pipeline_suite(conftest=CHECKED, ini=INI).runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["check raw output: PASS (3 rows)*"])


def test_violation_blocks_consumers(pipeline_suite):
    pytester = pipeline_suite(conftest=CHECKED, ini=INI)
    result = pytester.runpytest("--snowpipe-config", "low=-5")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*stage 'raw' output violates its contract; its consumers do not run*",
            "model *not run*",
            "check raw contract: FAIL: A.ge (1 rows)",
            "gate test_gate: ERROR * -> no action (stage raw failed: contract violated)",
        ]
    )
    assert not (pytester.path / ".snowpipe").exists()


def test_violation_fails_the_compiled_stage_task(pipeline_suite):
    result = pipeline_suite(conftest=CHECKED, ini=INI).runpytest(
        "--snowpipe-deploy", "--snowpipe-target", "local", "--snowpipe-config", "low=-5"
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*FAILED*first error: RAW*", "RAW *FAILED*ContractViolation*", "MODEL *NOT_EXECUTED*"])
