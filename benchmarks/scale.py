"""Scale: the mortgage pipeline through pytest (embedded engine) vs. plain pandas + XGBoost.

All sides run as fresh processes on the same generated data (``generate_frame(N)``) at each
size, in this one run:

* plain: what a user writes without the plugin, pandas + the library: ``generate_frame(N)``,
  ``features_pandas`` (the pandas twin of ``features``), a seeded hash 80/20 split, the same
  ``train`` and ``evaluate``.
* pytest write_pandas: ``pytest examples/mortgage --snowpipe-no-cache -p no:cacheprovider
  --snowpipe-config n_rows=N`` -- the example as written (``session.write_pandas``), the seed's
  features in Snowpark, ``random_split``, XGBoost trained in the remote-job stand-in,
  evaluation, and the property test of the features.
* pytest create_dataframe: the same suite (copied) with the raw stage written the way most
  Snowpark users write it, ``snowpipe_session.create_dataframe(generate_frame(N))``.

Printed per size and side: wall time and peak resident memory of the process tree
(``ru_maxrss`` from ``wait4``: the child's own peak or that of a descendant it waited for,
whichever is larger), the pytest/plain ratios, and the growth from 100k to 1M rows; at the
smallest size, the fixed cost: pytest minus plain minus the property test's own cost: its call
time (``--durations``) and the import of the library it is written with (``hypothesis``, which
its module imports at collection; measured here as a fresh ``import hypothesis`` minus an empty
interpreter, best of three) -- the user's non-stage test, not the plugin's.
Targets: at 1M rows each pytest variant takes at most 1.3x the plain script's wall time and
at most 1.5x its peak memory; at 10k rows the fixed cost is at most 2.5 s. The 1M time is also
printed net of the property test's own cost, the same subtraction as the 10k fixed cost (the
plain script has no such test); the raw ratio is the target.
With ``--repeat N`` each side runs N times per size, interleaved (plain, pytest, plain, ...),
and the best wall time and the lowest peak of each side count: on a shared 2-core machine one
run can differ by a third from the next, and the best run is the one least disturbed.
Bytecode: Python caches compiled modules (``__pycache__``) and pytest its assertion-rewritten
plugin and test modules, so a user's second and later runs compile nothing. Both sides run that
way here, into a private ``PYTHONPYCACHEPREFIX``, after one untimed warm-up run of each side
fills it, even where the environment sets ``PYTHONDONTWRITEBYTECODE`` (this sandbox does: every
run would then compile and rewrite the plugins' modules, ~1 s that users do not pay);
``--no-bytecode-cache`` keeps the environment as it is.
Usage: python benchmarks/scale.py [--sizes 10000,100000,1000000] [--repeat 3] [--no-bytecode-cache]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from fresh_process import ROOT, bytecode_mode, run, use_bytecode_cache

EXAMPLE = ROOT / "examples" / "mortgage"

PLAIN = r'''
import sys
sys.path.insert(0, {example!r})
import numpy as np
import pandas as pd
import mortgage_pipeline as pipeline
from mortgage_data import generate_frame

frame = pipeline.features_pandas(generate_frame({n}))
key = pd.util.hash_pandas_object(frame["LOAN_ID"], index=False).to_numpy() ^ np.uint64(42)
train_mask = (key % np.uint64(1_000_000)) < np.uint64(800_000)  # seeded hash split, 80/20
split = {{"train": frame[train_mask].reset_index(drop=True), "test": frame[~train_mask].reset_index(drop=True)}}
model = pipeline.train(split)
metrics = pipeline.evaluate(model, split["test"])
assert len(split["train"]) + len(split["test"]) == {n}
print("metrics", metrics)
'''


LOAD_AS_WRITTEN = "yield pipeline.load_raw(snowpipe_session, snowpipe_config[\"n_rows\"], table)"
LOAD_COMMON_IDIOM = "yield snowpipe_session.create_dataframe(generate_frame(snowpipe_config[\"n_rows\"]))"
PROPERTY_TEST = "test_features_hold_their_contract"
SIDES = ("plain", "write_pandas", "create_dataframe")


def _create_dataframe_suite(folder: Path) -> Path:
    """The example copied, its raw stage loading with ``create_dataframe(pandas)`` (no table to drop)."""
    suite = folder / "mortgage_create_dataframe"
    shutil.copytree(EXAMPLE, suite, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    shutil.copy(EXAMPLE.parent / "pytest.ini", folder / "pytest.ini")
    conftest = (suite / "conftest.py").read_text()
    if LOAD_AS_WRITTEN not in conftest:
        sys.exit(f"examples/mortgage/conftest.py no longer loads with {LOAD_AS_WRITTEN!r}: update scale.py")
    conftest = conftest.replace(LOAD_AS_WRITTEN, LOAD_COMMON_IDIOM)
    conftest = conftest.replace("    snowpipe_session.table(table).drop_table()", "    del table")
    conftest = conftest.replace("import mortgage_pipeline as pipeline", "import mortgage_pipeline as pipeline\nfrom mortgage_data import generate_frame")
    (suite / "conftest.py").write_text(conftest)
    return suite


def _run(cmd: list[str], env: dict[str, str], cwd: Path = ROOT) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB of the process tree, stdout) of one fresh process."""
    done = run(cmd, env, cwd)
    return done.wall, done.usage.ru_maxrss / 1024, done.out


