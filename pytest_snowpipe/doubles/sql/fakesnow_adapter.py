"""Close the gaps real Snowpark SQL hits on fakesnow 0.12.1 / DuckDB: an upstreamable adapter.

Every gap is a small rewrite in fakesnow's own style (``sqlglot Expr -> Expr``), run on the
SERVER side, so the real Snowpark and connector code run unchanged. `install()` hooks three
fakesnow internals (nothing in Snowpark or the connector is patched):

* ``fakesnow.cursor.FakeSnowflakeCursor._transform`` -- our rewrites run before fakesnow's
  transform pipeline (`PRE`, which see the statement as parsed and its bindings), and the
  stage commands DuckDB cannot run (GET, REMOVE, INFER_SCHEMA) are answered here.
* ``fakesnow.cursor.FakeSnowflakeCursor.execute`` and ``._execute`` -- an error fakesnow
  does not translate (HTTP 500 at the client, message lost), or a DuckDB "Parser Error" /
  "Not implemented Error" on SQL Snowflake accepts, becomes an `UnsupportedStatement`
  (a ProgrammingError) that names the statement and the fix.
* ``fakesnow.server.gcs_stage_info`` -- PUT keeps Snowflake's ``LOCAL_FS`` stage info (the
  connector copies the file into the stage folder itself) instead of an HTTP upload; the
  engine and its clients share one machine. GET answers with the same ``LOCAL_FS`` info.
* ``fakesnow.server.to_sf`` -- integer columns are sent in the narrowest Arrow int type that
  holds their values, as Snowflake does, so ``to_pandas`` gives int8/16/32/64 like Snowflake.

Gaps (one function each, tested separately in test_engine.py):

a. ``scoped_temporary``: ``CREATE SCOPED TEMPORARY TABLE/STAGE`` (cache_result, random_split,
   UDF registration) -> ``CREATE TEMPORARY ...``.
   ``seeded_random``: ``RANDOM(seed)`` -> a hash of (row content, seed): repeatable on every
   run and engine like Snowflake's seeded RANDOM (DuckDB's setseed is not, under threads).
   ``seeded_sample``: ``SAMPLE (p) SEED (s)`` -> a filter on the same hash (repeatable).
   ``hash_agg``: ``HASH_AGG(*)`` -> an order-independent sum of DuckDB row hashes (table
   fingerprints without reading the table out).
   ``canonical_row_hashes``: these row hashes see a float column in single precision (near 0
   as 0), so a float from DuckDB's parallel aggregation, whose last bits vary run to run, hashes
   the same on every run (resolved on the DuckDB SQL, where the column types are known).
   ``numeric_aggregates``: ``SUM`` / ``AVG`` / ``MEDIAN`` (and windows) of integers and decimals
   -> Snowflake's NUMBER types (fakesnow made them DOUBLE; a sum of integers was inexact).
b. ``dollar_columns``: ``SELECT $1, $2 FROM VALUES ...`` -> ``"COLUMN1"``... (fakesnow aliases
   VALUES columns so).
c. ``qualified_identifier``: ``IDENTIFIER(?)`` bound to ``"DB"."S"."NAME"`` -> a qualified
   table (fakesnow took the whole string as one name); ``rename_unqualified``: DuckDB's
   ``RENAME TO`` takes a bare name. ``infer_schema``: ``TABLE(INFER_SCHEMA(location=>@st,
   file_format=>f))`` -> the parquet schema of the stage's files in Snowflake types.
   With these, write_pandas' CREATE STAGE / PUT / INFER_SCHEMA / CREATE TABLE / COPY INTO
   (fakesnow's own parquet loader, read_parquet) / RENAME run as on Snowflake.
d. ``stage_target``: ``PUT ... '@ST/dir'`` (quoted target) -> unquoted; ``get_stage`` and
   ``remove_stage``: GET and REMOVE against the stage folder.
f/g. ``unsupported``: statements the double cannot run (Python UDFs, UDTFs, stored
   procedures, CALL of them, ...) fail with a ProgrammingError naming the statement and the fix.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import threading
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

import snowflake.connector.errors
import sqlglot
from sqlglot import Expr, exp

from pytest_snowpipe.doubles.sql import handover, lazy_tables, streamed_results
from pytest_snowpipe.doubles.sql.bulk_load import copy_quoted_columns

if TYPE_CHECKING:
    import pyarrow as pa
    from fakesnow.cursor import FakeSnowflakeCursor

__all__ = ["FIX_HINT", "UnsupportedStatement", "install"]

FIX_HINT = "run this test against a real Snowflake account with --snowpipe-connection NAME"
_RANDOM_SCALE = 4611686018427387904  # 2**62: hash >> 1 minus this spans [-2**62, 2**62)

F = TypeVar("F", bound=Callable[..., Any])


class UnsupportedStatement(snowflake.connector.errors.ProgrammingError):
    """A statement the embedded engine cannot run faithfully."""

    def __init__(self, sql: str, why: str) -> None:
        short = " ".join(sql.split())
        short = short if len(short) <= 300 else short[:297] + "..."
        super().__init__(
            msg=f"The embedded engine (fakesnow/DuckDB) cannot run: {short}\n{why}\nFix: {FIX_HINT}.",
            errno=2,  # connector's "feature not supported" range
            sqlstate="0A000",
        )


# --------------------------------------------------------------------------------------------
# a. SCOPED TEMPORARY, seeded RANDOM and SAMPLE
# --------------------------------------------------------------------------------------------

_SCOPED = re.compile(r"^\s*SCOPED\s+TEMPORARY\b", re.IGNORECASE)


def scoped_temporary(expression: Expr) -> Expr:
    """``CREATE [OR REPLACE] SCOPED TEMPORARY ...`` -> ``CREATE ... TEMPORARY ...``.

    sqlglot cannot parse SCOPED and falls back to a Command, so re-parse the statement
    without it. Snowflake scopes such objects to the stored procedure; outside one they
    are plain temporary objects, which is what DuckDB gives.
    """
    if (
        isinstance(expression, exp.Command)
        and expression.name.upper() == "CREATE"
        and isinstance(rest := expression.expression, (str, exp.Literal))
    ):
        text = rest if isinstance(rest, str) else rest.name
        if (or_replace := re.match(r"^\s*OR\s+REPLACE\s+", text, re.IGNORECASE)) is not None:
            text = text[or_replace.end() :]
        if _SCOPED.match(text):
            prefix = "CREATE OR REPLACE " if or_replace else "CREATE "
            return sqlglot.parse_one(prefix + _SCOPED.sub("TEMPORARY", text, count=1), read="snowflake")
    return expression


# Marks the row hashes `canonical_row_hashes` resolves once the statement is DuckDB SQL (a last
# argument, so an unresolved hash is still valid SQL: a DESCRIBE gives its type).
_ROW_HASH_TAG = "snowpipe:canonical-row-hash"
_FLOAT_TYPES = frozenset({"DOUBLE", "FLOAT", "REAL", "FLOAT8", "FLOAT4"})
_FLOAT_ZERO = 1e-9  # |x| below this hashes as 0: x - AVG(x) is 0, 1e-17 or -0.0 by summation order


def _content_hash(*args: Expr) -> Expr:
    """``hash(<args>)`` of a row's content, its float values in a canonical form (see
    `canonical_row_hashes`): repeatable per row content on every run and at any thread count.

    A row's content does not depend on the order a parallel scan, a join or a window hands the
    rows over, so a seeded split of a derived frame picks the same rows on every run (a hash of
    the row's position would not). Equal rows fall on the same side.
    """
    return exp.Anonymous(this="hash", expressions=[*(a.copy() for a in args), exp.Literal.string(_ROW_HASH_TAG)])


def _all_columns() -> Expr:
    return exp.Columns(this=exp.Star(), unpack=True)


def _canonical_float(column: Expr) -> Expr:
    """A DOUBLE as it is hashed: single precision (24-bit mantissa), values near 0 as 0.

    DuckDB's parallel aggregation (SUM/AVG, their windows) adds partial results in the order
    threads finish, so a float it computes differs in its last bits from run to run; rounded to
    single precision the run-to-run difference (~1e-16 relative) changes the value only when it
    lies within that distance of a rounding boundary (about 1e-8 of values).
    """
    near_zero = exp.LT(this=exp.Abs(this=column.copy()), expression=exp.Literal.number(_FLOAT_ZERO))
    flushed = exp.If(this=near_zero, true=exp.Literal.number(0))
    return exp.Cast(this=exp.Case(ifs=[flushed], default=column.copy()), to=exp.DataType.build("FLOAT"))


def seeded_random(expression: Expr) -> Expr:
    """``RANDOM(seed)`` -> a deterministic signed 64-bit value from (row content, seed).

    Snowflake's seeded RANDOM gives the same values every run; random_split relies on it
    (``ABS(RANDOM(seed)) % 1000000``). Unseeded RANDOM() is left to fakesnow.
    """
    if isinstance(expression, exp.Rand) and isinstance(seed := expression.this, exp.Literal):
        shifted = exp.Cast(
            this=exp.BitwiseRightShift(this=_content_hash(_all_columns(), seed), expression=exp.Literal.number(1)),
            to=exp.DataType.build("BIGINT"),
        )
        return exp.Paren(this=exp.Sub(this=shifted, expression=exp.Literal.number(_RANDOM_SCALE)))
    return expression


def seeded_sample(expression: Expr) -> Expr:
    """``<source> SAMPLE (p) SEED (s)`` -> rows whose (content, seed) hash falls under p%.

    DuckDB's ``REPEATABLE`` sample is not repeatable under multi-threading; Snowflake's
    seeded row sample is. A row-count sample (``SAMPLE (n ROWS)``) is left alone.
    """
    if not (
        isinstance(expression, (exp.Table, exp.Subquery))
        and isinstance(sample := expression.args.get("sample"), exp.TableSample)
        and isinstance(seed := sample.args.get("seed"), exp.Literal)
        and isinstance(percent := sample.args.get("percent"), exp.Literal)
    ):
        return expression
    source = expression.copy()
    source.set("sample", None)
    alias = source.args.get("alias")
    source.set("alias", None)
    threshold = int(float(percent.name) * 10_000)  # out of 1_000_000
    key = exp.Mod(this=_content_hash(_all_columns(), seed), expression=exp.Literal.number(1_000_000))
    inner = exp.select("*", exp.alias_(key, "_FS_SAMPLE_KEY")).from_(source)
    outer = (
        exp.select(exp.Star(except_=[exp.column("_FS_SAMPLE_KEY")]))
        .from_(inner.subquery("_fs_sample"))
        .where(exp.column("_FS_SAMPLE_KEY") < threshold)
    )
    return outer.subquery(alias.this.copy() if isinstance(alias, exp.TableAlias) and alias.this else "_fs_sampled")


def hash_agg(expression: Expr) -> Expr:
    """``HASH_AGG(*)`` / ``HASH_AGG([DISTINCT] a, b)`` -> a signed 64-bit sum of DuckDB row hashes.

    Snowflake's HASH_AGG is an order-independent aggregate hash of the rows (NULLs included,
    0 for no rows): the cheap way to fingerprint a table without reading it out. DuckDB has
    ``hash(...)`` per row; their sum modulo 2**64 is order-independent and, unlike XOR, does
    not cancel duplicate rows. The values differ from Snowflake's (as between any two
    Snowflake releases' hash functions, only equality within one engine matters).
    """
    if not isinstance(expression, exp.HashAgg):
        return expression
    first = expression.this
    distinct = isinstance(first, exp.Distinct)
    args = list(first.expressions) if distinct else [first, *expression.expressions]
    if len(args) == 1 and isinstance(args[0], exp.Star):
        args = [_all_columns()]
    row_hash = _content_hash(*args)
    # an anonymous SUM: fakesnow rewrites exp.Sum's argument to a DOUBLE (for VARIANT sums),
    # which would round the 64-bit hashes
    total = exp.Anonymous(this="sum", expressions=[exp.Distinct(expressions=[row_hash]) if distinct else row_hash])
    signed = exp.Sub(
        this=exp.Mod(this=total, expression=exp.Literal.number(2**64)),
        expression=exp.Literal.number(2**63),
    )
    out: Expr = exp.Coalesce(
        this=exp.Cast(this=signed, to=exp.DataType.build("BIGINT")), expressions=[exp.Literal.number(0)]
    )
    if isinstance(expression.parent, exp.Select) and expression.arg_key == "expressions":
        out = exp.alias_(out, exp.to_identifier(expression.sql(dialect="snowflake").upper(), quoted=True))
    return out


def _probe_types(select: exp.Select, columns: list[Expr], cursor: FakeSnowflakeCursor) -> list[tuple[str, str]] | None:
    """(name, DuckDB type) of ``SELECT <columns> FROM <select's sources>``, or None if it cannot
    be described on its own (a correlated reference, a bound parameter)."""
    from_, joins = select.args.get("from_"), select.args.get("joins")
    probe = exp.Select(  # copies: the statement's own nodes keep their parents
        expressions=columns, from_=from_.copy() if from_ else None, joins=[j.copy() for j in joins or ()]
    )
    ctes: list[Expr] = []  # the WITHs in scope, outermost first
    scope: Expr | None = select
    while scope is not None:
        if isinstance(with_ := scope.args.get("with_"), exp.With):
            ctes[:0] = [c.copy() for c in with_.expressions]
        scope = scope.parent
    if ctes:
        probe.set("with_", exp.With(expressions=ctes))
    if probe.find(exp.Placeholder):
        return None
    try:  # on the statement's own DuckDB cursor (its current schema), before the statement runs
        rows = cursor._duck_conn.execute(f"DESCRIBE {probe.sql(dialect='duckdb')}").fetchall()
    except Exception:
        return None
    return [(str(row[0]), str(row[1]).upper()) for row in rows]


def _values_only(expression: Expr) -> bool:
    """An INSERT of bound VALUES (write_pandas, executemany: thousands of nodes): no query to rewrite."""
    return isinstance(expression, exp.Insert) and isinstance(expression.expression, exp.Values)


def canonical_row_hashes(expression: Expr, cursor: FakeSnowflakeCursor) -> Expr:
    """Each tagged row hash (seeded RANDOM and SAMPLE, HASH_AGG) -> a hash of its columns, the
    float ones in `_canonical_float` form, the tag dropped.

    Run on the DuckDB SQL just before it executes: DuckDB's ``*COLUMNS(*)`` cannot apply a
    function to the columns it unpacks, and only DuckDB knows which columns are floats, so the
    columns of the hash's sources are described and written out. Innermost hashes first (a
    split of a split). A hash whose sources cannot be described alone hashes its values as
    they are (repeatable unless they are floats from a parallel aggregate).
    """
    if _values_only(expression):
        return expression
    tagged = [
        e
        for e in expression.find_all(exp.Anonymous, bfs=False)
        if e.name == "hash" and e.expressions and e.expressions[-1] == exp.Literal.string(_ROW_HASH_TAG)
    ]
    for node in reversed(tagged):  # descendants before their ancestors
        args = node.expressions[:-1]
        select = node.find_ancestor(exp.Select)
        resolved: list[Expr] = []
        for arg in args:
            if isinstance(arg, exp.Literal) or select is None:
                resolved.append(arg)
                continue
            star = isinstance(arg, exp.Columns) and isinstance(arg.this, exp.Star)
            types = _probe_types(select, [exp.Star() if star else arg.copy()], cursor)
            if types is None or (star and len({n.lower() for n, _ in types}) != len(types)):
                resolved.append(arg)
            elif star:
                resolved.extend(
                    _canonical_float(col) if typ in _FLOAT_TYPES else col
                    for name, typ in types
                    for col in [exp.column(exp.to_identifier(name, quoted=True))]
                )
            else:
                resolved.append(_canonical_float(arg) if types[0][1] in _FLOAT_TYPES else arg)
        node.set("expressions", [a.copy() for a in resolved])
    return expression


_INTEGER_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
)
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")


def _fixed_point(duck_type: str) -> tuple[int, int] | None:
    """(precision, scale) of a DuckDB integer or DECIMAL type as Snowflake's NUMBER, else None."""
    if duck_type in _INTEGER_TYPES:
        return 38, 0
    if match := _DECIMAL.match(duck_type):
        return int(match.group(1)), int(match.group(2))
    return None


