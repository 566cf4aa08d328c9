"""Hostile input (issue 14): each case a careless or hostile user can cause, run as a real pytest
session; each gets a clear error or the right verdict, heals, and leaks nothing."""
from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import GATE, INI, PURE_STAGES

CACHE = Path(".pytest_cache") / "d" / "snowpipe"
HOUR = 3600


def _usage_error(result: pytest.RunResult, *patterns: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines(["ERROR: *" + "*".join(patterns) + "*"])
    assert "Traceback" not in result.stderr.str() and "INTERNALERROR" not in result.stderr.str()


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


# --- 1. the cache heals itself ------------------------------------------------------------------

PADDED = PURE_STAGES.replace(
    'return {"weights": sum(raw)}', 'return {"weights": sum(raw), "pad": "m" * 1500}'
).replace('return {"score": model["weights"] / 10}', 'return {"score": model["weights"] / 10, "pad": "s" * 1500}'
).replace("return [1, 2, 3, 4]", 'return [1, 2, 3, 4] + ["r" * 1500]').replace(
    "sum(raw)", "sum(raw[:4])"
)


def _entries(pytester: pytest.Pytester) -> set[str]:
    root = pytester.path / CACHE
    return {p.name.split(".")[0] for p in root.iterdir() if not p.name.startswith(".") and p.is_dir()}


def test_1_cache_evicting_the_model_heals_on_the_next_run(pipeline_suite):
    # a bound that holds one output: model is evicted when metrics is stored
    pytester = pipeline_suite(conftest=PADDED, ini=INI + "snowpipe_cache_max_size = 4KB\n")
    pytester.runpytest().assert_outcomes(passed=1)
    assert _entries(pytester) == {"metrics"}
    import shutil

    shutil.rmtree(pytester.path / ".snowpipe")  # a promote that needs the model itself, not the "unchanged" shortcut
    result = pytester.runpytest("-W", "default")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "*SnowpipeCacheWarning*stage 'model' is needed by the action of gate 'test_gate', but its entry is not in "
        "*(evicted by the size bound, or unreadable); computing it*",
        "*gate test_gate: PASS*-> promote: model v0001 is now the default*",
    ])
    assert "promote has no model" not in result.stdout.str()
    again = pytester.runpytest("-W", "default")  # and stays healed
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(["*-> promote: model v0001 is already the default*"])


def test_1_garbage_manifest_of_an_upstream_entry_is_warned_about_and_recomputed(pipeline_suite):
    pytester = pipeline_suite()
    pytester.runpytest().assert_outcomes(passed=1)
    (model_entry,) = [p for p in (pytester.path / CACHE).iterdir() if p.name.startswith("model.")]
    (model_entry / "manifest.json").write_bytes(b"\xff\xfe garbage")
    result = pytester.runpytest("-W", "default")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*SnowpipeCacheWarning*stage 'model': entry *{model_entry.name}/manifest.json is "
                                 "damaged (missing or unreadable manifest); discarded, recomputing it when needed*"])
    result.stdout.fnmatch_lines(["*-> promote: model v0001 is already the default*"])
    assert not model_entry.exists()  # discarded: computed and stored again when something needs it


# --- 2. secrets never reach a traceback, -l locals or JUnit -------------------------------------

SECRET_INI = INI + """    password = hunter2-very-secret
    api_token = tok-abcdef-123456
    dsn = https://bob:pw-in-url-999@db.example.com/x
"""


def test_2_failing_gate_shows_a_redacted_config(pipeline_suite):
    gate = GATE.replace('"score below threshold"', "snowpipe_config")
    pytester = pipeline_suite(gate=gate, ini=SECRET_INI)
    result = pytester.runpytest("-vv", "-l", "--junitxml=junit.xml", "--snowpipe-config", "threshold=9")
    result.assert_outcomes(failed=1)
    shown = result.stdout.str() + result.stderr.str() + (pytester.path / "junit.xml").read_text()
    for secret in ("hunter2-very-secret", "tok-abcdef-123456", "pw-in-url-999"):
        assert secret not in shown
    result.stdout.fnmatch_lines(["snowpipe_config = SnowpipeConfig({*'password': '<redacted>'*})"])


def test_2_the_config_still_gives_real_values_and_pickles():
    import pickle

    from pytest_snowpipe.pipeline.config import freeze

    config = freeze({"password": "hunter2", "n": 3})
    assert config["password"] == "hunter2" and dict(config) == {"password": "hunter2", "n": 3}
    assert "hunter2" not in repr(config) and "hunter2" not in str(config)
    assert pickle.loads(pickle.dumps(config)) == config
    with pytest.raises(TypeError):
        config["n"] = 4  # type: ignore[index]