def _property_call(out: str) -> float:
    """The property test's own call time from ``--durations`` (0 if not listed)."""
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "call" and parts[2].endswith(PROPERTY_TEST):
            return float(parts[0].rstrip("s"))
    return 0.0


def _property_import(env: dict[str, str]) -> float:
    """What importing the property test's library costs: ``import hypothesis`` minus an empty interpreter."""
    bare = min(_run([sys.executable, "-c", "pass"], env)[0] for _ in range(3))
    lib = min(_run([sys.executable, "-c", "import hypothesis"], env)[0] for _ in range(3))
    return max(0.0, lib - bare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=1, help="runs per side and size; the best counts")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="keep the environment's PYTHONDONTWRITEBYTECODE (every run compiles every module)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    results: dict[int, dict[str, tuple[float, float]]] = {}
    prop: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_bytecode_cache:
            use_bytecode_cache(env, Path(tmp) / "pycache")
        print(f"bytecode cache: {bytecode_mode(env)}; "
              f"{os.cpu_count()} CPUs; {max(1, args.repeat)} run(s) per side and size", flush=True)
        variant = _create_dataframe_suite(Path(tmp))

        def pytest_side(side: str, n: int, attempt: object) -> tuple[float, float, str]:
            suite, cwd = (EXAMPLE, ROOT) if side == "write_pandas" else (variant, Path(tmp))
            return _run(
                [
                    sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider",
                    "--snowpipe-no-cache",  # the same work on both sides: the stage cache is benchmarks/cache.py
                    "--snowpipe-config", f"n_rows={n}", "--durations=0", "--durations-min=0",
                    "-o", f"snowpipe_registry={Path(tmp) / f'reg-{side}-{n}-{attempt}'}",
                ],
                env,
                cwd,
            )

        for n in sizes:
            script = Path(tmp) / f"plain_{n}.py"
            script.write_text(PLAIN.format(example=str(EXAMPLE), n=n))
            if n == sizes[0] and not args.no_bytecode_cache:  # untimed: fills the bytecode caches of both sides
                _run([sys.executable, str(script)], env)
                for side in SIDES[1:]:
                    pytest_side(side, n, "warm-up")
            runs: dict[str, list[tuple[float, float, str]]] = {side: [] for side in SIDES}
            for attempt in range(max(1, args.repeat)):
                runs["plain"].append(_run([sys.executable, str(script)], env))
                for side in SIDES[1:]:
                    runs[side].append(pytest_side(side, n, attempt))
            results[n] = {side: (min(r[0] for r in rs), min(r[1] for r in rs)) for side, rs in runs.items()}
            prop[n] = {side: min(_property_call(r[2]) for r in rs) for side, rs in runs.items() if side != "plain"}
            metrics = next((line for line in runs["plain"][0][2].splitlines() if line.startswith("metrics")), "")
            print(f"{n:>9} rows  " + "   ".join(
                f"{side} {results[n][side][0]:6.1f} s {results[n][side][1]:6.0f} MiB" for side in SIDES
            ) + f"   ({metrics[8:]})", flush=True)
    print()
    print(f"{'rows':>9}  {'side':<17}{'s':>7} {'ratio':>6}   {'MiB':>6} {'ratio':>6}")
    for n in sizes:
        pt, pm = results[n]["plain"]
        for side in SIDES:
            t, m = results[n][side]
            print(f"{n:>9}  {side:<17}{t:>7.1f} {t / pt:>5.2f}x   {m:>6.0f} {m / pm:>5.2f}x")
    if 100_000 in results and 1_000_000 in results:
        lo, hi = results[100_000], results[1_000_000]
        for side in SIDES:
            print(f"growth 100k -> 1M, {side:<16}: time {hi[side][0] / lo[side][0]:5.1f}x, "
                  f"memory {hi[side][1] / lo[side][1]:5.1f}x")
    small = min(sizes)
    hypothesis_import = _property_import(env)
    for side in SIDES[1:]:
        own = prop[small][side] + hypothesis_import
        fixed = results[small][side][0] - results[small]["plain"][0] - own
        print(f"fixed cost at {small} rows, {side:<16}: {fixed:5.2f} s (pytest {results[small][side][0]:.2f} - plain "
              f"{results[small]['plain'][0]:.2f} - property test {prop[small][side]:.2f} call + "
              f"{hypothesis_import:.2f} import; target <= 2.5 s)")
    if 1_000_000 in results:
        pt, pm = results[1_000_000]["plain"]
        for side in SIDES[1:]:
            t, m = results[1_000_000][side]
            own = prop[1_000_000][side] + hypothesis_import
            print(f"at 1M rows, {side:<16}: time {t / pt:.2f}x (target <= 1.3x), memory {m / pm:.2f}x (target <= 1.5x); "
                  f"time net of the property test as at 10k rows ({own:.2f} s): {(t - own) / pt:.2f}x")


if __name__ == "__main__":
    main()
