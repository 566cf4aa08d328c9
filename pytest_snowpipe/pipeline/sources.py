"""``sp.source``: what data a stage reads from outside the pipeline, so its cache key can see it.

A stage's code and config do not tell whether the data it reads changed. A source stage
declares it::

    @pytest.fixture(scope="session")
    @sp.source(files=["data/loans.csv"])              # paths or globs, relative to this file
    def loans(snowpipe_session): ...

    @sp.source(table="ML.RAW.{raw_table}")            # {key} is filled from snowpipe_config
    @sp.source(fingerprint=lambda: api.last_export())  # anything else: your own fingerprint

What is fingerprinted, once at run start (before any stage is looked up in the cache):

* ``files``: every matching file's path, size and SHA-256 of its content (a directory means
  every file under it). The content decides, not the time stamp: a ``git checkout`` that
  restores the same bytes keeps the cache. Size and ``mtime_ns`` only let an unchanged file
  skip re-hashing (a memo kept beside the cache).
* ``table`` on a Snowflake account: ``ROW_COUNT``, ``BYTES`` and ``LAST_ALTERED`` from the
  database's ``INFORMATION_SCHEMA.TABLES`` (one metadata query; ``LAST_ALTERED`` moves on
  every DML and DDL). On the embedded engine (whose tables live for one run): a content hash of the table, or
  "absent" (a local session starts empty, so a table made by another stage is not there yet).
* ``fingerprint``: the callable's return value (``str()``); it may take one argument, the
  run's Snowpark session.
"""
from __future__ import annotations

import glob
import hashlib
import inspect
import os
import re
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pytest_snowpipe.errors import SnowpipeError
from pytest_snowpipe.pipeline.order import refuse_fixture

F = TypeVar("F", bound=Callable[..., Any])
SOURCE_ATTR = "__snowpipe_source__"
_GLOB = re.compile(r"[*?\[]")
_UNQUOTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


class SourceError(SnowpipeError):
    """A declared source cannot be fingerprinted; the message names the stage and the fix."""


@dataclass(frozen=True)
class SourceSpec:
    """The sources one stage declares (several ``sp.source`` decorators are merged)."""

    files: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    fingerprints: tuple[Callable[..., Any], ...] = ()

    def describe(self) -> str:
        """The declaration itself (part of the graph key; the fingerprint values are not)."""
        funcs = []
        for func in self.fingerprints:
            try:
                text = inspect.getsource(func)
            except (OSError, TypeError):
                text = getattr(func, "__qualname__", repr(func))
            funcs.append(hashlib.sha256(text.encode()).hexdigest()[:12])
        return f"files={list(self.files)} tables={list(self.tables)} fingerprints={funcs}"

    def merged(self, other: SourceSpec) -> SourceSpec:
        return SourceSpec(
            self.files + other.files, self.tables + other.tables, self.fingerprints + other.fingerprints
        )


def source(
    *,
    files: str | Iterable[str] = (),
    table: str | None = None,
    fingerprint: Callable[..., Any] | None = None,
) -> Callable[[F], F]:
    """Declare the outside data a stage reads (see the module docstring); stackable."""
    file_list = (files,) if isinstance(files, (str, os.PathLike)) else tuple(files)
    if not all(isinstance(f, (str, os.PathLike)) for f in file_list):
        raise TypeError("sp.source(files=...) takes a path or a list of paths (str)")
    if table is not None and (not isinstance(table, str) or not table.strip()):
        raise TypeError("sp.source(table=...) takes a table name such as 'DB.SCHEMA.TABLE'")
    if fingerprint is not None and not callable(fingerprint):
        raise TypeError("sp.source(fingerprint=...) takes a callable returning a fingerprint string")
    spec = SourceSpec(
        files=tuple(os.fspath(f) for f in file_list),
        tables=(table,) if table else (),
        fingerprints=(fingerprint,) if fingerprint else (),
    )
    if spec == SourceSpec():
        raise TypeError("sp.source() needs files=, table= or fingerprint=")

    def decorate(func: F) -> F:
        __tracebackhide__ = True  # a usage error points at the user's decorator line
        refuse_fixture(func, "sp.source(...)")
        current = source_spec(func)
        setattr(func, SOURCE_ATTR, spec if current is None else current.merged(spec))
        return func

    return decorate


def source_spec(func: Callable[..., Any]) -> SourceSpec | None:
    """The sources declared on a stage function (also through ``functools.wraps`` layers)."""
    seen: set[int] = set()
    current: Any = func
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        spec = getattr(current, SOURCE_ATTR, None)
        if spec is not None and hasattr(spec, "files"):  # duck-typed: the module may have been re-imported
            return spec  # type: ignore[no-any-return]
        current = getattr(current, "__wrapped__", None)
    return None


def _fill(text: str, config: Mapping[str, Any], stage: str, what: str) -> str:
    try:
        return text.format_map(dict(config))
    except (KeyError, IndexError, ValueError) as exc:
        raise SourceError(
            f"stage {stage!r}: sp.source({what}={text!r}) names {exc} which is not a snowpipe_config "
            "key; declare it in the snowpipe_config ini option or fix the name"
        ) from None


def _expand(pattern: str, base: Path, stage: str) -> list[Path]:
    path = Path(pattern).expanduser()
    full = path if path.is_absolute() else base / path
    if _GLOB.search(pattern):
        found = [Path(p) for p in sorted(glob.glob(str(full), recursive=True))]
    else:
        found = [full] if full.exists() else []
    files: list[Path] = []
    for item in found:
        if item.is_dir():
            files.extend(sorted(p for p in item.rglob("*") if p.is_file()))
        elif item.is_file():
            files.append(item)
    if not files:
        raise SourceError(
            f"stage {stage!r}: sp.source(files={pattern!r}) matches no file (looked for {full}); "
            "fix the path (relative paths start at the file that defines the stage)"
        )
    return files


