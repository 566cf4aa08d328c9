"""sp.load: a stage's cached output for the current code, outside pytest (a notebook, a script)."""
from __future__ import annotations

import subprocess
import sys

from conftest import PURE_STAGES

LOAD = """
import pytest_snowpipe as sp
try:
    print("VALUE", sp.load({stage!r}, "."))
except sp.NotCached as exc:
    print("NOTCACHED", exc)
"""


def _load(path, stage):
    done = subprocess.run([sys.executable, "-c", LOAD.format(stage=stage)], cwd=path, capture_output=True, text=True,
                          check=True, timeout=300)
    return next(line for line in done.stdout.splitlines() if line.startswith(("VALUE", "NOTCACHED")))


def test_load_returns_the_cached_output_for_the_current_code(pipeline_suite):
    pytester = pipeline_suite()
    assert _load(pytester.path, "metrics").startswith("NOTCACHED stage 'metrics' has no cached output")  # no run yet
    pytester.runpytest().assert_outcomes(passed=1)
    assert _load(pytester.path, "metrics") == "VALUE {'score': 1.0}"
    assert _load(pytester.path, "model") == "VALUE {'weights': 10}"
    # the code changes: the stored output is not the current code's
    pytester.makeconftest(PURE_STAGES.replace('model["weights"] / 10', 'model["weights"] / 20'))
    line = _load(pytester.path, "metrics")
    assert line.startswith("NOTCACHED stage 'metrics' has no cached output for the current code") and "run pytest" in line
    assert _load(pytester.path, "model") == "VALUE {'weights': 10}"  # upstream of the change: still current


def test_load_names_the_stages_when_the_name_is_wrong(pipeline_suite):
    path = pipeline_suite().path
    assert _load(path, "modle") == f"NOTCACHED 'modle' is no stage of the suite under {path.resolve()}; stages: raw, model, metrics"
