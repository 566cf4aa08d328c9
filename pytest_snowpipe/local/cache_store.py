"""A content-keyed store of stage outputs on disk, safe for concurrent processes.

Layout under the root (by default ``.pytest_cache/d/snowpipe``)::

    <stage>.<key>/manifest.json     format, stage, key, how the value is laid out, the
                                    sha256 and size of every payload file, the contract
                                    checks it passed, its summary description (and, for
                                    a source stage a promote records, its content fingerprint)
    <stage>.<key>/0.parquet ...     the payload: pandas and Snowpark frames as Parquet
                                    (a Snowpark frame also keeps its schema), small values
                                    that survive JSON exactly as JSON, anything else
                                    (models...) cloudpickled; dicts/lists/tuples holding
                                    frames are stored element-wise
    .locks/<stage>.<key>.lock       per-key file lock: one process computes, others wait
    .tmp-*/                         entries being written

Why a reader never sees half an entry: an entry is written in full into a temporary
folder inside the root (files fsynced, manifest last) and then renamed into place with one
``os.rename``, which is atomic and refuses to replace an existing entry. Why a damaged
entry is never loaded: every payload file is checked against the size and sha256 in its
manifest while it is read; a mismatch raises :class:`CorruptEntry` and the caller warns,
discards the entry and recomputes. LRU: an entry's folder mtime is its last use (touched on
every load); after each store the least recently used entries are removed until the total
fits ``max_bytes``.
"""
from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import io
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_snowpipe.errors import SnowpipeError
from pytest_snowpipe.pipeline.frames import describe, is_pandas_frame, is_snowpark_frame

FORMAT = 1
MANIFEST = "manifest.json"
LOCKS = ".locks"
STALE_AFTER_S = 3600  # a staging folder this old belongs to a writer that was killed: no store takes an hour


class SnowpipeCacheWarning(pytest.PytestWarning):
    """The stage cache could not use an entry or store an output (the run goes on, recomputing)."""


