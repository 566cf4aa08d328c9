"""Vectorised pandas validation: numpy masks, no per-row Python, no copies of the frame.

String columns are factorized once; isin, regex, unique and the element-type check then
run on the distinct values only and are mapped back to rows with the codes (a regex on
5M rows with 10k distinct values costs 10k matches, not 5M).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pytest_snowpipe.contracts._core import (
    FRAME,
    ColumnSpec,
    ContractResult,
    Violation,
    check_rule_names,
    row_count_violations,
)

if TYPE_CHECKING:  # pragma: no cover
    from pytest_snowpipe.contracts._core import Contract

_MAX_EXAMPLES = 5


def dtype_matches(kind: str, dtype: Any, values: pd.Series | None = None) -> bool:
    """Whether a pandas dtype holds the declared kind (nullable Int64 counts as int)."""
    dkind = getattr(dtype, "kind", "O")
    if isinstance(dtype, pd.CategoricalDtype):
        return False
    if kind == "int":
        return dkind in "iu"
    if kind == "float":
        return dkind == "f"
    if kind == "bool":
        if dkind == "b":
            return True
        return dkind == "O" and values is not None and _inferred(values) in ("boolean", "empty")
    if kind == "datetime":
        return dkind == "M"
    # str: object or string dtype whose non-null elements are all str
    if isinstance(dtype, pd.StringDtype):
        return True
    return dkind == "O" and (values is None or _inferred(values) in ("string", "empty"))


def _inferred(values: Any) -> str:
    return str(pd.api.types.infer_dtype(values, skipna=True))


def _examples(values: Any, mask: np.ndarray) -> tuple[Any, ...]:
    idx = np.flatnonzero(mask)[:_MAX_EXAMPLES]
    return tuple(_py(v) for v in np.asarray(values)[idx]) if len(idx) else ()


def _py(value: Any) -> Any:
    """numpy scalars -> python scalars, so examples print and compare naturally."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _bool_mask(result: Any) -> np.ndarray:
    """A comparison result (numpy or masked) as a plain bool array, NA -> False."""
    if isinstance(result, np.ndarray):
        return result
    if isinstance(result, pd.Series):
        result = result.array
    return np.asarray(pd.array(result, dtype="boolean").to_numpy(dtype=bool, na_value=False))


def validate_pandas(contract: Contract, df: pd.DataFrame) -> ContractResult:
    """Check every rule of `contract` on `df`."""
    n = len(df)
    violations: list[Violation] = []
    if not all(isinstance(c, str) for c in df.columns):  # integer labels (a numpy array's frame): by their text,
        df = df.set_axis([str(c) for c in df.columns], axis=1)  # as Contract.infer names them
    names = df.columns
    if names.has_duplicates:
        for dup in pd.unique(names[names.duplicated()]):
            violations.append(
                Violation(str(dup), "duplicate_column", n, detail="column appears twice")
            )
    for name, spec in contract.columns.items():
        if name not in names:
            violations.append(Violation(name, "missing", n, detail="column not in data"))
            continue
        series = df[name]
        if isinstance(series, pd.DataFrame):
            series = series.iloc[:, 0]
        violations.extend(_check_column(spec, series))
    if contract.strict:
        for extra in names:
            if extra not in contract.columns:
                violations.append(
                    Violation(str(extra), "extra", n, detail="not in contract (strict)")
                )
    violations.extend(row_count_violations(FRAME, n, contract.min_rows, contract.max_rows, "rows"))
    return ContractResult(violations=violations, rows=n, backend="pandas")


def _check_column(spec: ColumnSpec, s: pd.Series) -> list[Violation]:
    name, kind = spec.name, spec.kind
    out: list[Violation] = []
    n = len(s)
    is_str_like = s.dtype.kind == "O" or isinstance(s.dtype, pd.StringDtype)
    factor: tuple[np.ndarray, pd.Index] | None = None
    if (is_str_like and kind == "str") or (is_str_like and (spec.isin is not None or spec.unique)):
        codes, uniques = pd.factorize(s, use_na_sentinel=True)
        factor = (np.asarray(codes), pd.Index(uniques))
    type_ok = dtype_matches(kind, s.dtype, factor[1]) if factor is not None else dtype_matches(kind, s.dtype, s)
    if not type_ok:
        out.append(
            Violation(name, "dtype", n, (str(s.dtype),),
                      detail=f"expected {kind}, got {s.dtype}")
        )
    values = s.array if not isinstance(s.dtype, np.dtype) else s.to_numpy(copy=False)
    numeric = s.dtype.kind in "iufM" and not isinstance(s.dtype, pd.CategoricalDtype)

    null_mask: np.ndarray | None = None
    if not spec.nullable:
        if factor is not None:
            null_mask = factor[0] < 0
        elif isinstance(values, np.ndarray) and values.dtype.kind in "iub":
            null_mask = None  # numpy ints/bools cannot hold nulls
        else:
            null_mask = np.asarray(s.isna())
        if null_mask is not None:
            count = int(np.count_nonzero(null_mask))
            if count:
                out.append(Violation(name, "nullable", count,
                                     _examples(s.index, null_mask), "nulls in column"))

    if numeric and (type_ok or (kind in ("int", "float") and s.dtype.kind in "iuf")):
        for rule in ("ge", "gt", "le", "lt"):
            bound = getattr(spec, rule)
            if bound is None:
                continue
            if rule == "ge":
                bad = values < bound
            elif rule == "gt":
                bad = values <= bound
            elif rule == "le":
                bad = values > bound
            else:
                bad = values >= bound
            mask = _bool_mask(bad)
            count = int(np.count_nonzero(mask))
            if count:
                out.append(Violation(name, rule, count, _examples(values, mask),
                                     f"values must be {_SYMBOL[rule]} {bound!r}"))

    if factor is not None:
        out.extend(_factorized_rules(spec, factor, type_ok))
    else:
        if spec.isin is not None:
            out.extend(_isin_numeric(spec, s, values))
        if spec.unique:
            out.extend(_unique_numeric(spec, s, values))
        if spec.regex is not None and type_ok:
            pass  # regex is str-only; a str column always takes the factorized path

    if spec.checks and type_ok:
        for rule, check in zip(check_rule_names(len(spec.checks)), spec.checks, strict=False):
            out.extend(_custom(spec, s, rule, check))
    if spec.min_rows or spec.max_rows is not None:
        present = n - int(np.count_nonzero(null_mask)) if null_mask is not None else int(s.notna().sum())
        out.extend(row_count_violations(name, present, spec.min_rows, spec.max_rows, "rows with a value"))
    return out


