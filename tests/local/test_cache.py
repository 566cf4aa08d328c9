"""The stage cache: unchanged stages are loaded, a change recomputes exactly what depends on it."""
from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import hypothesis  # noqa: F401  (its pytest plugin imports it at every summary: once is enough)

# Imported before any inline pytester run, these survive pytester's sys.modules restore: pandas
# registers its Arrow extension types once per process (a re-import fails to register them again).
import pandas.core.arrays.arrow.extension_types  # noqa: F401
import pytest

STAGES = '''
import pathlib
import pytest
import helpers

def ran(name):
    with open(pathlib.Path(__file__).parent / "runs.log", "a") as fh:
        fh.write(name + "\\n")

@pytest.fixture(scope="session")
def raw():
    ran("raw")
    return [1, 2, 3, 4]

@pytest.fixture(scope="session")
def features(raw):
    ran("features")
    return [x * 2 for x in raw]

@pytest.fixture(scope="session")
def model(features, snowpipe_config):
    ran("model")
    return {"weights": sum(features) * snowpipe_config["lr"]}

@pytest.fixture(scope="session")
def metrics(model):
    ran("metrics")
    return {"score": helpers.score(model)}
'''

HELPERS = '''
def score(model):
    return model["weights"] / 20
'''

GATE = '''
import pathlib
import pytest

@pytest.mark.snowpipe_gate(on_pass="promote", on_fail="alert")
def test_gate(metrics, snowpipe_config):
    with open(pathlib.Path(__file__).parent / "runs.log", "a") as fh:
        fh.write("gate\\n")
    assert metrics["score"] >= snowpipe_config["threshold"], "score below threshold"
'''

INI = """
[pytest]
snowpipe_config =
    threshold = 0.5
    lr = 1.0
"""

CACHE = Path(".pytest_cache") / "d" / "snowpipe"


@pytest.fixture
def suite(pytester: pytest.Pytester):
    """The counting pipeline (raw -> features -> model -> metrics -> gate) in a pytester folder."""

    def write(stages: str = STAGES, gate: str = GATE, ini: str = INI, helpers: str = HELPERS) -> pytest.Pytester:
        pytester.makeini(textwrap.dedent(ini))
        pytester.makeconftest(textwrap.dedent(stages))
        pytester.makepyfile(test_gate=textwrap.dedent(gate), helpers=textwrap.dedent(helpers))
        return pytester

    return write


def runs(pytester: pytest.Pytester) -> collections.Counter[str]:
    """What ran since the last call (stages and gates append their name to runs.log)."""
    log = pytester.path / "runs.log"
    if not log.exists():
        return collections.Counter()
    seen = collections.Counter(log.read_text().split())
    log.unlink()
    return seen


def stage_sources(result: pytest.RunResult) -> dict[str, str]:
    """stage -> "computed" | "cached", read from the summary table."""
    out = {}
    for line in result.stdout.lines:
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("ok", "error") and parts[2] in ("computed", "cached"):
            out[parts[0]] = parts[2]
    return out


def test_unchanged_rerun_loads_every_stage_and_gives_the_same_verdict(suite):
    pytester = suite()
    first = pytester.runpytest()
    first.assert_outcomes(passed=1)
    assert runs(pytester) == {"raw": 1, "features": 1, "model": 1, "metrics": 1, "gate": 1}
    assert stage_sources(first) == dict.fromkeys(("raw", "features", "model", "metrics"), "computed")

    second = pytester.runpytest()
    second.assert_outcomes(passed=1)
    assert runs(pytester) == {"gate": 1}  # the gate always runs, no stage does
    assert stage_sources(second) == dict.fromkeys(("raw", "features", "model", "metrics"), "cached")
    second.stdout.fnmatch_lines(
        ["gate test_gate: PASS * -> promote: model v0001 is already the default (unchanged: same code, data and metrics)"]
    )
    second.stdout.fnmatch_lines(["stage cache: .pytest_cache*d*snowpipe (* kB of 2.0 GB)"])
    from pytest_snowpipe.registry.local import LocalRegistry

    registry = LocalRegistry(pytester.path / ".snowpipe" / "registry")
    assert registry.versions("model") == ["v0001"]  # the same model, data and metrics: nothing to promote
    assert registry.get("model", "v0001").load() == {"weights": 20.0}
    assert registry.get("model", "v0001").metrics == {"score": 1.0}


