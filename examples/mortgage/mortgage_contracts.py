"""What the mortgage tables must hold: one declaration validates, generates data and blocks bad runs."""
from __future__ import annotations

import datetime

import pytest_snowpipe as sp
from mortgage_data import COUNTIES, LOAN_PURPOSES, LOAN_TYPES

raw_contract = sp.Contract(
    LOAN_ID=sp.column(int, unique=True, ge=1),
    TS=sp.column(datetime.datetime, ge=datetime.datetime(2024, 1, 1), lt=datetime.datetime(2025, 1, 1)),
    LOAN_TYPE_NAME=sp.column(str, isin=LOAN_TYPES),
    LOAN_PURPOSE_NAME=sp.column(str, isin=LOAN_PURPOSES),
    APPLICANT_INCOME_000S=sp.column(float, gt=0, le=10_000),
    LOAN_AMOUNT_000S=sp.column(float, ge=5, le=100_000),
    COUNTY_NAME=sp.column(str, isin=COUNTIES),
    MORTGAGERESPONSE=sp.column(int, isin=[0, 1]),
)

_one_hot = {name: sp.column(int, isin=[0, 1]) for name in (
    "TYPE_CONVENTIONAL", "TYPE_FHA_INSURED", "TYPE_VA_GUARANTEED", "TYPE_FSA_RHS_GUARANTEED",
    "PURPOSE_HOME_PURCHASE", "PURPOSE_REFINANCING", "PURPOSE_HOME_IMPROVEMENT",
)}

features_contract = sp.Contract(
    LOAN_ID=sp.column(int, unique=True),
    APPLICANT_INCOME_000S=sp.column(float, gt=0),
    LOAN_AMOUNT_000S=sp.column(float, gt=0),
    MORTGAGERESPONSE=sp.column(int, isin=[0, 1]),
    INCOME_LOAN_RATIO=sp.column(float, ge=0),  # tiny incomes underflow to 0.0 (found by the property test)
    # the seed's own features
    MONTH=sp.column(int, ge=1, le=12),
    DAY_OF_YEAR=sp.column(int, ge=1, le=366),
    DOTW=sp.column(int, ge=0, le=6),
    LOAN_AMOUNT=sp.column(float, gt=0),
    INCOME=sp.column(float, gt=0),
    MEAN_COUNTY_INCOME=sp.column(float, gt=0),
    HIGH_INCOME_FLAG=sp.column(int, isin=[0, 1]),
    AVG_THIRTY_DAY_LOAN_AMOUNT=sp.column(float, gt=0),
    **_one_hot,
)
