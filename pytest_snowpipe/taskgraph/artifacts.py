"""How stage outputs travel between tasks: the same code on the emulator and in Snowflake.

A task's return value is at most 10 kB of text, so a stage returns a *pointer* (JSON):

* Snowpark DataFrame -> ``save_as_table`` into ``SNOWPIPE_<DAG>_<STAGE>_<run8>`` (run8 = a hash
  of the graph run group id, so concurrent runs never share a table) -> ``{"kind":"table"}``;
* pandas DataFrame -> a Parquet file on the stage (``session.file.put_stream``, which local
  testing supports with ``auto_compress=False``; ``write_pandas`` is unsupported there and
  ``create_dataframe(pandas)`` costs ~1 min per million rows) -> ``{"kind":"parquet"}``;
* dict / list / tuple holding DataFrames -> each element stored, a structure of pointers;
* small JSON-able values (<= 10 kB, round-tripping exactly) -> inline ``{"kind":"json"}``;
* anything else -> a cloudpickled stage file -> ``{"kind":"pickle"}``.

Every pointer is also published in a per-run index on the stage
(``<stage>/<run8>/index/<NAME>.json``) so a later task of the same run (an action, the
finalizer) can find any stage's output by (run id, stage name) without being its successor.
Snowpark is imported inside functions only; this module ships with every task (the package
is a stored-procedure import of each one).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
from typing import Any

from pytest_snowpipe.errors import SnowpipeError
from pytest_snowpipe.pipeline.frames import is_pandas_frame, is_snowpark_frame

RETURN_VALUE_LIMIT_BYTES = 10_000  # Snowflake: a task return value is at most 10 kB (10,000 bytes) of UTF-8
TABLE_NAME_LIMIT = 255


class ArtifactError(SnowpipeError):
    """An output cannot be stored or a pointer cannot be read; the message names the stage."""


def run_key(run_id: str) -> str:
    """Eight upper-case hex characters identifying one graph run (stable, identifier-safe)."""
    return hashlib.sha256(str(run_id).encode()).hexdigest()[:8].upper()


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text).upper()


def table_name(dag: str, stage: str, run_id: str, suffix: str = "") -> str:
    """``SNOWPIPE_<DAG>_<STAGE>[_<suffix>]_<run8>``, shortened with a hash to fit 255 characters."""
    middle = f"{_clean(dag)}_{_clean(stage)}" + (f"_{_clean(suffix)}" if suffix else "")
    name = f"SNOWPIPE_{middle}_{run_key(run_id)}"
    if len(name) > TABLE_NAME_LIMIT:
        digest = hashlib.sha256(middle.encode()).hexdigest()[:12].upper()
        keep = TABLE_NAME_LIMIT - len("SNOWPIPE__") - len(digest) - 10
        name = f"SNOWPIPE_{middle[:keep]}_{digest}_{run_key(run_id)}"
    return name


def _stage_path(stage_location: str, run_id: str, name: str) -> str:
    return f"{stage_location.rstrip('/')}/{run_key(run_id)}/{name}"


def _holds_frame(value: Any) -> bool:
    if is_snowpark_frame(value) or is_pandas_frame(value):
        return True
    if isinstance(value, dict):
        return any(_holds_frame(v) for v in value.values())
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return any(_holds_frame(v) for v in value)
    return False


def _transfer(session: Any, path: str) -> Any:
    """The embedded engine's file-transfer turn (its stages provisioned first); nothing on an account."""
    from pytest_snowpipe.doubles.sql.embedded import FILE_TRANSFER_LOCK, ensure_stage, is_embedded_session

    if not is_embedded_session(session):
        return contextlib.nullcontext()
    with FILE_TRANSFER_LOCK:
        ensure_stage(session, path)  # the emulator's account has the graph's stages
    return FILE_TRANSFER_LOCK


def _put(session: Any, path: str, data: bytes) -> None:
    with _transfer(session, path):
        session.file.put_stream(io.BytesIO(data), path, auto_compress=False, overwrite=True)