def test_changed_stage_code_recomputes_only_it_and_its_descendants(suite):
    pytester = suite()
    pytester.runpytest().assert_outcomes(passed=1)
    runs(pytester)
    pytester.makeconftest(textwrap.dedent(STAGES.replace('["lr"]}', '["lr"] + 0.5}')))
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert runs(pytester) == {"model": 1, "metrics": 1, "gate": 1}
    assert stage_sources(result) == {"raw": "cached", "features": "cached", "model": "computed", "metrics": "computed"}


def test_changed_project_helper_recomputes_only_the_stage_calling_it(suite):
    pytester = suite()
    pytester.runpytest().assert_outcomes(passed=1)
    runs(pytester)
    pytester.makepyfile(helpers=HELPERS.replace("/ 20", "/ 10.0"))
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert runs(pytester) == {"metrics": 1, "gate": 1}
    result.stdout.fnmatch_lines(["metrics *ok*computed*score=2*"])


def test_changed_config_value_recomputes_only_the_stages_reading_it(suite):
    pytester = suite()
    pytester.runpytest().assert_outcomes(passed=1)
    runs(pytester)
    result = pytester.runpytest("--snowpipe-config", "lr=2.0")
    result.assert_outcomes(passed=1)
    assert runs(pytester) == {"model": 1, "metrics": 1, "gate": 1}  # model reads lr; metrics consumes model

    # threshold is read by the gate only: no stage recomputes, the gate runs against the cached metrics
    failed = pytester.runpytest("--snowpipe-config", "threshold=100")
    failed.assert_outcomes(failed=1)
    assert runs(pytester) == {"gate": 1}
    failed.stdout.fnmatch_lines(["gate test_gate: FAIL * -> alert: *score below threshold*"])


def test_graph_records_what_each_key_covers(suite):
    pytester = suite()
    items, _ = pytester.inline_genitems()
    gates = [i for i in items if i.get_closest_marker("snowpipe_gate")]
    from pytest_snowpipe.pipeline.graph import build_graph

    graph = build_graph(gates, config={"threshold": 0.5, "lr": 1.0}, root=pytester.path)
    assert graph.stage("model").config_keys == ("lr",)
    assert graph.stage("raw").config_keys == ()
    assert "helpers.score" in graph.stage("metrics").calls
    assert "helpers.score" not in graph.stage("model").calls
    other = build_graph(gates, config={"threshold": 0.9, "lr": 1.0}, root=pytester.path)
    assert [s.key for s in other.stages] == [s.key for s in graph.stages]  # threshold: read by no stage
    changed = build_graph(gates, config={"threshold": 0.5, "lr": 3.0}, root=pytester.path)
    assert changed.stage("raw").key == graph.stage("raw").key
    assert changed.stage("model").key != graph.stage("model").key
    assert changed.stage("metrics").key != graph.stage("metrics").key


def _entry(pytester: pytest.Pytester, stage: str) -> Path:
    found = [p for p in (pytester.path / CACHE).iterdir() if p.name.startswith(stage + ".")]
    assert len(found) == 1, found
    return found[0]


def test_corrupt_payload_is_warned_about_and_recomputed(suite):
    pytester = suite()
    pytester.runpytest().assert_outcomes(passed=1)
    runs(pytester)
    entry = _entry(pytester, "metrics")
    payload = next(p for p in entry.iterdir() if p.name != "manifest.json")
    payload.write_bytes(payload.read_bytes()[:-3] + b"}}}")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert runs(pytester) == {"metrics": 1, "gate": 1}  # recomputed; its input loads as before
    result.stdout.fnmatch_lines([f"*SnowpipeCacheWarning*stage 'metrics': entry {payload}*damaged (checksum mismatch*recomputing it"])
    assert stage_sources(result)["metrics"] == "computed" and stage_sources(result)["model"] == "cached"
    again = pytester.runpytest()  # the recomputed output was stored again, intact
    again.assert_outcomes(passed=1)
    assert runs(pytester) == {"gate": 1}
    assert "SnowpipeCacheWarning" not in again.stdout.str()


