"""``sp.load``: a stage's output from the stage cache, for the current code, in a notebook or a script.

The cache is Parquet/pickle in folders named by hashed keys; the key of "the current code" is what
a run computes at its start (the suite's code, config, declared data). ``load`` runs that start in
this process (pytest collects the suite; no test runs, no stage is computed) and reads the entry
that key names. Snowpark frames come back on an embedded-engine session that stays open.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_snowpipe.errors import SnowpipeError


class NotCached(SnowpipeError, LookupError):
    """The stage has no stored output for the current code (or is no stage of the suite)."""


def load(stage: str, rootdir: str | Path = ".", *pytest_args: str) -> Any:
    """The latest cached output of ``stage`` for the suite under ``rootdir`` as its code is now.

    ``pytest_args`` are passed on (e.g. ``"--snowpipe-config", "n_rows=1000"``: a stage keyed on a
    config value is looked up with that value). Raises NotCached, naming the fix, when ``pytest``
    has not stored that output yet (or the code changed since).
    """
    from pytest_snowpipe.doubles.sql.embedded import create_embedded_session
    from pytest_snowpipe.plugin import stage_cache_of

    session: list[Any] = []

    def get_session() -> Any:  # a session of this process's own: it outlives the pytest run below
        if not session:
            session.append(create_embedded_session())
        return session[0]

    get_session()  # the engine runs before the pytest run below, so that run leaves it (and its frames) open
    found: dict[str, Any] = {}

    class _Read:
        def pytest_runtestloop(self, session: pytest.Session) -> bool:  # after the plugin's (tryfirst): keys exist
            memo = stage_cache_of(session.config)
            if memo is None:
                found["error"] = (f"no stage cache for the suite under {Path(rootdir).resolve()}: no gate was collected, "
                                  "or the cache is off (-p no:cacheprovider without snowpipe_cache_dir, --snowpipe-no-cache)")
                return True
            if stage not in memo.keys:
                found["error"] = f"{stage!r} is no stage of the suite under {Path(rootdir).resolve()}; stages: {', '.join(memo.keys)}"
                return True
            loaded = memo.store.load(stage, memo.keys[stage], get_session)
            if loaded is None:
                found["error"] = (f"stage {stage!r} has no cached output for the current code and data (key "
                                  f"{memo.keys[stage]} in {memo.store.root}); run pytest on the suite first")
            else:
                found["value"] = loaded[1]
            return True

    one_process = ["-n", "0"] if _has_xdist() else []  # an ini's addopts may ask for xdist workers
    code = pytest.main([str(rootdir), "-qq", "--no-summary", *one_process, *pytest_args], plugins=[_Read()])
    if "value" in found:
        return found["value"]
    raise NotCached(found.get("error") or f"pytest could not collect the suite under {rootdir} (exit code {int(code)})")


def _has_xdist() -> bool:
    import importlib.util

    return importlib.util.find_spec("xdist") is not None
