"""The run's long-lived objects are frozen out of the collector's way, and given back at its end."""
from __future__ import annotations

import gc
import importlib
import sys
import textwrap

from conftest import GATE
from pytest_snowpipe.local import heap


def test_quiet_collects_nothing_inside_then_freezes() -> None:
    heap.thaw()  # whatever this test process's own run froze
    gc.unfreeze()
    try:
        with heap.quiet():
            assert not gc.isenabled()
            kept = [[i] for i in range(1000)]
        assert gc.isenabled()
        assert gc.get_freeze_count() >= len(kept)
    finally:
        heap.thaw()
    assert gc.get_freeze_count() == 0


def test_quiet_keeps_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with heap.quiet():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
        heap.thaw()


def test_a_run_freezes_after_its_stages_and_thaws_at_its_end(pipeline_suite) -> None:
    gate = GATE + textwrap.dedent(
        """

        def test_after_the_stages(raw, metrics):
            import gc
            assert gc.get_freeze_count() > 0
            assert not any(o is raw for o in gc.get_objects())  # a stage's output: frozen, out of every walk
        """
    )
    pytester = pipeline_suite(gate=gate)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--snowpipe-no-cache")
    result.assert_outcomes(passed=2)
    assert gc.get_freeze_count() == 0  # nothing of the inner run stays frozen in this process


def test_the_interpreter_exits_with_everything_frozen(pytester) -> None:
    """The exit handler runs after those registered later and leaves the objects frozen for the
    tear-down (a handler registered before it runs after it and sees the freeze)."""
    script = pytester.makepyfile(
        textwrap.dedent(
            """
            import atexit, gc, sys
            atexit.register(lambda: sys.stdout.write(f"at the end: {gc.get_freeze_count()} frozen\\n"))
            from pytest_snowpipe.local import heap
            heap.freeze_at_exit()
            heap.freeze_at_exit()  # once per process
            atexit.register(lambda: sys.stdout.write(f"before: {gc.get_freeze_count()} frozen\\n"))
            """
        )
    )
    result = pytester.run(sys.executable, str(script))
    assert result.ret == 0, result.stderr.str()
    before, end = result.stdout.lines[-2:]
    assert before == "before: 0 frozen"
    assert end.startswith("at the end: ") and int(end.split()[3]) > 1000
    assert len(result.stdout.lines) == 2


def test_a_rehearsal_freezes_what_its_compile_loaded_and_what_its_run_loaded(pipeline_suite, monkeypatch) -> None:
    """The compile and offline deploy import snowflake.core and the ML Job client: frozen once loaded
    (later full collections skip them), and what the emulated run loaded is frozen before pytest's
    last collections (they walked it all: 0.37 s of the examples' rehearsal)."""
    # the module in sys.modules, the one the inner run uses (an earlier inline run may have dropped the
    # one the package's attribute still names)
    release = importlib.import_module("pytest_snowpipe.release")
    events: list[str] = []
    compile_graph, settle = release.compile_graph, heap.settle

    def compiling(*args, **kwargs):
        events.append("compile")
        return compile_graph(*args, **kwargs)

    def settling() -> None:
        events.append("settle")
        settle()

    monkeypatch.setattr(release, "compile_graph", compiling)
    monkeypatch.setattr(heap, "settle", settling)
    pytester = pipeline_suite()
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--snowpipe-deploy", "--snowpipe-target", "local")
    assert result.ret == 0, result.stdout.str()
    assert events[events.index("compile") + 1:] == ["settle", "settle"]  # after the loading, after the run
    assert gc.get_freeze_count() == 0  # nothing of the inner run stays frozen in this process


def test_settled_keeps_the_collector_on_and_freezes_after() -> None:
    heap.thaw()
    gc.unfreeze()
    try:
        with heap.settled():
            assert gc.isenabled()
            kept = [[i] for i in range(1000)]
            assert gc.get_freeze_count() == 0
        assert gc.get_freeze_count() >= len(kept)
    finally:
        heap.thaw()