def _numeric_result(node: Expr, precision: int, scale: int) -> exp.DataType:
    """Snowflake's result type of SUM / AVG / MEDIAN over NUMBER(precision, scale)."""
    if isinstance(node, exp.Sum):
        return exp.DataType.build(f"DECIMAL(38, {scale})")
    if isinstance(node, exp.Avg):  # the division rule: the scale grows by 6, up to 12
        return exp.DataType.build(f"DECIMAL(38, {max(scale, min(scale + 6, 12))})")
    return exp.DataType.build(f"DECIMAL({min(38, precision + 3)}, {min(scale + 3, 37)})")  # MEDIAN


def numeric_aggregates(expression: Expr, cursor: FakeSnowflakeCursor) -> Expr:
    """``SUM`` / ``AVG`` / ``MEDIAN`` (and their windows) of a fixed-point column -> Snowflake's NUMBER.

    fakesnow casts every such argument to DOUBLE (Snowflake sums VARCHAR, DuckDB does not), so
    a sum of integers came back as a float, inexact above 2**53. Snowflake gives NUMBER(38, s)
    for SUM (exact), NUMBER(38, s + 6 up to 12) for AVG and NUMBER(p + 3, s + 3) for MEDIAN.
    The argument's type is known only in DuckDB: described once per SELECT, as for row hashes.
    Float and text arguments keep fakesnow's cast.
    """
    if _values_only(expression):
        return expression
    nodes = [
        e
        for e in expression.find_all(exp.Sum, exp.Avg, exp.Median)
        if isinstance(cast := e.this, exp.TryCast)
        and cast.to.this == exp.DataType.Type.DOUBLE
        and not isinstance(cast.this, (exp.Cast, exp.TryCast))
    ]
    by_select: dict[int, tuple[exp.Select, list[Expr]]] = {}
    for node in nodes:
        if isinstance(select := node.find_ancestor(exp.Select), exp.Select):
            by_select.setdefault(id(select), (select, []))[1].append(node)
    for select, aggs in by_select.values():
        args = [exp.alias_(agg.this.this.copy(), f"_a{i}") for i, agg in enumerate(aggs)]
        types = _probe_types(select, list(args), cursor)
        if types is None or len(types) != len(aggs):
            continue
        for agg, (_, duck_type) in zip(aggs, types, strict=True):
            if (fixed := _fixed_point(duck_type)) is None:
                continue
            agg.set("this", agg.this.this)
            outer = agg.parent if isinstance(agg.parent, exp.Window) else agg
            outer.replace(exp.Cast(this=outer.copy(), to=_numeric_result(agg, *fixed)))
    return expression


