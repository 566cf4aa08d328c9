"""Hypothesis strategies of frames that satisfy (or break exactly one rule of) a contract.

How a frame is drawn, and why:
- The row count is drawn first (shrinks towards `min_rows`), then each column.
- Every value comes from a strategy that honours the rules BY CONSTRUCTION: ranges via
  `st.integers/st.floats/st.datetimes(min, max)`, isin via `st.sampled_from` (allowed
  values that also pass the other rules), regex via `st.from_regex(fullmatch=True)`.
- Hypothesis caps the data one example may draw (about 8 kB), so a 1,000-row frame
  cannot draw 1,000 floats per column. A non-unique column therefore draws a small
  pool (1-8 values) and a seed that lays the pool out over the rows; a nullable column
  also draws a null rate (0, 10%, 50% or 100%). A unique column draws a start and a
  step (ints, datetimes) or a seed (floats, strings) and builds distinct values
  (affine sequence, distinct uniform floats, prefix + counter, random regex matches),
  then permutes them. All shrink: the pool to one simple value, seeds and steps to 0/1.
- Unique columns with a small domain (int range, isin, bool, a small regex) cap the row
  count at the number of distinct values available: `strategy(max_rows=500)` on
  `column(int, ge=0, le=1, unique=True)` draws at most 2 rows.
- Custom `checks` cannot be generated: pool values are filtered through them one at a
  time (right for element-wise checks such as `s.abs() < 10`) and, only for contracts
  with checks, whole frames are filtered through `validate` as a backstop.
"""
from __future__ import annotations

import datetime as _dt
import math
import re
import string
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pytest_snowpipe.contracts._core import ColumnSpec, ContractError
from pytest_snowpipe.errors import SnowpipeError

if TYPE_CHECKING:  # pragma: no cover
    from hypothesis.strategies import DrawFn, SearchStrategy

    from pytest_snowpipe.contracts._core import Contract

_I64 = (-(2**63), 2**63 - 1)
_DT_MIN, _DT_MAX = _dt.datetime(1700, 1, 1), _dt.datetime(2200, 1, 1)
_SMALL_DOMAIN = 10_000
_POOL = 8
_NULL_RATES = (0.0, 0.1, 0.5, 1.0)
_PRINTABLE = string.ascii_letters + string.digits + string.punctuation + " "


# ---------------------------------------------------------------- single values
def _int_bounds(spec: ColumnSpec) -> tuple[int, int]:
    lo, hi = _I64
    if spec.ge is not None:
        lo = max(lo, math.ceil(spec.ge))
    if spec.gt is not None:
        lo = max(lo, math.floor(spec.gt) + 1)
    if spec.le is not None:
        hi = min(hi, math.floor(spec.le))
    if spec.lt is not None:
        hi = min(hi, math.ceil(spec.lt) - 1)
    return lo, hi


def _dt_bounds(spec: ColumnSpec) -> tuple[_dt.datetime, _dt.datetime]:
    us = _dt.timedelta(microseconds=1)
    lo, hi = _DT_MIN, _DT_MAX
    if spec.ge is not None:
        lo = max(lo, spec.ge.ceil("us").to_pydatetime())
    if spec.gt is not None:
        lo = max(lo, (spec.gt.floor("us") + us).to_pydatetime())
    if spec.le is not None:
        hi = min(hi, spec.le.floor("us").to_pydatetime())
    if spec.lt is not None:
        hi = min(hi, (spec.lt.ceil("us") - us).to_pydatetime())
    return lo.replace(tzinfo=None), hi.replace(tzinfo=None)


def _passes(spec: ColumnSpec, value: Any) -> bool:
    """Whether one non-null value passes the column's value rules (used for isin lists
    and for element-wise custom checks)."""
    if spec.ge is not None and not value >= spec.ge:
        return False
    if spec.gt is not None and not value > spec.gt:
        return False
    if spec.le is not None and not value <= spec.le:
        return False
    if spec.lt is not None and not value < spec.lt:
        return False
    if spec.regex is not None and not re.fullmatch(spec.regex, value):
        return False
    return _passes_checks(spec, value)


