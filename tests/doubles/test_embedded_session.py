"""The embedded default in a pytest run: correct data from a real SQL engine, or a clear error."""
from __future__ import annotations

import subprocess
import sys

import pytest


def test_filter_keeps_integer_columns(embedded_session):
    """snowpark-python issue 2598 (the old local-testing mock turned these into NaN)."""
    from snowflake.snowpark.functions import col

    df = embedded_session.create_dataframe([(float(i), i % 2) for i in range(10)], schema=["A", "T"])
    got = df.filter(col("A") > 5).sort("A").to_pandas()
    assert got["T"].tolist() == [0, 1, 0, 1]
    assert got["T"].dtype.kind == "i"
    assert got["A"].tolist() == [6.0, 7.0, 8.0, 9.0]


def test_random_split_parts_match_collect_and_aggregate(embedded_session):
    from snowflake.snowpark import functions as F

    df = embedded_session.create_dataframe([(float(i), i % 3, f"s{i}") for i in range(200)], schema=["A", "T", "S"])
    parts = df.random_split([0.5, 0.5], seed=3)
    assert sum(p.count() for p in parts) == 200
    for part in parts:
        frame = part.sort("A").to_pandas()
        assert frame.values.tolist() == [list(r) for r in part.sort("A").collect()]
        total = part.agg(F.sum("T")).collect()[0][0]  # the mock returned NaN aggregates here
        assert total == frame["T"].sum()


def test_unsupported_call_in_a_stage_names_the_statement_and_the_fix(pytester: pytest.Pytester):
    pytester.makeconftest(
        '''
import pytest

@pytest.fixture(scope="session")
def raw(snowpipe_session):
    return snowpipe_session.sql("select * from t match_recognize (order by a pattern (x) define x as true)").collect()
'''
    )
    pytester.makepyfile(
        '''
import pytest

@pytest.mark.snowpipe_gate(on_fail="alert")
def test_gate(raw):
    assert raw
'''
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*embedded engine*cannot run*MATCH_RECOGNIZE*", "*Fix: run this test against a real Snowflake account with --snowpipe-connection NAME*"])


def test_snowpipe_session_is_on_the_embedded_engine(pytester: pytest.Pytester):
    pytester.makepyfile(
        '''
def test_session(snowpipe_session):
    from snowflake.snowpark.context import get_active_session
    from pytest_snowpipe.doubles.sql.embedded import is_embedded_session
    assert is_embedded_session(snowpipe_session)
    assert get_active_session() is snowpipe_session
    assert snowpipe_session.create_dataframe([(1,)], schema=["A"]).collect()[0][0] == 1
'''
    )
    # a fresh process: get_active_session() needs the run's session to be the only one (this test
    # process holds the shared embedded_session of other tests)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_no_engine_outlives_pytest(pytester: pytest.Pytester):
    """A run that started the engine leaves no server thread and no listening port behind."""
    pytester.makepyfile(
        '''
import json, pathlib

def test_session(snowpipe_session):
    from pytest_snowpipe.doubles.sql.embedded import running_engine
    pathlib.Path("port.json").write_text(json.dumps(running_engine().port))
'''
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
    port = int((pytester.path / "port.json").read_text())
    probe = f"import socket; s = socket.socket(); s.bind(('127.0.0.1', {port})); print('free')"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "free"


def test_one_session_serves_concurrent_threads_each_its_own_results(embedded_session):
    """The emulator runs independent tasks at once on one session (the sandbox too): each thread must read
    its own statement's result. Without the engine's thread-safe-session parameter Snowpark shared one
    cursor, and a PUT read back another thread's SELECT columns (IndexError inside put_stream)."""
    import io
    import threading

    from pytest_snowpipe.doubles.sql.embedded import FILE_TRANSFER_LOCK, ensure_stage

    assert embedded_session._conn._thread_safe_session_enabled
    ensure_stage(embedded_session, "@SNOWPIPE_THREADS_ST")
    errors: list[str] = []
    cursors: set[int] = set()

    def put(i: int) -> None:
        cursors.add(id(embedded_session._conn._cursor))
        for j in range(15):
            try:
                with FILE_TRANSFER_LOCK:
                    result = embedded_session.file.put_stream(
                        io.BytesIO(b"x" * 100), f"@SNOWPIPE_THREADS_ST/{i}/{j}.bin", auto_compress=False, overwrite=True)
                assert result.status == "UPLOADED", result
            except Exception as exc:  # collected: an assertion in a thread would not fail the test
                errors.append(f"put {i}/{j}: {exc!r}")

    def query(i: int) -> None:
        cursors.add(id(embedded_session._conn._cursor))
        for j in range(15):
            try:
                rows = embedded_session.sql(f"SELECT {j} AS A{i}").collect()
                assert rows[0][0] == j and rows[0].as_dict() == {f"A{i}": j}, rows
            except Exception as exc:
                errors.append(f"query {i}/{j}: {exc!r}")

    threads = [threading.Thread(target=put, args=(i,)) for i in range(2)] + \
        [threading.Thread(target=query, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(cursors) == 4  # a cursor per thread
