"""What goes into a stage's key: project-local code it calls, config keys it reads, declared sources."""
from __future__ import annotations

import multiprocessing
import os
import sys
import textwrap
from pathlib import Path

import pytest

import pytest_snowpipe as sp
from pytest_snowpipe.pipeline.codedeps import analyze, is_project_file, stage_dependencies
from pytest_snowpipe.pipeline.sources import SourceError, compute_fingerprint, split_identifier, table_fingerprint_query


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write modules into a project folder and import them fresh."""

    def write(**modules: str) -> dict[str, object]:
        for name, text in modules.items():
            (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
        monkeypatch.syspath_prepend(str(tmp_path))
        for name in modules:
            sys.modules.pop(name, None)
        return {name: __import__(name) for name in modules}

    return write


def test_calls_follow_project_code_and_skip_locals_libraries_and_decorators(project, tmp_path):
    mods = project(
        helpers='''
        import json
        SCALE = [1, 2, 3]

        def inner(x):
            return x * len(SCALE)

        def score(x):
            return inner(x) + json.loads("1")

        def train(x):
            return x
        ''',
        stages='''
        import functools
        import helpers
        from helpers import score

        def deco(f):
            return f

        class Model:
            def fit(self, x):
                return helpers.inner(x)

        @deco
        def stage(raw, snowpipe_config):
            train = 3                       # a local named like a helper: not followed
            value = score(raw) + train
            return Model().fit(value), functools.reduce(lambda a, b: a + b, [1])
        ''',
    )
    deps = analyze(mods["stages"].stage, tmp_path)
    assert set(deps.calls) == {"helpers.score", "helpers.inner", "stages.Model", "stages.Model.fit"}
    assert "helpers.train" not in deps.calls and "stages.deco" not in deps.calls


def test_changing_a_called_helper_or_a_constant_changes_the_digest(project, tmp_path):
    stage = 'import helpers\ndef stage(raw):\n    return helpers.score(raw)\n'
    first = analyze(project(helpers="K = 2\ndef score(x):\n    return x * K\n", stages=stage)["stages"].stage, tmp_path)
    same = analyze(project(helpers="K = 2\ndef score(x):\n    return x * K\n", stages=stage)["stages"].stage, tmp_path)
    constant = analyze(project(helpers="K = 3\ndef score(x):\n    return x * K\n", stages=stage)["stages"].stage, tmp_path)
    code = analyze(project(helpers="K = 2\ndef score(x):\n    return x * K + 0\n", stages=stage)["stages"].stage, tmp_path)
    assert first.digest == same.digest
    assert len({first.digest, constant.digest, code.digest}) == 3


@pytest.mark.parametrize(
    ("body", "keys"),
    [
        ('return cfg["a"] + cfg.get("b", 0)', ("a", "b")),
        ('return "flag" in cfg', ("flag",)),
        ("return helper(cfg)", ("h",)),
        ("return helper(config=cfg)", ("h",)),
        ("return 1", ()),
        ("return dict(cfg)", None),  # handed to code we cannot see through: the whole config
        ("return cfg[key_name]", None),
        ("return [k for k in cfg]", None),
        ("return cfg.items()", None),
        ("return other(**cfg)", None),
    ],
)
def test_config_reads_are_found_or_fall_back_to_the_whole_config(project, tmp_path, body, keys):
    mods = project(
        cfgstage=f'''
        key_name = "a"

        def helper(config):
            return config["h"]

        def other(**kw):
            return kw

        def stage(cfg):
            {body}
        '''
    )
    assert analyze(mods["cfgstage"].stage, tmp_path, "cfg").config_keys == keys


def test_stage_dependencies_hash_only_the_config_values_read(project, tmp_path):
    mods = project(cfgdeps='def stage(snowpipe_config):\n    return snowpipe_config["lr"]\n')
    func = mods["cfgdeps"].stage
    base = stage_dependencies(func, ["snowpipe_config"], {"lr": 1.0, "threshold": 0.5}, tmp_path)
    other_key = stage_dependencies(func, ["snowpipe_config"], {"lr": 1.0, "threshold": 0.9}, tmp_path)
    other_lr = stage_dependencies(func, ["snowpipe_config"], {"lr": 2.0, "threshold": 0.5}, tmp_path)
    int_lr = stage_dependencies(func, ["snowpipe_config"], {"lr": 1, "threshold": 0.5}, tmp_path)
    assert base.config_keys == ("lr",)
    assert base.digest == other_key.digest
    assert len({base.digest, other_lr.digest, int_lr.digest}) == 3


def test_contract_and_source_declarations_are_part_of_the_key(project, tmp_path):
    def stage(raw):
        return raw

    plain = stage_dependencies(stage, ["raw"], None, tmp_path)
    checked = sp.expect(sp.Contract(X=sp.column(int, ge=0)))(lambda raw: raw)
    stricter = sp.expect(sp.Contract(X=sp.column(int, ge=1)))(lambda raw: raw)
    a = stage_dependencies(checked, ["raw"], None, tmp_path)
    b = stage_dependencies(stricter, ["raw"], None, tmp_path)
    sourced = stage_dependencies(sp.source(files="a.csv")(lambda raw: raw), ["raw"], None, tmp_path)
    assert len({plain.digest, a.digest, b.digest, sourced.digest}) == 4
    assert sourced.sources is not None and sourced.sources.files == ("a.csv",)


def test_project_files_exclude_libraries_and_the_plugin(tmp_path):
    assert is_project_file(str(tmp_path / "conftest.py"), tmp_path)
    assert not is_project_file(pytest.__file__, Path(pytest.__file__).parents[3])
    assert not is_project_file(sp.__file__, Path(sp.__file__).parents[1])
    assert not is_project_file(os.__file__, Path("/"))
    assert not is_project_file("<string>", tmp_path)


def test_source_declaration_errors_name_the_fix():
    with pytest.raises(TypeError, match=r"needs files=, table= or fingerprint="):
        sp.source()
    with pytest.raises(TypeError, match="takes a callable"):
        sp.source(fingerprint="v1")  # type: ignore[arg-type]

    @sp.source(files="a.csv")
    @sp.source(table="DB.S.T")
    def stage() -> None: ...

    spec = stage.__snowpipe_source__
    assert spec.files == ("a.csv",) and spec.tables == ("DB.S.T",)


def test_file_fingerprint_follows_content_not_time_stamps(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("x\n1\n")
    spec = sp.source(files=["data/*.csv"])(lambda: None).__snowpipe_source__
    memo: dict[str, object] = {}

    def fp() -> str:
        return compute_fingerprint(spec, "raw", tmp_path, {}, lambda: None, memo)

    first = fp()
    os.utime(data / "a.csv", ns=(10**9, 10**9))
    assert fp() == first
    (data / "a.csv").write_text("x\n2\n")
    assert fp() != first
    (data / "b.csv").write_text("x\n2\n")  # a new file matching the glob counts too
    assert len({first, fp()}) == 2
    for path in data.iterdir():
        path.unlink()
    with pytest.raises(SourceError, match=r"stage 'raw': sp.source\(files='data/\*.csv'\) matches no file"):
        fp()


def test_fingerprint_names_fill_from_config_and_callables_can_take_the_session(tmp_path):
    (tmp_path / "v2.csv").write_text("1")
    spec = sp.source(files="{version}.csv", fingerprint=lambda session: f"asked {session}")(lambda: None).__snowpipe_source__
    a = compute_fingerprint(spec, "raw", tmp_path, {"version": "v2"}, lambda: "S1", {})
    b = compute_fingerprint(spec, "raw", tmp_path, {"version": "v2"}, lambda: "S2", {})
    assert a != b
    with pytest.raises(SourceError, match=r"names 'version' which is not a snowpipe_config key"):
        compute_fingerprint(spec, "raw", tmp_path, {}, lambda: "S1", {})


def test_table_fingerprint_query_quotes_and_binds_names():
    sql, params = table_fingerprint_query("ml.raw.loans", None, None)
    assert sql == ('SELECT ROW_COUNT, BYTES, LAST_ALTERED FROM "ML".INFORMATION_SCHEMA.TABLES '
                   "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?")
    assert params == ["RAW", "LOANS"]
    sql, params = table_fingerprint_query('RAW."My ""Loans"""', '"Db"', '"PUBLIC"')
    assert '"Db".INFORMATION_SCHEMA' in sql and params == ["RAW", 'My "Loans"']
    sql, params = table_fingerprint_query("loans", '"DB"', '"S"')
    assert '"DB".INFORMATION_SCHEMA' in sql and params == ["S", "LOANS"]
    with pytest.raises(SourceError, match="no current schema"):
        table_fingerprint_query("loans", '"DB"', None)
    for bad in ("a.b.c.d", "a..b", 'x"y', "1abc", "a."):
        with pytest.raises(ValueError):
            split_identifier(bad)


