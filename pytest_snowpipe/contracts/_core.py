"""Declarations and results of data contracts: `column`, `Contract`, `ContractResult`.

Only pandas/numpy are imported here; Snowpark and hypothesis are imported inside the
functions that need them so that importing a contract costs nothing more.
"""
from __future__ import annotations

import datetime as _dt
import inspect
import keyword
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from pytest_snowpipe.errors import SnowpipeError, hide_deliberate

if TYPE_CHECKING:  # pragma: no cover
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "RULES",
    "ColumnSpec",
    "Contract",
    "ContractError",
    "ContractResult",
    "ContractViolation",
    "Violation",
    "column",
]

__tracebackhide__ = hide_deliberate  # a violation shows its table, not this module (errors.py)

#: Every rule name a `Violation` can carry; `check` / `check[i]` are custom checks.
RULES: tuple[str, ...] = (
    "missing", "extra", "dtype", "nullable", "ge", "gt", "le", "lt", "isin", "unique",
    "regex", "check", "min_rows", "max_rows",
)

#: The `column` of a frame-level violation (Contract(min_rows=..., max_rows=...)).
FRAME = "<frame>"

#: Declared python type -> the kind name used everywhere else.
_KINDS: dict[Any, str] = {
    int: "int",
    float: "float",
    str: "str",
    bool: "bool",
    _dt.datetime: "datetime",
    pd.Timestamp: "datetime",
}
_SUPPORTED = "int, float, str, bool, datetime.datetime (or pd.Timestamp)"
_RANGE_RULES = ("ge", "gt", "le", "lt")


class ContractError(SnowpipeError, ValueError):
    """A contract is declared or used wrongly (not: the data broke it)."""


@dataclass(frozen=True)
class Violation:
    """One broken rule on one column.

    `examples` holds up to 5 failing values; for `nullable` it holds the index labels of
    null rows (pandas only: a Snowpark table has no index), for `dtype` the actual dtype.
    """

    column: str
    rule: str
    failing_rows: int
    examples: tuple[Any, ...] = ()
    detail: str = ""


@dataclass(frozen=True)
class ContractResult:
    """The verdict of one `Contract.validate` call: every rule, not only the first."""

    violations: list[Violation]
    rows: int
    backend: str = "pandas"
    queries: int = 0

    @property
    def ok(self) -> bool:
        """True when no rule is broken."""
        return not self.violations

    def failed(self, column: str, rule: str) -> bool:
        """Whether (column, rule) is among the violations; handy in assertions."""
        return any(v.column == column and v.rule == rule for v in self.violations)

    def __str__(self) -> str:
        if self.ok:
            return f"contract OK on {self.rows:,} rows ({self.backend})"
        head = (
            f"contract violated: {len(self.violations)} rule(s) failed on "
            f"{self.rows:,} rows ({self.backend})"
        )
        rows = [("column", "rule", "failing_rows", "examples / detail")]
        for v in self.violations[:MAX_SHOWN_VIOLATIONS]:  # a 10,000-column contract must not print megabytes
            ex = ", ".join(repr(e) for e in v.examples)
            info = "; ".join(x for x in (f"[{ex}]" if ex else "", v.detail) if x)
            rows.append((_cut(v.column), v.rule, f"{v.failing_rows:,}", _cut(info)))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [
            "  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3]
            for r in rows
        ]
        more = len(self.violations) - MAX_SHOWN_VIOLATIONS
        tail = [f"... and {more:,} more rule(s) failed (all of them: ContractResult.violations)"] if more > 0 else []
        return "\n".join([head, *(line.rstrip() for line in lines), *tail])


MAX_SHOWN_VIOLATIONS = 50  # rows of a violation message; the result keeps every violation
MAX_SHOWN_CHARS = 200  # characters of one cell (a column name, the examples)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


