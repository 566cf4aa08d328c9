"""Config values: parsing, typing and overrides."""
from __future__ import annotations

import pytest

from pytest_snowpipe.pipeline.config import ConfigError, apply_overrides, parse_lines, parse_value


@pytest.mark.parametrize(
    ("text", "value"),
    [("0.7", 0.7), ("3", 3), ("true", True), ("False", False), ("abc", "abc"), ('"0.8"', "0.8"), ("1e-3", 0.001)],
)
def test_parse_value(text, value):
    got = parse_value(text)
    assert got == value and type(got) is type(value)


def test_overrides_keep_types():
    base = parse_lines(["threshold = 0.5", "n = 3", "flag = true", "name = m"])
    merged = apply_overrides(base, ["threshold=1", "n=4", "flag=false", "name=42"])
    assert merged == {"threshold": 1.0, "n": 4, "flag": False, "name": "42"}
    assert isinstance(merged["threshold"], float)
    with pytest.raises(ConfigError, match="n='4.5' is not a int"):
        apply_overrides(base, ["n=4.5"])


def test_duplicate_ini_key():
    with pytest.raises(ConfigError, match="given twice"):
        parse_lines(["a = 1", "a = 2"])


def test_config_fixture_is_read_only(pipeline_suite):
    gate = '''
import pytest

@pytest.mark.snowpipe_gate(on_fail="alert")
def test_gate(metrics, snowpipe_config):
    with pytest.raises(TypeError):
        snowpipe_config["threshold"] = 0
    assert snowpipe_config["label"] == "demo"
'''
    pipeline_suite(gate=gate).runpytest().assert_outcomes(passed=1)