def _passes_checks(spec: ColumnSpec, value: Any) -> bool:
    for check in spec.checks:
        try:
            res = check(_to_series(spec, [value]))
        except Exception:
            return False
        if not bool(np.all(np.asarray(res))):
            return False
    return True


def allowed_values(spec: ColumnSpec) -> list[Any]:
    """The isin values that also pass every other rule (the generator's domain)."""
    assert spec.isin is not None
    values = [float(v) if spec.kind == "float" else v for v in spec.isin]
    if spec.kind == "datetime":
        values = [pd.Timestamp(v) for v in values]
    ok = [v for v in values if _passes(spec, v)]
    if not ok:
        raise ContractError(
            f"column {spec.name!r}: no isin value passes the column's other rules, so "
            "no valid data exists; fix isin or the other rules"
        )
    return ok


def elements(spec: ColumnSpec) -> SearchStrategy[Any]:
    """Strategy of one valid non-null value of the column."""
    from hypothesis import strategies as st

    strat: SearchStrategy[Any]
    if spec.isin is not None:
        return st.sampled_from(allowed_values(spec))
    if spec.kind == "int":
        lo, hi = _int_bounds(spec)
        strat = st.integers(lo, hi)
    elif spec.kind == "float":
        lo_f = spec.ge if spec.ge is not None else spec.gt
        hi_f = spec.le if spec.le is not None else spec.lt
        strat = st.floats(
            min_value=None if lo_f is None else float(lo_f),
            max_value=None if hi_f is None else float(hi_f),
            exclude_min=spec.gt is not None,
            exclude_max=spec.lt is not None,
            allow_nan=False,
            allow_infinity=False,
        )
    elif spec.kind == "str":
        strat = st.from_regex(spec.regex, fullmatch=True) if spec.regex else st.text(
            max_size=20
        )
    elif spec.kind == "bool":
        strat = st.booleans()
    else:
        lo_d, hi_d = _dt_bounds(spec)
        strat = st.datetimes(min_value=lo_d, max_value=hi_d).map(pd.Timestamp)
    if spec.checks:
        strat = strat.filter(lambda v: _passes_checks(spec, v))
    return strat


# ---------------------------------------------------------------- domains (unique)
def _regex_size(pattern: str) -> int | None:
    """Number of strings a simple regex admits (None: unbounded or unknown)."""
    try:
        parsed = re._parser.parse(pattern)  # type: ignore[attr-defined]
        return _count(list(parsed))
    except _Unsupported:
        return None


class _Unsupported(SnowpipeError):
    """A regex construct the small sampler does not handle."""


def _charset(items: list[Any]) -> str:
    from re import _constants as c  # type: ignore[attr-defined]

    chars: set[str] = set()
    negate = False
    cats = {
        c.CATEGORY_DIGIT: string.digits,
        c.CATEGORY_WORD: string.ascii_letters + string.digits + "_",
        c.CATEGORY_SPACE: " \t",
    }
    notcats = {
        c.CATEGORY_NOT_DIGIT: string.digits,
        c.CATEGORY_NOT_WORD: string.ascii_letters + string.digits + "_",
        c.CATEGORY_NOT_SPACE: " \t\n\r\f\v",
    }
    for op, av in items:
        if op is c.NEGATE:
            negate = True
        elif op is c.LITERAL:
            chars.add(chr(av))
        elif op is c.RANGE:
            chars.update(chr(x) for x in range(av[0], min(av[1], av[0] + 500) + 1))
        elif op is c.CATEGORY and av in cats:
            chars.update(cats[av])
        elif op is c.CATEGORY and av in notcats:
            chars.update(ch for ch in _PRINTABLE if ch not in notcats[av])
        else:
            raise _Unsupported(op)
    if negate:
        return "".join(ch for ch in _PRINTABLE if ch not in chars)
    return "".join(sorted(chars))


