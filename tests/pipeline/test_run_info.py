"""snowpipe_run (issue 13, item 3): the run's identity locally, on the emulator and in a task; stages
that read it are keyed on what they read."""
from __future__ import annotations

import datetime as dt
import json
import textwrap
from pathlib import Path

import pytest

from pytest_snowpipe.pipeline.codedeps import analyze
from pytest_snowpipe.pipeline.run_info import RunInfo, from_task_context, new_local_run


def reads_target(snowpipe_run):
    return snowpipe_run.target


def reads_config(snowpipe_run):
    return snowpipe_run.config["dataset_name"], snowpipe_run.config.get("model_name")


def reads_everything(snowpipe_run):
    return vars(snowpipe_run)


def test_the_fields_a_stage_reads_are_found_statically():
    root = Path(__file__).parent
    assert analyze(reads_target, root, None, "snowpipe_run").run_fields == ("target",)
    deps = analyze(reads_config, root, None, "snowpipe_run")
    assert deps.run_fields == ("config",) and deps.config_keys == ("dataset_name", "model_name")
    opaque = analyze(reads_everything, root, None, "snowpipe_run")
    assert opaque.run_fields is None and opaque.config_keys is None


def test_a_local_run_has_an_id_a_scheduled_time_and_target_local():
    now = dt.datetime(2026, 3, 1, 6, 0, 5, 123, tzinfo=dt.UTC)
    info = new_local_run({"a": 1}, now=now)
    assert info.run_id.startswith("local-20260301_060005-") and info.scheduled == now.replace(microsecond=0)
    assert info.target == "local" and info.config == {"a": 1}
    assert RunInfo.from_json(info.to_json(), {"a": 1}) == info
    assert f"{info.template_values()['run_scheduled']:%Y%m%d_%H%M%S}" == "20260301_060005"


def test_in_a_task_it_comes_from_the_task_context():
    class Ctx:
        def get_current_task_graph_run_group_id(self):
            return "RG-42"

        def get_current_task_graph_original_schedule(self):
            return dt.datetime(2026, 1, 2, 3, 4, 5)

    info = from_task_context(Ctx(), "snowflake", {"k": "v"})
    assert info == RunInfo("RG-42", dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "snowflake", {"k": "v"})


SUITE = '''
import json, os, pytest

@pytest.fixture(scope="session")
def who(snowpipe_run):
    with open(os.path.join(os.environ["OUT"], "who.log"), "a") as fh:
        fh.write("who\\n")
    return snowpipe_run.target

@pytest.fixture(scope="session")
def stamped(snowpipe_run):
    with open(os.path.join(os.environ["OUT"], "stamped.log"), "a") as fh:
        fh.write("stamped\\n")
    return snowpipe_run.run_id

@pytest.fixture(scope="session")
def metrics(who, stamped):
    return {"who": who, "stamped": stamped}
'''

GATE = '''
import pytest

@pytest.mark.snowpipe_gate()
def test_gate(metrics, snowpipe_run):
    assert metrics["who"] == "local" == snowpipe_run.target
    assert metrics["stamped"] == snowpipe_run.run_id
    assert snowpipe_run.scheduled.tzinfo is not None
'''


def test_stages_are_keyed_on_the_run_fields_they_read(pytester: pytest.Pytester, monkeypatch):
    monkeypatch.setenv("OUT", str(pytester.path))
    pytester.makeconftest(textwrap.dedent(SUITE))
    pytester.makepyfile(test_gate=GATE)
    for _ in range(2):
        pytester.runpytest_subprocess().assert_outcomes(passed=1)
    assert (pytester.path / "who.log").read_text().count("who") == 1  # target is the same: cached
    assert (pytester.path / "stamped.log").read_text().count("stamped") == 2  # a new run id: recomputed


def test_emulated_task_sees_the_run_group_and_target_emulator(pytester: pytest.Pytester, monkeypatch):
    monkeypatch.setenv("OUT", str(pytester.path))
    pytester.makeconftest(textwrap.dedent('''
        import pytest

        @pytest.fixture(scope="session")
        def who(snowpipe_run):
            return {"target": snowpipe_run.target, "run_id": snowpipe_run.run_id,
                    "scheduled": snowpipe_run.scheduled.isoformat(), "cfg": snowpipe_run.config["name"]}
    '''))
    pytester.makeini("[pytest]\nsnowpipe_config =\n    name = seed\n")
    pytester.makepyfile(test_gate=textwrap.dedent('''
        import pytest

        @pytest.mark.snowpipe_gate()
        def test_gate(who):
            assert who["target"] == "emulator"
    '''))
    result = pytester.runpytest_subprocess("--snowpipe-deploy", "--snowpipe-target", "local", "-v")
    assert result.ret == 0, result.stdout.str()
    line = next(x for x in result.stdout.lines if x.startswith("WHO "))
    value = json.loads(line.split(None, 3)[3])["value"]
    assert value["target"] == "emulator" and value["cfg"] == "seed" and value["run_id"]
    assert dt.datetime.fromisoformat(value["scheduled"]).tzinfo is not None