def test_partial_entry_without_manifest_is_never_loaded(suite):
    pytester = suite()
    pytester.runpytest().assert_outcomes(passed=1)
    runs(pytester)
    (_entry(pytester, "metrics") / "manifest.json").unlink()
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert runs(pytester) == {"metrics": 1, "gate": 1}
    result.stdout.fnmatch_lines(["*SnowpipeCacheWarning*stage 'metrics'*manifest.json*damaged (missing or unreadable manifest)*"])


def test_no_cache_option_neither_reads_nor_writes(suite):
    pytester = suite()
    result = pytester.runpytest("--snowpipe-no-cache")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / CACHE).exists()
    result.stdout.fnmatch_lines(["stage cache: off (--snowpipe-no-cache)"])
    pytester.runpytest().assert_outcomes(passed=1)
    runs(pytester)
    listing = sorted(p.name for p in (pytester.path / CACHE).iterdir())
    again = pytester.runpytest("--snowpipe-no-cache")
    assert runs(pytester) == {"raw": 1, "features": 1, "model": 1, "metrics": 1, "gate": 1}
    assert stage_sources(again) == dict.fromkeys(("raw", "features", "model", "metrics"), "computed")
    assert sorted(p.name for p in (pytester.path / CACHE).iterdir()) == listing


def test_cache_clear_option_empties_the_cache_first(suite):
    pytester = suite()
    pytester.runpytest().assert_outcomes(passed=1)
    runs(pytester)
    stale = pytester.path / CACHE / "stale.0123"
    stale.mkdir()
    result = pytester.runpytest("--snowpipe-cache-clear")
    result.assert_outcomes(passed=1)
    assert runs(pytester) == {"raw": 1, "features": 1, "model": 1, "metrics": 1, "gate": 1}
    assert not stale.exists()
    assert len([p for p in (pytester.path / CACHE).iterdir() if not p.name.startswith(".")]) == 4


def test_lru_eviction_keeps_the_cache_under_its_bound(suite):
    big = STAGES.replace("return [1, 2, 3, 4]", "return list(range(600))").replace(
        "return [x * 2 for x in raw]", "return [x * 2 for x in raw][:4]"
    )
    pytester = suite(stages=big, ini=INI + "snowpipe_cache_max_size = 3KB\n")
    pytester.runpytest().assert_outcomes(passed=1)
    names = {p.name.split(".")[0] for p in (pytester.path / CACHE).iterdir() if not p.name.startswith(".")}
    assert "raw" not in names  # the biggest and least recently used went first
    assert {"features", "model", "metrics"} <= names
    total = sum(f.stat().st_size for f in (pytester.path / CACHE).rglob("*") if f.is_file() and ".locks" not in f.parts
                and f.name != "sources.json")
    assert total <= 3000


def test_lru_evicts_least_recently_used_not_oldest(tmp_path):
    from pytest_snowpipe.local.cache_store import StageCache

    store = StageCache(tmp_path / "c", max_bytes=10**9)
    for name in ("a", "b", "c"):
        store.put(name, "k", "x" * 1000)
    for i, name in enumerate(("a", "b", "c")):  # a was stored first but used last
        os.utime(store.entry_path(name, "k"), (1000 + i, 1000 + i))
    assert store.load("a", "k", lambda: None) is not None  # touches a
    store.max_bytes = store.size() - 1
    assert store.evict() == ["b.k"]
    assert store.lookup("a", "k") is not None and store.lookup("c", "k") is not None


def test_bad_size_bound_is_a_usage_error_naming_the_key(suite):
    pytester = suite(ini=INI + "snowpipe_cache_max_size = lots\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*snowpipe_cache_max_size = 'lots' is not a size; write a number with a unit, e.g. 500MB or 2GB*"])


