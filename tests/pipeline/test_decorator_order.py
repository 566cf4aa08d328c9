"""Decorators in the wrong order (a stage decorator above @pytest.fixture): one error naming the order."""
from __future__ import annotations

import pytest

from pytest_snowpipe.pipeline.order import DecoratorOrderError, refuse_fixture

STAGES = '''
import pytest
import pandas as pd
import pytest_snowpipe as sp

@pytest.fixture(scope="session")
def raw():
    return pd.DataFrame({{"A": [1, 2]}})

{decorator}
@pytest.fixture(scope="session")
def model(raw):
    return {{"weights": int(raw["A"].sum())}}

@pytest.fixture(scope="session")
def metrics(model):
    return {{"score": 1.0}}
'''


@pytest.mark.parametrize(
    ("decorator", "shown"),
    [
        ('@sp.remote(compute_pool="P", stage_name="S")', "sp.remote(...)"),
        ("@sp.expect(sp.Contract(A=sp.column(int)))", "sp.expect(...)"),
        ('@sp.source(files=["data.csv"])', "sp.source(...)"),
    ],
)
def test_decorator_above_the_fixture_names_the_order(pipeline_suite, decorator, shown):
    result = pipeline_suite(conftest=STAGES.format(decorator=decorator)).runpytest()
    assert result.ret != 0
    result.stderr.fnmatch_lines(  # pytest prints a conftest's import error on stderr
        [
            f"*DecoratorOrderError: @{shown} is above @pytest.fixture on 'model'*Put @pytest.fixture on top:",
            '*    @pytest.fixture(scope="session")',
            f"*    @{shown}",
            "*    def model(...): ...",
        ]
    )
    out = result.stdout.str() + result.stderr.str()
    assert "has no meaning in a Task Graph" not in out
    assert "def decorate" not in out and "refuse_fixture" not in out  # the plugin's frame is hidden: the user's line is shown


def test_right_order_is_accepted():
    def stage() -> int:
        return 1

    refuse_fixture(stage, "sp.remote(...)")  # a plain function: no error
    with pytest.raises(DecoratorOrderError, match="above @pytest.fixture on 'stage'"):
        refuse_fixture(pytest.fixture(scope="session")(stage), "sp.remote(...)")
