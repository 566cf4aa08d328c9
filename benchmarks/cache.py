"""Stage cache: a cold run vs. an unchanged re-run of `pytest examples/mortgage`, in one script.

Each run is a fresh process (interpreter start, imports and collection included); runs without
the cache, cold runs (cache cleared with --snowpipe-cache-clear) and warm re-runs alternate,
several times. Printed:
both wall times and their ratio (target: the re-run at least 10x faster), the same ratio for
stage time only (the summary's stage times: what the cache can save), the floor a re-run
cannot go below (interpreter + pytest + plugin start-up and collection; a run of the suite's
non-stage tests), where the warm run's time goes, the verdicts of both, and the cache's size.

The cache and the registry go to a temporary folder (-o cache_dir=..., -o snowpipe_registry=...),
so your own .pytest_cache is untouched.
Usage: python benchmarks/cache.py [--repeat N] [--bytecode-cache]
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

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "mortgage"
STAGE_ROW = re.compile(r"^(\S+)(?: \(remote\))?\s+ok\s+(computed|cached)\s+(?:([\d.]+)s|-)\s")


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
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


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bytecode-cache", action="store_true",
                        help="let Python cache bytecode (into a temp folder), as on most machines; "
                        "without it the environment's PYTHONDONTWRITEBYTECODE is kept")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if args.bytecode_cache:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        cache_dir = Path(tmp) / "pytest-cache"
        base = [
            sys.executable, "-m", "pytest", str(EXAMPLE), "-q", "-p", "no:randomly", "--durations=4",
            "-o", f"cache_dir={cache_dir}", "-o", f"snowpipe_registry={Path(tmp) / 'registry'}",
        ]
        cold_cmd = [*base, "--snowpipe-cache-clear"]
        collect_cmd = [sys.executable, "-m", "pytest", str(EXAMPLE), "-q", "--collect-only", "-p", "no:randomly",
                       "-o", f"cache_dir={cache_dir}"]
        non_stage_cmd = [*base, "-k", "test_features"]  # the suite's property test: no stage, never cached
        _run(cold_cmd, env)  # warm-up: the OS file cache (and the bytecode cache, when on)
        cold, warm, plain, cold_stage, warm_stage = [], [], [], [], []
        cold_out = warm_out = ""
        for _ in range(args.repeat):
            plain.append(_run([*base, "--snowpipe-no-cache"], env)[0])
            t, cold_out = _run(cold_cmd, env)
            cold.append(t)
            cold_stage.append(sum(s for _, s in _stage_times(cold_out).values()))
            t, warm_out = _run(base, env)
            warm.append(t)
            warm_stage.append(sum(s for _, s in _stage_times(warm_out).values()))
        floor_collect = statistics.median(_run(collect_cmd, env)[0] for _ in range(args.repeat))
        floor_tests = statistics.median(_run(non_stage_cmd, env)[0] for _ in range(args.repeat))
        size = _size(cache_dir / "d" / "snowpipe")

    c, w, p = statistics.median(cold), statistics.median(warm), statistics.median(plain)
    cs, ws = statistics.median(cold_stage), statistics.median(warm_stage)
    print(f"bytecode cache: {'on' if 'PYTHONDONTWRITEBYTECODE' not in env else 'off (PYTHONDONTWRITEBYTECODE is set)'}")
    print(f"{'pytest examples/mortgage':<40}{'median s':>10}  runs")
    print(f"{'without the cache (--snowpipe-no-cache)':<40}{p:>10.2f}  {', '.join(f'{x:.2f}' for x in plain)}")
    print(f"{'cold (cache cleared)':<40}{c:>10.2f}  {', '.join(f'{x:.2f}' for x in cold)}")
    print(f"{'unchanged re-run':<40}{w:>10.2f}  {', '.join(f'{x:.2f}' for x in warm)}")
    print(f"ratio cold/re-run, whole process: {c / w:.1f}x (target >= 10x); "
          f"storing costs the cold run {c / p:.2f}x")
    print(f"ratio cold/re-run, stage time only: {cs / max(ws, 1e-3):.1f}x ({cs:.2f}s -> {ws:.2f}s)")
    print(f"floor: start-up + collection (--collect-only): {floor_collect:.2f}s; "
          f"the suite's non-stage property test alone (-k test_features): {floor_tests:.2f}s")
    print("re-run per stage: " + ", ".join(f"{n} {src} {s:.2f}s" for n, (src, s) in _stage_times(warm_out).items()))
    slow = [line.strip() for line in warm_out.splitlines() if re.match(r"^\d+\.\d+s (setup|call|teardown) ", line)]
    print("re-run slowest: " + "; ".join(slow))
    same = _verdicts(cold_out) == _verdicts(warm_out)
    print(f"verdicts: cold {_verdicts(cold_out)} / re-run {_verdicts(warm_out)}: {'same' if same else 'DIFFERENT'}")
    print(f"cache size: {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
