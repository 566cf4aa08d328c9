"""Contracts on awkward column names, and violation messages of bounded size (issue 27)."""
from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest

from pytest_snowpipe.contracts import Contract, ContractViolation, column
from pytest_snowpipe.contracts._core import MAX_SHOWN_VIOLATIONS


def _rebuilt(code: str) -> Contract:
    compile(code, "<to_code>", "eval")  # valid Python, or a SyntaxError here
    return eval(code, {"Contract": Contract, "column": column, "datetime": datetime, "pd": pd})


def test_to_code_is_valid_python_for_names_that_are_not_keywords():
    df = pd.DataFrame({"my col": [1, 2], "class": ["a", "b"], "1st": [1.0, 2.5], "0": [True, False], "strict": [3, 4]})
    contract = Contract.infer(df)
    rebuilt = _rebuilt(contract.to_code(imports=False))
    assert rebuilt == contract and list(rebuilt.columns) == list(df.columns)  # same columns, same order
    rebuilt.validate(df)


def test_to_code_keeps_the_keyword_form_for_plain_names():
    code = Contract(a=column(int), b=column(str, nullable=True), strict=False).to_code(imports=False)
    assert code.startswith("Contract(\n    a=column(int),") and "strict=False" in code
    assert _rebuilt(code) == Contract(a=column(int), b=column(str, nullable=True), strict=False)


def test_a_contract_inferred_from_integer_column_names_validates_that_frame():
    df = pd.DataFrame(np.arange(12).reshape(4, 3))  # columns 0, 1, 2 (ints)
    contract = Contract.infer(df)
    assert list(contract.columns) == ["0", "1", "2"]
    assert contract.validate(df).ok
    assert _rebuilt(contract.to_code(imports=False)).validate(df).ok
    result = contract.validate(df.drop(columns=[1]), report_only=True)
    assert [(v.column, v.rule) for v in result.violations] == [("1", "missing")]


@pytest.mark.parametrize("extra", [0, 1, 9_950])
def test_a_violation_message_is_capped_and_says_how_many_more(extra):
    n = MAX_SHOWN_VIOLATIONS + extra
    contract = Contract({f"c{i}": column(int) for i in range(n)})
    with pytest.raises(ContractViolation) as info:
        contract.validate(pd.DataFrame({"x" * 5000: [1]}))  # every column missing, one (long-named) extra
    message = str(info.value)
    assert message.startswith(f"contract violated: {n + 1} rule(s) failed")
    assert len(info.value.result.violations) == n + 1  # the result keeps them all
    assert f"... and {extra + 1:,} more rule(s) failed" in message
    assert len(message) < 12_000, len(message)
    assert message.count("\n") == MAX_SHOWN_VIOLATIONS + 2  # head, header row, the shown rows, the tail


def test_exactly_at_the_cap_no_tail():
    contract = Contract({f"c{i}": column(int) for i in range(MAX_SHOWN_VIOLATIONS)})
    with pytest.raises(ContractViolation) as info:
        contract.validate(pd.DataFrame({}))
    assert "more rule(s) failed" not in str(info.value)