# --- 3. registry corruption ---------------------------------------------------------------------

def _registry(pytester: pytest.Pytester) -> Path:
    return pytester.path / ".snowpipe" / "registry" / "model"


@pytest.mark.parametrize("target", ["default.json", "versions/v0001/meta.json"])
def test_3_garbage_registry_metadata_names_the_path(pipeline_suite, target):
    pytester = pipeline_suite()
    pytester.runpytest().assert_outcomes(passed=1)
    path = _registry(pytester) / target
    path.write_bytes(b"\x89\xff\xfe\x00garbage")
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*RegistryError: registry metadata file {path} is corrupt*restore*"])
    result.stdout.fnmatch_lines(["FAILED test_gate.py::test_gate - pytest_snowpipe.errors.RegistryError: *"])


def test_3_truncated_model_is_caught_by_its_checksum(pipeline_suite):
    pytester = pipeline_suite()
    pytester.runpytest().assert_outcomes(passed=1)
    version = _registry(pytester) / "versions" / "v0001"
    meta = json.loads((version / "meta.json").read_text())
    assert set(meta["checksums"]) == {"model.pkl"} and len(meta["checksums"]["model.pkl"]) == 64
    pkl = version / "model.pkl"
    pkl.write_bytes(pkl.read_bytes()[:-5])
    result = pytester.runpytest()  # same code, data, metrics: but v0001 is damaged, so no "unchanged" shortcut
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*-> promote: model v0002 is now the default*"])

    from pytest_snowpipe.errors import RegistryError
    from pytest_snowpipe.registry.local import LocalRegistry

    registry = LocalRegistry(pytester.path / ".snowpipe" / "registry")
    assert registry.default("model").load() == {"weights": 10}  # type: ignore[union-attr]
    with pytest.raises(RegistryError, match=rf"registry file {pkl} does not match the sha256 checksum.*restore"):
        registry.get("model", "v0001").load()


def test_3_unpicklable_model_file_without_checksum_is_a_registry_error(tmp_path):
    from pytest_snowpipe.errors import RegistryError
    from pytest_snowpipe.registry.local import LocalRegistry

    registry = LocalRegistry(tmp_path)
    version = registry.promote("m", {"a": 1})
    meta = json.loads((version.path / "meta.json").read_text())
    del meta["checksums"]  # a version written before checksums existed
    (version.path / "meta.json").write_text(json.dumps(meta))
    (version.path / "model.pkl").write_bytes(b"not a pickle")
    with pytest.raises(RegistryError, match=r"registry file .*model.pkl cannot be unpickled \(UnpicklingError"):
        registry.get("m", "v0001").load()


# --- 4. a chain of 1001 stages ------------------------------------------------------------------

def _chain(n: int) -> str:
    lines = ["import pytest", '@pytest.fixture(scope="session")\ndef s0():\n    return 0']
    lines += [f'@pytest.fixture(scope="session")\ndef s{i}(s{i - 1}):\n    return s{i - 1} + 1' for i in range(1, n)]
    return "\n".join(lines)


@pytest.mark.parametrize("n", [1001, 300])
def test_4_too_deep_chain_is_one_graph_error(pytester, n):
    pytester.makeconftest(_chain(n))
    pytester.makepyfile(test_gate=f'''
import pytest
@pytest.mark.snowpipe_gate(on_fail="alert")
def test_gate(s{n - 1}):
    assert s{n - 1} > 0
''')
    for args in ((), ("--snowpipe-deploy", "--snowpipe-dry-run")):
        result = pytester.runpytest(*args)
        _usage_error(result, f"the stage chain s0 -> s1 -> s2 -> ... -> s{n - 2} -> s{n - 1} is {n} stages deep",
                     "merge consecutive stages")
        assert "RecursionError" not in result.stdout.str() + result.stderr.str()
        assert "no test is marked" not in result.stderr.str()


# --- 5. --snowpipe-deploy with an unreachable connection ---------------------------------------

