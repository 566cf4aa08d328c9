"""Snowpark push-down validation: the whole contract in ONE aggregate query.

Column presence and dtype come from `df.schema` (no query). Every value rule becomes a
`sum(iff(<fails>, 1, 0))` (unique: `count - count_distinct`) in a single `df.agg(...)`;
only when one of them is non-zero does a SECOND query (a `union_all` of `limit 5`
selections) fetch example values. The table is never pulled into Python.

Custom `checks=` are pandas callables and cannot run in Snowflake: give the column a
`sql_check=` (Column -> boolean Column, True = passes) for Snowpark, or validate a
pandas frame; a column with `checks` but no `sql_check` raises ContractError.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_snowpipe.contracts._core import (
    FRAME,
    ColumnSpec,
    ContractError,
    ContractResult,
    Violation,
    row_count_violations,
)

if TYPE_CHECKING:  # pragma: no cover
    from snowflake.snowpark import Column, DataFrame

    from pytest_snowpipe.contracts._core import Contract

_MAX_EXAMPLES = 5


def _unquote(name: str) -> str:
    if len(name) > 1 and name.startswith('"') and name.endswith('"'):
        return name[1:-1].replace('""', '"')
    return name


def snowpark_kind(datatype: Any) -> str:
    """Map a Snowpark DataType to a contract kind (or its class name when none fits)."""
    from snowflake.snowpark import types as T

    if isinstance(datatype, (T.LongType, T.IntegerType, T.ShortType, T.ByteType)):
        return "int"
    if isinstance(datatype, T.DecimalType):
        return "int" if datatype.scale == 0 else "float"
    if isinstance(datatype, (T.DoubleType, T.FloatType)):
        return "float"
    if isinstance(datatype, T.StringType):
        return "str"
    if isinstance(datatype, T.BooleanType):
        return "bool"
    if isinstance(datatype, T.TimestampType):
        return "datetime"
    return type(datatype).__name__


def _fail_conditions(spec: ColumnSpec, c: Column, kind_ok: bool) -> list[tuple[str, Column]]:
    """(rule, boolean Column that is TRUE on a failing row); nulls never fail value rules."""
    from snowflake.snowpark import functions as F

    conds: list[tuple[str, Column]] = []
    notnull = c.is_not_null()
    if not spec.nullable:
        isnull = c.is_null()
        if spec.kind == "float" and kind_ok:
            isnull = isnull | F.coalesce(F.equal_nan(c), F.lit(False))  # NaN = null
        conds.append(("nullable", isnull))
    if kind_ok:
        for rule, op in (("ge", "__lt__"), ("gt", "__le__"), ("le", "__gt__"), ("lt", "__ge__")):
            bound = getattr(spec, rule)
            if bound is not None:
                value = bound.to_pydatetime() if hasattr(bound, "to_pydatetime") else bound
                conds.append((rule, notnull & getattr(c, op)(F.lit(value))))
    if spec.isin is not None:
        conds.append(("isin", notnull & ~c.in_([F.lit(v) for v in spec.isin])))
    if spec.regex is not None and kind_ok:
        # RLIKE matches the whole string, like the pandas full match.
        conds.append(("regex", notnull & ~F.coalesce(c, F.lit("")).rlike(spec.regex)))
    if spec.sql_check is not None and kind_ok:
        conds.append(("check", notnull & ~F.coalesce(spec.sql_check(c), F.lit(False))))
    return conds


def validate_snowpark(contract: Contract, df: DataFrame) -> ContractResult:
    """Validate a Snowpark frame with one aggregate query (+1 for examples on failure)."""
    from snowflake.snowpark import functions as F

    fields = {_unquote(f.name): f for f in df.schema.fields}
    schema_violations: list[tuple[str, str, tuple[Any, ...], str]] = []
    aggs: list[Column] = [F.count(F.lit(1)).alias("N__ROWS")]
    # one entry per aggregate, in the same order: (column, rule, col, fail cond or None)
    checks: list[tuple[str, str, Column, Column | None]] = []
    for name, spec in contract.columns.items():
        field = fields.get(name)
        if field is None:
            schema_violations.append((name, "missing", (), "column not in data"))
            continue
        if spec.checks and spec.sql_check is None:
            raise ContractError(
                f"column {name!r}: checks= are pandas callables and cannot run in "
                "Snowflake; add sql_check=lambda c: <boolean Column> for Snowpark, or "
                "validate df.to_pandas()"
            )
        kind = snowpark_kind(field.datatype)
        kind_ok = kind == spec.kind
        if not kind_ok:
            schema_violations.append(
                (name, "dtype", (kind,), f"expected {spec.kind}, got {field.datatype}")
            )
        c = F.col(field.name)
        for rule, cond in _fail_conditions(spec, c, kind_ok):
            aggs.append(F.sum(F.iff(cond, F.lit(1), F.lit(0))).alias(f"R{len(aggs)}"))
            checks.append((name, rule, c, cond))
        if spec.unique:
            aggs.append((F.count(c) - F.count_distinct(c)).alias(f"R{len(aggs)}"))
            checks.append((name, "unique", c, None))
        if spec.min_rows or spec.max_rows is not None:  # rows with a value: count(c), same query
            aggs.append(F.count(c).alias(f"R{len(aggs)}"))
            checks.append((name, "count", c, None))
    if contract.strict:
        for extra in fields:
            if extra not in contract.columns:
                schema_violations.append((extra, "extra", (), "not in contract (strict)"))

    row = df.agg(*aggs).collect()[0]
    queries = 1
    n = int(row[0] or 0)
    counts = [int(v or 0) for v in row[1:]]
    failed: list[tuple[str, str, int, Column, Column | None]] = []
    row_counts = row_count_violations(FRAME, n, contract.min_rows, contract.max_rows, "rows")
    for i, (name, rule, col, fail) in enumerate(checks):
        if rule == "count":
            spec = contract.columns[name]
            row_counts += row_count_violations(name, counts[i], spec.min_rows, spec.max_rows, "rows with a value")
        elif counts[i]:
            failed.append((name, rule, counts[i], col, fail))

    examples: dict[int, list[Any]] | None = None
    if failed:
        examples = _fetch_examples(df, failed)
        queries += examples is not None
    examples = examples or {}
    violations = [Violation(c, r, n, ex, d) for c, r, ex, d in schema_violations]
    for i, (name, rule, count, _, _) in enumerate(failed):
        ex = tuple(examples.get(i, ())) if rule != "nullable" else ()
        violations.append(Violation(name, rule, count, ex[:_MAX_EXAMPLES]))
    violations.extend(row_counts)
    order = {name: k for k, name in enumerate(contract.columns)}
    violations.sort(key=lambda v: order.get(v.column, len(order)))
    return ContractResult(violations=violations, rows=n, backend="snowpark", queries=queries)


def _fetch_examples(
    df: DataFrame, failed: list[tuple[str, str, int, Column, Column | None]]
) -> dict[int, list[Any]] | None:
    """ONE query (None: no query needed, e.g. only nulls failed): a union of up to 5 failing values per failed rule (cast to string)."""
    from snowflake.snowpark import functions as F

    parts: list[DataFrame] = []
    for i, (_, rule, _, c, cond) in enumerate(failed):
        if rule == "nullable":
            continue  # the failing value is NULL; nothing to show
        if cond is None:  # unique: values occurring more than once
            part = (
                df.group_by(c).agg(F.count(F.lit(1)).alias("K__N"))
                .filter(F.col("K__N") > 1).select(c.alias("V__VAL"))
            )
        else:
            part = df.filter(cond).select(c.alias("V__VAL"))
        parts.append(
            part.limit(_MAX_EXAMPLES).select(
                F.lit(i).alias("V__RULE"), F.col("V__VAL").cast("string").alias("V__VAL")
            )
        )
    if not parts:
        return None
    union = parts[0]
    for part in parts[1:]:
        union = union.union_all(part)
    out: dict[int, list[Any]] = {}
    for r in union.collect():
        out.setdefault(int(r[0]), []).append(r[1])
    return out