def test_table_fingerprint_on_the_embedded_engine_hashes_content(embedded_session):
    from pytest_snowpipe.pipeline.sources import table_fingerprint

    session = embedded_session
    assert table_fingerprint(session, "NOPE", "raw") == "absent"
    session.create_dataframe([(1,), (2,)], schema=["A"]).write.save_as_table("T1", mode="overwrite")
    first = table_fingerprint(session, "T1", "raw")
    session.create_dataframe([(1,), (3,)], schema=["A"]).write.save_as_table("T1", mode="overwrite")
    assert first.startswith("content:") and table_fingerprint(session, "T1", "raw") != first


def _hammer(root: str, start: object, rounds: int, out: object) -> None:
    try:
        _hammer_rounds(root, start, rounds, out)
    except BaseException as exc:  # report, never hang the parent
        out.put(f"error: {type(exc).__name__}: {exc}")  # type: ignore[attr-defined]


def _hammer_rounds(root: str, start: object, rounds: int, out: object) -> None:
    from pytest_snowpipe.local.cache_store import CorruptEntry, StageCache

    store = StageCache(Path(root), max_bytes=10**9)
    value = {"rows": list(range(20_000)), "name": "x" * 1000}
    start.wait()  # type: ignore[attr-defined]
    seen = 0
    for i in range(rounds):
        try:
            loaded = store.load("s", "k", lambda: None)
        except CorruptEntry as exc:
            out.put(f"corrupt: {exc}")  # type: ignore[attr-defined]
            return
        if loaded is not None:
            if loaded[1] != value:
                out.put("wrong value")  # type: ignore[attr-defined]
                return
            seen += 1
        if i % 3 == 0:
            store.discard("s", "k")  # removals race with loads and stores too
        store.put("s", "k", value)
    out.put(f"ok {seen}")  # type: ignore[attr-defined]


