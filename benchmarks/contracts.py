"""Benchmark pytest-snowpipe contracts against pandera (validation, generation, push-down).

    python benchmarks/contracts.py [--rows 5000000] [--frames 100] [--frame-rows 1000]

Exit code 2 when pandera is not installed (`pip install pandera`).
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from pytest_snowpipe.contracts import Contract, column

PURPOSES = ["Home purchase", "Refinancing", "Home improvement"]
CODE_RE = r"^[A-Z]{2}\d{3}$"


def ratio_check(s: pd.Series) -> pd.Series:
    """The custom vectorised check used by both libraries."""
    return s.abs() < 10


CONTRACT = Contract(
    LOAN_ID=column(int, unique=True),
    LOAN_AMOUNT=column(float, ge=0, le=5e6, nullable=True),
    LOAN_PURPOSE=column(str, isin=PURPOSES),
    MORTGAGERESPONSE=column(int, isin=[0, 1]),
    CODE=column(str, regex=CODE_RE),
    RATIO=column(float, checks=[ratio_check]),
    INCOME=column(float, gt=0, lt=1e7),
    APPLIED=column(dt.datetime, ge=dt.datetime(2000, 1, 1), le=dt.datetime(2030, 1, 1)),
)


def pandera_schema(pa: Any, with_custom: bool = True) -> Any:
    """The same rules as CONTRACT, in pandera."""
    return pa.DataFrameSchema(
        {
            "LOAN_ID": pa.Column(int, unique=True, nullable=False),
            "LOAN_AMOUNT": pa.Column(float, [pa.Check.ge(0), pa.Check.le(5e6)], nullable=True),
            "LOAN_PURPOSE": pa.Column(str, pa.Check.isin(PURPOSES), nullable=False),
            "MORTGAGERESPONSE": pa.Column(int, pa.Check.isin([0, 1]), nullable=False),
            "CODE": pa.Column(str, pa.Check.str_matches(CODE_RE), nullable=False),
            "RATIO": pa.Column(
                float, [pa.Check(ratio_check)] if with_custom else [], nullable=False
            ),
            "INCOME": pa.Column(float, [pa.Check.gt(0), pa.Check.lt(1e7)], nullable=False),
            "APPLIED": pa.Column(
                "datetime64[ns]",
                [pa.Check.ge(pd.Timestamp("2000-01-01")), pa.Check.le(pd.Timestamp("2030-01-01"))],
                nullable=False,
            ),
        },
        strict=True,
    )


def make_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """A valid frame; codes have 5,000 distinct values (a realistic cardinality)."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    codes = np.array(
        [f"{a}{b}{n:03d}" for a, b, n in zip(
            letters[rng.integers(0, 26, 5000)], letters[rng.integers(0, 26, 5000)],
            rng.integers(0, 1000, 5000), strict=False)],
        dtype=object,
    )
    amount = rng.uniform(0, 5e6, rows)
    amount[rng.random(rows) < 0.01] = np.nan
    return pd.DataFrame({
        "LOAN_ID": np.arange(rows, dtype=np.int64),
        "LOAN_AMOUNT": amount,
        "LOAN_PURPOSE": np.array(PURPOSES, dtype=object)[rng.integers(0, 3, rows)],
        "MORTGAGERESPONSE": rng.integers(0, 2, rows),
        "CODE": codes[rng.integers(0, len(codes), rows)],
        "RATIO": rng.normal(0, 2, rows).clip(-9.9, 9.9),
        "INCOME": rng.uniform(1, 1e6, rows),
        "APPLIED": pd.Timestamp("2010-01-01")
        + pd.to_timedelta(rng.integers(0, 10 * 365 * 86400, rows), unit="s"),
    })


def plant_violations(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with one violation in several columns."""
    bad = df.copy()
    n = len(bad)
    bad.loc[n // 2, "LOAN_ID"] = int(bad.loc[0, "LOAN_ID"])
    bad.loc[n // 3, "LOAN_AMOUNT"] = 6e6
    bad.loc[n // 4, "LOAN_PURPOSE"] = "Yacht"
    bad.loc[n // 5, "CODE"] = "zz999"
    bad.loc[n // 6, "RATIO"] = 50.0
    return bad


def best_of(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def ours_verdict(df: pd.DataFrame) -> tuple[bool, set[str]]:
    r = CONTRACT.validate(df, report_only=True)
    return r.ok, {v.column for v in r.violations}


def pandera_verdict(schema: Any, errors: Any, df: pd.DataFrame) -> tuple[bool, set[str]]:
    try:
        schema.validate(df, lazy=True)
        return True, set()
    except errors.SchemaErrors as exc:
        return False, {str(c) for c in exc.failure_cases["column"].dropna()}


def draw_frames(strategy: Any, count: int) -> tuple[float, int, int]:
    """(seconds, frames drawn, health-check failures) for `count` examples."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import FailedHealthCheck

    drawn = 0
    failures = 0
    t = time.perf_counter()
    while drawn < count and failures < 3:
        @settings(max_examples=count - drawn, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.differing_executors])
        @given(strategy)
        def run(df: pd.DataFrame) -> None:
            nonlocal drawn
            drawn += 1

        try:
            run()
        except FailedHealthCheck:
            failures += 1
        except Exception as exc:
            print(f"    ({type(exc).__name__}: {str(exc).splitlines()[0][:100]})")
            failures += 1
    return time.perf_counter() - t, drawn, failures


