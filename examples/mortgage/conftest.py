"""The seed quickstart's pipeline as pytest fixtures: each fixture is a stage.

raw data -> feature split -> model (trained through sp.remote) -> metrics; the yield
fixture's teardown drops the raw table (the Task Graph's finalizer).
"""
from __future__ import annotations

import pytest

import pytest_snowpipe as sp
import mortgage_pipeline as pipeline
from mortgage_contracts import features_contract, raw_contract


@pytest.fixture(scope="session")
@sp.expect(raw_contract, monitor="1h")  # also a Snowflake monitor: DMFs on its watched table
def loans(snowpipe_session, snowpipe_config):
    table = snowpipe_config["raw_table"]
    yield pipeline.load_raw(snowpipe_session, snowpipe_config["n_rows"], table)
    snowpipe_session.table(table).drop_table()  # cleanup: the finalizer in a Task Graph


@pytest.fixture(scope="session")
@sp.expect(features_contract, key="train")
@sp.expect(features_contract, key="test")
def split(loans):
    return pipeline.split(loans)


@pytest.fixture(scope="session")
@sp.remote(compute_pool="DEMO_POOL", stage_name="JOB_STAGE", target_instances=2)
def model(split):
    return pipeline.train(split)


@pytest.fixture(scope="session")
def metrics(model, split):
    return pipeline.evaluate(model, split["test"].to_pandas())