def qualified_temporary_table(expression: Expr) -> Expr:
    """``CREATE TEMPORARY TABLE db.s.t`` -> ``CREATE TABLE db.s.t`` (DuckDB: temp tables live
    only in its ``temp`` catalog, so later ``db.s.t`` references would not find them).

    The table is then visible to other sessions of the engine and lives until the engine
    closes; Snowpark names its own temporary tables uniquely (``SNOWPARK_TEMP_TABLE_...``).
    """
    if (
        isinstance(expression, exp.Create)
        and expression.kind == "TABLE"
        and (temp := expression.find(exp.TemporaryProperty))
        and isinstance(table := expression.find(exp.Table), exp.Table)
        and (table.catalog or table.db)
    ):
        temp.pop()
        props = expression.args.get("properties")
        if isinstance(props, exp.Properties) and not props.expressions:
            expression.set("properties", None)
    return expression


def cancel_all_queries(expression: Expr) -> Expr:
    """``SYSTEM$CANCEL_ALL_QUERIES(session_id)`` (Session.close) -> a status string.

    The engine runs one statement at a time per session; nothing is left to cancel.
    """
    if isinstance(expression, exp.Anonymous) and expression.name.upper() == "SYSTEM$CANCEL_ALL_QUERIES":
        return exp.Literal.string("0 queries cancelled.")
    return expression