def test_remote_stage_is_cached(suite):
    stages = STAGES.replace(
        '@pytest.fixture(scope="session")\ndef model(',
        '@pytest.fixture(scope="session")\n@sp.remote(compute_pool="POOL", stage_name="JOB_STAGE")\ndef model(',
    ).replace("import helpers", "import helpers\nimport pytest_snowpipe as sp")
    pytester = suite(stages=stages)
    first = pytester.runpytest_subprocess()
    first.assert_outcomes(passed=1)
    assert runs(pytester)["model"] == 1  # the fresh process appends too
    second = pytester.runpytest_subprocess()
    second.assert_outcomes(passed=1)
    assert runs(pytester) == {"gate": 1}
    second.stdout.fnmatch_lines(["model (remote) *ok*cached*dict weights=20"])


def test_cached_yield_stage_runs_neither_setup_nor_teardown(suite):
    stages = STAGES.replace(
        '    ran("raw")\n    return [1, 2, 3, 4]', '    ran("raw")\n    yield [1, 2, 3, 4]\n    ran("raw-teardown")'
    )
    pytester = suite(stages=stages)
    pytester.runpytest().assert_outcomes(passed=1)
    assert runs(pytester)["raw-teardown"] == 1
    pytester.runpytest().assert_outcomes(passed=1)
    assert runs(pytester) == {"gate": 1}


def test_stage_returning_none_runs_every_time(suite):
    gate = GATE.replace("def test_gate(metrics, snowpipe_config):", "def test_gate(metrics, snowpipe_config, audit):")
    stages = STAGES + '\n@pytest.fixture(scope="session")\ndef audit(metrics):\n    ran("audit")\n'
    pytester = suite(stages=stages, gate=gate)
    pytester.runpytest().assert_outcomes(passed=1)
    runs(pytester)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert runs(pytester) == {"audit": 1, "gate": 1}
    result.stdout.fnmatch_lines(["audit *ok*computed*None*"])


def test_contract_checks_are_not_rerun_on_a_cached_output(suite):
    stages = STAGES.replace("import helpers", "import helpers\nimport pandas as pd\nimport pytest_snowpipe as sp").replace(
        '@pytest.fixture(scope="session")\ndef raw():\n    ran("raw")\n    return [1, 2, 3, 4]',
        '@pytest.fixture(scope="session")\n@sp.expect(sp.Contract(X=sp.column(int, ge=0)))\ndef raw():\n'
        '    ran("raw")\n    return pd.DataFrame({"X": [1, 2, 3, 4]})',
    ).replace("return [x * 2 for x in raw]", 'return [int(x) * 2 for x in raw["X"]]')
    pytester = suite(stages=stages)
    pytester.runpytest().stdout.fnmatch_lines(["check raw output: PASS (4 rows)"])
    second = pytester.runpytest()
    second.assert_outcomes(passed=1)
    second.stdout.fnmatch_lines(["raw *ok*cached*pandas.DataFrame 4 x 1", "check raw output: PASS (4 rows) [cached]"])
    # a changed contract is a changed key: the stage recomputes and is checked again
    pytester.makeconftest(stages.replace("ge=0", "ge=2"))
    runs(pytester)
    third = pytester.runpytest()
    assert runs(pytester)["raw"] == 1
    third.stdout.fnmatch_lines(["check raw contract: FAIL: X.ge (1 rows)"])
    assert not [p for p in (pytester.path / CACHE).iterdir() if p.name.startswith("raw.")][1:]  # the failing one was not stored


def test_uncacheable_output_is_warned_about_and_recomputed(suite):
    stages = STAGES.replace(
        "return [x * 2 for x in raw]", "import threading\n    return [x * 2 for x in raw] + [threading.Lock()]"
    ).replace('sum(features)', 'sum(features[:4])')
    pytester = suite(stages=stages)
    first = pytester.runpytest()
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["*SnowpipeCacheWarning*stage 'features': its output is not cached: list cannot be pickled*"])
    runs(pytester)
    second = pytester.runpytest()
    second.assert_outcomes(passed=1)
    assert runs(pytester) == {"gate": 1}  # model and metrics were stored: the uncacheable input is not needed
    assert stage_sources(second) == {"raw": "cached", "model": "cached", "metrics": "cached"}  # features: not run
    pytester.runpytest("--snowpipe-config", "lr=2.0").assert_outcomes(passed=1)
    assert runs(pytester) == {"features": 1, "model": 1, "metrics": 1, "gate": 1}  # needed again: recomputed


