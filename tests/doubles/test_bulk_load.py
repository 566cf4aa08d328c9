"""Bulk loads from pandas on the embedded engine: the cheap codec, and the connector's own table.

The slow path is the connector's unhooked ``write_pandas`` with gzip (`connector_write_pandas`):
every awkward frame must give the same columns, types and rows both ways, or a clear error.
Speed is measured in benchmarks/bulk_load.py, not here.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pytest_snowpipe.doubles.sql.bulk_load import BulkLoadError, connector_write_pandas

_names = itertools.count()


def _codecs(load: Any) -> list[str]:
    """The codecs of the Parquet files ``load()`` wrote (pandas' to_parquet, observed, not replaced)."""
    return [codec for codec, _ in _files(load)]


def _files(load: Any) -> list[tuple[str, int]]:
    """(codec, rows) of each Parquet file ``load()`` wrote (pyarrow's writer, observed, not replaced):
    pandas' ``to_parquet`` and the hand-over's row-less file both write through it."""
    import pyarrow.parquet as pq

    seen: list[tuple[str, int]] = []
    write = pq.write_table

    def spy(table: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((kwargs.get("compression", "?"), table.num_rows))
        return write(table, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pq, "write_table", spy)
        load()
    return seen


def _table(session: Any, name: str) -> tuple[list[tuple[str, str]], pd.DataFrame]:
    described = [(r["name"], r["type"]) for r in session.sql(f'DESCRIBE TABLE "{name}"').collect()]
    return described, session.table(f'"{name}"').to_pandas()


def _slow(session: Any, frame: pd.DataFrame, name: str, **kwargs: Any) -> None:
    """The connector's own path, gzip Parquet, as it runs without the hook."""
    kwargs.setdefault("auto_create_table", True)
    codecs = _codecs(lambda: connector_write_pandas()(session._conn._conn, frame, name, compression="gzip", **kwargs))
    assert codecs == ["gzip"]  # really the gzip file


@pytest.mark.parametrize(
    "load",
    [
        pytest.param(lambda s, df: s.create_dataframe(df), id="create_dataframe"),
        pytest.param(lambda s, df: s.write_pandas(df, "BL_DEFAULT", auto_create_table=True, overwrite=True), id="default"),
        pytest.param(
            lambda s, df: s.write_pandas(df, "BL_GZIP", auto_create_table=True, overwrite=True, compression="gzip"),
            id="gzip-asked",
        ),
        pytest.param(
            lambda s, df: s.create_dataframe(df).write.save_as_table("BL_SAVED", mode="overwrite"), id="save_as_table"
        ),
    ],
)
def test_every_pandas_load_hands_its_rows_over(embedded_session: Any, load: Any) -> None:
    """In the engine's process no row goes through a file: the staged file is the schema alone."""
    frame = pd.DataFrame({"A": [1, 2, 3], "S": ["x", "y", None]})
    assert _files(lambda: load(embedded_session, frame)) == [("snappy", 0)]


@pytest.mark.parametrize("load", [pytest.param(lambda s, df: s.create_dataframe(df), id="create_dataframe")])
def test_a_load_from_another_process_skips_gzip(embedded_session: Any, load: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A remote stage's process reaches the engine over the wire: its rows go in a snappy file."""
    from pytest_snowpipe.doubles.sql import bulk_load

    monkeypatch.setattr(bulk_load, "_engine_here", lambda conn: False)
    frame = pd.DataFrame({"A": [1, 2, 3], "S": ["x", "y", None]})
    assert _files(lambda: load(embedded_session, frame).collect()) == [("snappy", 3)]


def test_connector_write_pandas_called_directly_is_hooked_too(embedded_session: Any) -> None:
    from snowflake.connector import pandas_tools

    frame = pd.DataFrame({"A": [1, 2]})
    conn = embedded_session._conn._conn
    assert _files(lambda: pandas_tools.write_pandas(conn, frame, "BL_DIRECT", auto_create_table=True)) == [("snappy", 0)]
    assert embedded_session.table("BL_DIRECT").count() == 2


def test_a_chunked_load_hands_each_chunk_over(embedded_session: Any) -> None:
    frame = pd.DataFrame({"K": range(5), "S": list("abcde")})
    files = _files(lambda: embedded_session.write_pandas(frame, "BL_CHUNKS", auto_create_table=True, chunk_size=2))
    assert files == [("snappy", 0)] * 3
    got = embedded_session.table("BL_CHUNKS").sort("K").to_pandas()
    pd.testing.assert_frame_equal(got, frame, check_dtype=False)


def test_rows_of_a_failed_load_are_not_kept(embedded_session: Any) -> None:
    """A COPY INTO that fails (here: no such table) leaves no rows waiting and no view behind."""
    from snowflake.connector.errors import ProgrammingError

    from pytest_snowpipe.doubles.sql import handover

    frame = pd.DataFrame({"K": [1, 2]})
    with pytest.raises(ProgrammingError):
        embedded_session.write_pandas(frame, "BL_NO_SUCH_TABLE", auto_create_table=False)
    assert handover._WAITING == {}
    views = embedded_session.sql(
        "SELECT COUNT(*) AS N FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME ILIKE '_SNOWPIPE_HANDOVER_%'"
    ).collect()
    assert views[0]["N"] == 0
    embedded_session.write_pandas(frame, "BL_NO_SUCH_TABLE", auto_create_table=True)  # the next load still works
    assert embedded_session.table("BL_NO_SUCH_TABLE").count() == 2


def test_an_invalid_codec_fails_as_the_connector_says(embedded_session: Any) -> None:
    from snowflake.connector.errors import ProgrammingError

    with pytest.raises(ProgrammingError, match="Invalid compression 'zstd'"):
        embedded_session.write_pandas(pd.DataFrame({"A": [1]}), "BL_ZSTD", auto_create_table=True, compression="zstd")


AWKWARD = {
    "all_null": pd.DataFrame(
        {
            "OBJ": [None, None, None],
            "FLT": [np.nan, np.nan, np.nan],
            "INT": pd.Series([None, None, None], dtype="Int64"),
            "K": [1, 2, 3],
        }
    ),
    "tz_aware": pd.DataFrame(
        {
            "T": pd.to_datetime(["2024-01-01 10:00", "2024-06-01 12:30", None]).tz_localize("Europe/Paris"),
            "NAIVE": pd.to_datetime(["2024-01-01 10:00", None, "2024-06-01 12:30"]),
            "K": [1, 2, 3],
        }
    ),
    "categorical_and_nullable": pd.DataFrame(
        {
            "CAT": pd.Categorical(["a", "b", "a", None]),
            "I64": pd.Series([1, None, 3, 4], dtype="Int64"),
            "I8": pd.Series([1, None, -3, 4], dtype="Int8"),
            "BOOL": pd.Series([True, None, False, True], dtype="boolean"),
            "STR": pd.Series(["x", None, "z", "w"], dtype="string"),
            "K": [1, 2, 3, 4],
        }
    ),
    "plain_types_handed_over": pd.DataFrame(
        {
            "I": np.array([3, -1, 7], dtype="int64"),
            "U8": np.array([1, 2, 255], dtype="uint8"),
            "F32": np.array([1.5, np.nan, -2.25], dtype="float32"),
            "F": [0.1, np.nan, 1e300],
            "B": [True, False, True],
            "S": ["x", None, "ü"],
            "TS": pd.to_datetime(["2024-01-01 10:00:00.123456", None, "1999-12-31 00:00:00.000000"]),
            "D": [dt.date(2024, 2, 29), None, dt.date(1970, 1, 1)],
            "K": [1, 2, 3],
        },
        index=[10, 20, 30],  # not a RangeIndex: pandas writes it as a column, the hand-over too
    ),
    "names_to_quote": pd.DataFrame(
        {"lower": [1], "Mixed Case": [2], 'with"quote': [3], "1st": [4], "SELECT": [5], "a.b": [6], "K": [1]}
    ),
}


@pytest.mark.parametrize("kind", sorted(AWKWARD))
def test_awkward_frames_make_the_connectors_table(embedded_session: Any, kind: str) -> None:
    frame = AWKWARD[kind]
    n = next(_names)
    slow, fast = f"BL_SLOW_{kind}_{n}", f"BL_FAST_{kind}_{n}"
    _slow(embedded_session, frame, slow, use_logical_type=True)
    files = _files(lambda: embedded_session.write_pandas(frame, fast, auto_create_table=True, use_logical_type=True))
    handed_over = kind in ("plain_types_handed_over", "names_to_quote")  # else a column DuckDB reads otherwise from Arrow
    assert files == [("snappy", 0 if handed_over else len(frame))]
    (slow_cols, slow_rows), (fast_cols, fast_rows) = _table(embedded_session, slow), _table(embedded_session, fast)
    assert fast_cols == slow_cols
    assert [name for name, _ in fast_cols] == list(frame.columns)  # quoted: the frame's own names
    pd.testing.assert_frame_equal(fast_rows.sort_values("K", ignore_index=True), slow_rows.sort_values("K", ignore_index=True))
    assert len(fast_rows) == len(frame)


def test_tz_aware_timestamps_keep_the_instant(embedded_session: Any) -> None:
    frame = AWKWARD["tz_aware"]
    embedded_session.write_pandas(frame, "BL_TZ", auto_create_table=True, overwrite=True, use_logical_type=True)
    (_, kind) = _table(embedded_session, "BL_TZ")[0][0]
    # created TIMESTAMP_LTZ (Snowpark's documented type); DuckDB keeps one zoned type, which
    # fakesnow describes as TIMESTAMP_TZ: what matters is that the zone is not dropped (NTZ)
    assert kind.startswith("TIMESTAMP_") and "NTZ" not in kind
    got = embedded_session.table("BL_TZ").sort("K").to_pandas()
    assert got["T"].iloc[0] == frame["T"].iloc[0] and got["T"].iloc[1] == frame["T"].iloc[1]
    assert pd.isna(got["T"].iloc[2]) and pd.isna(got["NAIVE"].iloc[1])  # NULL, not 1970-01-01
    assert embedded_session.table("BL_TZ").collect()[2]["T"] is None


def test_overwrite_append_and_table_types_as_the_connector(embedded_session: Any) -> None:
    frame = pd.DataFrame({"A": [1, 2], "B": ["x", "y"]})

    def slow(df: pd.DataFrame, **kw: Any) -> None:
        _slow(embedded_session, df, "BL_MODES_SLOW", **kw)

    def fast(df: pd.DataFrame, **kw: Any) -> None:
        embedded_session.write_pandas(df, "BL_MODES_FAST", **kw)

    for write in (slow, fast):
        write(frame, auto_create_table=True, table_type="transient")
        write(frame, auto_create_table=False)  # appends
        write(frame.iloc[:1], auto_create_table=True, overwrite=True)  # replaces
    assert _table(embedded_session, "BL_MODES_FAST")[0] == _table(embedded_session, "BL_MODES_SLOW")[0]
    assert embedded_session.table("BL_MODES_FAST").count() == 1


def test_unquoted_names_are_upper_cased_as_the_connector(embedded_session: Any) -> None:
    frame = pd.DataFrame({"lower_name": [1]})
    _slow(embedded_session, frame, "BL_UNQUOTED_SLOW", quote_identifiers=False)
    embedded_session.write_pandas(frame, "BL_UNQUOTED_FAST", auto_create_table=True, quote_identifiers=False)
    assert _table(embedded_session, "BL_UNQUOTED_FAST")[0] == _table(embedded_session, "BL_UNQUOTED_SLOW")[0]
    assert _table(embedded_session, "BL_UNQUOTED_FAST")[0][0][0] == "LOWER_NAME"


def test_a_mixed_type_column_is_named_with_the_fix(embedded_session: Any) -> None:
    frame = pd.DataFrame({"OK": [1, 2, 3], "MIXED": [1, "x", 2.5]})
    with pytest.raises(BulkLoadError) as caught:
        embedded_session.create_dataframe(frame)
    message = str(caught.value)
    assert "'MIXED'" in message and "astype(str)" in message and "Conversion failed" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
