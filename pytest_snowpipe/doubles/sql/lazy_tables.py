"""Tables the embedded engine fills from a Parquet file when a statement first names them.

A cached Snowpark frame comes back as ``session.table(<name>)`` (Snowpark sends no query for
that): the engine creates the table and DuckDB reads the cached Parquet straight into it the
first time any statement, from this process or a remote stage's, names it. No pandas round
trip, no client-side Parquet writing, and a frame that nothing reads is never loaded.

Why on the server: only the engine knows when a statement really needs the rows, and it
shares the disk with the cache. The table's columns are declared with the frame's stored
Snowpark schema in Snowflake's types (through fakesnow, like any CREATE TABLE), so the frame
reads back with the schema it was stored with.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlglot import Expr, exp

if TYPE_CHECKING:
    from fakesnow.cursor import FakeSnowflakeCursor

__all__ = ["materialize", "pending", "register"]

PREFIX = "SNOWPIPE_CACHED_"
_LOCK = threading.Lock()
_PENDING: dict[str, tuple[str, str, Path, list[tuple[str, str]]]] = {}  # NAME -> (db, schema, file, columns)
_CREATED: set[str] = set()  # created (empty, for a DESCRIBE) and maybe not filled yet
_FOLDER: list[Path] = []
_LOADING = threading.local()


def _folder() -> Path:
    """This process's private copies of the files waiting to be loaded (gone at exit)."""
    if not _FOLDER:
        _FOLDER.append(Path(tempfile.mkdtemp(prefix="snowpipe_lazy_")))
        atexit.register(shutil.rmtree, _FOLDER[0], True)
    return _FOLDER[0]


def register(session: Any, parquet: bytes, schema: Any) -> Any:
    """A Snowpark frame on ``session`` (an embedded one) that holds ``parquet``'s rows with ``schema``.

    ``parquet`` (already verified by the caller) is kept in a private file, so evicting the
    cache entry meanwhile changes nothing.
    """
    from snowflake.snowpark._internal.type_utils import convert_sp_to_sf_type

    name = f"{PREFIX}{uuid.uuid4().hex.upper()}"
    path = _folder() / f"{name}.parquet"
    path.write_bytes(parquet)
    database = str(session.get_current_database()).strip('"')
    schema_name = str(session.get_current_schema()).strip('"')
    columns = [(field.name, convert_sp_to_sf_type(field.datatype)) for field in schema.fields]
    with _LOCK:
        _PENDING[name] = (database, schema_name, path, columns)
    return session.table([database, schema_name, name])


def pending() -> list[str]:
    """Names registered and not loaded yet (for tests and the summary)."""
    with _LOCK:
        return sorted(_PENDING)


def materialize(expression: Expr, cursor: FakeSnowflakeCursor) -> None:
    """Load every pending table ``expression`` names, before it runs (a server-side hook).

    A DESCRIBE (Snowpark asking for a frame's schema) needs the table's columns, not its rows:
    it gets the empty table, and the rows wait for a statement that reads them.
    """
    if not _PENDING or getattr(_LOADING, "active", False):  # our own CREATE TABLE
        return
    rows_needed = not isinstance(expression, exp.Describe)
    for table in expression.find_all(exp.Table):
        name = table.name.upper()
        if not name.startswith(PREFIX):
            continue
        with _LOCK:
            found = _PENDING.pop(name, None) if rows_needed else _PENDING.get(name)
            created = name in _CREATED
            _CREATED.add(name)
        if found is not None:
            _load(cursor, *found, name=name, create=not created, fill=rows_needed)


def _load(
    cursor: FakeSnowflakeCursor,
    database: str,
    schema: str,
    path: Path,
    columns: list[tuple[str, str]],
    *,
    name: str,
    create: bool,
    fill: bool,
) -> None:
    import snowflake.connector.errors

    qualified = f'"{database}"."{schema}"."{name}"'
    ddl = ", ".join(f"{column} {kind}" for column, kind in columns)
    creator = cursor._conn.cursor()
    _LOADING.active = True
    try:
        if create:
            creator.execute(f"CREATE TABLE {qualified} ({ddl})")  # fakesnow's own types for Snowflake's
        if fill:  # by position: the file's columns are the frame's, in order
            cursor._duck_conn.cursor().execute(f"INSERT INTO {qualified} SELECT * FROM read_parquet(?)", [str(path)])
    except Exception as exc:
        raise snowflake.connector.errors.ProgrammingError(
            msg=f"a cached Snowpark frame ({name}, from {path.name}) could not be loaded: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}. Fix: rerun with --snowpipe-cache-clear.",
            errno=2003,
            sqlstate="02000",
        ) from None
    finally:
        _LOADING.active = False
        creator.close()
    if fill:
        path.unlink(missing_ok=True)
