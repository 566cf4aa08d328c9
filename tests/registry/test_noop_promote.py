"""A promote that would change nothing is a no-op: no new version, no model loaded, no hooks.

"Nothing" means: the registry's default version of the model was promoted with the same code
keys (upstream stages and gate), the same source data fingerprints and the same metrics.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from pytest_snowpipe.registry.local import LocalRegistry

HERE = Path(__file__).parents[1]  # tests/, where snowpipe_hook_plugin lives

# Stage outputs are instances of a project class whose unpickling leaves a marker file: a
# cached output that is loaded (from the stage cache or the registry) shows up as a marker.
HELPERS = '''
import pathlib


class Tracked:
    """A value that records every time it is unpickled."""

    def __init__(self, tag, weights):
        self.tag, self.weights = tag, weights

    def __eq__(self, other):
        return isinstance(other, Tracked) and (self.tag, self.weights) == (other.tag, other.weights)

    def __setstate__(self, state):
        self.__dict__.update(state)
        with open(pathlib.Path(__file__).parent / "unpickled.log", "a") as fh:
            fh.write(self.tag + "\\n")


def score(model):
    return model.weights / 10
'''

STAGES = '''
import pytest
import helpers

@pytest.fixture(scope="session")
def raw():
    return helpers.Tracked("raw", [1, 2, 3, 4])

@pytest.fixture(scope="session")
def model(raw):
    return helpers.Tracked("model", sum(raw.weights))

@pytest.fixture(scope="session")
def metrics(model):
    return {"score": helpers.score(model)}
'''

UNCHANGED = "*gate test_gate: PASS * -> promote: model v0001 is already the default (unchanged: same code, data and metrics)*"


@pytest.fixture
def suite(pipeline_suite) -> pytest.Pytester:
    """The shared tiny gate (tests/conftest.py) over stages whose values record being unpickled."""
    pytester = pipeline_suite(conftest=STAGES)
    pytester.makepyfile(helpers=textwrap.dedent(HELPERS))
    return pytester


def unpickled(pytester: pytest.Pytester) -> list[str]:
    """Which tracked values were unpickled since the last call."""
    log = pytester.path / "unpickled.log"
    if not log.exists():
        return []
    seen = log.read_text().split()
    log.unlink()
    return seen


def registry(pytester: pytest.Pytester) -> LocalRegistry:
    return LocalRegistry(pytester.path / ".snowpipe" / "registry")


def test_unchanged_rerun_writes_no_version_and_loads_neither_model_nor_data(suite):
    suite.runpytest_subprocess().assert_outcomes(passed=1)
    assert registry(suite).versions("model") == ["v0001"]
    assert unpickled(suite) == []  # computed, not loaded
    before = sorted(p.relative_to(suite.path).as_posix() for p in (suite.path / ".snowpipe").rglob("*"))

    second = suite.runpytest_subprocess()
    second.assert_outcomes(passed=1)
    second.stdout.fnmatch_lines([UNCHANGED])
    assert registry(suite).versions("model") == ["v0001"]
    after = sorted(p.relative_to(suite.path).as_posix() for p in (suite.path / ".snowpipe").rglob("*"))
    assert after == before  # nothing written, not even a temporary folder
    # the model (cached) and the source stage (cached, fingerprinted) were never unpickled
    assert unpickled(suite) == []


def test_changed_metric_code_promotes_a_new_version_loading_the_cached_model(suite):
    suite.runpytest_subprocess().assert_outcomes(passed=1)
    unpickled(suite)
    helpers = suite.path / "helpers.py"
    helpers.write_text(helpers.read_text().replace("model.weights / 10", "model.weights / 8"))
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*promote: model v0002 is now the default*"])
    assert registry(suite).versions("model") == ["v0001", "v0002"]
    assert registry(suite).default("model").metrics == {"score": 1.25}
    assert unpickled(suite) == ["model"]  # a real promote loads the cached model (the marker works)
    first, second = (registry(suite).get("model", v).path / "model.pkl" for v in ("v0001", "v0002"))
    assert first.read_bytes() == second.read_bytes()  # the same model, loaded from the cache


def test_changed_gate_code_promotes_a_new_version(suite):
    suite.runpytest_subprocess().assert_outcomes(passed=1)
    gate = (suite.path / "test_gate.py").read_text()
    suite.makepyfile(test_gate=gate.replace(', "score below threshold"', ', "too low"'))
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*promote: model v0002 is now the default*"])
    first, second = (registry(suite).get("model", v) for v in ("v0001", "v0002"))
    assert first.fingerprints["code"] == second.fingerprints["code"]
    assert first.fingerprints["gate_code"] != second.fingerprints["gate_code"]


def test_without_the_cache_an_unchanged_run_is_a_no_op_too(suite):
    """Data fingerprints of computed outputs equal those stored with cached ones."""
    suite.runpytest_subprocess().assert_outcomes(passed=1)  # computed, fingerprints stored in the cache
    cached = suite.runpytest_subprocess()
    cached.stdout.fnmatch_lines([UNCHANGED])
    uncached = suite.runpytest_subprocess("--snowpipe-no-cache")
    uncached.assert_outcomes(passed=1)
    uncached.stdout.fnmatch_lines([UNCHANGED])
    assert registry(suite).versions("model") == ["v0001"]


def test_changed_source_data_promotes_a_new_version(suite):
    suite.runpytest_subprocess().assert_outcomes(passed=1)
    suite.makeconftest(textwrap.dedent(STAGES).replace("[1, 2, 3, 4]", "[4, 3, 2, 1]"))  # same sum, same metrics
    result = suite.runpytest_subprocess()
    result.stdout.fnmatch_lines(["*promote: model v0002 is now the default*"])
    first, second = (registry(suite).get("model", v) for v in ("v0001", "v0002"))
    assert first.metrics == second.metrics
    assert first.fingerprints["data"]["raw"] != second.fingerprints["data"]["raw"]


def test_a_no_op_promote_calls_no_promote_hook(suite, monkeypatch, tmp_path):
    log = tmp_path / "hook-events.jsonl"
    monkeypatch.setenv("HOOKTEST_LOG", str(log))
    monkeypatch.setenv("PYTHONPATH", str(HERE), prepend=":")  # the subprocess imports the plugin

    def events() -> list[str]:
        rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        log.unlink(missing_ok=True)
        return [r["event"] for r in rows if r["event"].startswith("promote")]

    suite.runpytest_subprocess("-p", "snowpipe_hook_plugin").assert_outcomes(passed=1)
    assert events() == ["promote_before", "promote_after"]
    second = suite.runpytest_subprocess("-p", "snowpipe_hook_plugin")
    second.assert_outcomes(passed=1)
    second.stdout.fnmatch_lines([UNCHANGED])
    assert events() == []


def test_registry_unchanged_default_compares_metrics_and_fingerprints_as_stored(tmp_path):
    import numpy

    reg = LocalRegistry(tmp_path / "reg")
    prints = {"code": {"model": "k1"}, "gate_code": "g", "data": {"raw": "d"}}
    assert reg.unchanged_default("m", metrics={"acc": 0.8}, fingerprints=prints) is None  # nothing yet
    reg.promote("m", {"w": 1}, metrics={"acc": numpy.float64(0.8), "rows": numpy.int64(10)}, fingerprints=prints)
    same = reg.unchanged_default("m", metrics={"acc": 0.8, "rows": 10}, fingerprints=prints)
    assert same is not None and same.version == "v0001"
    assert reg.unchanged_default("m", metrics={"acc": 0.81, "rows": 10}, fingerprints=prints) is None
    other = {**prints, "data": {"raw": "e"}}
    assert reg.unchanged_default("m", metrics={"acc": 0.8, "rows": 10}, fingerprints=other) is None


RANDOM_STAGES = '''
import random
import pytest

@pytest.fixture(scope="session")
def raw():
    return [1, 2, 3, 4]

@pytest.fixture(scope="session")
def model(raw):
    return {"weights": sum(raw) + random.random()}  # no seed: another model on every run

@pytest.fixture(scope="session")
def metrics(model):
    return {"score": model["weights"] / 10}
'''

NOT_REPRODUCIBLE = (
    "*-> promote: model v0001 stays the default: not reproducible: same code and inputs, different output "
    "in stage 'model' (a seed, the clock, an unseeded library?); no new version*"
)


def test_same_code_and_data_with_another_output_is_not_reproducible_and_no_new_version(pipeline_suite):
    """Issue 22, item 2: the second run's model differs though its code and inputs did not."""
    suite = pipeline_suite(conftest=RANDOM_STAGES)
    suite.runpytest_subprocess("--snowpipe-no-cache").assert_outcomes(passed=1)
    second = suite.runpytest_subprocess("--snowpipe-no-cache", "--snowpipe-report=rep")
    second.assert_outcomes(passed=1)
    second.stdout.fnmatch_lines([NOT_REPRODUCIBLE])
    assert registry(suite).versions("model") == ["v0001"]
    first = registry(suite).get("model", "v0001")
    assert set(first.extra["outputs"]) == {"raw", "model", "metrics"}  # what the next run is compared with
    report = json.loads((suite.path / "rep" / "report.json").read_text())
    assert "not reproducible: same code and inputs, different output in stage 'model'" in json.dumps(report)
    assert "not reproducible" in (suite.path / "rep" / "report.md").read_text()
    # a code change is a legitimate new version
    suite.makeconftest(textwrap.dedent(RANDOM_STAGES).replace("sum(raw) +", "sum(raw) * 2 +"))
    third = suite.runpytest_subprocess("--snowpipe-no-cache")
    third.stdout.fnmatch_lines(["*promote: model v0002 is now the default*"])


def test_examples_twice_without_the_cache_promote_nothing_the_second_time(tmp_path):
    """``pytest examples/ --snowpipe-no-cache`` twice: the second run is "unchanged" for both models."""
    import subprocess
    import sys

    examples = HERE.parent / "examples"
    args = [sys.executable, "-m", "pytest", str(examples), "-q", "-p", "no:cacheprovider", "--snowpipe-no-cache",
            "-o", f"snowpipe_registry={tmp_path / 'registry'}"]
    runs = [subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=examples) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[-1].stdout[-3000:]
    assert runs[0].stdout.count("is now the default") == 2
    assert runs[1].stdout.count("is already the default (unchanged: same code, data and metrics)") == 2, runs[1].stdout[-2000:]
    assert sorted(p.name for p in (tmp_path / "registry").glob("*/versions/*")) == ["v0001", "v0001"]
