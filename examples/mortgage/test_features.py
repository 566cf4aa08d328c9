"""Property tests of the feature function on data the raw contract generates."""
from __future__ import annotations

import math

from hypothesis import given, settings

import mortgage_pipeline as pipeline
from mortgage_contracts import features_contract, raw_contract


@settings(max_examples=12, deadline=None)
@given(raw=raw_contract.strategy(min_rows=1, max_rows=12))
def test_features_hold_their_contract(snowpipe_session, raw):
    from snowflake.snowpark.types import DoubleType, LongType, StringType, StructField, StructType, TimestampType

    kinds = {"i": LongType(), "f": DoubleType(), "M": TimestampType()}
    schema = StructType([StructField(c, kinds.get(raw[c].dtype.kind, StringType())) for c in raw.columns])
    frame = snowpipe_session.create_dataframe([tuple(r) for r in raw.itertuples(index=False)], schema=schema)
    out = pipeline.features(frame).to_pandas()
    assert len(out) == len(raw)                                  # row count preserved
    features_contract.validate(out)                              # derived columns typed, never null
    assert all(math.isfinite(v) for v in out["INCOME_LOAN_RATIO"])  # ratios finite
    one_hot = [c for c in out.columns if c.startswith("TYPE_")]
    assert (out[one_hot].sum(axis=1) == 1).all()                 # exactly one loan type per row