# --------------------------------------------------------------------------------------------
# b. $n columns of VALUES
# --------------------------------------------------------------------------------------------


def parenthesized_table(expression: Expr) -> Expr:
    """``FROM (T)`` -> ``FROM T``: Snowflake accepts a table name in parentheses (Snowpark writes
    it for frames made by ``create_dataframe``), DuckDB's parser does not."""
    if (
        isinstance(expression, exp.Subquery)
        and isinstance(table := expression.this, exp.Table)
        and not expression.alias
        and isinstance(expression.parent, (exp.From, exp.Join))
    ):
        return table
    return expression


def dollar_columns(expression: Expr) -> Expr:
    """``SELECT $1, $2 FROM VALUES (...)`` -> ``SELECT "COLUMN1", "COLUMN2" FROM VALUES (...)``.

    DuckDB reads ``$1`` as a prepared-statement parameter. fakesnow's ``values_columns``
    names the columns of an unaliased VALUES ``COLUMN1``.. like Snowflake, so refer to those.
    """
    if (
        isinstance(expression, exp.Select)
        and isinstance(from_ := expression.args.get("from_"), exp.From)
        and isinstance(from_.this, exp.Values)
        and not from_.this.alias
    ):
        for param in list(expression.find_all(exp.Parameter)):
            if isinstance(param.this, exp.Literal) and param.this.name.isdigit() and param.find_ancestor(
                exp.Select
            ) is expression:
                param.replace(exp.column(exp.to_identifier(f"COLUMN{param.this.name}", quoted=True)))
    return expression


# --------------------------------------------------------------------------------------------
# c. write_pandas: IDENTIFIER('"DB"."S"."X"'), RENAME TO, INFER_SCHEMA
# --------------------------------------------------------------------------------------------


def qualified_identifier(expression: Expr, params: list[Any] | None) -> Expr:
    """``IDENTIFIER(?)`` bound to a qualified, quoted name -> that qualified table.

    fakesnow treats ``'"DB"."S"."X"'`` as ONE quoted identifier ``DB"."S"."X``. Parse the
    bound (or literal) name as Snowflake would; fakesnow handles the simple cases itself.
    """
    if not isinstance(expression, exp.Table):
        return expression
    arg = None
    if isinstance(expression.this, exp.DynamicIdentifier):
        arg = expression.this.this
    elif isinstance(expression.this, exp.Anonymous) and expression.this.name.upper() == "IDENTIFIER":
        arg = expression.this.expressions[0]
    if arg is None:
        return expression
    if isinstance(arg, exp.Placeholder):
        if not isinstance(params, list):
            return expression
        from fakesnow.params import index_of_placeholder

        index = index_of_placeholder(expression.root(), arg)
        value = str(params[index])
        if not ('"' in value and "." in value):
            return expression  # fakesnow's own identifier() handles it
        params.pop(index)
    elif isinstance(arg, exp.Literal) and arg.is_string:
        value = arg.name
        if not ('"' in value and "." in value):
            return expression
    else:
        return expression
    table = exp.to_table(value, dialect="snowflake")
    for key, val in expression.args.items():
        if key not in ("this", "db", "catalog") and val is not None:
            table.set(key, val)
    return table


