"""Keep the libraries a run loads out of the garbage collector's way.

A run loads Snowpark, the connector, DuckDB, fakesnow, sqlglot, pandas and often a model's
library: a few hundred thousand long-lived objects that every full collection walks again
(0.1-0.3 s each: the automatic ones during the run, and pytest's own at its end, which look
for unraisable exceptions). After the engine's session and after each stage, `settle`
collects the young garbage and freezes what is left (``gc.freeze``): later collections walk
only what was made since. Objects are still freed by reference counting; `thaw`, registered
as the run's last cleanup (after pytest's final collections), gives everything back to the
collector, so a run inside another process (pytester) leaves nothing frozen behind.
"""
from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

import pytest

_FROZE: list[bool] = []


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


def thaw() -> None:
    """Unfreeze what `settle` froze (nothing if it never ran)."""
    if _FROZE:
        gc.unfreeze()
        _FROZE.clear()


def watch(config: pytest.Config) -> None:
    """Thaw after the run's other cleanups (call from ``pytest_configure``: its cleanups run last)."""
    config.add_cleanup(thaw)
