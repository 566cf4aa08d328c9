"""Remote trip: what the local stand-in for an ML Job adds to a remote stage's own work.

A remote stage runs in a fresh interpreter with its arguments and result pickled
(``engines/job_process.run_in_fresh_process``), as the pipeline runs it: a warm worker started
beforehand (``prestart``, as the plugin does when the run starts) that imported the stage's
libraries while the earlier stages ran, or a cold one (no warm worker left). Per argument size
(a pandas frame of N rows x 6 columns in, a frame of N rows out), in this one run:

* in-process: the same function called directly (the stage's own work, the baseline);
* trip: the remote call, wall time;
* result unpickle: loading the result's bytes once more in this process (what any trip pays);
* overhead = trip - in-process - result unpickle.

Target: overhead at most 0.5 s at any size (warm worker).
Usage: python benchmarks/remote_trip.py [--sizes 10000,1000000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "mortgage"))
COLUMNS = ["LOAN_ID", "TS", "LOAN_TYPE_NAME", "APPLICANT_INCOME_000S", "COUNTY_NAME", "MORTGAGERESPONSE"]


def stage(frame: Any) -> Any:
    """A stage's work: a little pandas, a frame of the same size back."""
    out = frame[["LOAN_ID", "APPLICANT_INCOME_000S"]].copy()
    out["RATIO"] = out["APPLICANT_INCOME_000S"] / out["APPLICANT_INCOME_000S"].mean()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--repeat", type=int, default=3, help="trips per size and kind; the best counts")
    args = parser.parse_args()
    import cloudpickle
    from mortgage_data import generate_frame

    from pytest_snowpipe.engines import job_process
    from pytest_snowpipe.engines.job_worker import READY_ENV

    ready = Path(tempfile.mkdtemp()) / "ready"
    os.environ[READY_ENV] = str(ready)

    print(f"{'rows':>9}  {'worker':<6}{'in-process':>11}{'trip':>8}{'unpickle':>10}{'overhead':>10}")
    worst = 0.0
    for n in (int(s) for s in args.sizes.split(",")):
        frame = generate_frame(n)[COLUMNS]
        for kind in ("warm", "cold"):
            best: tuple[float, float, float] | None = None
            for _ in range(max(1, args.repeat)):
                if kind == "warm":  # started, and its libraries imported, while earlier stages ran
                    ready.unlink(missing_ok=True)
                    job_process.prestart(["pandas", "numpy"], trips=1)
                    deadline = time.monotonic() + 120
                    while not ready.exists() and time.monotonic() < deadline:
                        time.sleep(0.01)
                start = time.perf_counter()
                expected = stage(frame)  # the baseline; also the earlier work a warm worker overlaps
                local = time.perf_counter() - start
                start = time.perf_counter()
                result = job_process.run_in_fresh_process(stage, "bench", {"frame": frame}, {})
                trip = time.perf_counter() - start
                blob = cloudpickle.dumps(result)
                start = time.perf_counter()
                cloudpickle.loads(blob)
                unpickle = time.perf_counter() - start
                assert result.equals(expected)
                job_process.stop_warm()
                if best is None or trip - local - unpickle < best[1] - best[0] - best[2]:
                    best = (local, trip, unpickle)
            assert best is not None
            local, trip, unpickle = best
            overhead = trip - local - unpickle
            if kind == "warm":
                worst = max(worst, overhead)
            print(f"{n:>9}  {kind:<6}{local:>11.3f}{trip:>8.3f}{unpickle:>10.3f}{overhead:>10.3f}", flush=True)
    print(f"warm trip overhead, worst size: {worst:.3f} s (target <= 0.5 s)")


if __name__ == "__main__":
    main()
