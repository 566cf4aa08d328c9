"""Keep the libraries a run loads out of the garbage collector's way.

A run loads Snowpark, the connector, DuckDB, fakesnow, sqlglot, pandas and often a model's
library: a few hundred thousand long-lived objects that every full collection walks again
(0.1-0.3 s each: the automatic ones during the run, and pytest's own at its end, which look
for unraisable exceptions). After the engine's session and after each stage, `settle`
collects the young garbage and freezes what is left (``gc.freeze``): later collections walk
only what was made since. A deploy run's compile and offline deploy (snowflake.core, the ML Job
client: ~1.5 s of imports) are `settled`, and the run settles once more after the emulated graph.
Objects are still freed by reference counting; `thaw`, registered as the run's last cleanup
(after pytest's final collections), gives everything back to the collector, so a run inside
another process (pytester) leaves nothing frozen behind.

At interpreter exit everything is frozen once more (`freeze_at_exit`): the interpreter's own
tear-down collections then walk nothing, where they walked every object of those libraries
(0.5-0.7 s of every run's end, more than a 10k-row pipeline's own work).
"""
from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

import pytest

_FROZE: list[bool] = []
_AT_EXIT: list[bool] = []


def settle() -> None:
    """Collect the young generations, freeze everything still tracked, and give the memory a
    stage freed back to the system (glibc keeps it otherwise: the next stage's peak lands on top)."""
    gc.collect(1)
    gc.freeze()
    _FROZE[:] = [True]
    _trim()


def _trim() -> None:
    from pytest_snowpipe.engines.memory import trim

    trim()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No collection while a block imports libraries (objects that live for the run), then `settle`.

    Imports allocate enough to trigger several full collections, each walking everything
    imported so far: 1-2 s of a run's start-up on a loaded machine.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        settle()


@contextlib.contextmanager
def settled() -> Iterator[None]:
    """`settle` once a block is done: for a block that imports libraries while it also makes garbage.

    Unlike `quiet` the collector stays on: the young collections free the garbage as it comes, and
    no collection of everything the block made is left for its end (`quiet` then paused 0.2 s over
    the 460k objects of the rehearsal's compile and offline deploy; the full collections meanwhile
    walk only what was made since the last freeze).
    """
    try:
        yield
    finally:
        settle()


def thaw() -> None:
    """Unfreeze what `settle` froze (nothing if it never ran)."""
    if _FROZE:
        gc.unfreeze()
        _FROZE.clear()


def freeze_at_exit() -> None:
    """Freeze every object when the interpreter exits, after the exit handlers registered later.

    The tear-down's collections (CPython's ``finalize_modules`` and the last full collection) then
    skip what the process still holds: objects are freed by reference counting as modules are
    cleared, as before; only garbage cycles left at exit are not collected (Python does not promise
    ``__del__`` for objects alive at exit either), and the process's end reclaims their memory.
    Registered once per process; a process that keeps running (a notebook, an IDE calling
    ``pytest.main``) is not affected until it exits.
    """
    if not _AT_EXIT:
        import atexit

        atexit.register(gc.freeze)
        _AT_EXIT.append(True)


def watch(config: pytest.Config) -> None:
    """Thaw after the run's other cleanups (call from ``pytest_configure``: its cleanups run last),
    and freeze everything again when the interpreter exits."""
    config.add_cleanup(thaw)
    freeze_at_exit()
