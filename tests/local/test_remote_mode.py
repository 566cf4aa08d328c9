"""--snowpipe-remote=job|local (issue 13, item 5): remote stages as real ML Jobs in a local run."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import pytest_snowpipe as sp
from pytest_snowpipe.engines.connection import account_configured
from pytest_snowpipe.pipeline.config import ConfigError
from pytest_snowpipe.pipeline.remote import jobs_via
from pytest_snowpipe.settings import read_settings


def _settings(remote=None, connection=None):
    options = {"snowpipe_remote": remote, "snowpipe_connection": connection, "snowpipe_config": []}
    ini = {"snowpipe_cache_max_size": "2GB"}
    return read_settings(lambda k: options.get(k), lambda k: ini.get(k, ""), Path("."), environ={})


def test_default_is_job_with_a_connection_and_local_without():
    assert _settings().remote == "local"
    assert _settings(connection="dev").remote == "job"
    assert _settings("local", connection="dev").remote == "local"


def test_job_without_a_connection_is_a_usage_error_naming_the_fix():
    with pytest.raises(ConfigError, match="--snowpipe-remote=job .* needs an account: pass --snowpipe-connection NAME"):
        _settings("job")
    with pytest.raises(ConfigError, match="'pool' is not a valid mode. Valid modes: job .*, local"):
        _settings("pool")


def test_the_option_is_a_usage_error_on_the_command_line(pytester: pytest.Pytester, monkeypatch):
    monkeypatch.delenv("SNOWFLAKE_CONNECTION_NAME", raising=False)
    result = pytester.runpytest("--snowpipe-remote=job")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "needs an account" in result.stderr.str()


@sp.remote("DEMO_POOL", stage_name="JOB_STAGE", database="SNOWBANK", schema="DEV", target_instances=2)
def _train(x):
    return x * 2


def test_under_jobs_via_a_remote_stage_is_submitted_as_an_ml_job():
    seen: dict = {}

    class Job:
        id = "J"

        def wait(self):
            return "DONE"

        def result(self):
            return seen["func"](**seen["args"])

    def fake_remote(pool, **kw):
        seen["pool"], seen["kw"] = pool, kw

        def deco(func):
            seen["func"] = func
            return lambda **args: seen.update(args=args) or Job()

        return deco

    with jobs_via(lambda: "SESSION", remote_factory=fake_remote):
        assert _train(21) == 42
    assert seen["pool"] == "DEMO_POOL" and seen["kw"]["session"] == "SESSION"
    assert seen["kw"]["database"] == "SNOWBANK" and seen["kw"]["target_instances"] == 2
    seen.clear()
    assert _train(4) == 8 and not seen  # outside: the fresh local process


@pytest.mark.skipif(not account_configured(), reason="needs a Snowflake account (connections.toml or SNOWFLAKE_CONNECTION_NAME)")
def test_a_local_run_trains_through_a_real_ml_job(pytester: pytest.Pytester):  # pragma: no cover - live account
    pytester.makeconftest(textwrap.dedent('''
        import os, pytest
        import pytest_snowpipe as sp

        @pytest.fixture(scope="session")
        @sp.remote(compute_pool=os.environ.get("SNOWFLAKE_COMPUTE_POOL", "DEMO_POOL"), stage_name="JOB_STAGE")
        def model():
            return "SNOWFLAKE_JOBS_COUNT" in os.environ
    '''))
    pytester.makepyfile(test_gate="import pytest\n\n@pytest.mark.snowpipe_gate()\ndef test_gate(model):\n    assert model\n")
    pytester.runpytest_subprocess("--snowpipe-remote=job", "--snowpipe-no-cache").assert_outcomes(passed=1)
