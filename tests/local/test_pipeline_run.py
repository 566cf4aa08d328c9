"""A pipeline suite runs end to end: stages, gate verdicts, actions, summary, exit codes."""
from __future__ import annotations

import json

import pytest

from pytest_snowpipe.registry.local import LocalRegistry


def test_gate_pass_promotes_and_summary_lists_everything(pipeline_suite):
    pytester = pipeline_suite()
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*snowpipe pipeline*",
            "raw *ok*list*len 4",
            "model *ok*dict*weights=10",
            "metrics *ok*score=1",
            "gate test_gate: PASS (on_pass=promote, on_fail=alert) -> promote: model v0001 is now the default*",
        ]
    )
    current = LocalRegistry(pytester.path / ".snowpipe" / "registry").default("model")
    assert current is not None and current.version == "v0001"
    assert current.metrics == {"score": 1.0}
    assert current.config == {"threshold": 0.5, "label": "demo"}
    assert set(current.fingerprints["code"]) == {"raw", "model", "metrics"}
    assert current.load() == {"weights": 10}


def test_gate_fail_alerts_and_leaves_registry_alone(pipeline_suite):
    pytester = pipeline_suite()
    result = pytester.runpytest("--snowpipe-config", "threshold=2.5")
    result.assert_outcomes(failed=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["gate test_gate: FAIL * -> alert: pytest-snowpipe gate test_gate FAIL: score below threshold*"])
    assert not (pytester.path / ".snowpipe").exists()


def test_other_exception_is_error_and_runs_no_action(pipeline_suite):
    gate = '''
import pytest

@pytest.mark.snowpipe_gate(on_pass="promote", on_fail="alert")
def test_gate(metrics):
    raise KeyError("no such metric")
'''
    pytester = pipeline_suite(gate=gate)
    result = pytester.runpytest()
    assert result.ret == 1
    result.stdout.fnmatch_lines(["gate test_gate: ERROR * -> no action (*Error: *)"])
    assert not (pytester.path / ".snowpipe").exists()


def test_failing_stage_makes_gate_error_without_action(pipeline_suite):
    conftest = '''
import pytest

@pytest.fixture(scope="session")
def model():
    raise RuntimeError("training diverged")

@pytest.fixture(scope="session")
def metrics(model):
    return {"score": 1.0}
'''
    pytester = pipeline_suite(conftest=conftest)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "model *error*RuntimeError: training diverged",
            "metrics *not run*",
            "gate test_gate: ERROR * -> no action (stage model failed: RuntimeError: training diverged)",
        ]
    )


def test_gate_whose_own_setup_fails_names_that_cause(pipeline_suite):
    gate = '''
import pytest

@pytest.mark.snowpipe_gate(on_pass="promote", on_fail="alert")
def test_gate(metrics, snowpipe_champion):
    assert metrics["score"] > 0
'''
    pytester = pipeline_suite(gate=gate)
    (pytester.path / "registry_file").write_text("not a folder")
    result = pytester.runpytest("-o", "snowpipe_registry=registry_file")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["gate test_gate: ERROR * -> no action (setup failed: *registry_file*)"])


def test_user_action_function_receives_context(pipeline_suite):
    gate = '''
import json, pathlib
import pytest

def record(ctx):
    pathlib.Path("action.json").write_text(json.dumps(
        {"verdict": ctx.verdict, "metrics": dict(ctx.metrics), "model": ctx.model, "gate": ctx.gate.name}))
    return "recorded"

@pytest.mark.snowpipe_gate(on_pass=record, on_fail="alert")
def test_gate(metrics, snowpipe_config):
    assert metrics["score"] >= snowpipe_config["threshold"]
'''
    pytester = pipeline_suite(gate=gate)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    seen = json.loads((pytester.path / "action.json").read_text())
    assert seen == {"verdict": "PASS", "metrics": {"score": 1.0}, "model": {"weights": 10}, "gate": "test_gate"}
    result.stdout.fnmatch_lines(["gate test_gate: PASS * -> record: recorded"])


def test_failing_action_fails_the_gate(pipeline_suite):
    gate = '''
import pytest

def broken(ctx):
    raise ValueError("cannot reach the registry")

@pytest.mark.snowpipe_gate(on_pass=broken)
def test_gate(metrics):
    assert True
'''
    pytester = pipeline_suite(gate=gate)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*action 'broken' failed: ValueError: cannot reach the registry*"])


def test_yield_stage_teardown_runs_after_gate(pipeline_suite):
    conftest = '''
import pathlib
import pytest

@pytest.fixture(scope="session")
def raw():
    yield [5, 5]
    pathlib.Path("cleaned.txt").write_text("done")

@pytest.fixture(scope="session")
def model(raw):
    return {"weights": sum(raw)}

@pytest.fixture(scope="session")
def metrics(model):
    return {"score": 1.0}
'''
    pytester = pipeline_suite(conftest=conftest)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert (pytester.path / "cleaned.txt").read_text() == "done"


def test_suite_without_gates_is_untouched(pytester: pytest.Pytester):
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert "snowpipe pipeline" not in result.stdout.str()
    assert not (pytester.path / ".snowpipe").exists()


def test_stage_time_includes_its_contract_checks(pipeline_suite):
    """The summary's stage time counts the contract checks, which run before any consumer can."""
    conftest = '''
import time
import pytest
import pytest_snowpipe as sp

class SlowContract(sp.Contract):
    def validate(self, df, *, report_only=False):
        time.sleep(0.3)  # the check's own cost, not synchronisation
        return super().validate(df, report_only=report_only)

@pytest.fixture(scope="session")
@sp.expect(SlowContract(A=sp.column(int)))
def raw():
    import pandas as pd
    return pd.DataFrame({"A": [1, 2]})

@pytest.fixture(scope="session")
def model(raw):
    return {"weights": 1}

@pytest.fixture(scope="session")
def metrics(model):
    return {"score": 1.0}
'''
    result = pipeline_suite(conftest=conftest).runpytest_subprocess()
    line = next(row for row in result.outlines if row.startswith("raw "))
    assert float(line.split()[3].rstrip("s")) >= 0.3, line