def _count(items: list[Any]) -> int | None:
    from re import _constants as c  # type: ignore[attr-defined]

    total = 1
    for op, av in items:
        if op is c.LITERAL:
            k: int | None = 1
        elif op is c.AT:
            k = 1
        elif op is c.IN:
            k = len(_charset(av))
        elif op is c.SUBPATTERN:
            k = _count(list(av[-1]))
        elif op is c.BRANCH:
            parts = [_count(list(b)) for b in av[1]]
            k = None if any(p is None for p in parts) else sum(p or 0 for p in parts)
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT):
            lo, hi, sub = av
            inner = _count(list(sub))
            if inner is None or hi is c.MAXREPEAT or hi > 50:
                return None
            k = sum(inner**r for r in range(lo, hi + 1))
        else:
            raise _Unsupported(op)
        if k is None:
            return None
        total *= k
        if total > 10**12:
            return None
    return total


def _regex_sample(items: list[Any], rng: np.random.Generator, out: list[str]) -> None:
    from re import _constants as c  # type: ignore[attr-defined]

    for op, av in items:
        if op is c.LITERAL:
            out.append(chr(av))
        elif op is c.NOT_LITERAL:
            out.append(next(ch for ch in _PRINTABLE[int(rng.integers(0, 26)):] if ord(ch) != av))
        elif op is c.ANY:
            out.append(_PRINTABLE[int(rng.integers(0, len(_PRINTABLE)))])
        elif op is c.AT:
            continue
        elif op is c.IN:
            chars = _charset(av)
            if not chars:
                raise _Unsupported(op)
            out.append(chars[int(rng.integers(0, len(chars)))])
        elif op is c.SUBPATTERN:
            _regex_sample(list(av[-1]), rng, out)
        elif op is c.BRANCH:
            branches = av[1]
            _regex_sample(list(branches[int(rng.integers(0, len(branches)))]), rng, out)
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT):
            lo, hi, sub = av
            hi = lo + 8 if hi is c.MAXREPEAT else min(hi, lo + 8)
            for _ in range(int(rng.integers(lo, hi + 1))):
                _regex_sample(list(sub), rng, out)
        else:
            raise _Unsupported(op)


def domain(spec: ColumnSpec) -> list[Any] | None:
    """Every valid value, when there are few enough to permute (else None)."""
    if spec.isin is not None:
        return allowed_values(spec)
    if spec.kind == "bool":
        return [v for v in (False, True) if _passes_checks(spec, v)]
    if spec.kind == "int":
        lo, hi = _int_bounds(spec)
        if hi - lo < _SMALL_DOMAIN:
            return [v for v in range(lo, hi + 1) if _passes_checks(spec, v)]
    return None


def domain_size(spec: ColumnSpec) -> int | None:
    """How many distinct valid values exist, when that is small enough to matter."""
    dom = domain(spec)
    if dom is not None:
        return len(dom)
    if spec.kind == "str" and spec.regex is not None:
        size = _regex_size(spec.regex)
        return size if size is not None and size < 10**6 else None
    return None


# ---------------------------------------------------------------- columns
def _to_series(spec: ColumnSpec, values: list[Any], nulls: np.ndarray | None = None) -> pd.Series:
    """Values (python scalars) -> a Series of the dtype the contract expects."""
    has_null = nulls is not None and bool(nulls.any())
    kind = spec.kind
    if kind == "int":
        arr = np.asarray(values, dtype=np.int64)
        if has_null:
            return pd.Series(pd.arrays.IntegerArray(arr, nulls.copy()))  # type: ignore[union-attr]
        return pd.Series(arr)
    if kind == "float":
        farr = np.asarray(values, dtype=np.float64)
        if has_null:
            farr = farr.copy()
            farr[nulls] = np.nan
        return pd.Series(farr)
    if kind == "bool":
        barr = np.asarray(values, dtype=bool)
        if has_null:
            return pd.Series(pd.arrays.BooleanArray(barr, nulls.copy()))  # type: ignore[union-attr]
        return pd.Series(barr)
    if kind == "datetime":
        s = pd.Series(pd.to_datetime(pd.Series(values, dtype=object)), dtype="datetime64[ns]")
        if has_null:
            s[nulls] = pd.NaT
        return s
    oarr = np.empty(len(values), dtype=object)
    oarr[:] = values
    if has_null:
        oarr[nulls] = None
    return pd.Series(oarr, dtype=object)