def test_source_file_change_recomputes_the_source_stage_and_descendants(suite):
    stages = STAGES.replace("import helpers", "import helpers\nimport pytest_snowpipe as sp").replace(
        '@pytest.fixture(scope="session")\ndef raw():\n    ran("raw")\n    return [1, 2, 3, 4]',
        '@pytest.fixture(scope="session")\n@sp.source(files="data/*.txt")\ndef raw():\n    ran("raw")\n'
        '    return [int(x) for x in (pathlib.Path(__file__).parent / "data" / "n.txt").read_text().split()]',
    )
    pytester = suite(stages=stages)
    (pytester.path / "data").mkdir()
    data = pytester.path / "data" / "n.txt"
    data.write_text("1 2 3 4")
    pytester.runpytest().assert_outcomes(passed=1)
    runs(pytester)
    os.utime(data, ns=(1, 1))  # a touch alone (same content) keeps the cache
    pytester.runpytest().assert_outcomes(passed=1)
    assert runs(pytester) == {"gate": 1}
    data.write_text("1 2 3 5")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert runs(pytester) == {"raw": 1, "features": 1, "model": 1, "metrics": 1, "gate": 1}
    data.unlink()
    missing = pytester.runpytest()
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(["*stage 'raw': sp.source(files='data/*.txt') matches no file*"])


def test_cacheprovider_disabled_turns_the_cache_off_unless_a_folder_is_configured(suite):
    pytester = suite()
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["stage cache: off (pytest's cacheprovider is disabled*set the snowpipe_cache_dir ini key*"])
    assert not (pytester.path / ".pytest_cache").exists()
    runs(pytester)
    pytester.makeini(textwrap.dedent(INI) + "snowpipe_cache_dir = stage-cache\n")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert runs(pytester) == {"raw": 1, "features": 1, "model": 1, "metrics": 1, "gate": 2}
    assert (pytester.path / "stage-cache").is_dir()


def test_suite_with_a_gate_but_all_stages_cached_sets_up_no_upstream(suite):
    """A hit's inputs are cut from the fixture closure: the stages upstream of it are not even loaded."""
    pytester = suite()
    pytester.runpytest().assert_outcomes(passed=1)
    result = pytester.runpytest("--setup-show")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "SETUP    S metrics" in out
    assert "SETUP    S features" not in out
    # an unchanged promote is a no-op: it loads neither the model nor the source stage
    assert "SETUP    S model" not in out and "SETUP    S raw" not in out
    pytester.makepyfile(test_gate=textwrap.dedent(GATE).replace('"score below threshold"', '"too low"'))
    changed = pytester.runpytest("--setup-show")  # a new gate: a real promote reads the model, loaded on demand
    changed.assert_outcomes(passed=1)
    out = changed.stdout.str()
    assert "SETUP    S model" in out and out.index("SETUP    S model") > out.index("test_gate.py::test_gate")
    assert "SETUP    S raw" not in out  # its data fingerprint was stored with it: not loaded