def rename_unqualified(expression: Expr) -> Expr:
    """``ALTER TABLE a.b.x RENAME TO a.b.y`` -> ``... RENAME TO y`` (DuckDB takes a bare name)."""
    if (
        isinstance(expression, exp.AlterRename)
        and isinstance(new := expression.this, exp.Table)
        and (new.catalog or new.db)
        and isinstance(alter := expression.parent, exp.Alter)
    ):
        old = alter.this
        if isinstance(old, exp.Table) and (new.db or old.db) != (old.db or new.db):
            raise UnsupportedStatement(alter.sql(dialect="snowflake"), "RENAME across schemas.")
        expression.set("this", exp.Table(this=new.this))
    return expression


# DuckDB parquet column types -> Snowflake INFER_SCHEMA types
_SF_TYPES = {
    "TINYINT": "NUMBER(3, 0)",
    "SMALLINT": "NUMBER(5, 0)",
    "INTEGER": "NUMBER(10, 0)",
    "BIGINT": "NUMBER(19, 0)",
    "UTINYINT": "NUMBER(3, 0)",
    "USMALLINT": "NUMBER(5, 0)",
    "UINTEGER": "NUMBER(10, 0)",
    "UBIGINT": "NUMBER(20, 0)",
    "FLOAT": "REAL",
    "DOUBLE": "REAL",
    "VARCHAR": "TEXT",
    "BOOLEAN": "BOOLEAN",
    "DATE": "DATE",
    "TIME": "TIME(9)",
    "TIMESTAMP": "TIMESTAMP_NTZ(9)",
    "TIMESTAMP_NS": "TIMESTAMP_NTZ(9)",
    "TIMESTAMP_MS": "TIMESTAMP_NTZ(9)",
    "TIMESTAMP_S": "TIMESTAMP_NTZ(9)",
    # a tz-aware pandas column: create_dataframe's use_logical_type makes it TIMESTAMP_LTZ (Snowpark's docs)
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMP_LTZ(9)",
    "TIMESTAMPTZ_NS": "TIMESTAMP_LTZ(9)",
    "BLOB": "BINARY",
    "NULL": "TEXT",  # a column with no value at all (pandas: object column of None); Snowflake says TEXT too
}


def _stage_dir(cursor: FakeSnowflakeCursor, ref: str) -> tuple[str, str]:
    """(stage root folder, path within the stage) for ``@[db.][schema.]stage[/path]``."""
    import fakesnow.transforms.stage as stage

    ref = ref.strip().strip("'")
    if not ref.startswith("@"):
        raise snowflake.connector.errors.ProgrammingError(
            msg=f"SQL compilation error:\n{ref} does not start with @", errno=1003, sqlstate="42000"
        )
    var, _, path = ref[1:].partition("/")
    catalog, schema, name = stage.parts_from_var(var, cursor._conn.database, cursor._conn.schema)
    sql = stage.stage_lookup_sql(catalog, schema, name, cursor._conn.table_stages)
    row = cursor._duck_conn.cursor().execute(sql).fetchone()
    if row is None:
        raise stage.not_found_error(f"{catalog}.{schema}.{name}")
    return stage.internal_dir(row[0]), path


def _stage_files(root: str, path: str) -> list[str]:
    """Stage files (relative to root) whose path starts with ``path``, as LIST/GET/REMOVE match."""
    files = (os.path.relpath(f, root) for f in glob.glob(os.path.join(glob.escape(root), "**", "*"), recursive=True))
    return sorted(f for f in files if f.startswith(path) and os.path.isfile(os.path.join(root, f)))


def infer_schema(expression: Expr, cursor: FakeSnowflakeCursor, params: list[Any] | None) -> Expr:
    """``SELECT COLUMN_NAME, TYPE FROM TABLE(INFER_SCHEMA(location=>'@st', ...))`` for parquet.

    Answers from the parquet schema of the stage's files (DuckDB ``DESCRIBE read_parquet``),
    in the Snowflake types INFER_SCHEMA reports. write_pandas(auto_create_table=True) uses it.
    """
    if not (
        isinstance(expression, exp.Select)
        and isinstance(from_ := expression.args.get("from_"), exp.From)
        and isinstance(rows := from_.this, exp.TableFromRows)
        and isinstance(fn := rows.this, exp.Anonymous)
        and fn.name.upper() == "INFER_SCHEMA"
    ):
        return expression
    placeholders = list(expression.find_all(exp.Placeholder, bfs=False))
    kwargs: dict[str, Any] = {}
    used: list[int] = []
    for kw in fn.expressions:
        if isinstance(kw, exp.Kwarg):
            val = kw.expression
            if isinstance(val, exp.Placeholder) and isinstance(params, list):
                used.append(next(i for i, p in enumerate(placeholders) if p is val))
                kwargs[kw.this.name.upper()] = params[used[-1]]
            else:
                kwargs[kw.this.name.upper()] = val.name
    for i in sorted(used, reverse=True):
        assert isinstance(params, list)
        del params[i]
    root, path = _stage_dir(cursor, str(kwargs["LOCATION"]))
    files = [os.path.join(root, f) for f in _stage_files(root, path)]
    if not files:
        raise snowflake.connector.errors.ProgrammingError(
            msg=f"Remote file '{kwargs['LOCATION']}' was not found.", errno=2003, sqlstate="02000"
        )
    described = cursor._duck_conn.cursor().execute(
        "DESCRIBE SELECT * FROM read_parquet(?)", [files]
    ).fetchall()
    pairs = []
    for name, duck_type, *_ in described:
        sf_type = _SF_TYPES.get(str(duck_type).upper().strip('"'))
        if sf_type is None and str(duck_type).upper().startswith("DECIMAL"):
            sf_type = str(duck_type).upper().replace("DECIMAL", "NUMBER")
        if sf_type is None:
            raise UnsupportedStatement(expression.sql(dialect="snowflake"), f"parquet column {name} of type {duck_type}")
        pairs.append((name, sf_type))
    values = exp.values([tuple(p) for p in pairs], alias="_fs_infer", columns=["COLUMN_NAME", "TYPE"])
    return exp.select("COLUMN_NAME", "TYPE").from_(values)


