"""The mortgage pipeline's logic as plain functions: the seed quickstart's steps, one to one.

The fixtures in conftest.py are thin wrappers around these. ``features`` is the seed's own
feature engineering (``src/data.py`` of Snowflake's e2e_task_graph: ``to_timestamp``,
``month``/``dayofyear``/``dayofweek``, a county window and a 30-day ``RANGE`` window written
with ``sql_expr``), unmodified; ``features_pandas`` is the same in pandas, for the plain-script
twin in ``benchmarks/scale.py`` and for the test that both agree.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mortgage_data import LOAN_PURPOSES, LOAN_TYPES, generate_frame

TARGET = "MORTGAGERESPONSE"
DROPPED = ("TS", "TIMESTAMP", "LOAN_TYPE_NAME", "LOAN_PURPOSE_NAME", "COUNTY_NAME")


def load_raw(session: Any, n_rows: int, table: str) -> Any:
    """Write the generated table with ``write_pandas``, as the seed loads its CSV, and read it back.

    Snappy rather than the connector's default gzip for the staged parquet: the same table, and
    20x faster to write (gzip: about 13 s per million rows on the client).
    """
    session.write_pandas(generate_frame(n_rows), table, auto_create_table=True, overwrite=True, compression="snappy")
    return session.table(table)


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text.upper()).strip("_")


def features(raw: Any) -> Any:
    """The seed's feature engineering in Snowpark, plus one-hot loan type and purpose."""
    from snowflake.snowpark import Window
    from snowflake.snowpark import functions as F
    from snowflake.snowpark.types import IntegerType

    feature_eng_dict = {}
    # Timestamp features
    feature_eng_dict["TIMESTAMP"] = F.to_timestamp("TS")
    feature_eng_dict["MONTH"] = F.month("TIMESTAMP")
    feature_eng_dict["DAY_OF_YEAR"] = F.dayofyear("TIMESTAMP")
    feature_eng_dict["DOTW"] = F.dayofweek("TIMESTAMP")
    # Income and loan features
    feature_eng_dict["LOAN_AMOUNT"] = F.col("LOAN_AMOUNT_000s") * 1000
    feature_eng_dict["INCOME"] = F.col("APPLICANT_INCOME_000s") * 1000
    feature_eng_dict["INCOME_LOAN_RATIO"] = F.col("INCOME") / F.col("LOAN_AMOUNT")
    county_window_spec = Window.partition_by("COUNTY_NAME")
    feature_eng_dict["MEAN_COUNTY_INCOME"] = F.avg("INCOME").over(county_window_spec)
    feature_eng_dict["HIGH_INCOME_FLAG"] = (F.col("INCOME") > F.col("MEAN_COUNTY_INCOME")).astype(IntegerType())
    feature_eng_dict["AVG_THIRTY_DAY_LOAN_AMOUNT"] = F.sql_expr(
        """
        AVG(LOAN_AMOUNT) OVER (PARTITION BY COUNTY_NAME ORDER BY TIMESTAMP
        RANGE BETWEEN INTERVAL '30 DAYS' PRECEDING AND CURRENT ROW)
        """
    )
    df = raw.with_columns(list(feature_eng_dict.keys()), list(feature_eng_dict.values()))
    for value in LOAN_TYPES:
        df = df.with_column(f"TYPE_{_slug(value)}", F.iff(F.col("LOAN_TYPE_NAME") == F.lit(value), 1, 0))
    for value in LOAN_PURPOSES:
        df = df.with_column(f"PURPOSE_{_slug(value)}", F.iff(F.col("LOAN_PURPOSE_NAME") == F.lit(value), 1, 0))
    return df.drop(*DROPPED)


