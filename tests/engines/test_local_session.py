"""The embedded default: correct data from Snowpark local testing, or a clear error."""
from __future__ import annotations

import pytest

from pytest_snowpipe.engines.mock import create_local_session


@pytest.fixture(scope="module")
def session():
    s = create_local_session()
    yield s
    s.close()


def test_issue_2598_filter_keeps_integer_columns(session):
    from snowflake.snowpark.functions import col

    df = session.create_dataframe([(float(i), i % 2) for i in range(10)], schema=["A", "T"])
    got = df.filter(col("A") > 5).to_pandas()
    assert got["T"].tolist() == [0, 1, 0, 1]
    assert str(got["T"].dtype) == "int64"
    assert got["A"].tolist() == [6.0, 7.0, 8.0, 9.0]


def test_issue_2598_random_split_matches_collect(session):
    df = session.create_dataframe([(float(i), i % 3, f"s{i}") for i in range(200)], schema=["A", "T", "S"])
    for part in df.random_split([0.5, 0.5], seed=3):
        frame = part.to_pandas()
        rows = part.collect()
        assert frame["T"].isna().sum() == 0
        assert frame.values.tolist() == [list(r) for r in rows]


def test_unsupported_call_in_a_stage_names_the_call_and_the_fix(pytester: pytest.Pytester):
    pytester.makeconftest(
        '''
import pytest

@pytest.fixture(scope="session")
def raw(snowpipe_session):
    return snowpipe_session.sql("select 1").collect()
'''
    )
    pytester.makepyfile(
        '''
import pytest

@pytest.mark.snowpipe_gate(on_fail="alert")
def test_gate(raw):
    assert raw
'''
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*[[]Local Testing[]] Session.sql is not supported*",
            "*pytest-snowpipe: this call is not supported by Snowpark's local-testing session*--snowpipe-connection*",
        ]
    )


def test_snowpipe_session_is_local_testing(pytester: pytest.Pytester):
    pytester.makepyfile(
        '''
def test_session(snowpipe_session):
    from pytest_snowpipe.engines.mock import is_local_session
    assert is_local_session(snowpipe_session)
    assert snowpipe_session.create_dataframe([(1,)], schema=["A"]).collect()[0][0] == 1
'''
    )
    pytester.runpytest().assert_outcomes(passed=1)