# --------------------------------------------------------------------------------------------
# d. stages: quoted PUT targets, GET, REMOVE
# --------------------------------------------------------------------------------------------


def stage_target(expression: Expr) -> Expr:
    """``PUT 'file://..' '@ST/dir'`` / ``GET '@ST/f' ..``: drop the quotes sqlglot keeps."""
    if isinstance(expression, (exp.Put, exp.Get)) and isinstance(target := expression.args.get("target"), exp.Var):
        text = target.name
        if len(text) >= 2 and text[0] == text[-1] == "'":
            expression.set("target", exp.Var(this=text[1:-1]))
    return expression


def copy_stage_literal(expression: Expr) -> Expr:
    """``COPY INTO t FROM (SELECT .. FROM '@"ST"')`` -> ``FROM @"ST"`` (what write_pandas sends).

    fakesnow's COPY reads the stage from an unquoted ``@stage`` only.
    """
    if (
        isinstance(expression, exp.Table)
        and isinstance(lit := expression.this, exp.Literal)
        and lit.is_string
        and lit.name.startswith("@")
        and expression.find_ancestor(exp.Copy)
    ):
        expression.set("this", exp.Var(this=lit.name))
    return expression


def _local_dir(url: str) -> str:
    parsed = urlparse(url)
    return os.path.expanduser((parsed.netloc + parsed.path) if parsed.scheme == "file" else url)


def get_stage(expression: Expr, cursor: FakeSnowflakeCursor) -> Expr:
    """``GET @st/path file:///dir`` -> a DOWNLOAD command with ``LOCAL_FS`` stage info.

    The connector's local storage client copies each file from the stage folder, exactly as
    it does for a Snowflake LOCAL_FS stage. The statement itself selects a status row.
    """
    if not isinstance(expression, exp.Get):
        return expression
    target = expression.args["target"]
    root, path = _stage_dir(cursor, target.name if isinstance(target, exp.Var) else target.sql())
    local = _local_dir(expression.this.name)
    transformed = sqlglot.parse_one("SELECT 'Statement executed successfully.' AS status", read="duckdb")
    transformed.args["put_stage_data"] = {
        "command": "DOWNLOAD",
        "stageInfo": {"locationType": "LOCAL_FS", "location": root, "creds": {}},
        "src_locations": _stage_files(root, path),
        "localLocation": local,
        "parallel": 1,
        "overwrite": True,
    }
    return transformed


def remove_stage(expression: Expr, cursor: FakeSnowflakeCursor) -> Expr:
    """``REMOVE @st[/path]`` -> delete the matching files; rows ``(name, result)`` as Snowflake."""
    if not (isinstance(expression, exp.Command) and expression.name.upper() in ("REMOVE", "RM")):
        return expression
    rest = expression.expression
    text = (rest.name if isinstance(rest, exp.Literal) else str(rest)).strip()
    if re.search(r"\bPATTERN\b", text, re.IGNORECASE):
        raise UnsupportedStatement(expression.sql(dialect="snowflake"), "REMOVE ... PATTERN")
    root, path = _stage_dir(cursor, text.split()[0])
    stage_name = os.path.basename(os.path.normpath(root)).lower()
    removed = _stage_files(root, path)
    for f in removed:
        os.remove(os.path.join(root, f))
    if path and os.path.isdir(os.path.join(root, path)) and not _stage_files(root, path):
        shutil.rmtree(os.path.join(root, path), ignore_errors=True)
    if not removed:
        return sqlglot.parse_one("SELECT NULL::VARCHAR AS name, NULL::VARCHAR AS result WHERE FALSE", read="duckdb")
    values = exp.values([(f"{stage_name}/{f}", "removed") for f in removed], alias="_fs_rm", columns=["name", "result"])
    return exp.select("name", "result").from_(values)


def nested_result_scan(expression: Expr, cursor: FakeSnowflakeCursor) -> Expr:
    """``... FROM (SELECT * FROM TABLE(RESULT_SCAN('qid')))`` -> that query's cached result.

    fakesnow answers RESULT_SCAN only as the whole statement; Snowpark wraps it (e.g. the
    ``ls @stage`` it runs when registering a UDF). Register the cached Arrow result with
    DuckDB and read it by name.
    """
    if not (
        isinstance(expression, exp.TableFromRows)
        and isinstance(fn := expression.this, exp.Anonymous)
        and fn.name.upper() == "RESULT_SCAN"
        and fn.expressions
        and isinstance(qid := fn.expressions[0], exp.Literal)
        and isinstance(expression.parent, exp.From)
        and expression.parent.parent is not expression.root()
    ):
        return expression
    cached = cursor._conn.results_cache.get(qid.name)
    if cached is None:
        raise snowflake.connector.errors.ProgrammingError(
            msg=f"Statement {qid.name} not found", errno=709, sqlstate="02000"
        )
    name = "_fs_result_" + re.sub(r"\W", "_", qid.name)
    cursor._duck_conn.register(name, cached[0])
    return exp.Table(this=exp.to_identifier(name, quoted=True))


# --------------------------------------------------------------------------------------------
# f/g. statements the double cannot run
# --------------------------------------------------------------------------------------------

_UNSUPPORTED = [
    (
        re.compile(r"^\s*CREATE\b.*\bFUNCTION\b.*\bLANGUAGE\s+(PYTHON|JAVA|SCALA|JAVASCRIPT)\b", re.I | re.S),
        "Python UDFs/UDTFs/UDAFs (session.udf/udtf/udaf.register, @udf, @pandas_udf) need Snowflake's runtime.",
    ),
    (
        re.compile(r"\bINFORMATION_SCHEMA\s*\.\s*PACKAGES\b", re.I),
        "Snowflake's Anaconda package list (checked by sproc/udf registration) is not available.",
    ),
    (
        re.compile(r"^\s*(CREATE\b.*\bPROCEDURE\b|WITH\b.*\bAS\s+PROCEDURE\b)", re.I | re.S),
        "Stored procedures (session.sproc.register, @sproc, tasks) need Snowflake's runtime.",
    ),
]


