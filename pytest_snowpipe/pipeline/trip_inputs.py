"""A local remote trip's inputs: each Snowpark frame read into pandas and spilled to its own file.

``materialize`` (remote.py) reads every frame of a stage's arguments into pandas, and the trip
then pickled them all into one payload: at a million rows the parent held every input, their
payload bytes and what reading each left behind, all at once. Here each frame is read, written
to the trip's folder and freed before the next one is read, and the memory it used is given
back (``engines/memory.trim``). The worker loads each file when it unpickles the payload, so the
stage receives the same pandas frames as before.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from pytest_snowpipe.engines.memory import trim
from pytest_snowpipe.engines.spilled import spill
from pytest_snowpipe.pipeline.frames import is_snowpark_frame, to_pandas

_COUNTER = itertools.count()


def spill_frames(value: Any, folder: Path) -> Any:
    """``value`` with each Snowpark frame in it (also inside dicts/lists/tuples) read into pandas
    and spilled to a file in ``folder``; anything else is left for the payload."""
    if is_snowpark_frame(value):
        spilled = spill(to_pandas(value), folder / f"input-{next(_COUNTER)}.pkl")
        trim()  # what reading the frame left behind (result buffers, glibc arenas) is freed now
        return spilled
    if isinstance(value, dict):
        return {k: spill_frames(v, folder) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(spill_frames(v, folder) for v in value)
    return value