def _get(session: Any, path: str) -> bytes:
    """The file's bytes. In a stored procedure (a task on an account) Snowpark streams it; anywhere
    else ``get_stream`` downloads to ``<tempdir>/<file name>``, a path every process shares, so two
    runs (or xdist workers) fetching a same-named file overwrote each other's download: GET into
    a folder of our own instead."""
    from pathlib import Path

    from snowflake.snowpark._internal.utils import is_in_stored_procedure

    with _transfer(session, path):
        if is_in_stored_procedure():  # type: ignore[no-untyped-call]
            stream = session.file.get_stream(path)
            try:
                return bytes(stream.read())
            finally:
                stream.close()
        from pytest_snowpipe.engines.tempdirs import owned_temporary_directory

        with owned_temporary_directory("snowpipe-get-") as folder:
            session.file.get(path, folder)
            local = Path(folder) / path.rstrip("/").rsplit("/", 1)[-1]  # GET lays files flat, by name
            if not local.is_file():
                raise FileNotFoundError(f"{path}: no such file on the stage")
            data: bytes = local.read_bytes()
            return data


def _inline(value: Any) -> dict[str, Any] | None:
    """The inline JSON pointer, if the value is small and survives JSON exactly."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return None
    if len(text.encode()) > RETURN_VALUE_LIMIT_BYTES - 64:
        return None
    parsed = json.loads(text)
    try:
        same = type(parsed) is type(value) and bool(parsed == value)
    except Exception:
        return None
    return {"kind": "json", "value": parsed} if same else None


def store(
    session: Any, value: Any, *, dag: str, stage: str, run_id: str, stage_location: str, suffix: str = ""
) -> dict[str, Any]:
    """Store ``value`` as the output of ``stage`` in this run; return its pointer (a JSON-able dict)."""
    where = f"{stage}{'_' + suffix if suffix else ''}"
    if is_snowpark_frame(value):
        name = table_name(dag, stage, run_id, suffix)
        value.write.save_as_table(name, mode="overwrite", table_type="transient")
        return {"kind": "table", "name": name}
    if is_pandas_frame(value):
        buf = io.BytesIO()
        try:
            value.to_parquet(buf, index=True)
        except Exception as exc:
            return _store_pickle(session, value, stage, run_id, stage_location, where, exc)
        path = _stage_path(stage_location, run_id, f"{where}.parquet")
        _put(session, path, buf.getvalue())
        return {"kind": "parquet", "path": path}
    if _holds_frame(value):
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                return _store_pickle(session, value, stage, run_id, stage_location, where)
            items = {
                k: store(session, v, dag=dag, stage=stage, run_id=run_id, stage_location=stage_location,
                         suffix=f"{suffix}_{k}" if suffix else str(k))
                for k, v in value.items()
            }
            return {"kind": "dict", "items": items}
        items_l = [
            store(session, v, dag=dag, stage=stage, run_id=run_id, stage_location=stage_location,
                  suffix=f"{suffix}_{i}" if suffix else str(i))
            for i, v in enumerate(value)
        ]
        return {"kind": type(value).__name__ if isinstance(value, (list, tuple)) else "list", "items": items_l}
    inline = _inline(value)
    if inline is not None:
        return inline
    return _store_pickle(session, value, stage, run_id, stage_location, where)


def _store_pickle(
    session: Any, value: Any, stage: str, run_id: str, stage_location: str, where: str, cause: Any = None
) -> dict[str, Any]:
    import cloudpickle

    try:
        data = cloudpickle.dumps(value)
    except Exception as exc:
        raise ArtifactError(
            f"stage {stage!r}: its output ({type(value).__name__}) cannot be stored: it is no DataFrame, "
            f"not JSON and does not pickle ({type(exc).__name__}: {exc}); return data, not live objects"
        ) from None
    path = _stage_path(stage_location, run_id, f"{where}.pkl")
    _put(session, path, data)
    return {"kind": "pickle", "path": path}


def pointer_text(pointer: dict[str, Any], stage: str) -> str:
    """The pointer as the task's return value; a clear error when it exceeds Snowflake's 10 kB."""
    text = json.dumps(pointer, separators=(",", ":"))
    size = len(text.encode("utf-8"))
    if size > RETURN_VALUE_LIMIT_BYTES:
        raise ArtifactError(
            f"stage {stage!r}: its output pointer is {size} bytes, over the Task Graph return-value "
            f"limit of 10 kB ({RETURN_VALUE_LIMIT_BYTES} bytes); return fewer top-level elements "
            "(e.g. one DataFrame or one dict of values instead of a long list of frames)"
        )
    return text


class Pickled:
    """A pickled output kept as its bytes: it pickles to a pickle that loads as the object itself.

    Keeping a run's outputs for ``snowpipe runs`` and replay copies them from the stage into the
    run folder; unpickling a model there imported its library (about a second for XGBoost) in a
    process that never uses it.
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        import pickle

        return pickle.loads, (self.data,)