class CorruptEntry(SnowpipeError):
    """A cache entry failed its checksum or could not be decoded; ``path`` is the culprit file."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class Uncacheable(SnowpipeError):
    """A stage output cannot be stored (e.g. an open connection); it is recomputed every run.

    ``quiet``: an expected case that needs no warning (a Snowpark frame on an account).
    """

    def __init__(self, reason: str, quiet: bool = False) -> None:
        super().__init__(reason)
        self.quiet = quiet


@dataclass(frozen=True)
class Entry:
    """A stored output, as its manifest describes it (the payload is read by :meth:`StageCache.load`)."""

    stage: str
    key: str
    path: Path
    manifest: dict[str, Any]

    @property
    def description(self) -> tuple[str, str]:
        kind, shape = (self.manifest.get("describe") or ["", ""])[:2]
        return str(kind), str(shape)

    @property
    def needs_session(self) -> bool:
        """True when loading rebuilds Snowpark frames (which needs the run's session)."""
        return bool(self.manifest.get("needs_session"))

    @property
    def checks(self) -> list[tuple[str, str]]:
        return [(str(t), str(v)) for t, v in self.manifest.get("checks", [])]

    @property
    def compute_s(self) -> float | None:
        """How long the stage took when this output was computed (None in older entries)."""
        value = self.manifest.get("compute_s")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def size(self) -> int:
        return sum(int(f.get("size", 0)) for f in self.manifest.get("files", {}).values())


def parse_size(text: str) -> int:
    """``"500MB"`` / ``"2GB"`` / ``"1.5GiB"`` / ``"1000"`` -> bytes; ValueError otherwise."""
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
             "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
    raw = text.strip().upper().replace(" ", "")
    number = raw.rstrip("KMGTIB")
    unit = raw[len(number):]
    if unit not in units or not number:
        raise ValueError(text)
    value = float(number)
    if value < 0 or value != value or value == float("inf"):
        raise ValueError(text)
    return int(value * units[unit])


def _json_exact(value: Any, depth: int = 0) -> bool:
    """True when ``json.loads(json.dumps(value)) == value`` with the same types, all the way down."""
    if depth > 50:
        return False
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return True
    if kind is float:
        return value == value and value not in (float("inf"), float("-inf"))
    if kind is list:
        return all(_json_exact(v, depth + 1) for v in value)
    if kind is dict:
        return all(type(k) is str and _json_exact(v, depth + 1) for k, v in value.items())
    return False


def _holds_frame(value: Any, depth: int = 0) -> bool:
    if is_snowpark_frame(value) or is_pandas_frame(value):
        return True
    if depth > 5:
        return False
    if isinstance(value, dict):
        return any(_holds_frame(v, depth + 1) for v in value.values())
    if type(value) in (list, tuple):
        return any(_holds_frame(v, depth + 1) for v in value)
    return False


class _Writer:
    """Writes payload files into a staging folder and records their size and sha256."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: dict[str, dict[str, Any]] = {}
        self.needs_session = False

    def write(self, data: bytes, suffix: str) -> str:
        name = f"{len(self.files)}{suffix}"
        _write_synced(self.folder / name, data)
        self.files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        return name


def _pickle(value: Any) -> bytes:
    import cloudpickle

    try:
        return bytes(cloudpickle.dumps(value))
    except Exception as exc:  # cloudpickle raises TypeError, PicklingError, AttributeError...
        raise Uncacheable(f"{type(value).__name__} cannot be pickled ({type(exc).__name__}: {exc})") from None


def _parquet(frame: Any) -> bytes | None:
    """The frame as Parquet, or None when Parquet would not give back the same frame."""
    import pandas

    if not all(isinstance(c, str) for c in frame.columns) or frame.columns.has_duplicates:
        return None
    try:
        buf = io.BytesIO()
        frame.to_parquet(buf, engine="pyarrow")
        data = buf.getvalue()
        back = pandas.read_parquet(io.BytesIO(data), engine="pyarrow")
        pandas.testing.assert_frame_equal(back, frame, check_exact=True)
    except Exception:  # mixed-type object columns, unsupported dtypes, lossy round trip
        return None
    return data


def _encode(value: Any, out: _Writer) -> dict[str, Any]:
    if is_snowpark_frame(value):
        from pytest_snowpipe.doubles.sql.embedded import is_embedded_session
        from pytest_snowpipe.pipeline.frames import to_pandas

        if not is_embedded_session(getattr(value, "_session", None)):
            # on an account the data stays in Snowflake: a frame is a lazy plan, cheap to rebuild,
            # and storing it here would download the whole table
            raise Uncacheable("a Snowpark DataFrame on an account is not downloaded into the cache", quiet=True)
        frame = to_pandas(value)
        out.needs_session = True
        data = _parquet(frame)
        payload = out.write(data, ".parquet") if data is not None else out.write(_pickle(frame), ".pkl")
        return {"t": "snowpark", "file": payload, "schema": out.write(_pickle(value.schema), ".pkl")}
    if is_pandas_frame(value):
        data = _parquet(value)
        if data is not None:
            return {"t": "pandas", "file": out.write(data, ".parquet")}
        return {"t": "pickle", "file": out.write(_pickle(value), ".pkl")}
    if _holds_frame(value):
        if type(value) is dict and all(type(k) is str for k in value):
            return {"t": "dict", "items": [[k, _encode(v, out)] for k, v in value.items()]}
        if type(value) in (list, tuple):
            return {"t": type(value).__name__, "items": [_encode(v, out) for v in value]}
    if _json_exact(value):
        return {"t": "json", "file": out.write(json.dumps(value).encode(), ".json")}
    return {"t": "pickle", "file": out.write(_pickle(value), ".pkl")}


class _Reader:
    """Reads payload files, checking each against its manifest record first."""

    def __init__(self, folder: Path, files: dict[str, Any], get_session: Callable[[], Any]) -> None:
        self.folder = folder
        self.files = files
        self.get_session = get_session

    def read(self, name: str) -> bytes:
        record = self.files.get(name)
        path = self.folder / name
        if not isinstance(record, dict):
            raise CorruptEntry(path, "not listed in the manifest")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise CorruptEntry(path, "missing") from None
        if len(data) != record.get("size") or hashlib.sha256(data).hexdigest() != record.get("sha256"):
            raise CorruptEntry(path, f"checksum mismatch ({len(data)} bytes, expected {record.get('size')})")
        return data

    def unpickle(self, name: str) -> Any:
        import cloudpickle

        data = self.read(name)
        try:
            return cloudpickle.loads(data)
        except Exception as exc:  # a class that moved, a library that changed...
            raise CorruptEntry(self.folder / name, f"cannot be unpickled ({type(exc).__name__}: {exc})") from None

    def frame(self, name: str) -> Any:
        if name.endswith(".pkl"):
            return self.unpickle(name)
        import pandas

        data = self.read(name)
        try:
            return pandas.read_parquet(io.BytesIO(data), engine="pyarrow")
        except Exception as exc:
            raise CorruptEntry(self.folder / name, f"unreadable Parquet ({type(exc).__name__}: {exc})") from None

    def snowpark(self, name: str, schema: Any) -> Any:
        """A stored Snowpark frame on the run's session: on this process's embedded engine, a
        table DuckDB fills from the verified Parquet when a statement first reads it
        (`doubles.sql.lazy_tables`); elsewhere rebuilt from pandas."""
        session = self.get_session()
        if name.endswith(".parquet") and _on_this_engine(session):
            from pytest_snowpipe.doubles.sql import lazy_tables

            return lazy_tables.register(session, self.read(name), schema)
        return rebuild_snowpark(session, self.frame(name), schema)

    def decode(self, node: Any) -> Any:
        if not isinstance(node, dict) or "t" not in node:
            raise CorruptEntry(self.folder / MANIFEST, "malformed layout")
        kind = node["t"]
        if kind == "json":
            try:
                return json.loads(self.read(node["file"]))
            except ValueError as exc:
                raise CorruptEntry(self.folder / node["file"], f"invalid JSON ({exc})") from None
        if kind == "pickle":
            return self.unpickle(node["file"])
        if kind == "pandas":
            return self.frame(node["file"])
        if kind == "snowpark":
            return self.snowpark(node["file"], self.unpickle(node["schema"]))
        if kind == "dict":
            return {str(k): self.decode(v) for k, v in node["items"]}
        if kind in ("list", "tuple"):
            items = [self.decode(v) for v in node["items"]]
            return items if kind == "list" else tuple(items)
        raise CorruptEntry(self.folder / MANIFEST, f"unknown layout {kind!r}")


def _on_this_engine(session: Any) -> bool:
    from pytest_snowpipe.doubles.sql.embedded import is_embedded_session, running_engine

    current = running_engine()
    conn = getattr(getattr(session, "_conn", None), "_conn", None)
    return current is not None and is_embedded_session(session) and getattr(conn, "port", None) == current.port


def rebuild_snowpark(session: Any, frame: Any, schema: Any) -> Any:
    """A Snowpark DataFrame on ``session`` holding ``frame``'s rows with the stored ``schema``.

    The rows travel as Arrow (``create_dataframe`` of pandas loads a temporary table through
    ``write_pandas``, no Python per row); each column is then cast back to its stored type, so
    an integer column with nulls (float in pandas) is LongType again.
    """
    from snowflake.snowpark.functions import col

    loaded = session.create_dataframe(frame)
    return loaded.select([col(f.name).cast(f.datatype).alias(f.name) for f in schema.fields])


class StageCache:
    """The store (see the module docstring). ``make_root`` creates the root on first store."""

    def __init__(self, root: Path, max_bytes: int, make_root: Callable[[], Path] | None = None) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._make_root = make_root

    def _ensure_root(self) -> None:
        if not self.root.is_dir():
            if self._make_root is not None:
                self.root = Path(self._make_root())
            self.root.mkdir(parents=True, exist_ok=True)

    def entry_path(self, stage: str, key: str) -> Path:
        return self.root / f"{stage}.{key}"

    def lookup(self, stage: str, key: str) -> Entry | None:
        """The entry for (stage, key) if its manifest is there and readable; the payload is not read."""
        path = self.entry_path(stage, key)
        try:
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("key") != key:
            return None
        return Entry(stage, key, path, manifest)

    def exists(self, stage: str, key: str) -> bool:
        """Whether any folder is there for (stage, key), even one without a readable manifest."""
        return self.entry_path(stage, key).exists()

    def load(self, stage: str, key: str, get_session: Callable[[], Any]) -> tuple[Entry, Any] | None:
        """The stored value, verified; None when absent; CorruptEntry when damaged."""
        path = self.entry_path(stage, key)
        if not path.exists():
            return None
        entry = self.lookup(stage, key)
        if entry is None:
            if not path.exists():  # removed meanwhile (evicted, discarded: renamed away atomically)
                return None
            raise CorruptEntry(path / MANIFEST, "missing or unreadable manifest")
        reader = _Reader(path, dict(entry.manifest.get("files", {})), get_session)
        try:
            value = reader.decode(entry.manifest.get("root"))
        except CorruptEntry:
            if not path.exists():  # evicted by another process while we read: a plain miss
                return None
            raise
        try:
            os.utime(path)  # last use, for LRU eviction
        except OSError:
            pass
        return entry, value

    def put(self, stage: str, key: str, value: Any, extra: dict[str, Any] | None = None) -> Entry:
        """Store ``value`` atomically; Uncacheable when it cannot be, or is over the size bound."""
        self._ensure_root()
        staging = self.root / f".tmp-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            writer = _Writer(staging)
            root_node = _encode(value, writer)
            total = sum(f["size"] for f in writer.files.values())
            if total > self.max_bytes:
                raise Uncacheable(
                    f"its {total / 1e6:.1f} MB are more than snowpipe_cache_max_size "
                    f"({self.max_bytes / 1e6:.1f} MB)"
                )
            try:
                kind, shape = describe(value)
            except Exception:  # a description must never stop a store
                kind, shape = type(value).__name__, ""
            manifest = {
                "format": FORMAT,
                "stage": stage,
                "key": key,
                "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "describe": [kind, shape],
                "needs_session": writer.needs_session,
                "root": root_node,
                "files": writer.files,
                **(extra or {}),
            }
            _write_synced(staging / MANIFEST, json.dumps(manifest, indent=1).encode())  # last
            _fsync_dir(staging)
            target = self.entry_path(stage, key)
            _rename_into_place(staging, target)
            _fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.evict()
        return Entry(stage, key, target, manifest)

    def discard(self, stage: str, key: str) -> None:
        """Remove one entry (rename first, so no reader sees it half-deleted)."""
        self._remove(self.entry_path(stage, key))

    def _remove(self, path: Path) -> None:
        trash = path.with_name(f".tmp-trash-{uuid.uuid4().hex}")
        try:
            os.rename(path, trash)
        except OSError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def entries(self) -> Iterator[tuple[Path, float, int]]:
        """(folder, last use, bytes) of every entry."""
        if not self.root.is_dir():
            return
        for item in os.scandir(self.root):
            if item.name.startswith(".") or not item.is_dir():
                continue
            try:
                size = sum(f.stat().st_size for f in os.scandir(item.path) if f.is_file())
                yield Path(item.path), item.stat().st_mtime, size
            except OSError:  # removed meanwhile by another process
                continue

    def size(self) -> int:
        """Bytes used by all entries."""
        return sum(size for _, _, size in self.entries())

    def evict(self) -> list[str]:
        """Remove least recently used entries until the total fits ``max_bytes``; return their names."""
        found = sorted(self.entries(), key=lambda e: e[1])
        total = sum(size for _, _, size in found)
        removed = []
        for path, _, size in found:
            if total <= self.max_bytes:
                break
            self._remove(path)
            total -= size
            removed.append(path.name)
        self._sweep_tmp()
        return removed

    def sweep_stale(self) -> None:
        """Staging folders of killed writers (and half-removed entries), once they are an hour old:
        run at the start of every run and after each store."""
        self._sweep_tmp()

    def _sweep_tmp(self) -> None:
        now = time.time()
        try:
            items = list(os.scandir(self.root))
        except OSError:
            return
        for item in items:
            if item.name.startswith(".tmp-") and item.is_dir():
                try:
                    if now - item.stat().st_mtime > STALE_AFTER_S:
                        shutil.rmtree(item.path, ignore_errors=True)
                except OSError:
                    continue

    def lock(self, stage: str, key: str) -> Any:
        """An (unacquired) inter-process lock for one key (``filelock.FileLock``)."""
        from filelock import FileLock

        self._ensure_root()
        folder = self.root / LOCKS
        folder.mkdir(exist_ok=True)
        return FileLock(str(folder / f"{stage}.{key}.lock"))

    def clear(self) -> None:
        """Remove the whole cache folder."""
        if self.root.exists():
            self._remove(self.root)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _rename_into_place(staging: Path, target: Path, attempts: int = 5) -> None:
    """Rename a staged entry to ``target``; if another process's entry is there, keep that one.

    The rename fails with EEXIST/ENOTEMPTY while an entry is in place. That entry may be renamed
    away (a discard, an eviction) before we look: then ours is tried again, never an error.
    """
    for _ in range(attempts):
        try:
            os.rename(staging, target)
            return
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            if target.exists():
                break  # another process stored the same key first: its entry stands
    shutil.rmtree(staging, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
