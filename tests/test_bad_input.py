"""Bad input gets one clear error that names the thing and the fix, never a deep traceback."""
from __future__ import annotations

import textwrap

import pytest

from conftest import GATE, PURE_STAGES


def _usage_error(result: pytest.RunResult, *patterns: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines(["ERROR: *" + "*".join(patterns) + "*"])
    assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        ('on_pass="promote", on_fail="page_me"', "on_fail='page_me' is not an action. Valid actions: 'promote', 'alert'"),
        ('on_pass="alert", on_fail="alert"', "on_pass and on_fail are both 'alert'"),
        ('on_pass="promote", on_fial="alert"', "unexpected keyword argument 'on_fial'"),
        ('"promote", "alert", "extra"', "too many positional arguments"),
        ("on_pass=42", "on_pass=42 is neither an action name nor a function"),
    ],
)
def test_bad_gate_marker(pipeline_suite, marker, expected):
    gate = GATE.replace('on_pass="promote", on_fail="alert"', marker)
    result = pipeline_suite(gate=gate).runpytest()
    _usage_error(result, "gate 'test_gate'", expected)


def test_marker_given_twice(pipeline_suite):
    gate = GATE.replace("@pytest.mark", '@pytest.mark.snowpipe_gate(on_pass="alert")\n@pytest.mark', 1)
    _usage_error(pipeline_suite(gate=gate).runpytest(), "carries @pytest.mark.snowpipe_gate 2 times")


def test_gate_reading_no_stage(pipeline_suite):
    gate = '''
import pytest

@pytest.mark.snowpipe_gate(on_fail="alert")
def test_gate(snowpipe_config):
    assert snowpipe_config["threshold"] > 0
'''
    _usage_error(pipeline_suite(gate=gate).runpytest(), "reads no pipeline stage, so its fixtures form no pipeline")


def test_function_scoped_stage(pipeline_suite):
    conftest = PURE_STAGES.replace('@pytest.fixture(scope="session")\ndef model', "@pytest.fixture\ndef model")
    _usage_error(
        pipeline_suite(conftest=conftest).runpytest(),
        "stage 'model' (*) is function-scoped",
        '@pytest.fixture(scope="session")',
    )


def test_parametrized_stage(pipeline_suite):
    conftest = PURE_STAGES.replace(
        '@pytest.fixture(scope="session")\ndef raw():\n    return [1, 2, 3, 4]',
        '@pytest.fixture(scope="session", params=[1, 2])\ndef raw(request):\n    return [request.param]',
    )
    result = pipeline_suite(conftest=conftest).runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*stage 'raw' (*conftest.py:3) is parametrized; * drop params=*"])


def test_stage_using_tmp_path(pipeline_suite):
    conftest = PURE_STAGES.replace("def model(raw):", "def model(raw, tmp_path_factory):")
    _usage_error(
        pipeline_suite(conftest=conftest).runpytest(),
        "stage 'model' requests pytest's built-in fixture 'tmp_path_factory', which has no meaning in a Task Graph",
    )


def test_all_problems_are_listed_together(pipeline_suite):
    conftest = PURE_STAGES.replace("def model(raw):", "def model(raw, monkeypatch):").replace(
        '@pytest.fixture(scope="session")\ndef metrics', "@pytest.fixture(scope='module')\ndef metrics"
    )
    result = pipeline_suite(conftest=conftest).runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "'monkeypatch'" in err and "module-scoped" in err


def test_same_stage_name_in_two_folders(pytester: pytest.Pytester):
    stage = '''
import pytest

@pytest.fixture(scope="session")
def metrics():
    return {"score": %s}
'''
    gate = '''
import pytest

@pytest.mark.snowpipe_gate(on_fail="alert")
def %s(metrics):
    assert metrics["score"] > 0
'''
    for folder, value, name in (("a", 1, "test_a"), ("b", 2, "test_b")):
        pytester.mkpydir(folder)
        (pytester.path / folder / "conftest.py").write_text(textwrap.dedent(stage % value))
        (pytester.path / folder / f"{name}.py").write_text(textwrap.dedent(gate % name))
    _usage_error(pytester.runpytest(), "stage name 'metrics' is defined twice", "rename one")


def test_promote_without_model_stage(pipeline_suite):
    conftest = PURE_STAGES.replace("def model(raw)", "def weights(raw)").replace("def metrics(model,", "def metrics(weights,").replace('model["weights"]', 'weights["weights"]')
    _usage_error(pipeline_suite(conftest=conftest).runpytest(), "gate 'test_gate' promotes, but no upstream stage is known to hold the model", "model='<fixture name>'")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("threshold=high", "threshold='high' is not a float (the ini value is 0.5)"),
        ("treshold=0.9", "unknown key 'treshold'. Known keys: label, threshold"),
        ("threshold", "'threshold' is not 'key=value'"),
        ("9lives=1", "config key '9lives' is not a valid name"),
    ],
)
def test_bad_config_override(pipeline_suite, override, expected):
    _usage_error(pipeline_suite().runpytest("--snowpipe-config", override), expected)


def test_bad_ini_config_line(pipeline_suite):
    ini = "[pytest]\nsnowpipe_config =\n    threshold: 0.5\n"
    _usage_error(pipeline_suite(ini=ini).runpytest(), "ini snowpipe_config: 'threshold: 0.5' is not 'key=value'")


def test_missing_connection_names_connection_and_file(pipeline_suite, tmp_path, monkeypatch):
    home = tmp_path / "sfhome"
    home.mkdir()
    (home / "connections.toml").write_text('[dev]\naccount = "x"\nuser = "u"\n')
    monkeypatch.setenv("SNOWFLAKE_HOME", str(home))
    result = pipeline_suite().runpytest("--snowpipe-connection", "prod")
    _usage_error(result, f"Snowflake connection 'prod' is not defined in {home / 'connections.toml'} (defined: dev)")


def test_missing_connections_file(pipeline_suite, tmp_path, monkeypatch):
    monkeypatch.setenv("SNOWFLAKE_HOME", str(tmp_path / "nowhere"))
    monkeypatch.setenv("SNOWFLAKE_CONNECTION_NAME", "prod")
    result = pipeline_suite().runpytest()
    _usage_error(result, "Snowflake connection 'prod': no connections file at", "connections.toml")


def test_broken_connection_is_usage_error_without_secret(pipeline_suite, tmp_path, monkeypatch):
    home = tmp_path / "sfhome"
    home.mkdir()
    (home / "connections.toml").write_text(
        '[broken]\naccount = "acme"\nuser = "u"\npassword = "hunter2-secret"\nhost = "127.0.0.1"\n'
        'port = 9\nprotocol = "http"\nlogin_timeout = 5\nnetwork_timeout = 5\n'
    )
    monkeypatch.setenv("SNOWFLAKE_HOME", str(home))
    result = pipeline_suite().runpytest("--snowpipe-connection", "broken")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "Snowflake connection 'broken' from" in err and "failed to connect" in err
    assert "hunter2-secret" not in err + result.stdout.str()
