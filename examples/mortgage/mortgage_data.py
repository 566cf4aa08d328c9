"""A deterministic, generated mortgage-lending table with the seed quickstart's kind of columns.

The response depends on the features through a known logistic model, so a good
classifier reaches about 0.8 accuracy and the quality gate has something real to check.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

LOAN_TYPES = ["Conventional", "FHA-insured", "VA-guaranteed", "FSA/RHS-guaranteed"]
LOAN_PURPOSES = ["Home purchase", "Refinancing", "Home improvement"]
COUNTIES = ["Adams", "Baker", "Clark", "Dane", "Erie", "Fulton", "Grant", "Hale"]

COLUMNS = [
    ("LOAN_ID", int),
    ("TS", "datetime"),
    ("LOAN_TYPE_NAME", str),
    ("LOAN_PURPOSE_NAME", str),
    ("APPLICANT_INCOME_000S", float),
    ("LOAN_AMOUNT_000S", float),
    ("COUNTY_NAME", str),
    ("MORTGAGERESPONSE", int),
]


def generate_frame(n: int, seed: int = 7) -> pd.DataFrame:
    """``n`` rows as a pandas DataFrame (vectorised: a million rows in well under a second).

    TS is a timestamp (TIMESTAMP_NTZ once written); the seed's features pass it through
    ``to_timestamp`` as they do its CSV's strings.
    """
    rng = np.random.default_rng(seed)
    loan_type = rng.choice(len(LOAN_TYPES), size=n, p=[0.6, 0.2, 0.15, 0.05])
    purpose = rng.choice(len(LOAN_PURPOSES), size=n, p=[0.5, 0.35, 0.15])
    county = rng.integers(0, len(COUNTIES), size=n)
    income = np.round(rng.lognormal(mean=4.3, sigma=0.5, size=n), 1)
    amount = np.round(np.clip(income * rng.normal(2.8, 0.9, size=n), 5, None), 1)
    ratio = income / amount
    logit = (
        3.2 * (ratio - 0.38) / 0.15
        - 0.9 * (purpose == 2)
        + 0.5 * (loan_type == 0)
        - 0.4 * (loan_type == 3)
        + 0.25 * (county % 3 == 0)
    )
    response = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    seconds = rng.integers(0, 365 * 86400, size=n)
    ts = np.datetime64("2024-01-01T00:00:00", "us") + seconds.astype("timedelta64[s]")
    return pd.DataFrame(
        {
            "LOAN_ID": np.arange(1, n + 1, dtype=np.int64),
            "TS": ts,
            "LOAN_TYPE_NAME": np.asarray(LOAN_TYPES, dtype=object)[loan_type],
            "LOAN_PURPOSE_NAME": np.asarray(LOAN_PURPOSES, dtype=object)[purpose],
            "APPLICANT_INCOME_000S": income,
            "LOAN_AMOUNT_000S": amount,
            "COUNTY_NAME": np.asarray(COUNTIES, dtype=object)[county],
            "MORTGAGERESPONSE": response,
        }
    )