_SYMBOL = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def _isin_numeric(spec: ColumnSpec, s: pd.Series, values: Any) -> list[Violation]:
    assert spec.isin is not None
    allowed = list(spec.isin)
    if (
        isinstance(values, np.ndarray)
        and values.dtype.kind in "iu"
        and all(isinstance(v, int) for v in allowed)
        and max(allowed) - min(allowed) < 1_000_000
    ):
        ok = np.isin(values, np.asarray(allowed), kind="table")
    else:
        ok = _bool_mask(s.isin(allowed))
    bad = ~ok
    if not (isinstance(values, np.ndarray) and values.dtype.kind in "iub"):
        bad &= np.asarray(s.notna())
    count = int(np.count_nonzero(bad))
    if not count:
        return []
    return [Violation(spec.name, "isin", count, _examples(values, bad),
                      f"allowed: {list(spec.isin)!r}"[:200])]


def _unique_numeric(spec: ColumnSpec, s: pd.Series, values: Any) -> list[Violation]:
    """Duplicates among non-null values; NaN/None count as nulls, never as duplicates."""
    if (
        isinstance(values, np.ndarray)
        and values.dtype.kind in "iuM"
        and len(values) > 1
        and (values.dtype.kind != "M" or not np.isnat(values).any())
        and (s.is_monotonic_increasing or s.is_monotonic_decreasing)
        and np.all(values[1:] != values[:-1])
    ):
        return []  # sorted and no equal neighbours: unique without hashing
    nonnull = s.dropna() if s.hasnans else s
    dup = np.asarray(nonnull.duplicated(keep="first"))
    count = int(np.count_nonzero(dup))
    if not count:
        return []
    return [Violation(spec.name, "unique", count,
                      _examples(nonnull.to_numpy(), dup), "duplicated values")]


def _factorized_rules(
    spec: ColumnSpec, factor: tuple[np.ndarray, pd.Index], type_ok: bool
) -> list[Violation]:
    """isin / regex / unique on the distinct values, counted back to rows by code."""
    codes, uniques = factor
    out: list[Violation] = []
    if len(uniques) == 0:
        return out
    counts: np.ndarray | None = None

    def row_counts() -> np.ndarray:
        nonlocal counts
        if counts is None:
            counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
        return counts

    def report(rule: str, bad_u: np.ndarray, detail: str) -> None:
        if bad_u.any():
            count = int(row_counts()[bad_u].sum())
            ex = tuple(_py(v) for v in uniques[bad_u][:_MAX_EXAMPLES])
            out.append(Violation(spec.name, rule, count, ex, detail[:200]))

    if spec.isin is not None:
        bad_u = ~np.asarray(uniques.isin(list(spec.isin)))
        report("isin", bad_u, f"allowed: {list(spec.isin)!r}")
    if spec.regex is not None and type_ok:
        matched = pd.Series(uniques, dtype=object).str.fullmatch(spec.regex)
        bad_u = ~_bool_mask(matched)
        report("regex", bad_u, f"must fully match {spec.regex!r}")
    if spec.unique:
        nonnull = int(np.count_nonzero(codes >= 0))
        if nonnull > len(uniques):
            dup_u = row_counts() > 1
            count = nonnull - len(uniques)
            ex = tuple(_py(v) for v in uniques[dup_u][:_MAX_EXAMPLES])
            out.append(Violation(spec.name, "unique", count, ex, "duplicated values"))
    return out


def _custom(spec: ColumnSpec, s: pd.Series, rule: str, check: Any) -> list[Violation]:
    """A user check: Series -> bool Series (or one bool). Nulls are not passed to it."""
    data = s.dropna() if s.hasnans else s
    try:
        res = check(data)
    except Exception as exc:
        return [Violation(spec.name, rule, len(data),
                          detail=f"check raised {type(exc).__name__}: {exc}")]
    if isinstance(res, (bool, np.bool_)):
        if res:
            return []
        return [Violation(spec.name, rule, len(data),
                          _examples(data.to_numpy(), np.ones(len(data), bool)),
                          "check returned False")]
    bad = ~_bool_mask(res)
    count = int(np.count_nonzero(bad))
    if not count:
        return []
    name = getattr(check, "__name__", "check")
    return [Violation(spec.name, rule, count, _examples(data.to_numpy(), bad),
                      f"custom check {name} failed")]