def _unique_values(draw: DrawFn, spec: ColumnSpec, n: int, rng: np.random.Generator) -> list[Any]:
    """n distinct valid values, built (not filtered) so large frames stay cheap."""
    from hypothesis import strategies as st

    if n == 0:
        return []
    dom = domain(spec)
    if dom is not None:
        return [dom[i] for i in rng.permutation(len(dom))[:n]]
    if spec.kind in ("int", "datetime"):
        if spec.kind == "int":
            lo, hi = _int_bounds(spec)
        else:
            dlo, dhi = _dt_bounds(spec)
            lo, hi = int(pd.Timestamp(dlo).value) // 1000, int(pd.Timestamp(dhi).value) // 1000
        start = draw(st.integers(lo, hi - (n - 1)))
        max_step = (hi - start) // (n - 1) if n > 1 else 1
        step = draw(st.integers(1, max(1, min(max_step, 2**20))))
        seq = [start + step * i for i in rng.permutation(n).tolist()]
        if spec.kind == "datetime":
            return [pd.Timestamp(v, unit="us") for v in seq]
        return seq
    if spec.kind == "float":
        lo_f = float(spec.ge if spec.ge is not None else spec.gt if spec.gt is not None else -1e9)
        hi_f = float(spec.le if spec.le is not None else spec.lt if spec.lt is not None else 1e9)
        if spec.gt is not None:
            lo_f = float(np.nextafter(lo_f, np.inf))
        if spec.lt is not None:
            hi_f = float(np.nextafter(hi_f, -np.inf))
        head = draw(st.lists(elements(spec), unique=True, max_size=min(n, 3)))
        seen = set(head)
        out = list(head)
        for _ in range(20):
            for v in np.clip(rng.uniform(lo_f, hi_f, size=n), lo_f, hi_f).tolist():
                if v not in seen and (not spec.checks or _passes_checks(spec, v)):
                    seen.add(v)
                    out.append(v)
                    if len(out) == n:
                        return out
        v = lo_f
        while len(out) < n:  # pathological tiny range: walk the floats one ulp at a time
            if v not in seen:
                seen.add(v)
                out.append(v)
            v = float(np.nextafter(v, np.inf))
        return out
    # str
    if spec.regex is None:
        prefix = draw(st.text(alphabet=string.ascii_letters, max_size=4))
        return [f"{prefix}{i}" for i in rng.permutation(n).tolist()]
    try:
        items = list(re._parser.parse(spec.regex))  # type: ignore[attr-defined]
        found: dict[str, None] = {}
        for _ in range(50 * n + 200):
            buf: list[str] = []
            _regex_sample(items, rng, buf)
            text = "".join(buf)
            if text not in found and re.fullmatch(spec.regex, text) and _passes_checks(spec, text):
                found[text] = None
                if len(found) == n:
                    return list(found)
    except _Unsupported:
        pass
    return draw(st.lists(elements(spec), unique=True, min_size=n, max_size=n))


def _column_values(draw: DrawFn, spec: ColumnSpec, n: int) -> pd.Series:
    from hypothesis import strategies as st

    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    nulls: np.ndarray | None = None
    if spec.nullable:
        rate = draw(st.sampled_from(_NULL_RATES))
        nulls = rng.random(n) < rate if rate else None
    if spec.unique:
        values = _unique_values(draw, spec, n, rng)
    elif n == 0:
        values = []
    else:
        pool = draw(st.lists(elements(spec), min_size=1, max_size=min(n, _POOL)))
        values = [pool[i] for i in rng.integers(0, len(pool), n).tolist()]
    if nulls is not None and spec.min_rows:  # keep at least min_rows values: un-null the first null rows
        missing = spec.min_rows - int(n - np.count_nonzero(nulls))
        if missing > 0:
            nulls[np.flatnonzero(nulls)[:missing]] = False
    if nulls is not None and not nulls.any():
        nulls = None
    return _to_series(spec, values, nulls)


