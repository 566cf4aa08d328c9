"""Tests of pytest_snowpipe.contracts: validation (pandas, Snowpark), generation, infer."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_snowpipe.contracts import (
    Contract,
    ContractError,
    ContractResult,
    ContractViolation,
    Violation,
    column,
)

PURPOSES = ["Home purchase", "Refinancing", "Home improvement"]

LOANS = Contract(
    LOAN_ID=column(int, unique=True, nullable=False),
    LOAN_AMOUNT=column(float, ge=0, le=5e6, nullable=True),
    LOAN_PURPOSE=column(str, isin=PURPOSES),
    MORTGAGERESPONSE=column(int, isin=[0, 1]),
    CODE=column(str, regex=r"^[A-Z]{2}\d{3}$"),
    RATIO=column(float, checks=[lambda s: s.abs() < 10]),
    APPLIED=column(dt.datetime, ge=dt.datetime(2000, 1, 1), nullable=True),
    FLAG=column(bool, nullable=True),
)

FAST = settings(max_examples=30, deadline=None, database=None)


def good_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "LOAN_ID": [1, 2, 3],
        "LOAN_AMOUNT": [10.0, np.nan, 5e6],
        "LOAN_PURPOSE": ["Refinancing", "Home purchase", "Refinancing"],
        "MORTGAGERESPONSE": [0, 1, 1],
        "CODE": ["AB123", "ZZ000", "AB123"],
        "RATIO": [0.5, -9.0, 3.0],
        "APPLIED": pd.to_datetime(["2001-01-01", None, "2020-05-05"]),
        "FLAG": [True, False, True],
    })


def pairs(result: ContractResult) -> set[tuple[str, str]]:
    return {(v.column, v.rule) for v in result.violations}


# ------------------------------------------------------------------ pandas validation
def test_valid_frame_passes() -> None:
    result = LOANS.validate(good_frame())
    assert result.ok and result.violations == [] and result.rows == 3
    assert "OK" in str(result)


def test_every_rule_is_reported_not_only_the_first() -> None:
    df = good_frame()
    df.loc[2, "LOAN_ID"] = 1
    df.loc[0, "LOAN_AMOUNT"] = 6e6
    df.loc[1, "LOAN_PURPOSE"] = "Yacht"
    df.loc[0, "MORTGAGERESPONSE"] = 7
    df.loc[2, "CODE"] = "ab123"
    df.loc[1, "RATIO"] = 42.0
    df["EXTRA"] = 1
    result = LOANS.validate(df, report_only=True)
    assert pairs(result) == {
        ("LOAN_ID", "unique"), ("LOAN_AMOUNT", "le"), ("LOAN_PURPOSE", "isin"),
        ("MORTGAGERESPONSE", "isin"), ("CODE", "regex"), ("RATIO", "check"),
        ("EXTRA", "extra"),
    }
    by = {(v.column, v.rule): v for v in result.violations}
    assert by[("LOAN_AMOUNT", "le")] == Violation(
        "LOAN_AMOUNT", "le", 1, (6e6,), by[("LOAN_AMOUNT", "le")].detail)
    assert by[("CODE", "regex")].examples == ("ab123",)
    assert by[("LOAN_ID", "unique")].examples == (1,)
    text = str(result)
    assert "LOAN_AMOUNT" in text and "failing_rows" in text and "'Yacht'" in text


def test_violation_raises_assertion_error_carrying_the_result() -> None:
    df = good_frame().assign(MORTGAGERESPONSE=[0, 1, 2])
    with pytest.raises(ContractViolation) as info:
        LOANS.validate(df)
    assert isinstance(info.value, AssertionError)
    assert info.value.result.failed("MORTGAGERESPONSE", "isin")
    assert "MORTGAGERESPONSE" in str(info.value)


def test_missing_column_reports_only_missing() -> None:
    result = LOANS.validate(good_frame().drop(columns=["CODE"]), report_only=True)
    assert pairs(result) == {("CODE", "missing")}


def test_non_strict_allows_extra_columns() -> None:
    contract = Contract(A=column(int), strict=False)
    assert contract.validate(pd.DataFrame({"A": [1], "B": [2]})).ok
    strict = Contract(A=column(int))
    assert pairs(strict.validate(pd.DataFrame({"A": [1], "B": [2]}), report_only=True)) == {
        ("B", "extra")}


def test_dtype_rules() -> None:
    contract = Contract(I=column(int, nullable=True), S=column(str), D=column(dt.datetime))
    ok = pd.DataFrame({
        "I": pd.array([1, None], dtype="Int64"),
        "S": pd.array(["a", "b"], dtype="string"),
        "D": pd.to_datetime(["2020-01-01", "2021-01-01"]),
    })
    assert contract.validate(ok).ok
    bad = pd.DataFrame({"I": [1.0, 2.5], "S": [1, 2], "D": ["2020-01-01", "x"]})
    result = contract.validate(bad, report_only=True)
    assert pairs(result) == {("I", "dtype"), ("S", "dtype"), ("D", "dtype")}
    assert result.violations[0].examples == ("float64",)


def test_int_column_with_nulls_needs_nullable() -> None:
    contract = Contract(I=column(int))
    result = contract.validate(pd.DataFrame({"I": pd.array([1, None], dtype="Int64")}),
                               report_only=True)
    assert pairs(result) == {("I", "nullable")}
    assert result.violations[0].examples == (1,)  # index label of the null row


def test_unique_float_nan_counts_as_null_not_duplicate() -> None:
    df = pd.DataFrame({"X": [1.0, np.nan, np.nan, 2.0]})
    assert pairs(Contract(X=column(float, unique=True)).validate(df, report_only=True)) == {
        ("X", "nullable")}
    assert Contract(X=column(float, unique=True, nullable=True)).validate(df).ok
    dup = pd.DataFrame({"X": [1.0, 1.0, np.nan]})
    result = Contract(X=column(float, unique=True, nullable=True)).validate(dup, report_only=True)
    assert pairs(result) == {("X", "unique")} and result.violations[0].failing_rows == 1


def test_empty_frame_passes() -> None:
    empty = good_frame().iloc[0:0]
    assert LOANS.validate(empty).ok


def test_several_custom_checks_and_a_check_that_raises() -> None:
    def boom(s: pd.Series) -> pd.Series:
        raise RuntimeError("broken check")

    contract = Contract(X=column(float, checks=[lambda s: s > 0, lambda s: s < 5, boom]))
    result = contract.validate(pd.DataFrame({"X": [1.0, 7.0]}), report_only=True)
    assert pairs(result) == {("X", "check[1]"), ("X", "check[2]")}
    assert "broken check" in str(result)


# ------------------------------------------------------------------ bad declarations
def test_ge_greater_than_le_is_an_error() -> None:
    with pytest.raises(ContractError, match=r"ge=5.*greater than le=1"):
        column(int, ge=5, le=1)
    with pytest.raises(ContractError, match="gt=1 with an exclusive bound equals lt=1"):
        Contract(A=column(float, gt=1, lt=1))


def test_empty_isin_is_an_error() -> None:
    with pytest.raises(ContractError, match=r"isin=\[\] allows no value"):
        column(str, isin=[])


def test_unknown_rule_keyword_lists_the_valid_ones() -> None:
    with pytest.raises(TypeError, match=r"'minimum'.*valid rules are: nullable, unique, ge"):
        column(int, minimum=3)  # type: ignore[call-arg]


def test_unsupported_type() -> None:
    with pytest.raises(TypeError, match=r"unsupported type 'list'.*int, float, str"):
        column(list)
    with pytest.raises(TypeError, match="expected column"):
        Contract(A=int)  # type: ignore[arg-type]


def test_rules_must_fit_the_type() -> None:
    with pytest.raises(ContractError, match="regex applies to str"):
        column(int, regex="x")
    with pytest.raises(ContractError, match="ge applies to int, float and datetime"):
        column(str, ge=1)
    with pytest.raises(ContractError, match="isin value 'a' is not a int"):
        column(int, isin=[1, "a"])


def test_validate_rejects_non_frames() -> None:
    with pytest.raises(TypeError, match=r"builtins.str.*pandas.DataFrame and snowflake"):
        LOANS.validate("not a frame")


# ------------------------------------------------------------------ Snowpark push-down
@pytest.fixture(scope="module")
def session(embedded_session: Any) -> Any:
    return embedded_session


def _snow(session: Any, rows: list[tuple[Any, ...]]) -> Any:
    from snowflake.snowpark import types as T

    schema = T.StructType([
        T.StructField("ID", T.LongType()), T.StructField("AMT", T.DoubleType()),
        T.StructField("CODE", T.StringType()), T.StructField("P", T.StringType()),
    ])
    return session.create_dataframe(rows, schema=schema)


SNOW = Contract(
    ID=column(int, unique=True),
    AMT=column(float, ge=0, le=100, nullable=True, sql_check=lambda c: c != 50),
    CODE=column(str, regex=r"[A-Z]{2}\d{3}", nullable=True),
    P=column(str, isin=["a", "b"]),
)
GOOD_ROWS = [(1, 1.5, "AB123", "a"), (2, None, "CD456", "b"), (3, 7.0, None, "a")]
BAD_ROWS = [(1, 1.5, "AB123", "a"), (2, -1.0, "zz", "c"), (2, 50.0, None, None)]


def _queries(session: Any, contract: Contract, df: Any) -> tuple[ContractResult, int]:
    with session.query_history() as history:
        result = contract.validate(df, report_only=True)
    return result, len(history.queries)


def test_snowpark_valid_is_one_query(session: Any) -> None:
    result, queries = _queries(session, SNOW, _snow(session, GOOD_ROWS))
    assert result.ok and queries == 1 and result.queries == 1 and result.rows == 3


def test_snowpark_invalid_is_two_queries_with_examples(session: Any) -> None:
    result, queries = _queries(session, SNOW, _snow(session, BAD_ROWS))
    assert queries == 2 == result.queries
    assert pairs(result) == {
        ("ID", "unique"), ("AMT", "ge"), ("AMT", "check"), ("CODE", "regex"),
        ("P", "nullable"), ("P", "isin"),
    }
    by = {(v.column, v.rule): v for v in result.violations}
    assert by[("CODE", "regex")].examples == ("zz",)
    assert by[("P", "isin")].examples == ("c",)
    assert by[("ID", "unique")].failing_rows == 1


def test_snowpark_and_pandas_agree(session: Any) -> None:
    contract = Contract(ID=column(int, unique=True), AMT=column(float, ge=0, le=100,
                        nullable=True), CODE=column(str, regex=r"[A-Z]{2}\d{3}",
                        nullable=True), P=column(str, isin=["a", "b"]))
    pdf = pd.DataFrame(BAD_ROWS, columns=["ID", "AMT", "CODE", "P"])
    local = contract.validate(pdf, report_only=True)
    remote = contract.validate(_snow(session, BAD_ROWS), report_only=True)
    assert pairs(local) == pairs(remote)
    assert {(v.column, v.rule, v.failing_rows) for v in local.violations} == {
        (v.column, v.rule, v.failing_rows) for v in remote.violations}


def test_snowpark_schema_rules_need_no_value_query(session: Any) -> None:
    contract = Contract(ID=column(float), X=column(int), strict=True)
    result, queries = _queries(session, contract, _snow(session, GOOD_ROWS))
    assert pairs(result) == {("ID", "dtype"), ("X", "missing"), ("AMT", "extra"),
                             ("CODE", "extra"), ("P", "extra")}
    assert queries == 1


def test_snowpark_pandas_only_check_is_a_clear_error(session: Any) -> None:
    contract = Contract(AMT=column(float, checks=[lambda s: s > 0]), strict=False)
    with pytest.raises(ContractError, match=r"'AMT'.*sql_check"):
        contract.validate(_snow(session, GOOD_ROWS))


# ------------------------------------------------------------------ hypothesis
@FAST
@given(LOANS.strategy(min_rows=0, max_rows=60))
def test_strategy_frames_are_valid(df: pd.DataFrame) -> None:
    LOANS.validate(df)


VIOLATIONS = [
    ("LOAN_ID", "unique"), ("LOAN_ID", "nullable"), ("LOAN_ID", "dtype"),
    ("LOAN_AMOUNT", "ge"), ("LOAN_AMOUNT", "le"), ("LOAN_PURPOSE", "isin"),
    ("MORTGAGERESPONSE", "isin"), ("CODE", "regex"), ("CODE", "missing"),
    ("CODE", "dtype"), ("APPLIED", "ge"), ("FLAG", "dtype"), ("RATIO", "nullable"),
    ("NEW", "extra"),
]


@pytest.mark.parametrize(("col", "rule"), VIOLATIONS)
def test_violating_strategy_breaks_that_rule(col: str, rule: str) -> None:
    @settings(max_examples=10, deadline=None, database=None)
    @given(LOANS.violating_strategy(col, rule))
    def check(df: pd.DataFrame) -> None:
        result = LOANS.validate(df, report_only=True)
        assert result.failed(col, rule), str(result)

    check()


TIGHT = Contract(
    K=column(int, ge=0, le=1, unique=True),
    S=column(str, isin=["x", "y", "z"]),
    F=column(float, gt=0, lt=1e-300),
    R=column(str, regex=r"[AB]\d", unique=True),
)


def test_tight_domains_cap_rows_without_health_check_failures() -> None:
    sizes: list[int] = []

    @settings(max_examples=40, deadline=None, database=None)  # every health check on
    @given(TIGHT.strategy(min_rows=0, max_rows=500))
    def check(df: pd.DataFrame) -> None:
        TIGHT.validate(df)
        sizes.append(len(df))

    check()
    assert max(sizes) <= 2


@settings(max_examples=20, deadline=None, database=None)
@given(Contract(K=column(int, unique=True), C=column(str, regex=r"[A-Z]{2}\d{3}", unique=True),
                X=column(float, unique=True, ge=0, le=1))
       .strategy(min_rows=1000, max_rows=1000))
def test_large_unique_frames_are_cheap_and_valid(df: pd.DataFrame) -> None:
    assert len(df) == 1000 and df["K"].is_unique and df["C"].is_unique and df["X"].is_unique


def test_violating_strategy_errors() -> None:
    with pytest.raises(ContractError, match="unknown column 'NOPE'"):
        LOANS.violating_strategy("NOPE", "ge")
    with pytest.raises(ContractError, match="has no rule 'le'.*its rules are"):
        LOANS.violating_strategy("CODE", "le")
    with pytest.raises(ContractError, match="custom check"):
        LOANS.violating_strategy("RATIO", "check")
    with pytest.raises(ContractError, match="min_rows=5"):
        TIGHT.strategy(min_rows=5)


# ------------------------------------------------------------------ infer / to_code
def test_infer_and_round_trip() -> None:
    df = pd.DataFrame({
        "ID": np.arange(30), "AMT": np.linspace(0.5, 9.25, 30),
        "P": ["a", "b", None] * 10, "FLAG": [True, False] * 15,
        "T": pd.date_range("2020-01-01", periods=30, freq="D"),
        "N": pd.array([1, None] * 15, dtype="Int64"),
    })
    contract = Contract.infer(df)
    assert contract.columns["ID"] == column(int, unique=True, ge=0, le=29)
    assert contract.columns["AMT"] == column(float, ge=0.5, le=9.25, unique=False)
    assert contract.columns["P"] == column(str, nullable=True, isin=["a", "b"])
    assert contract.columns["N"] == column(int, nullable=True, isin=[1])
    assert contract.validate(df).ok
    code = contract.to_code(imports=False)
    namespace = {"Contract": Contract, "column": column, "datetime": dt, "pd": pd}
    assert eval(code, namespace) == contract
    assert repr(contract) == code


def test_to_code_runs_as_printed() -> None:
    """Printed with its imports: pasted into a fresh module, it runs and gives the same contract."""
    df = pd.DataFrame({"ID": np.arange(5), "T": pd.date_range("2020-01-01", periods=5, freq="D"), "S": list("abcab")})
    contract = Contract.infer(df)
    code = contract.to_code()
    assert code.splitlines()[:4] == ["import datetime", "import pandas as pd", "from pytest_snowpipe import Contract, column", ""]
    namespace: dict[str, object] = {}
    exec(code, namespace)  # a fresh namespace: nothing but what the code imports
    assert namespace["contract"] == contract
    plain = Contract(A=column(int)).to_code()
    assert plain == "from pytest_snowpipe import Contract, column\n\ncontract = Contract(\n    A=column(int),\n)"


@given(st.lists(st.tuples(st.integers(-5, 5), st.floats(-1e6, 1e6), st.sampled_from("abc")),
                min_size=1, max_size=20))
@FAST
def test_infer_accepts_its_source(rows: list[tuple[int, float, str]]) -> None:
    df = pd.DataFrame(rows, columns=["I", "F", "S"])
    assert Contract.infer(df).validate(df).ok


def test_import_is_cheap() -> None:
    code = (
        "import sys, pytest_snowpipe.contracts as c; "
        "assert 'hypothesis' not in sys.modules and 'snowflake.snowpark' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