class ContractViolation(SnowpipeError, AssertionError):
    """Raised by `validate`: an AssertionError so that a broken contract in a test FAILS."""

    def __init__(self, result: ContractResult) -> None:
        super().__init__(str(result))
        self.result = result


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_value(kind: str, value: Any, name: str, rule: str) -> Any:
    """Coerce a rule's bound to the column's kind, or explain why it cannot be."""
    if kind in ("int", "float"):
        if not _is_number(value) or (isinstance(value, float) and math.isnan(value)):
            raise ContractError(
                f"column {name!r}: {rule}={value!r} must be a number for a {kind} column"
            )
        return value
    if kind == "datetime":
        try:
            return pd.Timestamp(value)
        except (TypeError, ValueError) as exc:
            raise ContractError(
                f"column {name!r}: {rule}={value!r} must be a datetime for a datetime "
                "column"
            ) from exc
    raise ContractError(
        f"column {name!r}: {rule} applies to int, float and datetime columns, not {kind}; "
        "use isin or regex (str) instead"
    )


@dataclass(frozen=True)
class ColumnSpec:
    """The rules for one column; build it with `column(...)`, which checks them."""

    dtype: type
    nullable: bool = False
    unique: bool = False
    ge: Any = None
    gt: Any = None
    le: Any = None
    lt: Any = None
    isin: tuple[Any, ...] | None = None
    regex: str | None = None
    checks: tuple[Callable[[pd.Series], Any], ...] = ()
    sql_check: Callable[[Any], Any] | None = None
    min_rows: int = 0  # rows holding a value (not null) in this column: at least ...
    max_rows: int | None = None  # ... and at most
    name: str = field(default="", compare=False)

    @property
    def kind(self) -> str:
        """One of int, float, str, bool, datetime."""
        return _KINDS[self.dtype]

    def rules(self) -> tuple[str, ...]:
        """The rule names declared on this column (besides missing and dtype)."""
        out = [] if self.nullable else ["nullable"]
        out += [r for r in _RANGE_RULES if getattr(self, r) is not None]
        if self.isin is not None:
            out.append("isin")
        if self.unique:
            out.append("unique")
        if self.regex is not None:
            out.append("regex")
        out += check_rule_names(len(self.checks))
        return tuple(out)

    def named(self, name: str) -> ColumnSpec:
        """A copy that knows its column name (so errors can name it)."""
        return _build(self.dtype, name, self._kwargs())

    def _kwargs(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _RULE_PARAMS}

    def to_code(self) -> str:
        """Python source for `column(...)` that re-creates this spec."""
        if self.dtype is _dt.datetime or self.dtype is pd.Timestamp:
            args = ["datetime.datetime"]
        else:
            args = [self.dtype.__name__]
        for key in _RULE_PARAMS:
            value = getattr(self, key)
            default = _RULES_SIGNATURE.parameters[key].default
            if key in ("checks", "sql_check"):
                continue  # callables cannot be printed; Contract.to_code adds a comment
            if value is None or value == default:
                continue
            if key == "isin":
                value = list(value)
            args.append(f"{key}={_literal(value)}")
        return f"column({', '.join(args)})"


def _with_imports(code: str) -> str:
    """``code`` (a ``Contract(...)`` expression) as a snippet that runs as printed."""
    lines = []
    if "datetime." in code:
        lines.append("import datetime")
    if "pd." in code:
        lines.append("import pandas as pd")
    lines += ["from pytest_snowpipe import Contract, column", "", f"contract = {code}"]
    return "\n".join(lines)


def check_rule_names(count: int) -> list[str]:
    """Rule names of custom checks: `check` for one, `check[i]` for several."""
    return ["check"] if count == 1 else [f"check[{i}]" for i in range(count)]


def _literal(value: Any) -> str:
    if isinstance(value, pd.Timestamp):
        return f"pd.Timestamp({value.isoformat()!r})"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, float) and math.isinf(value):
        return "float('inf')" if value > 0 else "float('-inf')"
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return repr(value.item())  # numpy scalar -> python scalar
    return repr(value)


def _rules_stub(
    *,
    nullable: bool = False,
    unique: bool = False,
    ge: Any = None,
    gt: Any = None,
    le: Any = None,
    lt: Any = None,
    isin: Iterable[Any] | None = None,
    regex: str | None = None,
    checks: Sequence[Callable[[pd.Series], Any]] | Callable[[pd.Series], Any] = (),
    sql_check: Callable[[Any], Any] | None = None,
    min_rows: int = 0,
    max_rows: int | None = None,
) -> None:
    """The signature every `column(...)` call is bound to."""