# statements none of the `_UNSUPPORTED` patterns can match (they start with CREATE or WITH, or
# read INFORMATION_SCHEMA.PACKAGES): most of what Snowpark sends, spared writing their SQL out
_PLAIN_STATEMENTS = (exp.Select, exp.SetOperation, exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Drop, exp.Describe)


def _may_be_unsupported(expression: Expr) -> bool:
    if not isinstance(expression, _PLAIN_STATEMENTS) or expression.args.get("with_") is not None:
        return True
    return any(t.db.upper() == "INFORMATION_SCHEMA" for t in expression.find_all(exp.Table))


def unsupported(sql: str) -> None:
    """Raise `UnsupportedStatement` for a statement the double would get wrong or cannot run."""
    for pattern, why in _UNSUPPORTED:
        if pattern.search(sql):
            raise UnsupportedStatement(sql, why)


# --------------------------------------------------------------------------------------------
# Arrow results: narrowest integer type, as Snowflake sends
# --------------------------------------------------------------------------------------------


def _unscaled_int64(col: pa.ChunkedArray) -> pa.Array | None:
    """A decimal128 column's unscaled values as int64 (nulls kept), or None if one does not fit.

    decimal128 is a little-endian 16-byte two's complement integer: a value fits in int64 when
    its high word is the sign extension of its low word.
    """
    import numpy as np
    import pyarrow as pa

    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    validity, data = arr.buffers()[0], arr.buffers()[1]
    if data is None:
        return None
    words = np.frombuffer(data, dtype="<i8")[2 * arr.offset : 2 * (arr.offset + len(arr))]
    low, high = words[0::2], words[1::2]
    valid = np.ones(len(arr), dtype=bool) if validity is None else arr.is_valid().to_numpy(zero_copy_only=False)
    if not np.array_equal(high[valid], low[valid] >> 63):
        return None
    return pa.Array.from_buffers(pa.int64(), len(arr), [validity, pa.py_buffer(np.ascontiguousarray(low))], arr.null_count)


def narrow_integers(table: pa.Table) -> pa.Table:
    """NUMBER columns as Snowflake sends them: the narrowest signed integer holding the values.

    Snowflake sends NUMBER(p, s) columns as int8/16/32/64 chosen by the values (for s > 0 the
    unscaled integers, with the scale in the field metadata) and decimal128 only when a value
    needs it. The connector's to_pandas keeps that width for s = 0 and gives float64 for s > 0
    (Decimal in rows); without this every integer comes back int64 and every scaled number as
    decimal objects that Snowpark converts one by one.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for col in table.columns:
        if pa.types.is_decimal128(col.type) and (unscaled := _unscaled_int64(col)) is not None:
            col = pa.chunked_array([unscaled])
        if pa.types.is_integer(col.type) and len(col) and col.null_count < len(col):
            bounds = pc.min_max(col)
            lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
            for typ in (pa.int8(), pa.int16(), pa.int32(), pa.int64()):
                info = (-(2 ** (typ.bit_width - 1)), 2 ** (typ.bit_width - 1) - 1)
                if info[0] <= lo and hi <= info[1]:
                    if typ != col.type:
                        col = col.cast(typ)
                    break
        columns.append(col)
    return pa.Table.from_arrays(columns, names=table.column_names)


def null_timestamps(before: pa.Table, sent: pa.Table) -> pa.Table:
    """NULL timestamps stay NULL: fakesnow builds Snowflake's timestamp struct (epoch, fraction)
    without a validity mask, so the connector read every NULL timestamp as 1970-01-01."""
    import pyarrow as pa

    columns = list(sent.columns)
    for i, col in enumerate(before.columns):
        if pa.types.is_timestamp(col.type) and col.null_count and pa.types.is_struct(columns[i].type):
            struct = columns[i].combine_chunks() if isinstance(columns[i], pa.ChunkedArray) else columns[i]
            mask = col.combine_chunks().is_null() if isinstance(col, pa.ChunkedArray) else col.is_null()
            columns[i] = pa.StructArray.from_arrays(struct.flatten(), fields=list(struct.type), mask=mask)
    return pa.Table.from_arrays(columns, schema=sent.schema)


# --------------------------------------------------------------------------------------------
# install: the hook points in fakesnow
# --------------------------------------------------------------------------------------------

PRE: list[Callable[[Expr], Expr]] = [
    scoped_temporary,
    qualified_temporary_table,
    stage_target,
    copy_stage_literal,
    copy_quoted_columns,
    dollar_columns,
    parenthesized_table,
    seeded_random,
    seeded_sample,
    hash_agg,
    cancel_all_queries,
]
_INSTALLED: list[bool] = []  # the rewrites are hooked into fakesnow (for the process: the engine's one per process)
# DuckDB errors on SQL fakesnow translated badly: a gap of the double, not the user's mistake
_DUCKDB_GAP_ERRORS = ("Parser Error", "Not implemented Error")


def _rewrite(expression: Expr, cursor: FakeSnowflakeCursor, params: list[Any] | None) -> Expr:
    """Run the gap rewrites on one parsed statement, before fakesnow's own transforms."""
    lazy_tables.materialize(expression, cursor)  # a cached frame's table, loaded when first named
    expression = scoped_temporary(expression)
    if _may_be_unsupported(expression):
        unsupported(expression.sql(dialect="snowflake") if not isinstance(expression, exp.Command) else _text(expression))
    expression = expression.transform(lambda e: qualified_identifier(e, params), copy=False)
    for rewrite in PRE[1:]:
        expression = expression.transform(rewrite, copy=False)
    expression = expression.transform(rename_unqualified, copy=False)
    expression = expression.transform(lambda e: nested_result_scan(e, cursor), copy=False)
    expression = infer_schema(expression, cursor, params)
    expression = get_stage(expression, cursor)
    return remove_stage(expression, cursor)