def file_digest(path: Path, memo: MutableMapping[str, Any]) -> str:
    """SHA-256 of a file; ``memo`` (path -> [size, mtime_ns, digest]) skips unchanged files."""
    st = path.stat()
    key = str(path.resolve())
    known = memo.get(key)
    if isinstance(known, list) and len(known) == 3 and known[0] == st.st_size and known[1] == st.st_mtime_ns:
        return str(known[2])
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    memo[key] = [st.st_size, st.st_mtime_ns, h.hexdigest()]
    return h.hexdigest()


def split_identifier(name: str) -> list[tuple[str, bool]]:
    """``db.schema."My Table"`` -> [(DB, False), (SCHEMA, False), (My Table, True)] (quoted flag)."""
    parts: list[tuple[str, bool]] = []
    i, n = 0, len(name)
    while i < n:
        if name[i] == '"':
            j, buf = i + 1, []
            while j < n:
                if name[j] == '"' and j + 1 < n and name[j + 1] == '"':
                    buf.append('"')
                    j += 2
                elif name[j] == '"':
                    break
                else:
                    buf.append(name[j])
                    j += 1
            if j >= n:
                raise ValueError(f"unterminated quoted identifier in {name!r}")
            parts.append(("".join(buf), True))
            i = j + 1
        else:
            j = name.find(".", i)
            j = n if j < 0 else j
            raw = name[i:j].strip()
            if not _UNQUOTED.match(raw):
                raise ValueError(f"{raw!r} in {name!r} is not a Snowflake identifier")
            parts.append((raw.upper(), False))
            i = j
        if i < n:
            if name[i] != ".":
                raise ValueError(f"expected '.' after an identifier in {name!r}")
            i += 1
            if i >= n:
                raise ValueError(f"{name!r} ends with '.'")
    if not 1 <= len(parts) <= 3:
        raise ValueError(f"{name!r} is not [database.][schema.]table")
    return parts


def _quote(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _current(name: str | None) -> str | None:
    """The session's current database/schema (Snowflake returns it quoted, e.g. '"ML"')."""
    return split_identifier(name)[0][0] if name else None


def table_fingerprint_query(table: str, current_database: str | None, current_schema: str | None) -> tuple[str, list[str]]:
    """The metadata query (and its bound parameters) fingerprinting ``table`` on an account.

    Unquoted names are upper-cased as Snowflake resolves them; the database goes into the
    statement as a quoted identifier, the schema and table names are bound parameters.
    """
    parts = [p for p, _ in split_identifier(table)]
    name = parts[-1]
    schema = parts[-2] if len(parts) >= 2 else _current(current_schema)
    database = parts[-3] if len(parts) == 3 else _current(current_database)
    if database is None or schema is None:
        missing = "database" if schema is not None else "schema"
        raise SourceError(
            f"sp.source(table={table!r}): the session has no current {missing}; "
            "write the table as DATABASE.SCHEMA.TABLE"
        )
    sql = (
        "SELECT ROW_COUNT, BYTES, LAST_ALTERED FROM "
        f"{_quote(database)}.INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?"
    )
    return sql, [schema, name]


def table_fingerprint(session: Any, table: str, stage: str) -> str:
    """Row count + last change of a table on an account; its content hash on the embedded engine (its tables live for one run)."""
    from pytest_snowpipe.doubles.sql.embedded import is_embedded_session

    if is_embedded_session(session):
        from pytest_snowpipe.pipeline.frames import fingerprint

        try:
            frame = session.table(table)
            return "content:" + fingerprint(frame)
        except Exception:  # not there (yet): a local session starts empty
            return "absent"
    sql, params = table_fingerprint_query(table, session.get_current_database(), session.get_current_schema())
    rows = session.sql(sql, params=params).collect()
    if not rows:
        raise SourceError(
            f"stage {stage!r}: sp.source(table={table!r}) is not visible in INFORMATION_SCHEMA "
            "(missing, or no privilege on it); fix the name or grant access"
        )
    row_count, size, altered = rows[0][0], rows[0][1], rows[0][2]
    return f"rows={row_count};bytes={size};altered={altered}"


def compute_fingerprint(
    spec: SourceSpec,
    stage: str,
    base: Path,
    config: Mapping[str, Any],
    get_session: Callable[[], Any],
    memo: MutableMapping[str, Any],
) -> str:
    """One hash of everything ``spec`` declares, taken now (see the module docstring)."""
    h = hashlib.sha256()
    for pattern in spec.files:
        filled = _fill(pattern, config, stage, "files")
        for path in _expand(filled, base, stage):
            try:
                rel = path.relative_to(base).as_posix()
            except ValueError:
                rel = path.as_posix()
            h.update(f"file:{rel}:{path.stat().st_size}:{file_digest(path, memo)}\0".encode())
    for table in spec.tables:
        filled = _fill(table, config, stage, "table")
        try:
            split_identifier(filled)
        except ValueError as exc:
            raise SourceError(f"stage {stage!r}: sp.source(table={table!r}): {exc}") from None
        h.update(f"table:{filled}:{table_fingerprint(get_session(), filled, stage)}\0".encode())
    for func in spec.fingerprints:
        try:
            takes_session = bool(inspect.signature(func).parameters)
        except (TypeError, ValueError):
            takes_session = False
        try:
            value = func(get_session()) if takes_session else func()
        except Exception as exc:
            raise SourceError(
                f"stage {stage!r}: its sp.source(fingerprint=...) function raised "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        h.update(f"fingerprint:{value}\0".encode())
    return h.hexdigest()[:16]
