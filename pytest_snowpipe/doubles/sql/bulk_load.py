"""Bulk loads from pandas at DuckDB's pace on the embedded engine, making the connector's table.

``session.create_dataframe(pandas_df)``, ``session.write_pandas`` and ``save_as_table`` of such a
frame all end in the connector's ``write_pandas``: it writes the frame as Parquet with pyarrow,
PUTs the file, and the server runs INFER_SCHEMA / CREATE TABLE / COPY INTO from it. The file's
default codec, gzip, was 13.9 s of 14.8 s for 1M rows x 6 columns, spent in the client before
the engine saw a row; snappy writes the same file in a fraction of a second.

Why here: the cost is the client's, so no server-side hook can remove it, and the connector's
``write_pandas`` is the one place every pandas load passes. On the embedded engine the file never
leaves the machine, so `install` hands that function ``compression="snappy"`` whatever the user
passed (gzip, snappy or nothing): every statement, the file's schema (a codec does not change
it) and so the table's names and types stay the connector's own. An Arrow hand-over straight to
DuckDB skips the file where the engine runs in this process (`handover`): the file keeps the
frame's schema, so INFER_SCHEMA's types stay the connector's, and COPY INTO scans the rows from
memory; a remote stage's process writes the (snappy) file. Sessions on a real account are left
alone, and an invalid codec still fails as the connector says.

Also here, what the loads of awkward frames need on the server (`copy_quoted_columns`), and
the clear error for a column pyarrow cannot convert (`BulkLoadError`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
from collections.abc import Callable
from typing import Any

from sqlglot import Expr, exp

from pytest_snowpipe.errors import SnowpipeError

__all__ = ["BulkLoadError", "connector_write_pandas", "copy_quoted_columns", "install"]

CHEAP_CODEC = "snappy"
_CODECS = ("gzip", "snappy")  # what the connector accepts; anything else fails there, as on Snowflake
_ORIGINAL: dict[str, Callable[..., Any]] = {}
_FAILED_COLUMN = re.compile(r"Conversion failed for column (.+) with type (\S+)")


class BulkLoadError(SnowpipeError):
    """A pandas frame that cannot be loaded into a table as it is."""


def connector_write_pandas() -> Callable[..., Any]:
    """The connector's own ``write_pandas`` (unhooked): the slow path, for comparison."""
    from snowflake.connector import pandas_tools

    return _ORIGINAL.get("write_pandas", pandas_tools.write_pandas)


def _is_embedded(conn: Any) -> bool:
    from pytest_snowpipe.doubles.sql.embedded import is_embedded_connection

    return is_embedded_connection(conn)


def _engine_here(conn: Any) -> bool:
    """True when ``conn`` is a connection to the engine running in this process."""
    from pytest_snowpipe.doubles.sql.embedded import running_engine

    engine = running_engine()
    return engine is not None and getattr(conn, "port", None) == engine.port


def _column_error(exc: Exception, table: str) -> BulkLoadError:
    """pyarrow's conversion error as one line naming the column and the fix."""
    parts = [str(a) for a in exc.args] if exc.args else [str(exc)]
    found = next((m for p in parts if (m := _FAILED_COLUMN.search(p))), None)
    why = parts[0].strip("()' ")
    if found is None:
        return BulkLoadError(f"write_pandas into {table}: pyarrow cannot convert the frame: {why}. Fix its dtypes.")
    column, dtype = found.group(1), found.group(2)
    return BulkLoadError(
        f"write_pandas into {table}: column {column!r} ({dtype}) cannot be loaded: {why}. A table column "
        f"holds one type: convert it first, e.g. df[{column!r}] = df[{column!r}].astype(str) (or a numeric "
        "type with pd.to_numeric)."
    )


def _hooked(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def write_pandas(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        conn = bound.arguments.get("conn")
        if not _is_embedded(conn):
            return original(*args, **kwargs)
        if bound.arguments.get("compression", "gzip") in _CODECS:
            bound.arguments["compression"] = CHEAP_CODEC
        import pyarrow as pa

        from pytest_snowpipe.doubles.sql import handover

        here = _engine_here(conn)
        if here:  # the engine's memory is this process's: the rows need not go through a file
            bound.arguments["df"] = handover.frame_for(bound.arguments["df"])
        try:
            with handover.pending() if here else contextlib.nullcontext():
                return original(*bound.args, **bound.kwargs)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise _column_error(exc, str(bound.arguments.get("table_name"))) from None

    return write_pandas


def install() -> None:
    """Hook the connector's ``write_pandas`` where it is called from (idempotent).

    Snowpark imported the function by name (``snowflake.snowpark.session.write_pandas``), so
    that reference is replaced as well as the connector's module attribute.
    """
    if _ORIGINAL:
        return
    import snowflake.snowpark.session as snowpark_session
    from snowflake.connector import pandas_tools

    original = pandas_tools.write_pandas
    _ORIGINAL["write_pandas"] = original
    hooked = _hooked(original)
    pandas_tools.write_pandas = hooked
    if getattr(snowpark_session, "write_pandas", None) is original:
        setattr(snowpark_session, "write_pandas", hooked)  # noqa: B010 (not re-exported: mypy)


def copy_quoted_columns(expression: Expr) -> Expr:
    """``COPY INTO t FROM (SELECT $1:"Mixed Case"::T ...)`` -> ``"Mixed Case"::T``: a quoted column.

    write_pandas always reads the Parquet fields as quoted paths; fakesnow turns each into a bare
    identifier, which DuckDB cannot parse for a name with a space, a quote, a dot, a leading
    digit or a keyword (a frame's column ``"1st"``). The quoted column reads the same field.
    """
    if not (
        isinstance(expression, exp.JSONExtract)
        and isinstance(expression.this, exp.Parameter)
        and expression.this.name == "1"
        and isinstance(path := expression.expression, exp.JSONPath)
        and expression.find_ancestor(exp.Copy) is not None
    ):
        return expression
    keys = [p for p in path.expressions if not isinstance(p, exp.JSONPathRoot)]
    if len(keys) != 1 or not isinstance(keys[0], exp.JSONPathKey) or not isinstance(keys[0].this, str):
        return expression
    return exp.column(exp.to_identifier(keys[0].this, quoted=True))
