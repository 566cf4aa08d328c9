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
import ctypes
import ctypes.util
import gc
import sys
from collections.abc import Iterator
from typing import Any

import pytest

_FROZE: list[bool] = []
_LIBC: list[Any] = []  # malloc_trim, or None where there is none


def settle() -> None:
    """Collect the young generations, freeze everything still tracked, and give the memory a
    stage freed back to the system (glibc keeps it otherwise: the next stage's peak lands on top)."""
    gc.collect(1)
    gc.freeze()
    _FROZE[:] = [True]
    _trim()


def _trim() -> None:
    """``malloc_trim(0)`` where the C library has it (glibc): freed heap pages go back to the system."""
    if not _LIBC:
        try:
            _LIBC.append(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim)
        except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): nothing to trim
            _LIBC.append(None)
    if _LIBC[0] is not None:
        _LIBC[0](0)
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:  # Arrow's own allocator keeps freed buffers for reuse, as glibc does
        pyarrow.default_memory_pool().release_unused()


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