def test_5_unreachable_connection_is_a_usage_error(pipeline_suite, tmp_path, monkeypatch):
    home = tmp_path / "sfhome"
    home.mkdir()
    (home / "connections.toml").write_text(textwrap.dedent("""
        [dead]
        account = "nowhere"
        user = "u"
        password = "pw-secret-123"
        host = "127.0.0.1"
        port = 9
        protocol = "http"
        login_timeout = 2
        network_timeout = 2
    """))
    (home / "connections.toml").chmod(0o600)
    monkeypatch.setenv("SNOWFLAKE_HOME", str(home))
    gate = GATE.replace('on_fail="alert"', "on_fail=page").replace(
        "import pytest\n", "import pytest\n\ndef page(ctx):\n    pass\n"
    )  # an own action: an alert would need a notification integration first
    result = pipeline_suite(gate=gate).runpytest("--snowpipe-deploy", "--snowpipe-connection", "dead")
    _usage_error(result, "Snowflake connection 'dead'", "failed to connect", "Check the account")
    assert "pw-secret-123" not in result.stdout.str() + result.stderr.str()


# --- 6. --schedule= (empty) and digits of other scripts -----------------------------------------

@pytest.mark.parametrize(
    ("value", "expected"),
    [("", "'' is empty (an unset CI variable?)"), ("  ", "is empty"), ("١٠m", "has characters other than ASCII"),
     ("cron ٠ 6 * * * UTC", "has characters other than ASCII")],
)
def test_6_empty_or_non_ascii_schedule_is_a_usage_error(pipeline_suite, value, expected):
    result = pipeline_suite().runpytest("--snowpipe-deploy", "--snowpipe-dry-run", f"--schedule={value}")
    _usage_error(result, "--schedule:", expected)


def test_6_empty_schedule_without_deploy_is_named_too(pipeline_suite):
    _usage_error(pipeline_suite().runpytest("--schedule="), "--schedule only apply with --snowpipe-deploy")


def test_6_non_ascii_digits_are_refused_by_the_parser():
    from pytest_snowpipe.taskgraph.schedule import ScheduleError, _check_fires, parse_schedule

    for text in ("١٠m", "١", "３０m"):
        with pytest.raises(ScheduleError):
            parse_schedule(text)
    for expr in ("٥ 6 * * *", "*/٥ 6 * * *"):  # past the ASCII check, cronsim refuses them too
        with pytest.raises(ScheduleError, match="invalid cron minute field"):
            _check_fires(expr, expr, "UTC")


# --- 7. a cycle's message names only the stages on the cycle ------------------------------------

def test_7_cycle_names_only_its_stages(pipeline_suite):
    conftest = '''
import pytest

@pytest.fixture(scope="session")
def a(b):
    return 1

@pytest.fixture(scope="session")
def b(a):
    return 2

@pytest.fixture(scope="session")
def metrics(a):
    return {"score": 1}
'''
    gate = GATE.replace('on_pass="promote", ', "")
    result = pipeline_suite(conftest=conftest, gate=gate).runpytest()
    _usage_error(result, "stages ", " form a cycle")
    line = next(x for x in result.stderr.lines if "form a cycle" in x)
    assert "metrics" not in line and "a" in line.split("stages ")[1] and "b," in line


def test_7_cycle_members_unit():
    from pytest_snowpipe.pipeline.graph import cycle_members

    preds = {"a": ["c"], "b": ["a"], "c": ["b"], "d": ["c"], "e": ["e"], "f": []}
    assert cycle_members(list(preds), preds.__getitem__) == ["a", "b", "c", "e"]


# --- 8. a failing gate without actions fails the emulated graph ---------------------------------

def test_8_failing_gate_without_actions_fails_the_emulator_run(pipeline_suite):
    gate = GATE.replace('(on_pass="promote", on_fail="alert")', "")
    pytester = pipeline_suite(gate=gate)
    local = pytester.runpytest("--snowpipe-config", "threshold=9")
    assert local.ret == 1
    result = pytester.runpytest_subprocess("--snowpipe-deploy", "--snowpipe-target", "local", "--snowpipe-config", "threshold=9")
    assert result.ret == 1, result.stdout.str()
    result.stdout.fnmatch_lines(["task graph *: FAILED *(first error: TEST_GATE)*",
                                 "*TaskBodyError: gate test_gate FAILED and has no on_fail action: score below t*"])
    passing = pytester.runpytest_subprocess("--snowpipe-deploy", "--snowpipe-target", "local")
    assert passing.ret == 0
    passing.stdout.fnmatch_lines(["task graph *: SUCCEEDED*"])


# --- 9. an invalid model_name is found at collection, dry run included ---------------------------