_RULES_SIGNATURE = inspect.signature(_rules_stub)
_RULE_PARAMS: tuple[str, ...] = tuple(_RULES_SIGNATURE.parameters)


def _build(dtype: Any, name: str, rules: Mapping[str, Any]) -> ColumnSpec:
    """Bind and check the rules of one column; errors name the column and the fix."""
    where = f"column {name!r}" if name else "column(...)"
    try:
        bound = _RULES_SIGNATURE.bind(**rules)
    except TypeError as exc:
        unknown = sorted(set(rules) - set(_RULE_PARAMS))
        raise TypeError(
            f"{where}: unknown rule keyword(s) {', '.join(map(repr, unknown))}; valid "
            f"rules are: {', '.join(_RULE_PARAMS)}"
        ) from exc
    bound.apply_defaults()
    kw = dict(bound.arguments)
    try:
        kind = _KINDS.get(dtype)
    except TypeError:  # unhashable
        kind = None
    if kind is None:
        raise TypeError(
            f"{where}: unsupported type {getattr(dtype, '__name__', dtype)!r}; use one of "
            f"{_SUPPORTED}"
        )
    for flag in ("nullable", "unique"):
        if not isinstance(kw[flag], bool):
            raise TypeError(f"{where}: {flag} must be True or False, not {kw[flag]!r}")
    for rule in _RANGE_RULES:
        if kw[rule] is not None:
            kw[rule] = _check_value(kind, kw[rule], name, rule)
    if kw["ge"] is not None and kw["gt"] is not None:
        raise ContractError(f"{where}: give ge or gt, not both")
    if kw["le"] is not None and kw["lt"] is not None:
        raise ContractError(f"{where}: give le or lt, not both")
    lo_rule = "ge" if kw["ge"] is not None else "gt"
    hi_rule = "le" if kw["le"] is not None else "lt"
    lo, hi = kw[lo_rule], kw[hi_rule]
    if (lo is not None and hi is not None) and (
        lo > hi or (lo == hi and (lo_rule == "gt" or hi_rule == "lt"))
    ):
        how = "is greater than" if lo > hi else "with an exclusive bound equals"
        raise ContractError(
            f"{where}: {lo_rule}={lo!r} {how} {hi_rule}={hi!r}, so no value can pass; "
            "swap them or fix the bound"
        )
    if kw["isin"] is not None:
        if isinstance(kw["isin"], (str, bytes)) or not isinstance(kw["isin"], Iterable):
            raise TypeError(f"{where}: isin must be a list of allowed values")
        values = tuple(dict.fromkeys(kw["isin"]))
        if not values:
            raise ContractError(
                f"{where}: isin=[] allows no value at all; list the allowed values or "
                "drop the rule"
            )
        for v in values:
            if not _fits(kind, v):
                raise ContractError(
                    f"{where}: isin value {v!r} is not a {kind}; every allowed value must "
                    "match the column type"
                )
        kw["isin"] = values
    if kw["regex"] is not None:
        if kind != "str":
            raise ContractError(f"{where}: regex applies to str columns, not {kind}")
        if not isinstance(kw["regex"], str):
            raise TypeError(f"{where}: regex must be a str pattern")
        try:
            re.compile(kw["regex"])
        except re.error as exc:
            raise ContractError(f"{where}: regex {kw['regex']!r} is invalid: {exc}") from exc
    checks = kw["checks"]
    if callable(checks):
        checks = (checks,)
    checks = tuple(checks)
    for check in checks:
        if not callable(check):
            raise TypeError(
                f"{where}: checks must be callables (pandas Series -> bool Series), got "
                f"{check!r}"
            )
    kw["checks"] = checks
    if kw["sql_check"] is not None and not callable(kw["sql_check"]):
        raise TypeError(f"{where}: sql_check must be a callable (Column -> Column)")
    check_row_bounds(kw["min_rows"], kw["max_rows"], where)
    return ColumnSpec(dtype=dtype, name=name, **kw)


