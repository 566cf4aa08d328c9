"""The run object: every hook it implements is seen by pytest, and it is the one registered run state."""
from __future__ import annotations

import inspect

import pytest

from pytest_snowpipe.run_state import PLUGIN_NAME, SnowpipeRun, run_state_of


def test_every_hook_method_is_named_so_that_pytest_registers_it():
    """pytest only reads attributes named pytest_*: a hookimpl under another name silently never runs."""
    marked = [name for name, member in inspect.getmembers(SnowpipeRun, inspect.isfunction)
              if hasattr(member, "pytest_impl")]
    assert marked and all(name.startswith("pytest_") for name in marked), marked


def test_the_run_object_is_registered_with_its_hooks(pytester: pytest.Pytester):
    pytester.makeconftest('''
        from pytest_snowpipe.run_state import run_state_of

        def pytest_collection_finish(session):
            state = run_state_of(session.config)
            names = {impl.plugin_name for impl in session.config.hook.pytest_fixture_setup.get_hookimpls()}
            print("RUN_STATE", type(state).__name__, "%s" % ("snowpipe-run" in names))
    ''')
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-s", "-p", "no:randomly")
    result.stdout.fnmatch_lines(["RUN_STATE SnowpipeRun True"])
    assert PLUGIN_NAME == "snowpipe-run" and callable(run_state_of)
