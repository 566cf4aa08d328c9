"""Plugin overhead: the mortgage pipeline as a plain script vs. through `pytest examples/mortgage`.

Both run as fresh processes (interpreter start and imports included), alternated, several
times in this one run; the ratio of the medians is printed. Target: at most 1.05x.
Usage: python benchmarks/overhead.py [--repeat N]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "mortgage"

SCRIPT = r'''
import sys, tempfile
sys.path.insert(0, {example!r})
import pytest_snowpipe as sp
from pytest_snowpipe.doubles.sql.embedded import create_embedded_session
from pytest_snowpipe.registry.local import LocalRegistry
import mortgage_pipeline as pipeline
from mortgage_contracts import features_contract, raw_contract

session = create_embedded_session()
raw = pipeline.load_raw(session, 100_000, "MORTGAGE_LENDING_RAW")
raw_contract.validate(raw)
split = pipeline.split(raw)
features_contract.validate(split["train"])
features_contract.validate(split["test"])
train = sp.remote(compute_pool="DEMO_POOL", stage_name="JOB_STAGE", target_instances=2)(pipeline.train)
model = train(split)
metrics = pipeline.evaluate(model, split["test"].to_pandas())
assert split["train"].count() + split["test"].count() == raw.count()
if metrics["test_accuracy"] >= 0.70:
    LocalRegistry({registry!r}).promote("mortgage_model", model, metrics=metrics)
session.table("MORTGAGE_LENDING_RAW").drop_table()
session.close()
'''


def _time(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "pipeline_script.py"
        script.write_text(SCRIPT.format(example=str(EXAMPLE), registry=str(Path(tmp) / "reg-script")))
        plain_cmd = [sys.executable, str(script)]
        pytest_cmd = [
            sys.executable, "-m", "pytest", str(EXAMPLE / "test_quality.py"), "-q", "-p", "no:cacheprovider",
            "--snowpipe-no-cache",  # the same work on both sides: the stage cache is benchmarks/cache.py
            "-o", f"snowpipe_registry={Path(tmp) / 'reg-pytest'}",
        ]
        plain, through = [], []
        for _ in range(args.repeat):
            plain.append(_time(plain_cmd, ROOT))
            through.append(_time(pytest_cmd, ROOT))
    p, t = statistics.median(plain), statistics.median(through)
    print(f"{'variant':<28}{'median s':>10}  runs")
    print(f"{'plain script':<28}{p:>10.2f}  {', '.join(f'{x:.2f}' for x in plain)}")
    print(f"{'pytest test_quality.py':<28}{t:>10.2f}  {', '.join(f'{x:.2f}' for x in through)}")
    print(f"ratio pytest/plain: {t / p:.3f}x (target <= 1.05x)")


if __name__ == "__main__":
    main()
