"""Stages of the wine pipeline: raw table -> split (pandas) -> local XGBoost -> metrics."""
from __future__ import annotations

import pytest

import wine_pipeline


@pytest.fixture(scope="session")
def wine_raw(snowpipe_session):
    return wine_pipeline.load_wine_table(snowpipe_session)


@pytest.fixture(scope="session")
def wine_split(wine_raw):
    return wine_pipeline.split(wine_raw)


@pytest.fixture(scope="session")
def wine_model(wine_split):
    return wine_pipeline.train(wine_split)


@pytest.fixture(scope="session")
def wine_metrics(wine_model, wine_split):
    return wine_pipeline.evaluate(wine_model, wine_split)