def features_pandas(raw: Any) -> Any:
    """``features`` in pandas: the same columns and values, row for row (sorted by LOAN_ID)."""
    import pandas as pd

    df = raw.sort_values("LOAN_ID", kind="stable").reset_index(drop=True)
    ts = pd.to_datetime(df["TS"])
    out = df.assign(
        MONTH=ts.dt.month.astype("int64"),
        DAY_OF_YEAR=ts.dt.dayofyear.astype("int64"),
        DOTW=((ts.dt.dayofweek + 1) % 7).astype("int64"),  # Snowflake: Sunday = 0
        LOAN_AMOUNT=df["LOAN_AMOUNT_000S"] * 1000,
        INCOME=df["APPLICANT_INCOME_000S"] * 1000,
    )
    out["INCOME_LOAN_RATIO"] = out["INCOME"] / out["LOAN_AMOUNT"]
    out["MEAN_COUNTY_INCOME"] = out.groupby("COUNTY_NAME")["INCOME"].transform("mean")
    out["HIGH_INCOME_FLAG"] = (out["INCOME"] > out["MEAN_COUNTY_INCOME"]).astype("int64")
    out["AVG_THIRTY_DAY_LOAN_AMOUNT"] = _thirty_day_mean(out["COUNTY_NAME"], ts, out["LOAN_AMOUNT"])
    for value in LOAN_TYPES:
        out[f"TYPE_{_slug(value)}"] = (df["LOAN_TYPE_NAME"] == value).astype("int64")
    for value in LOAN_PURPOSES:
        out[f"PURPOSE_{_slug(value)}"] = (df["LOAN_PURPOSE_NAME"] == value).astype("int64")
    return out.drop(columns=[c for c in DROPPED if c in out.columns])


def _thirty_day_mean(keys: Any, ts: Any, values: Any) -> Any:
    """AVG(values) OVER (PARTITION BY keys ORDER BY ts RANGE 30 DAYS PRECEDING .. CURRENT ROW).

    A RANGE frame holds every row of the partition with ts in [t - 30 days, t], peers of the
    current row included: prefix sums and two binary searches per partition, no Python per row.
    """
    import pandas as pd

    result = np.empty(len(values), dtype="float64")
    t = ts.to_numpy(dtype="datetime64[us]").astype("int64")
    v = values.to_numpy(dtype="float64")
    window = 30 * 86_400 * 1_000_000
    for positions in pd.Series(np.arange(len(v))).groupby(keys.to_numpy()).indices.values():
        order = positions[np.argsort(t[positions], kind="stable")]
        tk, vk = t[order], v[order]
        prefix = np.concatenate(([0.0], np.cumsum(vk)))
        lo = np.searchsorted(tk, tk - window, side="left")
        hi = np.searchsorted(tk, tk, side="right")
        result[order] = (prefix[hi] - prefix[lo]) / (hi - lo)
    return result


def feature_columns(frame: Any) -> list[str]:
    """Model inputs: every column but the id and the target."""
    return [c for c in frame.columns if c not in ("LOAN_ID", TARGET)]


def split(raw: Any, seed: int = 42) -> dict[str, Any]:
    """An 80/20 train/test split of the feature table."""
    train, test = features(raw).random_split([0.8, 0.2], seed=seed)
    return {"train": train, "test": test}


def train(split: dict[str, Any]) -> Any:
    """Fit an XGBoost classifier (runs as an ML Job; receives pandas frames)."""
    from xgboost import XGBClassifier

    # a query's rows come in no set order (on Snowflake too), and XGBoost's sums follow the row
    # order: sorted, the same rows train the same model on every run
    train_df = split["train"].sort_values("LOAN_ID", kind="stable", ignore_index=True)
    model = XGBClassifier(n_estimators=60, max_depth=4, learning_rate=0.2, n_jobs=2, random_state=0)
    model.fit(train_df[feature_columns(train_df)], train_df[TARGET])
    return model


def evaluate(model: Any, test_pd: Any) -> dict[str, float]:
    """Accuracy, precision, recall and F1 on the test split."""
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    y = test_pd[TARGET].to_numpy()
    pred = model.predict(test_pd[feature_columns(test_pd)])
    return {
        "test_accuracy": float(accuracy_score(y, pred)),
        "test_precision": float(precision_score(y, pred)),
        "test_recall": float(recall_score(y, pred)),
        "test_f1": float(f1_score(y, pred)),
        "test_rows": len(y),
        "positive_rate": float(np.mean(y)),
    }