@pytest.mark.parametrize("args", [(), ("--snowpipe-deploy", "--snowpipe-dry-run")])
@pytest.mark.parametrize("name", ["my model", "../escape", "m\\n"])
def test_9_invalid_model_name_is_a_usage_error_before_anything_runs(pipeline_suite, args, name):
    gate = GATE.replace('on_fail="alert"', f'on_fail="alert", model_name={name!r}')
    conftest = PURE_STAGES.replace("def raw():", "def raw():\n    raise RuntimeError('a stage ran')")
    result = pipeline_suite(conftest=conftest, gate=gate).runpytest(*args)
    _usage_error(result, f"gate 'test_gate': model_name={name!r} is not a valid registry name",
                 "use letters, digits, _ and -")


# --- 10. orphaned remote workers and stale staging folders --------------------------------------

ORPHAN_STAGES = '''
import os
import pytest
import pytest_snowpipe as sp

@pytest.fixture(scope="session")
@sp.remote(compute_pool="POOL", stage_name="JOB_STAGE")
def model():
    with open(os.environ["FIFO"], "w") as fh:  # tell the test who we are, then train forever
        fh.write(f"{os.getpid()} {os.path.dirname(os.path.abspath(__import__('sys').argv[1]))}\\n")
    import threading
    threading.Event().wait()

@pytest.fixture(scope="session")
def metrics(model):
    return {"score": 1.0}
'''


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="waits for the worker's exit with a pidfd (Linux)")
def test_10_kill_9_of_pytest_takes_the_remote_worker_and_its_folder_with_it(pipeline_suite, tmp_path):
    pytester = pipeline_suite(conftest=ORPHAN_STAGES, gate=GATE.replace('on_pass="promote", ', ""))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    import pytest_snowpipe

    package_root = str(Path(pytest_snowpipe.__file__).resolve().parents[1])  # the copy under test, first
    env = {**os.environ, "FIFO": str(fifo), "TMPDIR": str(tmp), "PYTHONPATH": os.pathsep.join([package_root, *sys.path])}
    worker = 0
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"], cwd=pytester.path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with open(fifo) as fh:  # blocks until the worker opened it: no sleep
            pid_text, folder = fh.readline().split()
        worker = int(pid_text)
        assert Path(folder).is_dir()
        watch = os.pidfd_open(worker)
        proc.kill()
        proc.wait()
        ready, _, _ = select.select([watch], [], [], 30)  # readable when the worker has exited
        os.close(watch)
        assert ready, f"worker {worker} outlived its pytest process"
        assert not Path(folder).exists()
    finally:
        proc.kill()
        proc.wait()
        if worker:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker, signal.SIGKILL)  # only if the fix failed: leave no orphan behind


def test_10_folders_of_dead_pytest_processes_are_swept(tmp_path, monkeypatch):
    from pytest_snowpipe.engines.job_process import sweep_orphaned_folders

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = tmp_path / f"snowpipe-remote-{int(dead.stdout)}-abc"
    mine = tmp_path / f"snowpipe-remote-{os.getpid()}-def"
    for folder in (gone, mine):
        folder.mkdir()
        (folder / "payload.pkl").write_bytes(b"x")
    sweep_orphaned_folders()
    assert not gone.exists() and mine.exists()


def test_10_stale_staging_folders_are_cleaned_on_the_next_run(pipeline_suite):
    pytester = pipeline_suite()
    pytester.runpytest().assert_outcomes(passed=1)
    versions = _registry(pytester) / "versions"
    old_promote, new_promote = versions / ".staging-killed", versions / ".staging-running"
    old_pointer = versions.parent / ".default.json.killed.tmp"
    old_store, new_store = pytester.path / CACHE / ".tmp-killed", pytester.path / CACHE / ".tmp-running"
    for folder in (old_promote, new_promote, old_store, new_store):
        folder.mkdir()
        (folder / "model.pkl").write_bytes(b"half")
    old_pointer.write_text("{")
    for stale in (old_promote, old_store, old_pointer):
        _age(stale, 2 * HOUR)
    pytester.runpytest("--snowpipe-config", "threshold=9").assert_outcomes(failed=1)  # no promote, no store
    assert not old_promote.exists() and not old_store.exists() and not old_pointer.exists()
    assert new_promote.exists() and new_store.exists()  # may belong to a run going on now


# --- 11. contracts: row counts, non-frame outputs; a failed cache store blames the stage ---------

