"""The array-bound INSERT fast path of ``doubles/sql/wire.py``: numeric placeholders keep their binding
order, and the per-batch Arrow table is unregistered once the statement ran (issue 27)."""
from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="module")
def session(embedded_session: Any) -> Any:
    return embedded_session


def _batch_views() -> list[str]:
    import fakesnow.server as fs_server

    from pytest_snowpipe.doubles.sql.fakesnow_adapter import DUCKDB_LOCK

    names: set[str] = set()
    with DUCKDB_LOCK:
        for conn in list(fs_server.sessions.values()):
            rows = conn._duck_conn.execute(
                "select view_name from duckdb_views() where view_name like '\\_snowpipe\\_batch\\_%' escape '\\'"
            ).fetchall()
            names.update(r[0] for r in rows)
    return sorted(names)


def test_numeric_placeholders_bind_in_their_own_order(session: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``VALUES (:2, :1)``: binding 2 goes to the first column; same-typed columns would swap silently."""
    conn = session._conn._conn
    monkeypatch.setattr(conn, "_paramstyle", "numeric")
    cur = conn.cursor()
    cur.execute("create or replace table BATCH_NUMERIC (A VARCHAR, B VARCHAR)")
    rows = [(f"b{i}", f"a{i}") for i in range(600)]  # (:1, :2) = (b, a)
    cur.executemany("insert into BATCH_NUMERIC (A, B) values (:2, :1)", rows)
    assert cur.rowcount == 600
    got = sorted(tuple(r) for r in session.table("BATCH_NUMERIC").collect())
    assert got == sorted((a, b) for b, a in rows)


def test_the_batch_table_is_unregistered_after_the_insert(session: Any) -> None:
    from pytest_snowpipe.doubles.sql import wire

    registered: list[str] = []
    original = wire._insert_select

    def spy(sql_text: str, n_bindings: int, source: str) -> str | None:
        registered.append(source)
        return original(sql_text, n_bindings, source)

    cur = session._conn._conn.cursor()
    cur.execute("create or replace table BATCH_GONE (A INT, B VARCHAR)")
    wire._insert_select = spy  # the route reads the module attribute at call time
    try:
        cur.executemany("insert into BATCH_GONE (A, B) values (?, ?)", [(i, f"s{i}") for i in range(1000)])
    finally:
        wire._insert_select = original
    assert cur.rowcount == 1000 and registered  # the fast path ran
    assert not set(registered) & set(_batch_views())
