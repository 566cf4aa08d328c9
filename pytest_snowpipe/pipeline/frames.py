"""What a stage output is: its kind, its shape, its content fingerprint; DataFrame conversion.

Used by the summary, the registry (data fingerprints) and the remote trip. Heavy
libraries are never imported here: values are recognised by their type's module.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any


def is_snowpark_frame(value: Any) -> bool:
    """A ``snowflake.snowpark.DataFrame`` (or subclass such as Table), without importing Snowpark."""
    return any(
        c.__module__.startswith("snowflake.snowpark") and c.__name__ == "DataFrame"
        for c in type(value).__mro__
    )


def is_pandas_frame(value: Any) -> bool:
    """A ``pandas.DataFrame``, without importing pandas."""
    return any(
        c.__module__.startswith("pandas") and c.__name__ == "DataFrame" for c in type(value).__mro__
    )


def to_pandas(frame: Any) -> Any:
    """A Snowpark DataFrame as pandas (one query; the engine sends Arrow)."""
    return frame.to_pandas()


def describe(value: Any) -> tuple[str, str]:
    """(kind, shape) for the summary, e.g. ("snowpark.DataFrame", "800 x 9")."""
    if is_snowpark_frame(value):
        # neither rows nor columns are asked for: each is a query on an account (and a full
        # warehouse query)
        return "snowpark.DataFrame", "lazy"
    if is_pandas_frame(value):
        return "pandas.DataFrame", f"{value.shape[0]} x {value.shape[1]}"
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple):
        return type(value).__name__, " x ".join(str(s) for s in shape)
    if isinstance(value, dict):
        parts = []
        for key, item in list(value.items())[:6]:
            if isinstance(item, float):
                parts.append(f"{key}={item:.4g}")
                continue
            if isinstance(item, (int, str, bool)):
                parts.append(f"{key}={item}")
                continue
            kind, shp = describe(item)
            parts.append(f"{key}: {shp}" if shp else f"{key}: {kind}")
        return "dict", ", ".join(parts) + (", ..." if len(value) > 6 else "")
    if isinstance(value, (list, tuple)):
        return type(value).__name__, f"len {len(value)}"
    if value is None:
        return "None", ""
    return f"{type(value).__module__.split('.')[0]}.{type(value).__name__}", ""


def fingerprint(value: Any) -> str:
    """A short content hash of a stage output: equal data gives an equal fingerprint.

    pandas frames hash their cells (``hash_pandas_object``); Snowpark frames by the engine's
    ``HASH_AGG(*)`` (one query, no data pulled: on an account and on the embedded default
    alike); plain JSON-able values by their JSON; anything else by its cloudpickle bytes.
    """
    h = hashlib.sha256()
    if is_snowpark_frame(value):
        row = value.select_expr("hash_agg(*)").collect()[0][0]
        h.update(str(row).encode())
        return h.hexdigest()[:16]
    if is_pandas_frame(value):
        import pandas

        h.update(json.dumps([str(c) for c in value.columns]).encode())
        h.update(pandas.util.hash_pandas_object(value, index=False).to_numpy().tobytes())
        return h.hexdigest()[:16]
    if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
        for key in sorted(value):
            h.update(key.encode())
            h.update(fingerprint(value[key]).encode())
        return h.hexdigest()[:16]
    try:
        h.update(json.dumps(value, sort_keys=True).encode())
    except (TypeError, ValueError):
        import cloudpickle

        h.update(cloudpickle.dumps(value))
    return h.hexdigest()[:16]
