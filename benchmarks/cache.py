"""Stage cache: a first run vs. an unchanged re-run, of `pytest examples/mortgage` and `pytest examples/`.

Each run is a fresh process (interpreter start, imports and collection included). Per suite,
runs without the cache, first runs (cache and registry empty) and unchanged re-runs (the same
cache and registry again) alternate, several times; medians are printed. Printed per suite:
both wall times and their ratio (issue #6's target: the re-run at least 10x faster), the same
verdicts on both, the cache's size, and where the re-run's time goes:

* start-up floor: ``pytest <suite> --collect-only -p no:snowpipe``: the interpreter, pytest,
  the other installed plugins and the suite's own imports (its conftest and test modules);
  nothing of this plugin runs;
* plugin collection: ``--collect-only`` with the plugin, minus the floor (its imports, the
  pipeline graph and code keys);
* the suite's non-stage tests: ``-k test_features`` (the hypothesis property test, with the
  Snowpark session it asks for) minus ``--collect-only``: run on every re-run, never cached;
* the rest of the re-run (the re-run minus that ``-k test_features`` run): the plugin's run
  time: cache keys and lookups, loading the cached outputs the tests ask for (Parquet,
  Snowpark frames rebuilt), the gates and their promote check, the summary; plus the other
  small tests' own bodies.

The cache and the registry go to a temporary folder (-o cache_dir=..., -o snowpipe_registry=...),
so your own .pytest_cache and registry are untouched.
Usage: python benchmarks/cache.py [--repeat N] [--suite mortgage|all|both] [--bytecode-cache]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fresh_process import bytecode_mode, use_bytecode_cache

ROOT = Path(__file__).resolve().parent.parent
SUITES = {"mortgage": ROOT / "examples" / "mortgage", "all": ROOT / "examples"}
STAGE_ROW = re.compile(r"^(\S+)(?: \(remote\))?\s+ok\s+(computed|cached)\s+(?:([\d.]+)s|-)\s")
NON_STAGE = "test_features"  # the mortgage example's hypothesis property test: no stage, never cached


def _run(cmd: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode not in ok:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout


def _stage_times(out: str) -> dict[str, tuple[str, float]]:
    found = {}
    for line in out.splitlines():
        m = STAGE_ROW.match(line)
        if m:
            found[m.group(1)] = (m.group(2), float(m.group(3) or 0.0))
    return found


def _verdicts(out: str) -> list[str]:
    return [line.split(" -> ")[0] for line in out.splitlines() if line.startswith("gate ")]


def _actions(out: str) -> list[str]:
    return [line.split(" -> ", 1)[1] for line in out.splitlines() if line.startswith("gate ") and " -> " in line]


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _med(values: list[float]) -> float:
    return statistics.median(values)


def _runs(values: list[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in values)


def bench_suite(label: str, suite: Path, tmp: Path, env: dict[str, str], repeat: int) -> dict[str, float]:
    """Measure one suite; print its table; return the medians."""
    py = [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:randomly"]
    cache_dir = tmp / f"{label}-cache"
    common = ["-o", f"cache_dir={cache_dir}"]

    def registry(name: str) -> list[str]:
        return ["-o", f"snowpipe_registry={tmp / f'{label}-registry-{name}'}"]

    plain, cold, warm, cold_stage, warm_stage = [], [], [], [], []
    cold_out = warm_out = ""
    _run([*py, *common, *registry("warmup"), "--snowpipe-cache-clear"], env)  # the OS file cache
    for i in range(repeat):
        plain.append(_run([*py, *common, *registry(f"plain{i}"), "--snowpipe-no-cache"], env)[0])
        # a first run: empty cache, empty registry (it promotes v0001)
        t, cold_out = _run([*py, *common, *registry(f"run{i}"), "--snowpipe-cache-clear", "--durations=5"], env)
        cold.append(t)
        cold_stage.append(sum(s for _, s in _stage_times(cold_out).values()))
        # the unchanged re-run: same cache, same registry
        t, warm_out = _run([*py, *common, *registry(f"run{i}"), "--durations=5"], env)
        warm.append(t)
        warm_stage.append(sum(s for _, s in _stage_times(warm_out).values()))
    size = _size(cache_dir / "d" / "snowpipe")
    floor, collect, non_stage = [], [], []
    for i in range(repeat):  # alternated too: the machine's load drifts
        floor.append(_run([*py, *common, "--collect-only", "-p", "no:snowpipe"], env)[0])
        collect.append(_run([*py, *common, "--collect-only"], env)[0])
        if (suite / "mortgage").is_dir() or suite.name == "mortgage":
            # exit code 5 (nothing selected) cannot happen here: the suite has the property test
            non_stage.append(_run([*py, *common, *registry(f"run{i}"), "-k", NON_STAGE], env)[0])

    c, w, p = _med(cold), _med(warm), _med(plain)
    f, col = _med(floor), _med(collect)
    ns = _med(non_stage) if non_stage else col
    print(f"\n## pytest {suite.relative_to(ROOT)}/")
    print(f"{'':<44}{'median s':>9}  runs")
    print(f"{'without the cache (--snowpipe-no-cache)':<44}{p:>9.2f}  {_runs(plain)}")
    print(f"{'first run (cache and registry empty)':<44}{c:>9.2f}  {_runs(cold)}")
    print(f"{'unchanged re-run':<44}{w:>9.2f}  {_runs(warm)}")
    print(f"ratio first/re-run: {c / w:.1f}x (target >= 10x); storing costs the first run {c / p:.2f}x")
    cs, ws = _med(cold_stage), _med(warm_stage)
    print(f"stage time only (the summary's): {cs:.2f}s -> {ws:.2f}s ({cs / max(ws, 1e-3):.0f}x)")
    print("re-run breakdown (medians of separate fresh processes):")
    print(f"  {'start-up floor: --collect-only -p no:snowpipe':<58}{f:>6.2f}s  {_runs(floor)}")
    print(f"  {'plugin collection: --collect-only, minus the floor':<58}{col - f:>6.2f}s  (--collect-only {_runs(collect)})")
    if non_stage:
        print(f"  {f'non-stage tests: -k {NON_STAGE}, minus --collect-only':<58}{ns - col:>6.2f}s  (-k {NON_STAGE} {_runs(non_stage)})")
    print(f"  {'the rest: the re-run minus that (plugin run time + small tests)':<58}{w - ns:>6.2f}s")
    print(f"  the plugin's own share: about {(col - f) + (w - ns):.2f}s of {w:.2f}s; "
          f"what no cache can remove: {ns:.2f}s (a re-run that gave 10x would need {c / 10:.2f}s)")
    print("re-run per stage: " + ", ".join(f"{n} {src} {s:.2f}s" for n, (src, s) in _stage_times(warm_out).items()))
    slow = [line.strip() for line in warm_out.splitlines() if re.match(r"^\d+\.\d+s (setup|call|teardown) ", line)]
    print("re-run slowest: " + "; ".join(slow))
    same = _verdicts(cold_out) == _verdicts(warm_out)
    print(f"verdicts: first {_verdicts(cold_out)} / re-run {_verdicts(warm_out)}: {'same' if same else 'DIFFERENT'}")
    print("re-run actions: " + "; ".join(_actions(warm_out)))
    print(f"cache size: {size / 1e6:.2f} MB")
    return {"cold": c, "warm": w}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--suite", choices=["mortgage", "all", "both"], default="both",
                        help="examples/mortgage, examples/ (issue #6's 'done when'), or both (default)")
    parser.add_argument("--bytecode-cache", action="store_true",
                        help="let Python cache bytecode (into a temp folder), as on most machines; "
                        "without it the environment's PYTHONDONTWRITEBYTECODE is kept")
    args = parser.parse_args()
    names = ["mortgage", "all"] if args.suite == "both" else [args.suite]
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if args.bytecode_cache:
            use_bytecode_cache(env, Path(tmp) / "pycache")
        print(f"bytecode cache: {bytecode_mode(env)}"
              f"; {os.cpu_count()} CPUs; {args.repeat} runs each")
        for name in names:
            bench_suite(name, SUITES[name], Path(tmp), env, args.repeat)


if __name__ == "__main__":
    main()