def row_cap(contract: Contract) -> int | None:
    """The most rows a valid frame can have: the smallest domain of a unique column."""
    caps = [domain_size(s) for s in contract.columns.values() if s.unique]
    known = [c for c in caps if c is not None]
    return min(known) if known else None


def _rows(min_rows: int, max_rows: int, contract: Contract) -> tuple[int, int]:
    for arg, value in (("min_rows", min_rows), ("max_rows", max_rows)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ContractError(f"{arg} must be an int >= 0, got {value!r}")
    if min_rows > max_rows:
        raise ContractError(f"min_rows={min_rows} is greater than max_rows={max_rows}")
    # the contract's own row counts: the frame's, and each column's count of values (a column
    # with max_rows caps the frame, nulls or not; min_rows needs that many rows, nulls are
    # then kept off enough rows by _column_values)
    lows = [contract.min_rows, *(s.min_rows for s in contract.columns.values())]
    highs = [contract.max_rows, *(s.max_rows for s in contract.columns.values())]
    need = max(lows)
    allow = min((h for h in highs if h is not None), default=None)
    if allow is not None and need > allow:
        raise ContractError(f"the contract needs at least {need} rows but allows at most {allow}; no frame can pass")
    if need > max_rows or (allow is not None and allow < min_rows):
        raise ContractError(
            f"strategy(min_rows={min_rows}, max_rows={max_rows}) is outside the contract's rows "
            f"({need} to {'any' if allow is None else allow}); widen the strategy's range"
        )
    min_rows = max(min_rows, need)
    max_rows = max_rows if allow is None else min(max_rows, allow)
    cap = row_cap(contract)
    if cap is not None:
        if cap < min_rows:
            raise ContractError(
                f"min_rows={min_rows} but a unique column only has {cap} distinct valid "
                "values; lower min_rows or widen the column's rules"
            )
        max_rows = min(max_rows, cap)
    for spec in contract.columns.values():  # fail at declaration time, not mid-draw
        if spec.isin is not None:
            allowed_values(spec)
    return min_rows, max_rows


def frames(contract: Contract, min_rows: int, max_rows: int) -> SearchStrategy[pd.DataFrame]:
    """See the module docstring."""
    from hypothesis import strategies as st

    lo, hi = _rows(min_rows, max_rows, contract)

    @st.composite
    def build(draw: DrawFn) -> pd.DataFrame:
        n = draw(st.integers(lo, hi))
        data = {name: _column_values(draw, spec, n) for name, spec in contract.columns.items()}
        return pd.DataFrame(data, index=pd.RangeIndex(n))

    strat: SearchStrategy[pd.DataFrame] = build()
    if any(spec.checks for spec in contract.columns.values()):
        strat = strat.filter(lambda df: contract.validate(df, report_only=True).ok)
    return strat


# ---------------------------------------------------------------- violations
def _bad_value(draw: DrawFn, spec: ColumnSpec, rule: str) -> Any:
    """A non-null value breaking `rule` (and, where possible, nothing else)."""
    from hypothesis import strategies as st

    bound: Any = getattr(spec, rule, None)
    if rule in ("ge", "gt", "le", "lt"):
        down = rule in ("ge", "gt")
        if spec.kind == "int":
            if rule == "ge":
                return math.ceil(bound) - 1
            if rule == "le":
                return math.floor(bound) + 1
            return math.floor(bound) if rule == "gt" else math.ceil(bound)
        if spec.kind == "float":
            if rule in ("gt", "lt"):
                return float(bound)
            return float(np.nextafter(float(bound), -np.inf if down else np.inf))
        step = pd.Timedelta(microseconds=1)
        if rule in ("gt", "lt"):
            return pd.Timestamp(bound)
        return pd.Timestamp(bound) - step if down else pd.Timestamp(bound) + step
    if rule == "isin":
        assert spec.isin is not None
        taken = set(spec.isin)
        if spec.kind == "bool":
            return next(v for v in (False, True) if v not in taken)
        if spec.kind == "str":
            other = (
                st.from_regex(spec.regex, fullmatch=True) if spec.regex else st.text(max_size=20)
            )
            return draw(other.filter(lambda v: v not in taken))
        if spec.kind == "datetime":
            return max(pd.Timestamp(v) for v in spec.isin) + pd.Timedelta(microseconds=1)
        if spec.kind == "int":
            lo, hi = _int_bounds(spec)
            for cand in (max(spec.isin) + 1, min(spec.isin) - 1):
                if lo <= cand <= hi:
                    return cand
            return max(spec.isin) + 1  # the range is all allowed: break it too
        return float(max(spec.isin)) + 1.0
    if rule == "regex":
        assert spec.regex is not None
        for cand in ("", "!", "#", " ", "0", "a", "A", "\x00", "~~", "?!#"):
            if not re.fullmatch(spec.regex, cand):
                return cand
        raise ContractError(f"column {spec.name!r}: could not find a string breaking regex")
    raise AssertionError(rule)


def violating_frames(
    contract: Contract, column: str, rule: str, max_rows: int
) -> SearchStrategy[pd.DataFrame]:
    """A valid frame (>= 1 row; 2 for unique) with `rule` broken on `column`."""
    from hypothesis import strategies as st

    if rule == "extra":
        if not contract.strict:
            raise ContractError("rule 'extra' needs a strict contract (strict=True)")
        if column in contract.columns:
            raise ContractError(f"rule 'extra': {column!r} is declared; name a new column")
        spec = None
    else:
        if column not in contract.columns:
            raise ContractError(
                f"violating_strategy: unknown column {column!r}; the contract has "
                f"{', '.join(contract.columns)}"
            )
        spec = contract.columns[column]
        valid = ("missing", "dtype", *spec.rules())
        if rule not in valid:
            raise ContractError(
                f"violating_strategy: column {column!r} has no rule {rule!r}; its rules "
                f"are {', '.join(valid)}"
            )
        if rule.startswith("check"):
            raise ContractError(
                f"violating_strategy: column {column!r} rule {rule!r} is a custom check; "
                "its failing values cannot be constructed, build such a frame by hand"
            )
    need = 2 if rule == "unique" else 1
    cap = row_cap(contract)
    if cap is not None and cap < need:
        raise ContractError(
            f"violating_strategy({column!r}, {rule!r}) needs {need} rows but a unique "
            f"column allows only {cap}"
        )
    base = frames(contract, need, max(need, max_rows))

    @st.composite
    def build(draw: DrawFn) -> pd.DataFrame:
        df = draw(base)
        n = len(df)
        if rule == "missing":
            return df.drop(columns=[column])
        if rule == "extra":
            return df.assign(**{column: np.zeros(n, dtype=np.int64)})
        assert spec is not None
        s = df[column]
        i = draw(st.integers(0, n - 1))
        if rule == "dtype":
            if spec.kind == "str":
                new = s.astype("category")
            elif spec.kind == "bool":
                new = s.astype("Int8")
            else:
                new = s.astype(object)
        elif rule == "nullable":
            new = s.astype("Int64") if spec.kind == "int" else (
                s.astype("boolean") if spec.kind == "bool" else s.copy())
            new.iloc[i] = None if spec.kind == "str" else (
                pd.NaT if spec.kind == "datetime" else (np.nan if spec.kind == "float" else pd.NA))
        elif rule == "unique":
            j = draw(st.integers(0, n - 2))
            j = j if j < i else j + 1
            value = s.iloc[i]
            new = s.copy()
            if pd.isna(value):
                value = draw(elements(spec))
                new.iloc[i] = value
            new.iloc[j] = value
        else:
            new = s.copy()
            value = _bad_value(draw, spec, rule)
            if spec.kind == "int" and not isinstance(new.dtype, np.dtype):
                new.iloc[i] = value
            elif spec.kind == "int":
                arr = new.to_numpy().copy()
                arr[i] = value
                new = pd.Series(arr, index=new.index)
            else:
                new.iloc[i] = value
        out = df.copy()
        out[column] = new
        return out

    return build()
