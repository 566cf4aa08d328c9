"""Data contracts: one declaration validates pandas and Snowpark frames and generates data.

    from pytest_snowpipe.contracts import Contract, column

    loans = Contract(
        LOAN_ID=column(int, unique=True),
        LOAN_AMOUNT=column(float, ge=0, le=5e6, nullable=True),
        CODE=column(str, regex=r"[A-Z]{2}\\d{3}"),
    )
    loans.validate(df)                  # raises ContractViolation (an AssertionError)
    loans.validate(df, report_only=True)  # returns a ContractResult, never raises
    loans.strategy(max_rows=500)          # hypothesis: valid frames by construction
    loans.violating_strategy("CODE", "regex")
    Contract.infer(df).to_code()

Decisions (see the submodules for details):
- `nullable` defaults to False (a contract is explicit about nulls, as pandera). NaN in a
  float column and NaT count as nulls; nulls never fail ge/le/isin/regex/checks and are
  never duplicates for `unique`.
- `unique` reports the number of extra copies (rows beyond the first of each value).
- A missing column reports only "missing"; a column of the wrong dtype reports "dtype"
  and still gets nullable/unique/isin (and ranges when the data is numeric), not regex or
  custom checks. An empty frame passes every value rule.
- `checks=` are pandas callables; on Snowpark give `sql_check=` (Column -> boolean Column)
  or validation raises ContractError naming the column. `sql_check` is not run on pandas.
- Snowpark: one aggregate query; a second one only when a value rule failed (to fetch
  examples). Snowflake RLIKE is a full match, like pandas `str.fullmatch`; regex syntax
  beyond the common subset (e.g. lookarounds) differs between the two engines.
"""
from __future__ import annotations

from pytest_snowpipe.contracts._core import (
    RULES,
    ColumnSpec,
    Contract,
    ContractError,
    ContractResult,
    ContractViolation,
    Violation,
    column,
)

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