def _text(command: exp.Command) -> str:
    rest = command.expression
    return f"{command.name} {rest.name if isinstance(rest, exp.Literal) else rest}"


# fakesnow's server shares ONE DuckDB connection between all sessions and runs each request in a
# thread pool; DuckDB refuses a second statement on a busy connection ("connection is busy"), so
# concurrent requests (the emulator runs independent tasks in parallel, as Snowflake does) wait
# for each other here instead.
DUCKDB_LOCK = threading.RLock()


def _serialised(method: F) -> F:
    @wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with DUCKDB_LOCK:
            return method(*args, **kwargs)

    return locked  # type: ignore[return-value]


def _describable(method: F) -> F:
    """fakesnow describes a result by parsing ``DESCRIBE <last sql>``, which sqlglot cannot parse for
    a parenthesised set operation (``(SELECT ..) UNION ALL (SELECT ..)``, what Snowpark writes for
    ``union_all``): describe ``SELECT * FROM (<last sql>)`` then, the same columns. Anything else
    that fails here becomes an error naming the statement (not an HTTP 500 the client retries)."""

    @wraps(method)
    def describe(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlglot.errors.ParseError:
            saved = self._last_sql
            if not saved or args or kwargs:
                raise UnsupportedStatement(str(saved or args), "the result cannot be described") from None
            self._last_sql = f"SELECT * FROM ({saved})"
            try:
                return method(self)
            except Exception as exc:
                raise UnsupportedStatement(saved, f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from None
            finally:
                self._last_sql = saved

    return describe  # type: ignore[return-value]


def _direct_describe(method: F) -> F:
    """fakesnow describes every result by parsing ``DESCRIBE <its DuckDB SQL>`` with sqlglot,
    regenerating that SQL and running it: the SQL is DuckDB's already, so hand it to DuckDB as
    it is (the parse, the ~90 rewrites and the regeneration were a third of a 4 kB statement's
    server time). On the statement's own DuckDB connection, as fakesnow's way does: its result
    is already read (``_arrow_table``), and only that connection is in the session's database
    and schema (a ``cursor()`` of it is not: unqualified tables and fakesnow's macros, e.g.
    ``_fs_to_timestamp``, were not found there and every such statement was described twice).
    Anything DuckDB refuses here takes fakesnow's own way."""

    @wraps(method)
    def describe(self: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs or not self._last_sql:
            return method(self, *args, **kwargs)
        try:
            return self._duck_conn.execute(f"DESCRIBE {self._last_sql}", self._last_params).fetchall()
        except Exception:
            return method(self)

    return describe  # type: ignore[return-value]


def install() -> None:
    """Hook the rewrites into fakesnow's cursor and server, for the process (idempotent; the engine that
    needs them lives as long, and nothing in it unhooks them)."""
    if _INSTALLED:
        return
    import fakesnow.server as server
    from fakesnow.cursor import FakeSnowflakeCursor

    transform = FakeSnowflakeCursor._transform
    execute = FakeSnowflakeCursor.execute
    run = FakeSnowflakeCursor._execute
    to_sf = server.to_sf  # type: ignore[attr-defined]

    @wraps(transform)
    def _transform(self: FakeSnowflakeCursor, expression: Expr, params: Any = None) -> Expr:
        expression = _rewrite(expression, self, params)
        if expression.args.get("put_stage_data") and isinstance(expression, exp.Select):
            return expression  # GET: already complete
        return transform(self, expression, params)

    @wraps(execute)
    def _execute(self: FakeSnowflakeCursor, command: str, *args: Any, **kwargs: Any) -> Any:
        try:
            with DUCKDB_LOCK:
                return execute(self, command, *args, **kwargs)
        except (snowflake.connector.errors.Error, NotImplementedError):
            raise
        except Exception as e:
            first = (str(e).splitlines() or [""])[0]
            raise UnsupportedStatement(command, f"{type(e).__name__}: {first}") from e

    @wraps(run)
    def _run(self: FakeSnowflakeCursor, transformed: Expr, params: Any = None) -> None:
        # the row hashes are resolved here, on the DuckDB SQL about to run: its column types are known
        final = numeric_aggregates(canonical_row_hashes(transformed, self), self)
        try:
            if streamed_results.streamable(final):  # its rows go straight into Arrow (no DB-API copy)
                with streamed_results.streaming(self):
                    run(self, final, params)
            else:
                run(self, final, params)
        except snowflake.connector.errors.ProgrammingError as e:
            first = (e.raw_msg or e.msg or "").strip().splitlines()[0] if (e.raw_msg or e.msg) else ""
            if first.startswith(_DUCKDB_GAP_ERRORS):  # valid Snowflake SQL, not valid DuckDB SQL
                raise UnsupportedStatement(transformed.sql(dialect="snowflake"), first) from e
            raise

    def _gcs_stage_info(request: Any, expr: Expr, put_stage_data: Any) -> dict[str, Any]:
        return dict(put_stage_data["stageInfo"])  # keep LOCAL_FS: the client shares our disk

    def _to_sf(table: pa.Table, rowtype: Any) -> pa.Table:
        return null_timestamps(table, to_sf(narrow_integers(table), rowtype))

    for name in ("_describe_only", "_describe_last_sql"):  # they query the same DuckDB connection
        original = getattr(FakeSnowflakeCursor, name)
        hooked = _direct_describe(original) if name == "_describe_last_sql" else original
        setattr(FakeSnowflakeCursor, name, _serialised(_describable(hooked)))
    handover.install()  # COPY INTO of a pandas load scans its rows from memory
    FakeSnowflakeCursor._transform = _transform  # type: ignore[method-assign]
    FakeSnowflakeCursor.execute = _execute  # type: ignore[method-assign]
    FakeSnowflakeCursor._execute = _run  # type: ignore[method-assign]
    server.gcs_stage_info = _gcs_stage_info
    server.to_sf = _to_sf  # type: ignore[attr-defined]
    _INSTALLED.append(True)

