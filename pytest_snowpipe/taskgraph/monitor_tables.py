"""The tables a monitor watches, and how each graph run refills them (this module ships with every task).

A stage's per-run output tables change name every run and the finalizer drops them, so a Data Metric
Function cannot watch them. A stage whose contract has ``monitor=`` gets one STABLE table,
``SNOWPIPE_<DAG>_<STAGE>[_<KEY>]_LATEST``: the deploy creates it from the contract's columns and attaches the
DMFs; every graph run, right before the stage's blocking check, replaces its rows with the contract's columns of
the output (``save_as_table(mode="truncate")``: the table, and so its DMF associations, stays). Between runs
it holds what the last run produced, good or bad, which is what the monitors report on.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

from pytest_snowpipe.pipeline.checks import Expectation, expectations_of
from pytest_snowpipe.pipeline.frames import is_snowpark_frame

TABLE_NAME_LIMIT = 255
SUFFIX = "_LATEST"


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text).upper()


def monitor_table(dag: str, stage: str, key: str | None = None) -> str:
    """``SNOWPIPE_<DAG>_<STAGE>[_<KEY>]_LATEST``, shortened with a hash to fit 255 characters."""
    middle = f"{_clean(dag)}_{_clean(stage)}" + (f"_{_clean(key)}" if key is not None else "")
    name = f"SNOWPIPE_{middle}{SUFFIX}"
    if len(name) > TABLE_NAME_LIMIT:
        digest = hashlib.sha256(middle.encode()).hexdigest()[:12].upper()
        keep = TABLE_NAME_LIMIT - len("SNOWPIPE__") - len(digest) - len(SUFFIX)
        name = f"SNOWPIPE_{middle[:keep]}_{digest}{SUFFIX}"
    return name


def monitored(func: Callable[..., Any]) -> list[Expectation]:
    """The expectations of a stage that deploy as monitors."""
    return [e for e in expectations_of(func) if e.monitor is not None]


def refresh(dag: str, stage: str, func: Callable[..., Any], value: Any, session: Any) -> list[str]:
    """Copy the contract's columns of each monitored output into its watched table; return the tables written.

    Called BEFORE the blocking check: a run whose output breaks the contract still leaves it in the watched table,
    so the monitors record that run's violations in Snowflake's data-quality views. An output the check will
    refuse anyway (no Snowpark frame, a contract column missing, a value the table's type cannot hold) is skipped:
    the table keeps the last rows it could take, and the check says what is wrong.
    """
    from pytest_snowpipe.contracts.monitors import quote

    written = []
    for exp in monitored(func):
        target: Any = value
        if exp.key is not None:
            target = value.get(exp.key) if isinstance(value, dict) else None
        if not is_snowpark_frame(target):
            continue
        present = {c.strip('"') for c in target.columns}
        if not set(exp.contract.columns) <= present:
            continue
        table = monitor_table(dag, stage, exp.key)
        try:
            target.select([quote(c) for c in exp.contract.columns]).write.save_as_table(table, mode="truncate")
        except Exception:  # the blocking check that follows says which value the table's type could not take
            continue
        written.append(table)
    return written


__all__ = ["monitor_table", "monitored", "refresh"]
