"""A pandas load's rows handed to DuckDB in memory; every statement still the connector's own.

``write_pandas`` (behind ``create_dataframe(pandas)``, ``session.write_pandas`` and
``save_as_table``) writes the frame as Parquet, PUTs it, and runs INFER_SCHEMA, CREATE TABLE and
COPY INTO from the staged file. With the engine in this process, the file is the detour: at 1M
rows x 8 columns, writing it (even snappy) was 0.4-0.7 s and DuckDB's read of it 0.2 s, against
0.1 s to convert the frame to Arrow and 0.07 s for DuckDB to scan that.

So, for a frame whose columns are all plain types (integers, floats, booleans, text, naive
timestamps, dates), the staged file keeps its schema, ``pandas``' metadata included, but has no
row: INFER_SCHEMA reads the same types from it, so the table is the one the connector makes. Its
footer names a token; the Arrow table built exactly as ``DataFrame.to_parquet`` builds it (index
rules included) waits under that token, and COPY INTO scans it in place of the file. Anything
else (a categorical, a tz-aware timestamp, a mixed object column, ``to_parquet`` options, a
session in another process, where the engine's memory is out of reach) writes the real file.
A token not consumed (a failed statement) is dropped when its ``write_pandas`` returns.
"""
from __future__ import annotations

import contextlib
import functools
import threading
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

__all__ = ["TOKEN_KEY", "frame_for", "install", "pending", "waiting_for"]

TOKEN_KEY = b"snowpipe.handover"
_WAITING: dict[str, Any] = {}  # token -> pyarrow.Table, until its write_pandas returns
_LOCK = threading.Lock()
_CALL = threading.local()  # the tokens made by the write_pandas running on this thread
_COPY_CONN: ContextVar[Any] = ContextVar("snowpipe_copy_conn", default=None)  # (DuckDB connection, views registered), during a COPY INTO
_INSTALLED: list[bool] = []  # fakesnow's COPY INTO and its Parquet reader are hooked (for the process)


def _plain(arrow_type: Any) -> bool:
    """A column type DuckDB reads from Arrow as it reads it from Parquet."""
    import pyarrow.types as t

    if t.is_timestamp(arrow_type):
        return arrow_type.tz is None
    return bool(
        t.is_integer(arrow_type) or t.is_floating(arrow_type) or t.is_boolean(arrow_type)
        or t.is_string(arrow_type) or t.is_large_string(arrow_type) or t.is_date32(arrow_type)
    )


def _write_schema_only(frame: Any, path: Any, compression: Any) -> bool:
    """The frame's rows left waiting and a row-less file with their schema at ``path``; False when
    a column is not plain (nothing written then)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame)  # what DataFrame.to_parquet writes (pyarrow engine, default index rule)
    if not all(_plain(field.type) for field in table.schema):
        return False
    token = uuid.uuid4().hex
    schema = table.schema.with_metadata({**(table.schema.metadata or {}), TOKEN_KEY: token.encode()})
    pq.write_table(schema.empty_table(), path, compression=compression or "snappy")
    with _LOCK:
        _WAITING[token] = table
    _CALL.tokens.append(token)
    return True


@functools.cache
def _frame_class() -> type:
    import pandas as pd

    class HandOverFrame(pd.DataFrame):  # type: ignore[misc]
        """The user's frame (no copy) whose ``to_parquet`` hands its rows over; slices stay one."""

        @property
        def _constructor(self) -> type:
            return HandOverFrame

        def to_parquet(self, path: Any = None, *args: Any, **kwargs: Any) -> Any:
            if args or set(kwargs) - {"compression"} or not isinstance(getattr(_CALL, "tokens", None), list):
                return super().to_parquet(path, *args, **kwargs)
            if not _write_schema_only(pd.DataFrame(self), path, kwargs.get("compression")):
                return super().to_parquet(path, *args, **kwargs)
            return None

    return HandOverFrame


def frame_for(df: Any) -> Any:
    """``df`` as a frame whose Parquet writes hand over (a pandas DataFrame), else ``df`` itself."""
    import pandas as pd

    if type(df) is not pd.DataFrame:  # a user's own subclass keeps its to_parquet
        return df
    return _frame_class()(df)


@contextlib.contextmanager
def pending() -> Iterator[None]:
    """Around one ``write_pandas``: its hand-overs are allowed, and dropped when it returns."""
    _CALL.tokens = []
    try:
        yield
    finally:
        tokens, _CALL.tokens = _CALL.tokens, None
        with _LOCK:
            for token in tokens:
                _WAITING.pop(token, None)


def waiting_for(path: str) -> tuple[str, Any] | None:
    """(token, Arrow table) waiting for the staged file at ``path``, or None."""
    if not _WAITING:
        return None
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(path).metadata or {}
    except Exception:  # not a readable Parquet file: the engine's own read reports it
        return None
    raw = metadata.get(TOKEN_KEY)
    if raw is None:
        return None
    token = raw.decode()
    with _LOCK:
        table = _WAITING.get(token)
    return None if table is None else (token, table)


def _release(duck_conn: Any, names: list[str]) -> None:
    """Drop the views of handed-over rows (a failed COPY's connection may refuse: they go at close)."""
    for name in names:
        with contextlib.suppress(Exception):
            duck_conn.unregister(name)


def install() -> None:
    """Hook fakesnow's COPY INTO: a staged file whose rows wait in memory is scanned from them."""
    if _INSTALLED:
        return
    import fakesnow.cursor as cursor
    import fakesnow.transforms.stage as stage
    from fakesnow.copy_into import ReadParquet
    from sqlglot import exp

    copy_into = cursor.copy_into  # type: ignore[attr-defined]
    read_expression = ReadParquet.read_expression

    @functools.wraps(copy_into)
    def _copy_into(duck_conn: Any, *args: Any, **kwargs: Any) -> Any:
        registered: list[str] = []
        reset = _COPY_CONN.set((duck_conn, registered))
        try:
            sql = copy_into(duck_conn, *args, **kwargs)
        except BaseException:
            _release(duck_conn, registered)
            raise
        finally:
            _COPY_CONN.reset(reset)
        if registered:  # the load report is DuckDB's pending result: read, the views dropped, asked again
            duck_conn.fetchall()
            _release(duck_conn, registered)
            duck_conn.execute(sql)
        return sql

    @functools.wraps(read_expression)
    def _read_expression(self: Any, url: str) -> Any:
        copying = _COPY_CONN.get()
        found = waiting_for(stage.file_path(url)) if copying is not None and stage.is_internal(url) else None
        if found is None:
            return read_expression(self, url)
        duck_conn, registered = copying
        name = f"_snowpipe_handover_{found[0]}"
        if name not in registered:
            duck_conn.register(name, found[1])
            registered.append(name)
        return exp.to_identifier(name)

    cursor.copy_into = _copy_into  # type: ignore[attr-defined]
    ReadParquet.read_expression = _read_expression  # type: ignore[method-assign]
    _INSTALLED.append(True)
