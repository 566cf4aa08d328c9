"""The mortgage pipeline's logic as plain functions (the seed quickstart's steps).

The fixtures in conftest.py are thin wrappers around these, so the same code also runs
as a plain script (see benchmarks/overhead.py).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mortgage_data import COLUMNS, LOAN_PURPOSES, LOAN_TYPES, generate_rows

TARGET = "MORTGAGERESPONSE"


def load_raw(session: Any, n_rows: int, table: str) -> Any:
    """Write the generated table and return it as a Snowpark DataFrame (the seed's raw data)."""
    from snowflake.snowpark.types import DoubleType, LongType, StringType, StructField, StructType

    kinds = {int: LongType(), float: DoubleType(), str: StringType()}
    schema = StructType([StructField(name, kinds[kind]) for name, kind in COLUMNS])
    df = session.create_dataframe(generate_rows(n_rows), schema=schema)
    df.write.save_as_table(table, mode="overwrite")
    return session.table(table)


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text.upper()).strip("_")


def features(raw: Any) -> Any:
    """Feature engineering in Snowpark: ratio, one-hot loan type and purpose."""
    from snowflake.snowpark.functions import col, iff, lit

    df = raw.with_column("INCOME_LOAN_RATIO", col("APPLICANT_INCOME_000S") / col("LOAN_AMOUNT_000S"))
    for value in LOAN_TYPES:
        df = df.with_column(f"TYPE_{_slug(value)}", iff(col("LOAN_TYPE_NAME") == lit(value), 1, 0))
    for value in LOAN_PURPOSES:
        df = df.with_column(f"PURPOSE_{_slug(value)}", iff(col("LOAN_PURPOSE_NAME") == lit(value), 1, 0))
    return df.drop("TS", "LOAN_TYPE_NAME", "LOAN_PURPOSE_NAME", "COUNTY_NAME")


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

    train_df = split["train"]
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
