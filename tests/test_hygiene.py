"""A suite that never uses the plugin pays nothing for it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest


def test_unused_plugin_imports_nothing_heavy_and_creates_nothing(pytester: pytest.Pytester):
    pytester.makepyfile(
        '''
import sys

def test_modules():
    # "snowflake" alone is a namespace stub a .pth file of the connector creates at start-up
    heavy = [m for m in sys.modules if m.startswith(("snowflake.", "xgboost", "sklearn")) or m == "pandas"]
    assert heavy == []
'''
    )
    before = {p.name for p in pytester.path.iterdir()}
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    after = {p.name for p in pytester.path.iterdir() if not p.name.startswith("runpytest-") and p.name not in ("stdout", "stderr")}
    assert after == before
    assert "snowpipe pipeline" not in result.stdout.str()


def test_marker_and_options_are_registered(pytester: pytest.Pytester):
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.snowpipe_gate(on_pass=None, on_fail=None, *"])
    help_text = pytester.runpytest("--help").stdout.str()
    from pytest_snowpipe.settings import INI_KEYS

    options = set(re.findall(r"(--snowpipe-[a-z-]+|--schedule)\b", help_text))
    assert {"--snowpipe-config", "--snowpipe-report", "--snowpipe-no-cache", "--schedule"} <= options
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name in sorted(options) + [k for k, *_ in INI_KEYS]:
        assert name in help_text, f"{name} is not in pytest --help"
        assert f"`{name}" in readme or f" {name}`" in readme or f"`{name}`" in readme, f"{name} is not documented in README.md"


def test_strict_markers_clean(pipeline_suite):
    pipeline_suite().runpytest("--strict-markers").assert_outcomes(passed=1)


def test_hypothesis_plugin_and_its_statistics_work_beside_ours(pipeline_suite):
    pytester = pipeline_suite()
    pytester.makepyfile(
        test_property='''
from hypothesis import given, strategies as st

@given(st.integers(min_value=0, max_value=100))
def test_scaled_score_stays_in_range(raw, n):
    assert 0 <= n * sum(raw) <= 1000
'''
    )
    result = pytester.runpytest_subprocess("--hypothesis-show-statistics", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert "Hypothesis Statistics" in out
    assert "test_scaled_score_stays_in_range" in out.split("Hypothesis Statistics", 1)[1]
    result.stdout.fnmatch_lines(["*snowpipe pipeline*", "gate test_gate: PASS*"])


def test_no_stage_cache_folder_without_gates(pytester: pytest.Pytester):
    """The stage cache lives in pytest's cache dir, and only once a stage output is stored."""
    pytester.makepyfile(
        '''
import pytest

@pytest.fixture(scope="session")
def data():
    return [1, 2]

def test_plain(data):
    assert sum(data) == 3
'''
    )
    result = pytester.runpytest("--snowpipe-cache-clear")
    result.assert_outcomes(passed=1)
    assert (pytester.path / ".pytest_cache").is_dir()  # pytest's own cache is on...
    assert not (pytester.path / ".pytest_cache" / "d" / "snowpipe").exists()  # ...the stage cache never made
