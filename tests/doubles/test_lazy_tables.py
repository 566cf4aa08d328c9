"""Cached Snowpark frames: registered as tables DuckDB fills from the cached Parquet, when first read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pytest_snowpipe.doubles.sql import lazy_tables
from pytest_snowpipe.local.cache_store import StageCache


def _exists(name: str) -> bool:
    import fakesnow.server as fs_server

    with fs_server.shared_fs.duck_conn.cursor() as cur:
        return bool(cur.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchone()[0])


def _no_pandas_parquet(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record any pandas Parquet read or write (the round trip the lazy load must not make)."""
    calls: list[str] = []
    read, write = pd.read_parquet, pd.DataFrame.to_parquet
    monkeypatch.setattr(pd, "read_parquet", lambda *a, **k: calls.append("read") or read(*a, **k))
    monkeypatch.setattr(pd.DataFrame, "to_parquet", lambda *a, **k: calls.append("write") or write(*a, **k))
    return calls


def test_a_cached_frame_is_loaded_only_when_a_statement_reads_it(
    tmp_path: Path, embedded_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = embedded_session
    frame = session.create_dataframe(pd.DataFrame({"ID": range(1000), "X": [i / 3 for i in range(1000)]}))
    store = StageCache(tmp_path, 10**9)
    store.put("raw", "k", frame)
    calls = _no_pandas_parquet(monkeypatch)
    loaded = store.load("raw", "k", lambda: session)
    assert loaded is not None
    back = loaded[1]
    name = back.table_name.split(".")[-1].strip('"')
    assert name in lazy_tables.pending() and not _exists(name)  # registered, nothing loaded
    assert back.schema == frame.schema  # a DESCRIBE: the empty table, the rows still waiting
    assert name in lazy_tables.pending()
    assert back.count() == 1000 and _exists(name) and name not in lazy_tables.pending()
    assert sorted(back.collect()) == sorted(frame.collect())
    assert calls == []  # DuckDB read the cached Parquet itself


def test_awkward_columns_come_back_with_their_schema_and_rows(tmp_path: Path, embedded_session: Any) -> None:
    session = embedded_session
    source = pd.DataFrame(
        {
            "N": pd.Series([1, None, 3], dtype="Int64"),
            "TS": pd.to_datetime(["2024-01-01 10:00", None, "2024-03-01 00:00"]),
            "TZ": pd.to_datetime(["2024-01-01 10:00", "2024-02-01 00:00", None]).tz_localize("UTC"),
            "Mixed Case": ["a", None, "c"],
            "B": [True, False, None],
        }
    )
    session.write_pandas(source, "LAZY_AWKWARD", auto_create_table=True, overwrite=True, use_logical_type=True)
    frame = session.table("LAZY_AWKWARD")
    store = StageCache(tmp_path, 10**9)
    store.put("awkward", "k", frame)
    loaded = store.load("awkward", "k", lambda: session)
    assert loaded is not None
    back = loaded[1]
    assert back.schema == frame.schema
    key = repr
    assert sorted(map(tuple, back.collect()), key=key) == sorted(map(tuple, frame.collect()), key=key)
    assert back.filter('"N" IS NULL').count() == 1 and back.filter('"TS" IS NULL').count() == 1


def test_a_lost_file_is_a_clear_error_naming_the_fix(tmp_path: Path, embedded_session: Any) -> None:
    from snowflake.snowpark.exceptions import SnowparkSQLException

    frame = embedded_session.create_dataframe(pd.DataFrame({"A": [1]}))
    store = StageCache(tmp_path, 10**9)
    store.put("gone", "k", frame)
    loaded = store.load("gone", "k", lambda: embedded_session)
    assert loaded is not None
    name = loaded[1].table_name.split(".")[-1].strip('"')
    (lazy_tables._folder() / f"{name}.parquet").unlink()
    with pytest.raises(SnowparkSQLException, match="could not be loaded.*--snowpipe-cache-clear"):
        loaded[1].collect()
