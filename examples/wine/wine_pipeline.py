"""A multi-class pipeline on scikit-learn's bundled wine data set (178 wines, 3 cultivars)."""
from __future__ import annotations

from typing import Any

TARGET = "CULTIVAR"


def load_wine_table(session: Any) -> Any:
    """The wine data as a Snowpark DataFrame (built from tuples + a schema: fast locally)."""
    from sklearn.datasets import load_wine
    from snowflake.snowpark.types import DoubleType, LongType, StructField, StructType

    bunch = load_wine()
    names = [n.upper().replace("/", "_").replace(" ", "_") for n in bunch.feature_names]
    schema = StructType([StructField(n, DoubleType()) for n in names] + [StructField(TARGET, LongType())])
    rows = [(*tuple(float(v) for v in x), int(y)) for x, y in zip(bunch.data, bunch.target, strict=False)]
    return session.create_dataframe(rows, schema=schema)


def split(raw: Any) -> dict[str, Any]:
    """A 70/30 split with a fixed seed."""
    train, test = raw.random_split([0.7, 0.3], seed=11)
    return {"train": train.to_pandas(), "test": test.to_pandas()}


def train(split: dict[str, Any]) -> Any:
    """A small multi-class XGBoost model."""
    from xgboost import XGBClassifier

    df = split["train"]
    model = XGBClassifier(n_estimators=40, max_depth=3, learning_rate=0.3, n_jobs=2, random_state=0)
    model.fit(df.drop(columns=[TARGET]), df[TARGET])
    return model


def evaluate(model: Any, split: dict[str, Any]) -> dict[str, float]:
    """Accuracy, macro F1 and the worst per-class recall on the test split."""
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    df = split["test"]
    y, pred = df[TARGET].to_numpy(), model.predict(df.drop(columns=[TARGET]))
    return {
        "test_accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro")),
        "min_class_recall": float(min(recall_score(y, pred, average=None))),
    }