def test_two_processes_at_once_compute_each_stage_once_and_never_read_half_an_entry(suite):
    stages = STAGES.replace("import helpers", "import helpers\nimport pandas as pd").replace(
        "return [1, 2, 3, 4]", 'return pd.DataFrame({"x": range(400_000), "y": [str(i) for i in range(400_000)]})'
    ).replace("return [x * 2 for x in raw]", 'return [int(raw["x"].sum() % 7) + 10]')
    pytester = suite(stages=stages)
    env = {**os.environ, "PYTHONPATH": str(pytester.path)}
    procs = [
        subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"], cwd=pytester.path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out
        assert "damaged" not in out and "SnowpipeCacheWarning" not in out, out
    assert runs(pytester) == {"raw": 1, "features": 1, "model": 1, "metrics": 1, "gate": 2}


XDIST_TESTS = '''
import os, pathlib
import pytest

def note(what):
    with open(pathlib.Path(__file__).parent / "workers.log", "a") as fh:
        fh.write(f"{what} {os.environ.get('PYTEST_XDIST_WORKER', 'main')}\\n")

@pytest.mark.snowpipe_gate(on_pass="promote", on_fail="alert")
def test_gate(metrics, snowpipe_config):
    note("gate")
    assert metrics["score"] >= snowpipe_config["threshold"]

@pytest.mark.parametrize("i", range(6))
def test_reads_model(model, i):
    note(f"test{i}")
    assert model["weights"] == 20
'''


@pytest.mark.parametrize("extra", [[], ["--snowpipe-no-cache"]], ids=["cache", "no-cache"])
def test_xdist_two_workers_run_each_stage_once(suite, extra):
    pytester = suite(gate=XDIST_TESTS)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:randomly", *extra)
    result.assert_outcomes(passed=7)
    workers = {line.split()[1] for line in (pytester.path / "workers.log").read_text().splitlines()}
    assert workers == {"gw0", "gw1"}  # both workers needed the stages
    assert runs(pytester) == {"raw": 1, "features": 1, "model": 1, "metrics": 1}
    # the controller's summary says which worker computed each stage and which loaded it
    result.stdout.fnmatch_lines(["*snowpipe pipeline (pytest-xdist workers)*"])
    model_line = next(line for line in result.stdout.lines if line.startswith("model "))
    assert "computed" in model_line and "loaded" in model_line, model_line
    gate_line = next(line for line in result.stdout.lines if line.startswith("gate test_gate:"))
    assert "PASS" in gate_line and "model v0001 is now the default" in gate_line and gate_line.endswith(("[gw0]", "[gw1]"))
    if extra:  # the run-only store the workers shared is gone, and nothing went into the cache
        assert not (pytester.path / CACHE).exists()
        assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("pytest-snowpipe-run-*"))


def test_snowpark_frames_round_trip_through_the_cache(tmp_path, embedded_session):
    from snowflake.snowpark.types import DoubleType, LongType, StringType, StructField, StructType

    from pytest_snowpipe.doubles.sql.embedded import create_embedded_session
    from pytest_snowpipe.local.cache_store import StageCache

    session = embedded_session
    schema = StructType([StructField("ID", LongType()), StructField("X", DoubleType()), StructField("S", StringType())])
    frame = session.create_dataframe([(1, 0.5, "a"), (None, 1.5, None), (3, None, "c")], schema=schema)
    train, test = frame.random_split([0.5, 0.5], seed=1)
    value = {"train": train, "test": test, "n": 3}
    store = StageCache(tmp_path, 10**9)
    entry = store.put("split", "k", value)
    assert entry.needs_session and entry.description == ("dict", "train: lazy, test: lazy, n=3")
    other = create_embedded_session()  # another session of the engine, as the next run would have
    loaded = store.load("split", "k", lambda: other)
    assert loaded is not None
    back = loaded[1]
    assert back["n"] == 3
    for name in ("train", "test"):
        assert back[name].schema == value[name].schema
        assert sorted(map(tuple, back[name].collect()), key=repr) == sorted(map(tuple, value[name].collect()), key=repr)
    manifest = json.loads((entry.path / "manifest.json").read_text())
    kinds = {n: node["t"] for n, node in manifest["root"]["items"]}
    assert kinds == {"train": "snowpark", "test": "snowpark", "n": "json"}


def test_values_keep_their_types_through_the_cache(tmp_path):
    import numpy as np
    import pandas as pd

    from pytest_snowpipe.local.cache_store import StageCache

    store = StageCache(tmp_path, 10**9)
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", None]}, index=[5, 7])
    values = {
        "json": {"score": 0.5, "n": 3, "names": ["a", "b"], "ok": True},
        "tuple": (1, 2),  # JSON would turn it into a list: pickled instead
        "nan": {"x": float("nan")},
        "frame": frame,
        "frames": [frame, {"inner": 1}],
        "array": np.arange(3),
        "none": None,
    }
    for name, value in values.items():
        store.put(name, "k", value)
        loaded = store.load(name, "k", lambda: None)
        assert loaded is not None
        back = loaded[1]
        assert type(back) is type(value), name
        if name == "frame":
            pd.testing.assert_frame_equal(back, frame)
        elif name == "frames":
            pd.testing.assert_frame_equal(back[0], frame)
            assert back[1] == {"inner": 1}
        elif name == "array":
            assert (back == value).all()
        elif name == "nan":
            assert back["x"] != back["x"]
        else:
            assert back == value, name
