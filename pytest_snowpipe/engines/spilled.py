"""A remote trip's large inputs, each written to a file of its own as soon as it is read.

Pickling every input of a trip into one payload held all of them at once, plus the payload's
bytes: at a million rows the parent's peak was the sum. Spilled one at a time, each input is
freed as soon as it is written; the worker loads it back when it unpickles the payload (a
:class:`SpilledInput` unpickles as the object itself), so the stage receives the same value.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any


def load(path: str) -> Any:
    """The spilled object (called by the unpickler in the worker)."""
    with open(path, "rb") as file:
        return pickle.load(file)  # our own file, written by spill() for this trip


class SpilledInput:
    """Stands in for an input in the trip's payload; unpickles as the input, read from ``path``."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return load, (self.path,)

    def __repr__(self) -> str:
        return f"SpilledInput({self.path!r})"


def spill(value: Any, path: Path) -> SpilledInput:
    """Write ``value`` to ``path`` (cloudpickle, streamed to the file: no second copy in memory)."""
    import cloudpickle

    with open(path, "wb") as file:
        cloudpickle.dump(value, file)
    return SpilledInput(str(path))