def test_concurrent_writers_and_readers_never_see_half_an_entry(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(str(tmp_path), start, 40, out)) for _ in range(4)]
    for proc in procs:
        proc.start()
    start.set()
    results = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    assert all(r.startswith("ok") for r in results), results
    assert sum(int(r.split()[1]) for r in results) > 0  # readers did load complete entries
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_snowpark_frame_fingerprint_is_one_query_on_content_not_row_order(embedded_session):
    """A Snowpark frame is fingerprinted by HASH_AGG(*) in the engine: no rows are read out."""
    from pytest_snowpipe.pipeline.frames import fingerprint

    session = embedded_session
    frame = session.create_dataframe([(1, "a"), (2, "b"), (2, "b")], schema=["A", "B"])
    with session.query_history() as history:
        first = fingerprint(frame)
    assert len(history.queries) == 1 and "hash_agg(*)" in history.queries[0].sql_text.lower()
    assert fingerprint(frame.sort("A", ascending=False)) == first
    assert fingerprint(frame.filter("A = 2")) != first
    assert fingerprint(session.create_dataframe([(1, "a"), (2, "b")], schema=["A", "B"])) != first


def test_an_entry_discarded_while_another_is_renamed_into_place_is_retried(tmp_path, monkeypatch):
    """The race the hammer test found: rename refused (an entry is there), then that entry is discarded
    before we look. The staged entry is renamed again, not reported as an error."""
    import errno
    import os
    import shutil

    from pytest_snowpipe.local import cache_store

    staging, target = tmp_path / ".staging", tmp_path / "s.k"
    staging.mkdir()
    (staging / "manifest.json").write_text("{}")
    target.mkdir()
    (target / "other").write_text("x")
    real_rename, calls = os.rename, []

    def rename(src, dst):
        calls.append(dst)
        if len(calls) == 1:
            shutil.rmtree(target)  # another process discards its entry right after our rename was refused
            raise OSError(errno.ENOTEMPTY, "Directory not empty")
        real_rename(src, dst)

    monkeypatch.setattr(cache_store.os, "rename", rename)
    cache_store._rename_into_place(staging, target)
    assert len(calls) == 2 and (target / "manifest.json").exists() and not staging.exists()


def test_an_entry_already_in_place_stands_and_ours_is_dropped(tmp_path):
    from pytest_snowpipe.local import cache_store

    staging, target = tmp_path / ".staging", tmp_path / "s.k"
    staging.mkdir()
    (staging / "mine").write_text("1")
    target.mkdir()
    (target / "theirs").write_text("2")
    cache_store._rename_into_place(staging, target)
    assert (target / "theirs").exists() and not (target / "mine").exists() and not staging.exists()
