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


def test_a_local_deploy_run_starts_its_sandbox_at_configure_and_uses_it(pipeline_suite, monkeypatch):
    """``--snowpipe-deploy`` to the local target: the sandbox's interpreter starts at configure (its imports
    overlap the collection) and is the one that runs the tasks; a dry run starts none; a run that never
    deploys (a usage error) ends it and removes its folder."""
    import importlib

    # the modules in sys.modules, those the inner runs use (an earlier inline run may have dropped the ones
    # the packages' attributes still name)
    early_sandbox = importlib.import_module("pytest_snowpipe.doubles.early_sandbox")
    sandbox = importlib.import_module("pytest_snowpipe.doubles.sandbox")
    made: list[tuple[object, bool]] = []
    spawned: list[object] = []
    prepare, spawn = early_sandbox.prepare_rehearsal, sandbox.Sandbox._spawn

    def preparing():
        at_configure = any(frame.function == "pytest_configure" for frame in inspect.stack())
        made.append((prepare(), at_configure))
        return made[-1][0]

    def spawning(self, packages, import_paths):
        spawned.append(packages)
        return spawn(self, packages, import_paths)

    monkeypatch.setattr(early_sandbox, "prepare_rehearsal", preparing)
    monkeypatch.setattr(sandbox.Sandbox, "_spawn", spawning)
    pytester = pipeline_suite()
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--snowpipe-deploy", "--snowpipe-target", "local")
    assert result.ret == 0, result.stdout.str()
    (early, at_configure), = made
    assert at_configure and spawned == [None]  # one interpreter in all, started before the packages were known
    assert early.sandbox.interpreters and all(i.proc.poll() is not None for i in early.sandbox.interpreters.values())
    assert not early.workdir.exists()  # adopted by the run, and removed with it

    dry = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--snowpipe-deploy", "--snowpipe-dry-run")
    assert dry.ret == 0 and len(made) == 1  # a dry run runs nothing: no sandbox

    pytester.makepyfile(test_gate="def test_not_a_gate():\n    pass\n")  # nothing to deploy: a usage error
    unused = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--snowpipe-deploy", "--snowpipe-target", "local")
    assert unused.ret == pytest.ExitCode.USAGE_ERROR
    never, _ = made[1]
    assert not never.workdir.exists() and never.sandbox.base is None