def load(session: Any, pointer: Any, *, unpickle: bool = True) -> Any:
    """The value a pointer (dict or its JSON text) stands for; ``unpickle=False``: pickled outputs
    as `Pickled` bytes (for a copy, which then loads as the object)."""
    if isinstance(pointer, str):
        try:
            pointer = json.loads(pointer)
        except json.JSONDecodeError:
            raise ArtifactError(f"not a pytest-snowpipe pointer: {pointer[:200]!r}") from None
    if not isinstance(pointer, dict) or "kind" not in pointer:
        raise ArtifactError(f"not a pytest-snowpipe pointer: {str(pointer)[:200]!r}")
    kind = pointer["kind"]
    if kind == "json":
        return pointer["value"]
    if kind == "table":
        return session.table(pointer["name"])
    if kind == "parquet":
        import pandas

        return pandas.read_parquet(io.BytesIO(_get(session, pointer["path"])))
    if kind == "pickle":
        data = _get(session, pointer["path"])
        if not unpickle:
            return Pickled(data)
        import cloudpickle

        return cloudpickle.loads(data)
    if kind == "dict":
        return {k: load(session, v, unpickle=unpickle) for k, v in pointer["items"].items()}
    if kind in ("list", "tuple"):
        items = [load(session, v, unpickle=unpickle) for v in pointer["items"]]
        return items if kind == "list" else tuple(items)
    raise ArtifactError(f"unknown pointer kind {kind!r}")


def tables_of(pointer: Any) -> list[str]:
    """Every table a pointer refers to (for the finalizer's cleanup)."""
    if isinstance(pointer, str):
        try:
            pointer = json.loads(pointer)
        except json.JSONDecodeError:
            return []
    if not isinstance(pointer, dict):
        return []
    if pointer.get("kind") == "table":
        return [pointer["name"]]
    items = pointer.get("items")
    if pointer.get("kind") == "dict" and isinstance(items, dict):
        return [t for v in items.values() for t in tables_of(v)]
    if pointer.get("kind") in ("list", "tuple") and isinstance(items, list):
        return [t for v in items for t in tables_of(v)]
    return []


def publish(session: Any, stage_location: str, run_id: str, name: str, pointer_json: str) -> None:
    """Record ``name``'s pointer in this run's index so any later task of the run can find it."""
    _put(session, _stage_path(stage_location, run_id, f"index/{name.upper()}.json"), pointer_json.encode("utf-8"))


def lookup(session: Any, stage_location: str, run_id: str, name: str) -> str | None:
    """The pointer JSON ``name`` published in this run, or None when it published nothing."""
    try:
        return _get(session, _stage_path(stage_location, run_id, f"index/{name.upper()}.json")).decode("utf-8")
    except Exception:
        return None


__all__ = [
    "RETURN_VALUE_LIMIT_BYTES",
    "ArtifactError",
    "Pickled",
    "load",
    "lookup",
    "pointer_text",
    "publish",
    "run_key",
    "store",
    "table_name",
    "tables_of",
]
