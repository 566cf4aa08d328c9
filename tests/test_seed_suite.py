"""The seed quickstart's whole DAG and local script as one suite (tests/seed_suite): the plan has the
seed's tasks, ML Job options and config; a local run names its model version after the run (issue 13)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

SUITE = Path(__file__).parent / "seed_suite"


@pytest.fixture
def seed(pytester: pytest.Pytester) -> pytest.Pytester:
    for f in SUITE.iterdir():
        if f.is_file():
            shutil.copy(f, pytester.path / f.name)
    return pytester


def test_the_plan_has_the_seeds_tasks_options_and_config(seed: pytest.Pytester):
    result = seed.runpytest_subprocess("--snowpipe-deploy", "--snowpipe-dry-run", "--schedule", "1d")
    assert result.ret == 0, result.stderr.str()
    out = result.stdout.str()
    assert "Task Graph DAG -> SNOWBANK.DEV" in out and "schedule:   every 1 day" in out
    assert "warehouse:  DEMO_WH" in out and "stage:      @SNOWBANK.DEV.DAG_STAGE" in out
    assert ("config:     data_table='SNOWBANK.DATA.MORTGAGE_LENDING_DEMO_DATA', dataset_name='mortgage_dataset', "
            "model_name='mortgage_model', metric_name='test_accuracy', metric_threshold=0.1") in out
    for task in ("PREPARE_DATA", "TRAIN_MODEL", "METRICS", "CHECK_MODEL_QUALITY", "CHECK_MODEL_QUALITY_PROMOTE",
                 "CHECK_MODEL_QUALITY_ALERT", "SNOWPIPE_FINALIZER"):
        assert re.search(rf"^\s+{task}\s", out, re.M), task
    assert re.search(r"ML Job \w+_TRAIN_MODEL on compute pool DEMO_POOL, job stage @SNOWBANK\.DEV\.JOB_STAGE, "
                     r"2 instance\(s\), database='SNOWBANK', schema='DEV'.*: CALL SYSTEM\$EXECUTE_ML_JOB \(ASYNC false\)", out)
    assert "teardown of prepare_data" in out


def test_a_local_run_names_its_model_version_after_the_run(seed: pytest.Pytester):
    result = seed.runpytest_subprocess("--snowpipe-no-cache")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*promote: mortgage_model v20??????_?????? is now the default*"])
    (version,) = (seed.path / ".snowpipe" / "registry" / "mortgage_model" / "versions").iterdir()
    assert re.fullmatch(r"v\d{8}_\d{6}", version.name)


def test_the_compiled_graph_runs_on_the_emulator(seed: pytest.Pytester):
    result = seed.runpytest_subprocess("--snowpipe-deploy", "--snowpipe-target", "local")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["task graph DAG: SUCCEEDED*", "*CHECK_MODEL_QUALITY_PROMOTE*SUCCEEDED*"])
