"""The connector's own DeprecationWarnings are filtered; the user's are not."""
from __future__ import annotations

STAGES = '''
import warnings
import pandas as pd
import pytest

@pytest.fixture(scope="session")
def raw(snowpipe_session):
    frame = pd.DataFrame({"A": [1, 2, 3], "T": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"])})
    snowpipe_session.write_pandas(frame, "RAW_T", auto_create_table=True, overwrite=True)  # the connector's pandas_tools
    return snowpipe_session.table("RAW_T")

@pytest.fixture(scope="session")
def metrics(raw):
    warnings.warn("the user's own deprecation", DeprecationWarning)
    return {"score": float(raw.count())}
'''

GATE = '''
import pytest

@pytest.mark.snowpipe_gate(on_fail="alert")
def test_gate(metrics):
    assert metrics["score"] == 3
'''


def test_connector_deprecations_are_filtered_the_users_are_not(pipeline_suite):
    pytester = pipeline_suite(conftest=STAGES, gate=GATE)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "the user's own deprecation" in out
    assert "snowflake/connector" not in out
    # the stage does make the connector warn: shown when asked for on the command line
    shown = pytester.runpytest("-p", "no:cacheprovider", "-W", "default::DeprecationWarning")
    assert "snowflake/connector" in shown.stdout.str()