CONTRACT_STAGES = '''
import pandas as pd
import pytest
import pytest_snowpipe as sp

ROWS = sp.Contract(x=sp.column(int, nullable=True, min_rows=1), min_rows=1)

@pytest.fixture(scope="session")
@sp.expect(ROWS)
def raw():
    return RAW

@pytest.fixture(scope="session")
def metrics(raw):
    return {"score": 1.0}
'''


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("pd.DataFrame({'x': pd.Series([], dtype='int64')})", "<frame>  min_rows  1 * 0 rows, at least 1 required"),
        ("pd.DataFrame({'x': pd.array([None, None], dtype='Int64')})", "x  * min_rows  1 * 0 rows with a value, at least 1"),
    ],
)
def test_11_row_count_rules_block_the_stage(pipeline_suite, raw, expected):
    gate = GATE.replace('on_pass="promote", ', "")
    result = pipeline_suite(conftest=CONTRACT_STAGES.replace("RAW", raw), gate=gate).runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*stage 'raw' output violates its contract*", f"*{expected}*"])


def test_11_non_frame_output_names_the_stage_and_the_contract(pipeline_suite):
    gate = GATE.replace('on_pass="promote", ', "")
    result = pipeline_suite(conftest=CONTRACT_STAGES.replace("RAW", "[1, 2]"), gate=gate).runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "*ContractTargetError: stage 'raw' output: sp.expect(Contract(x)) checks a DataFrame, but the stage "
        "returned builtins.list*",
        "raw * error *",
    ])


def test_11_failed_cache_store_is_the_stage_error(pipeline_suite):
    conftest = '''
import pytest
from snowflake.snowpark.functions import col

@pytest.fixture(scope="session")
def raw(snowpipe_session):
    return snowpipe_session.create_dataframe([[1]], schema=["a"]).select(col("no_such_column"))

@pytest.fixture(scope="session")
def metrics(raw):
    return {"score": 1.0}
'''
    gate = GATE.replace('on_pass="promote", ', "")
    result = pipeline_suite(conftest=conftest, gate=gate).runpytest()
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "*pytest-snowpipe: stage 'raw' ran, but storing its output in the stage cache failed*",
        "raw * error *",
        "*gate test_gate: ERROR*stage raw failed: storing its output in the stage cache failed*",
    ])
    assert "setup failed" not in out


# --- 12. a stage printing 10 MB on the emulator --------------------------------------------------

def test_12_emulated_stage_printing_10_mb_does_not_flood_the_terminal(pipeline_suite):
    conftest = PURE_STAGES.replace("def raw():\n", "def raw():\n    print('x' * 10_000_000)\n")
    gate = GATE.replace('on_pass="promote", ', "")
    result = pipeline_suite(conftest=conftest, gate=gate).runpytest_subprocess(
        "--snowpipe-deploy", "--snowpipe-target", "local"
    )
    assert result.ret == 0
    out = result.stdout.str()
    assert len(out) < 50_000
    result.stdout.fnmatch_lines(["output of task RAW (10,000,001 characters printed; 9,998,001 more characters were cut):"])


# --- the four wrong changes the suite let through ----------------------------------------------

def _chain_graph(n: int):
    from pytest_snowpipe.pipeline.graph import PipelineGraph, Stage

    def nop() -> None:
        return None

    stages = tuple(
        Stage(name=f"s{i}", func=nop, predecessors=(f"s{i - 1}",) if i % 10 else (), environment=(), is_yield=False,
              remote=None, location="x.py:1", key=f"k{i}")
        for i in range(n)
    )
    return PipelineGraph(stages=stages, gates=())


def _compile_problems(graph, **kw) -> str:
    from pytest_snowpipe.taskgraph.compile import CompileError, CompileOptions, compile_graph

    try:
        compile_graph(graph, CompileOptions(dag_name="EDGE", check_pickle=False, **kw))
    except CompileError as exc:
        return str(exc)
    return ""


def test_wrong_change_task_limit_is_exactly_1000():
    # root + stages + finalizer: 998 stages make exactly 1000 tasks, 999 make 1001
    assert "tasks" not in _compile_problems(_chain_graph(998))
    assert "would have 1001 tasks" in _compile_problems(_chain_graph(999))


def test_wrong_change_compile_time_schedule_upper_bound():
    from datetime import timedelta

    assert _compile_problems(_chain_graph(3), schedule=timedelta(days=8)) == ""
    text = _compile_problems(_chain_graph(3), schedule=timedelta(days=8, seconds=1))
    assert "a Task Graph interval must be between 10 seconds and 8 days" in text


