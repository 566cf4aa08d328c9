"""A local remote trip's inputs: each Snowpark frame read into pandas and spilled to its own file.

``materialize`` (remote.py) reads every frame of a stage's arguments into pandas, and the trip
then pickled them all into one payload: at a million rows the parent held every input, their
payload bytes and what reading each left behind, all at once. Here each frame is read, written
to the trip's folder and freed before the next one is read; once every input is written, the
memory they used is given back (``engines/memory.trim``), before the worker's own peak. The worker
loads each file when it unpickles the payload, so the stage receives the same pandas frames as before.

Trimmed once, not after each frame: the next frame's read reuses the pages the last one freed;
trimmed in between, it faulted every page in again (800k x 20 then 200k x 20: 0.93 s -> 0.54 s to
read both, with the same peak).
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_snowpipe.engines.memory import trim
from pytest_snowpipe.engines.spilled import spill
from pytest_snowpipe.pipeline.frames import is_snowpark_frame, to_pandas

_COUNTER = itertools.count()


def spill_inputs(arguments: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """The trip's ``arguments`` with each Snowpark frame in them (also inside dicts/lists/tuples)
    read into pandas and spilled to a file in ``folder``; anything else is left for the payload."""
    spilled: list[int] = []
    out = {name: _spill(value, folder, spilled) for name, value in arguments.items()}
    if spilled:
        trim()  # what reading the frames left behind (result buffers, glibc arenas) is freed now
    return out


def _spill(value: Any, folder: Path, spilled: list[int]) -> Any:
    if is_snowpark_frame(value):
        spilled.append(1)
        return spill(to_pandas(value), folder / f"input-{next(_COUNTER)}.pkl")
    if isinstance(value, dict):
        return {k: _spill(v, folder, spilled) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_spill(v, folder, spilled) for v in value)
    return value
