"""Signals around a deploy: an interrupt stops the change in order, and never the undo.

A deploy replaces a live graph in many calls. Ctrl-C (SIGINT) or a CI runner's SIGTERM in the middle
would leave half a graph: Python's default SIGTERM kills the process without running ``finally``,
and a KeyboardInterrupt skips ``except Exception``. So while the graph changes (:func:`interruptible`)
both signals raise :class:`Interrupted` in the main thread, which the deploy catches like any failure
and undoes; while the undo runs (:func:`deferred`), a further signal is only remembered, and re-raised
and reported once the undo is done.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A SIGINT or SIGTERM arrived while a deploy changed the graph."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def _install(handler: Any) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}  # only the main thread may set handlers; elsewhere the defaults stay
    return {s: signal.signal(s, handler) for s in SIGNALS}


def _restore(previous: dict[int, Any]) -> None:
    for s, handler in previous.items():
        signal.signal(s, handler)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` (catchable as a BaseException) while active."""

    def raise_interrupted(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    previous = _install(raise_interrupted)
    try:
        yield
    finally:
        _restore(previous)


@contextlib.contextmanager
def deferred() -> Iterator[list[int]]:
    """SIGINT and SIGTERM are remembered, not acted on, while active; the list holds what arrived.

    The caller finishes its undo, then reports (and exits for) what the list holds.
    """
    received: list[int] = []

    def remember(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = _install(remember)
    try:
        yield received
    finally:
        _restore(previous)


__all__ = ["SIGNALS", "Interrupted", "deferred", "interruptible"]