def check_row_bounds(min_rows: Any, max_rows: Any, where: str) -> None:
    """``min_rows``/``max_rows`` must be whole numbers >= 0 with min <= max."""
    for rule, value in (("min_rows", min_rows), ("max_rows", max_rows)):
        if value is None and rule == "max_rows":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ContractError(f"{where}: {rule} must be an int >= 0, got {value!r}")
    if max_rows is not None and min_rows > max_rows:
        raise ContractError(f"{where}: min_rows={min_rows} is greater than max_rows={max_rows}, so no frame can pass")


def row_count_violations(column: str, count: int, min_rows: int, max_rows: int | None, what: str) -> list[Violation]:
    """The min_rows/max_rows violations for ``count`` (rows of a frame, or values of a column).

    ``failing_rows`` is how many rows are missing (min_rows) or too many (max_rows).
    """
    if count < min_rows:
        return [Violation(column, "min_rows", min_rows - count, detail=f"{count} {what}, at least {min_rows} required")]
    if max_rows is not None and count > max_rows:
        return [Violation(column, "max_rows", count - max_rows, detail=f"{count} {what}, at most {max_rows} allowed")]
    return []


def _fits(kind: str, value: Any) -> bool:
    if kind == "int":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            hasattr(value, "dtype") and value.dtype.kind in "iu"
        )
    if kind == "float":
        return _is_number(value) or (hasattr(value, "dtype") and value.dtype.kind in "iuf")
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool) or (hasattr(value, "dtype") and value.dtype.kind == "b")
    return isinstance(value, (_dt.datetime, pd.Timestamp))


if TYPE_CHECKING:

    def column(
        dtype: type,
        /,
        *,
        nullable: bool = False,
        unique: bool = False,
        ge: Any = None,
        gt: Any = None,
        le: Any = None,
        lt: Any = None,
        isin: Iterable[Any] | None = None,
        regex: str | None = None,
        checks: Sequence[Callable[[pd.Series], Any]] | Callable[[pd.Series], Any] = (),
        sql_check: Callable[[Any], Any] | None = None,
        min_rows: int = 0,
        max_rows: int | None = None,
    ) -> ColumnSpec:
        """Typed view of `column` for type checkers."""
        ...

else:

    def column(dtype, /, **rules):
        """Declare one column: its type and rules (nulls are refused unless nullable=True).

        Rules: nullable, unique, ge/gt/le/lt (int, float, datetime), isin, regex (str,
        full match), checks (pandas-only vectorised callables: Series -> bool Series),
        sql_check (the Snowpark counterpart: Column -> boolean Column), min_rows/max_rows
        (how many rows hold a value, not null, in this column). An unknown
        keyword raises TypeError listing the valid ones.
        """
        return _build(dtype, "", rules)


