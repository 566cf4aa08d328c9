"""Import, in a background thread, the libraries a remote trip's result is likely made of.

While the worker runs the stage, the parent only waits; when the result comes back, unpickling
it imports the model's library (XGBoost: 1-3 s), which the parent's next stage needs anyway
(evaluating the model). Those are the libraries the remote stages' modules import (the warm
worker's preload list): importing them during the trip takes that time off the critical path.
"""
from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Iterable


def start(modules: Iterable[str]) -> threading.Thread | None:
    """Import each of ``modules`` not yet imported, in a daemon thread; None when there is none.

    An import that fails is left for the code that needs the module to report. Join the thread
    before this thread imports any of them (unpickling the result does): two threads importing
    one package can end with it missing from ``sys.modules`` in one of them (seen: KeyError 'xgboost').
    """
    missing = [name for name in modules if name not in sys.modules]
    if not missing:
        return None

    def run() -> None:
        for name in missing:
            try:
                importlib.import_module(name)
            except Exception:  # reported where the module is really used
                continue

    thread = threading.Thread(target=run, name="snowpipe-prefetch", daemon=True)
    thread.start()
    return thread
