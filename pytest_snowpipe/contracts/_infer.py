"""`Contract.infer`: a starting contract read off real (pandas) data."""
from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import pandas as pd

from pytest_snowpipe.contracts._core import ColumnSpec, Contract, column


def _kind(s: pd.Series) -> type | None:
    dtype = s.dtype
    k = getattr(dtype, "kind", "O")
    if isinstance(dtype, pd.CategoricalDtype):
        return str
    if k == "b":
        return bool
    if k in "iu":
        return int
    if k == "f":
        return float
    if k == "M":
        return _dt.datetime
    inferred = pd.api.types.infer_dtype(s, skipna=True)
    return {"string": str, "empty": str, "boolean": bool}.get(inferred)


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def infer_column(s: pd.Series, max_categories: int) -> ColumnSpec:
    """dtype, nullable, ge/le (min/max), isin (<= max_categories distinct str/int values,
    then without ge/le), unique (int/str whose non-null values are all distinct)."""
    dtype = _kind(s)
    if dtype is None:
        raise TypeError(
            f"column {s.name!r}: cannot infer a contract type from dtype {s.dtype}; "
            "declare it by hand (int, float, str, bool, datetime)"
        )
    rules: dict[str, Any] = {"nullable": bool(s.isna().any())}
    nonnull = s.dropna()
    if len(nonnull) and dtype in (int, str):
        uniq = pd.unique(nonnull)
        if len(uniq) <= max_categories:
            rules["isin"] = sorted(_py(v) for v in uniq)
        if len(uniq) == len(nonnull):
            rules["unique"] = True
    if len(nonnull) and dtype in (int, float, _dt.datetime) and "isin" not in rules:
        lo, hi = nonnull.min(), nonnull.max()
        if dtype is _dt.datetime:
            rules["ge"], rules["le"] = pd.Timestamp(lo), pd.Timestamp(hi)
        else:
            rules["ge"], rules["le"] = _py(lo), _py(hi)
            if dtype is float:
                rules["ge"], rules["le"] = float(rules["ge"]), float(rules["le"])
    return column(dtype, **rules)


def infer_contract(df: pd.DataFrame, *, max_categories: int = 20) -> Contract:
    """See `Contract.infer`."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"Contract.infer() takes a pandas.DataFrame, got {type(df).__qualname__}; for "
            "Snowpark use Contract.infer(df.limit(100_000).to_pandas())"
        )
    return Contract({str(name): infer_column(df[name], max_categories) for name in df.columns})