class Contract:
    """A set of column rules that validates pandas/Snowpark frames and generates data.

    `strict=True` (the default) makes columns the contract does not name a violation.
    `min_rows` / `max_rows` bound the frame's row count (`min_rows=1`: an empty frame fails).
    Columns are given as keywords; a column literally named `strict` can be passed in
    the positional mapping: `Contract({"strict": column(bool)})`.
    """

    def __init__(
        self,
        columns: Mapping[str, ColumnSpec] | None = None,
        /,
        *,
        strict: bool = True,
        min_rows: int = 0,
        max_rows: int | None = None,
        **named: ColumnSpec,
    ) -> None:
        merged: dict[str, ColumnSpec] = {}
        for source in (columns or {}, named):
            for name, spec in source.items():
                if not isinstance(name, str) or not name:
                    raise TypeError(f"column names must be non-empty str, got {name!r}")
                if not isinstance(spec, ColumnSpec):
                    raise TypeError(
                        f"column {name!r}: expected column(...), got {type(spec).__name__}; "
                        f"write {name}=column(int, ...)"
                    )
                if name in merged:
                    raise ContractError(f"column {name!r} is declared twice")
                merged[name] = spec.named(name)
        if not isinstance(strict, bool):
            raise TypeError(f"strict must be True or False, not {strict!r}")
        check_row_bounds(min_rows, max_rows, "Contract")
        self.columns: dict[str, ColumnSpec] = merged
        self.strict = strict
        self.min_rows = min_rows
        self.max_rows = max_rows

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Contract):
            return NotImplemented
        return (self.strict, self.min_rows, self.max_rows, self.columns) == (
            other.strict, other.min_rows, other.max_rows, other.columns
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return self.to_code(imports=False)

    def to_code(self, imports: bool = True) -> str:
        """Python source re-creating this contract; with ``imports`` (the default) it runs as printed
        (its imports, then ``contract = Contract(...)``), else the bare expression (names Contract,
        column, datetime and pd)."""
        note = "  # + custom checks (not printable)"
        if all(_keyword_name(n) for n in self.columns):
            body = [f"    {n}={s.to_code()}," + (note if s.checks or s.sql_check else "") for n, s in self.columns.items()]
        else:  # a name that is no Python keyword argument ("my col", "class", "1st", "strict"): the mapping form
            body = ["    {"] + [
                f"        {n!r}: {s.to_code()}," + (note if s.checks or s.sql_check else "") for n, s in self.columns.items()
            ] + ["    },"]
        if not self.strict:
            body.append("    strict=False,")
        if self.min_rows:
            body.append(f"    min_rows={self.min_rows},")
        if self.max_rows is not None:
            body.append(f"    max_rows={self.max_rows},")
        code = "Contract(\n" + "\n".join(body) + "\n)" if body else "Contract()"
        return _with_imports(code) if imports else code

    def validate(self, df: Any, *, report_only: bool = False) -> ContractResult:
        """Check every rule on a pandas or Snowpark DataFrame.

        Raises ContractViolation (an AssertionError) if any rule fails, unless
        report_only=True, in which case the result is returned either way.
        """
        if isinstance(df, pd.DataFrame):
            from pytest_snowpipe.contracts._pandas import validate_pandas

            result = validate_pandas(self, df)
        elif _is_snowpark(df):
            from pytest_snowpipe.contracts._snowpark import validate_snowpark

            result = validate_snowpark(self, df)
        else:
            raise TypeError(
                f"validate() got a {type(df).__module__}.{type(df).__qualname__}; it "
                "supports pandas.DataFrame and snowflake.snowpark.DataFrame"
            )
        if not result.ok and not report_only:
            raise ContractViolation(result)
        return result

    def strategy(
        self, min_rows: int = 0, max_rows: int = 100
    ) -> SearchStrategy[pd.DataFrame]:
        """A hypothesis strategy of pandas frames that satisfy the contract by construction.

        See `pytest_snowpipe.contracts._strategies` for how each rule is honoured.
        """
        from pytest_snowpipe.contracts._strategies import frames

        return frames(self, min_rows, max_rows)

    def violating_strategy(
        self, column: str, rule: str, *, max_rows: int = 50
    ) -> SearchStrategy[pd.DataFrame]:
        """Frames that break `rule` on `column` in at least one row, all else valid."""
        from pytest_snowpipe.contracts._strategies import violating_frames

        return violating_frames(self, column, rule, max_rows)

    @classmethod
    def infer(cls, df: pd.DataFrame, *, max_categories: int = 20) -> Contract:
        """A starting contract from real data: review it, then paste `to_code()`."""
        from pytest_snowpipe.contracts._infer import infer_contract

        return infer_contract(df, max_categories=max_categories)


def _keyword_name(name: str) -> bool:
    """Whether ``name`` can be written as ``Contract(name=...)``."""
    return name.isidentifier() and not keyword.iskeyword(name) and name not in ("strict", "min_rows", "max_rows")


def _is_snowpark(df: Any) -> bool:
    """Snowpark frames are recognised without importing Snowpark when it is not loaded."""
    module = sys.modules.get("snowflake.snowpark")
    if module is None:
        return False
    return isinstance(df, module.DataFrame)