def snowpark_queries() -> tuple[int, int]:
    """Queries per validate on the embedded engine: (valid frame, invalid frame)."""
    from snowflake.snowpark import types as T

    from pytest_snowpipe.doubles.sql.embedded import create_embedded_session

    session = create_embedded_session()
    schema = T.StructType([
        T.StructField("LOAN_ID", T.LongType()),
        T.StructField("LOAN_AMOUNT", T.DoubleType()),
        T.StructField("LOAN_PURPOSE", T.StringType()),
        T.StructField("CODE", T.StringType()),
    ])
    contract = Contract(
        LOAN_ID=column(int, unique=True),
        LOAN_AMOUNT=column(float, ge=0, le=5e6, nullable=True),
        LOAN_PURPOSE=column(str, isin=PURPOSES),
        CODE=column(str, regex=CODE_RE),
    )
    rows = [(i, float(i), PURPOSES[i % 3], f"AB{i % 1000:03d}") for i in range(1000)]
    # cached into tables first: a create_dataframe of 1000 rows runs its own CREATE / INSERT / DROP
    # around every action (Snowpark's temp table for large literals), which are not the contract's
    good = session.create_dataframe(rows, schema=schema).cache_result()
    bad = session.create_dataframe([*rows, (1, -5.0, "Yacht", "bad")], schema=schema).cache_result()
    counts = []
    for df in (good, bad):
        with session.query_history() as history:
            contract.validate(df, report_only=True)
        counts.append(len(history.queries))
    session.close()
    return counts[0], counts[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--frame-rows", type=int, default=1000)
    args = parser.parse_args(argv)
    try:
        import pandera.pandas as pa
        from pandera import errors
    except ImportError:
        print("pandera is not installed: pip install pandera (needed for the comparison)")
        return 2
    warnings.filterwarnings("ignore")
    schema = pandera_schema(pa)
    table: list[tuple[str, str, str, str, str]] = []

    df = make_frame(args.rows)
    bad = plant_violations(df)
    t_ours, v_ours = best_of(lambda: ours_verdict(df))
    t_pa, v_pa = best_of(lambda: pandera_verdict(schema, errors, df))
    b_ours = ours_verdict(bad)
    b_pa = pandera_verdict(schema, errors, bad)
    table.append((f"validate {args.rows:,} x 8 (best of 3)", f"{t_ours:.3f}s",
                  f"{t_pa:.3f}s", f"{t_pa / t_ours:.1f}x (target >=3x)",
                  f"verdicts match: valid {v_ours == v_pa}, planted {b_ours == b_pa}"))
    if b_ours != b_pa:
        table.append(("  planted verdicts", str(b_ours), str(b_pa), "", ""))

    ours_s = CONTRACT.strategy(min_rows=args.frame_rows, max_rows=args.frame_rows)
    pa_s = pandera_schema(pa, with_custom=True).strategy(size=args.frame_rows)
    t_g, n_g, f_g = draw_frames(ours_s, args.frames)
    t_p, n_p, f_p = draw_frames(pa_s, args.frames)
    rate_o = t_g / max(n_g, 1)
    rate_p = t_p / max(n_p, 1)
    table.append((f"generate {args.frames} x {args.frame_rows}-row frames",
                  f"{t_g:.2f}s ({n_g} frames, {f_g} hc-fail)",
                  f"{t_p:.2f}s ({n_p} frames, {f_p} hc-fail)",
                  f"{rate_p / rate_o:.1f}x per frame (target >=5x)" if n_p
                  else "pandera drew no frame", f"total time {t_p / t_g:.1f}x"))
    q_good, q_bad = snowpark_queries()
    table.append(("snowpark queries / validate", f"valid {q_good}, invalid {q_bad}", "-",
                  "target 1 / 2", ""))

    head = ("measure", "pytest-snowpipe", "pandera", "ratio", "notes")
    widths = [max(len(r[i]) for r in [head, *table]) for i in range(5)]
    for r in [head, *table]:
        print("  ".join(r[i].ljust(widths[i]) for i in range(5)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
