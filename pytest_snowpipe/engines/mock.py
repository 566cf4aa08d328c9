"""The embedded default: a real Snowpark local-testing session, made safe to use.

Snowpark's local-testing mode has gaps (``session.sql``, ``write_pandas``, ...), which
raise ``NotImplementedError('[Local Testing] ...')`` and are annotated with the fix by
:func:`explain_local_testing_gap`. It also has one silent-data bug, which we repair:
snowpark-python issue 2598 — after ``filter``/``random_split`` the result frame keeps
the pre-filter row labels and ``to_pandas()`` aligns integer columns against a fresh
0..n-1 index, so those columns come back as NaN while ``collect()`` is right.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from snowflake.snowpark import Session

_PATCHED_ATTR = "__snowpipe_issue_2598_fixed__"

LOCAL_TESTING_HINT = (
    "this call is not supported by Snowpark's local-testing session, the embedded default "
    "that `pytest` uses without an account. Use the DataFrame API instead "
    "(e.g. session.create_dataframe / df.save_as_table), or run against a real account "
    "with --snowpipe-connection NAME."
)


def fix_to_pandas_alignment() -> None:
    """Repair the local-testing ``to_pandas`` conversion (idempotent).

    The mock connection builds the pandas frame column by column from a result whose
    index may be non-contiguous; we hand it a frame with a fresh RangeIndex so every
    column lines up by position, which is what the rows mean.
    """
    from snowflake.snowpark.mock import _connection

    original = _connection._fix_pandas_df_fixed_type
    if getattr(original, _PATCHED_ATTR, False):
        return

    @functools.wraps(original)
    def fixed(table_res: Any) -> Any:
        import pandas

        if not isinstance(table_res.index, pandas.RangeIndex) or table_res.index.start != 0:
            table_res = table_res.copy(deep=False)
            table_res.index = pandas.RangeIndex(len(table_res))
        return original(table_res)

    setattr(fixed, _PATCHED_ATTR, True)
    _connection._fix_pandas_df_fixed_type = fixed


def create_local_session() -> Session:
    """A fresh local-testing session with the ``to_pandas`` repair in place."""
    from snowflake.snowpark import Session

    fix_to_pandas_alignment()
    session: Session = Session.builder.config("local_testing", True).create()
    return session


def is_local_session(session: Any) -> bool:
    """True for a Snowpark local-testing session (its connection is the mock one)."""
    conn = getattr(session, "_conn", None)
    return type(conn).__name__ == "MockServerConnection"


def explain_local_testing_gap(exc: BaseException) -> None:
    """Add the fix to a local-testing "not supported" error, in place."""
    if isinstance(exc, NotImplementedError) and "[Local Testing]" in str(exc):
        notes = getattr(exc, "__notes__", [])
        if LOCAL_TESTING_HINT not in notes:
            exc.add_note("pytest-snowpipe: " + LOCAL_TESTING_HINT)
