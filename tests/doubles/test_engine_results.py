"""How the embedded engine holds query results: read into Arrow as DuckDB streams them
(`streamed_results`), and kept for RESULT_SCAN within a budget (`result_cache`)."""
from __future__ import annotations

import warnings
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import snowflake.connector.errors
import sqlglot

from pytest_snowpipe.doubles.sql.result_cache import BoundedResults
from pytest_snowpipe.doubles.sql.streamed_results import StreamingCursor, streamable

EXTRA_COPY = "Arrow output on a DB-API result"


@pytest.fixture
def duck() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("create table t as select range::bigint as a, range * 0.5 as b from range(1000)")
    return con


def test_a_query_is_read_streamed_with_the_same_rows_and_no_extra_copy(duck: duckdb.DuckDBPyConnection) -> None:
    plain = duck.cursor()
    plain.execute("select a, b from t where a > ? order by a", [10])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        expected = plain.to_arrow_table()
        streaming = StreamingCursor(duck.cursor())
        assert streaming.execute("select a, b from t where a > ? order by a", [10]) is streaming
        rows = streaming.to_arrow_table()
    assert rows.equals(expected) and rows.num_rows == 989
    assert [str(w.message)[:31] for w in seen] == [EXTRA_COPY]  # only the DB-API read copied


def test_a_failure_while_the_rows_are_read_is_raised_by_execute(duck: duckdb.DuckDBPyConnection) -> None:
    """fakesnow maps DuckDB's errors to Snowflake's around ``execute``: the rows are read there."""
    streaming = StreamingCursor(duck.cursor())
    with pytest.raises(duckdb.ConversionException):
        streaming.execute("select ('x' || a)::int from t")


def test_only_the_first_statement_and_never_a_script_is_streamed(duck: duckdb.DuckDBPyConnection) -> None:
    streaming = StreamingCursor(duck.cursor())
    streaming.execute("select setseed(0.5); select 1 as one")  # a seeded query: DuckDB's own way
    assert streaming.to_arrow_table().column("one").to_pylist() == [1]
    streaming = StreamingCursor(duck.cursor())
    streaming.execute("select 1 as first")
    streaming.execute("insert into t values (5000, 1.0)")  # a second statement: passed through
    assert streaming.fetchall() == [(1,)]  # DuckDB's own result of the insert (one row inserted)
    assert duck.execute("select count(*) from t").fetchone() == (1001,)


def test_streamable_statements_are_plain_queries() -> None:
    select = sqlglot.parse_one("select a from t union all select a from u", read="snowflake")
    assert streamable(select)
    assert not streamable(sqlglot.parse_one("insert into t select * from u", read="snowflake"))
    tagged = sqlglot.parse_one("select 1", read="snowflake")
    tagged.set("list_stage_name", "@s")  # fakesnow's marks: LIST, PUT, SHOW ... keep fakesnow's path
    assert not streamable(tagged)


def _entry(nbytes: int) -> tuple[Any, ...]:
    table = pa.table({"x": pa.array(bytes(nbytes), pa.uint8())})
    assert table.nbytes == nbytes
    return (table, table.num_rows, "select", None, None)


def test_results_beyond_the_budget_go_oldest_first_and_the_newest_always_stays() -> None:
    cache = BoundedResults(budget=100)
    cache["a"], cache["b"] = _entry(40), _entry(40)
    assert list(cache) == ["a", "b"] and cache.nbytes == 80
    cache["c"] = _entry(20)  # exactly at the budget: nothing goes
    assert list(cache) == ["a", "b", "c"] and cache.nbytes == 100
    cache["d"] = _entry(1)  # one byte over: the oldest goes
    assert list(cache) == ["b", "c", "d"] and cache.nbytes == 61
    cache["e"] = _entry(500)  # larger than the budget on its own: kept, everything older goes
    assert list(cache) == ["e"] and cache.nbytes == 500
    assert cache.pop("e")[1] == 500 and cache.nbytes == 0
    cache.update(f=_entry(3))
    del cache["f"]
    assert cache.nbytes == 0 and not cache


def test_a_result_scan_of_a_result_the_engine_let_go_is_statement_not_found(
    embedded_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fakesnow.server as fs_server

    cache = fs_server.shared_fs.results_cache
    assert isinstance(cache, BoundedResults)  # the engine's, not fakesnow's keep-everything dict
    cursor = embedded_session.connection.cursor()
    first = cursor.execute("select 41 + 1 as answer").sfqid
    assert cursor.execute(f"select * from table(result_scan('{first}'))").fetchall() == [(42,)]
    monkeypatch.setattr(cache, "budget", 0)  # every newer result pushes the older ones out
    cursor.execute("select 1")
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match=f"Statement {first} not found"):
        cursor.execute(f"select * from table(result_scan('{first}'))")
