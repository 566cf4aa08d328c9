"""Every error the package raises on purpose derives from SnowpipeError; usage errors from SnowpipeUsageError."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import pytest_snowpipe
from pytest_snowpipe.errors import SnowpipeError, SnowpipeUsageError

# not errors of ours, each for a reason
OUTSIDE = {
    "pytest_snowpipe.taskgraph.interrupts.Interrupted": "a signal, a BaseException like KeyboardInterrupt: no except Exception swallows it",
    "pytest_snowpipe.doubles.sandbox_worker.TaskFailure": "runs in the sandbox interpreter, which cannot import this package",
    "pytest_snowpipe.doubles.offline_account.InjectedError": "the double's way to answer a call with Snowflake's error, never raised to a user",
    "pytest_snowpipe.doubles.sql.fakesnow_adapter.UnsupportedStatement": "the connector's ProgrammingError, as Snowflake answers SQL it lacks",
}
SKIP_MODULES = {"pytest_snowpipe.doubles.sandbox_worker"}  # imported only as a script in an isolated interpreter


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(pytest_snowpipe.__path__, "pytest_snowpipe."):
        if info.name in SKIP_MODULES:
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and not issubclass(obj, Warning) \
                    and obj.__module__ == info.name:
                found[f"{info.name}.{name}"] = obj
    return found


def test_every_error_of_ours_derives_from_snowpipe_error():
    classes = _exception_classes()
    assert len(classes) >= 30  # the walk found the package's errors
    wrong = [name for name, cls in classes.items() if name not in OUTSIDE and not issubclass(cls, SnowpipeError)]
    assert not wrong, f"derive these from SnowpipeError (or say why not in OUTSIDE): {wrong}"


@pytest.mark.parametrize("name", [
    "pytest_snowpipe.pipeline.config.ConfigError",
    "pytest_snowpipe.engines.connection.ConnectionConfigError",
    "pytest_snowpipe.taskgraph.compile.CompileError",
    "pytest_snowpipe.taskgraph.channel.ChannelError",
    "pytest_snowpipe.taskgraph.deploy.DeployUsageError",
    "pytest_snowpipe.errors.GraphError",
])
def test_usage_errors_are_shown_as_pytest_s_and_stay_value_errors(name: str):
    cls = _exception_classes()[name]
    assert issubclass(cls, SnowpipeUsageError) and issubclass(cls, ValueError)
