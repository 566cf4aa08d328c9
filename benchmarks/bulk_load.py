"""Bulk load: ``session.create_dataframe(pandas_df)`` on the embedded engine vs. the connector's gzip path.

One process, one engine, the same frame (N rows x 6 columns of the mortgage data: integers, a
timestamp, strings, floats). Timed, table creation included:

* connector gzip: the connector's own ``write_pandas`` with its default gzip Parquet (what every
  pandas load paid before `doubles/sql/bulk_load.py`), the baseline measured in this run;
* create_dataframe: the common idiom, as users write it (no compression argument);
* write_pandas gzip: ``session.write_pandas(..., compression="gzip")`` asked explicitly.

Target: ``create_dataframe`` of 1M rows x 6 columns in at most 1.5 s.
Usage: python benchmarks/bulk_load.py [--rows 1000000] [--repeat 2]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "mortgage"))
COLUMNS = ["LOAN_ID", "TS", "LOAN_TYPE_NAME", "APPLICANT_INCOME_000S", "COUNTY_NAME", "MORTGAGERESPONSE"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each fast variant; the best counts")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from mortgage_data import generate_frame

    from pytest_snowpipe.doubles.sql.bulk_load import connector_write_pandas
    from pytest_snowpipe.doubles.sql.embedded import create_embedded_session, shutdown

    frame = generate_frame(args.rows)[COLUMNS]
    session = create_embedded_session()
    session.create_dataframe(frame.head(10)).collect()  # warm: first statements, imports
    conn = session._conn._conn

    def timed(load: object) -> float:
        start = time.perf_counter()
        load()  # type: ignore[operator]
        return time.perf_counter() - start

    baseline = timed(lambda: connector_write_pandas()(conn, frame, "BULK_GZIP", auto_create_table=True, overwrite=True))
    fast = min(timed(lambda: session.create_dataframe(frame)) for _ in range(args.repeat))
    asked = min(
        timed(lambda: session.write_pandas(frame, "BULK_ASKED", auto_create_table=True, overwrite=True, compression="gzip"))
        for _ in range(args.repeat)
    )
    for name in ("BULK_GZIP", "BULK_ASKED"):
        assert session.table(name).count() == args.rows
    shutdown()
    print(f"{args.rows} rows x {len(COLUMNS)} columns, table creation included")
    print(f"{'variant':<34}{'s':>8}{'vs gzip':>10}")
    print(f"{'connector gzip (baseline)':<34}{baseline:>8.2f}{1.0:>9.2f}x")
    print(f"{'create_dataframe(pandas)':<34}{fast:>8.2f}{fast / baseline:>9.2f}x")
    print(f"{'write_pandas(compression=gzip)':<34}{asked:>8.2f}{asked / baseline:>9.2f}x")
    print(f"create_dataframe: {fast:.2f} s (target <= 1.5 s at 1M rows), {baseline / fast:.1f}x faster than gzip")


if __name__ == "__main__":
    main()