@pytest.mark.parametrize(("higher", "champion", "value"), [(True, 0.75, 0.5), (False, 0.5, 0.75)])
def test_wrong_change_champion_tolerance_boundary_passes(higher, champion, value):
    from pytest_snowpipe.registry.champion import Champion, assert_no_regression

    champ = Champion(model_name="m", version="v0001", metrics={"f1": champion}, promoted_at="", location="here")
    assert_no_regression({"f1": value}, champ, "f1", tolerance=0.25, higher_is_better=higher)  # exactly at the bound
    with pytest.raises(AssertionError):
        assert_no_regression({"f1": value - 0.125 if higher else value + 0.125}, champ, "f1", tolerance=0.25,
                             higher_is_better=higher)


def test_wrong_change_webhook_error_that_contains_the_url_is_scrubbed(monkeypatch):
    import urllib.error
    import urllib.request

    from pytest_snowpipe.actions.alert import _post_webhook
    from pytest_snowpipe.errors import ActionError

    url = "https://hooks.example.com/services/T000/B000/very-secret-path"

    def refuse(request, timeout):
        raise urllib.error.URLError(f"cannot reach {url}: connection refused")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(ActionError) as info:
        _post_webhook(url, {"verdict": "FAIL"})
    assert "very-secret-path" not in str(info.value)
    assert "cannot reach <webhook URL>: connection refused" in str(info.value)


# --- the strategy honours every rule, checked without validate ----------------------------------

def test_strategy_honours_each_rule_checked_independently_of_validate():
    import datetime as dt
    import re

    from hypothesis import given, settings

    import pytest_snowpipe as sp

    contract = sp.Contract(
        ID=sp.column(int, unique=True, ge=10, lt=10_000),
        AMOUNT=sp.column(float, ge=0.5, le=2.5),
        KIND=sp.column(str, isin=["a", "b", "c"]),
        CODE=sp.column(str, regex=r"[A-Z]{2}[0-9]"),
        NOTE=sp.column(str, nullable=True, min_rows=2),
        FLAG=sp.column(bool),
        WHEN=sp.column(dt.datetime, gt=dt.datetime(2020, 1, 1), le=dt.datetime(2021, 1, 1)),
        min_rows=3,
        max_rows=40,
    )

    @settings(max_examples=60, deadline=None, database=None)
    @given(contract.strategy(max_rows=100))
    def check(df):
        assert 3 <= len(df) <= 40
        assert list(df.columns) == ["ID", "AMOUNT", "KIND", "CODE", "NOTE", "FLAG", "WHEN"]
        for name in ("ID", "AMOUNT", "KIND", "CODE", "FLAG", "WHEN"):
            assert not df[name].isna().any(), name
        assert df["ID"].dtype.kind in "iu" and df["ID"].is_unique
        assert ((df["ID"] >= 10) & (df["ID"] < 10_000)).all()
        assert df["AMOUNT"].dtype.kind == "f" and ((df["AMOUNT"] >= 0.5) & (df["AMOUNT"] <= 2.5)).all()
        assert set(df["KIND"]) <= {"a", "b", "c"}
        assert all(isinstance(v, str) and re.fullmatch(r"[A-Z]{2}[0-9]", v) for v in df["CODE"])
        assert df["NOTE"].notna().sum() >= 2
        assert all(isinstance(v, str) for v in df["NOTE"].dropna())
        assert df["FLAG"].dtype.kind == "b"
        assert df["WHEN"].dtype.kind == "M"
        assert ((df["WHEN"] > dt.datetime(2020, 1, 1)) & (df["WHEN"] <= dt.datetime(2021, 1, 1))).all()

    check()


def test_row_count_rules_push_down_in_the_same_single_query(embedded_session):
    import pytest_snowpipe as sp

    session = embedded_session
    contract = sp.Contract(X=sp.column(int, nullable=True, min_rows=2, max_rows=2), min_rows=4)
    from snowflake.snowpark.types import LongType, StructField, StructType

    df = session.create_dataframe([[1], [None], [3]], schema=StructType([StructField("X", LongType(), nullable=True)]))
    result = contract.validate(df, report_only=True)
    assert result.backend == "snowpark" and result.queries == 1
    assert result.failed("<frame>", "min_rows") and not result.failed("X", "min_rows")
    ok = sp.Contract(X=sp.column(int, nullable=True, min_rows=2, max_rows=2), min_rows=3)
    assert ok.validate(df, report_only=True).ok
    too_many = sp.Contract(X=sp.column(int, nullable=True, max_rows=1))
    assert too_many.validate(df, report_only=True).failed("X", "max_rows")
