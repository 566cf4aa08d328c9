"""Collection cost of the installed plugin on a suite that does not use it.

A generated suite of plain tests (no gate, no snowpipe fixture) is collected in fresh
processes (their CPU time, user + system) with the plugin disabled (``-p no:snowpipe``, the baseline) and enabled (the
entry point, as every user who installs it gets it), alternated, several times in this one
run; the ratio of the medians is printed. Target: below 1.05x.
Usage: python benchmarks/collection.py [--modules N] [--tests-per-module M] [--repeat R]
"""
from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

MODULE = '''
import pytest

@pytest.fixture(scope="session")
def base_{i}():
    return {i}

@pytest.fixture
def derived_{i}(base_{i}):
    return base_{i} + 1

@pytest.mark.parametrize("n", range({per}))
def test_value_{i}(derived_{i}, n):
    assert derived_{i} + n > 0

class TestGroup{i}:
    def test_one(self, base_{i}):
        assert base_{i} >= 0
'''


def write_suite(root: Path, modules: int, per: int) -> None:
    (root / "pytest.ini").write_text("[pytest]\n")
    for i in range(modules):
        (root / f"test_mod_{i:04d}.py").write_text(MODULE.format(i=i, per=per))


def collect_seconds(root: Path, plugin: bool) -> float:
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    if not plugin:
        cmd += ["-p", "no:snowpipe"]
    # CPU time (user + system) of the child: on a shared VM wall time varies more than the effect
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    elapsed = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"collection failed ({'with' if plugin else 'without'} the plugin):\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", type=int, default=200)
    ap.add_argument("--tests-per-module", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_suite(root, args.modules, args.tests_per_module)
        n_tests = args.modules * (args.tests_per_module + 1)
        collect_seconds(root, plugin=True)  # warm the file system and bytecode caches
        collect_seconds(root, plugin=False)
        without, with_ = [], []
        for _ in range(args.repeat):
            without.append(collect_seconds(root, plugin=False))
            with_.append(collect_seconds(root, plugin=True))
        created = sorted(p.name for p in root.iterdir() if not p.name.startswith("test_mod_") and p.name != "pytest.ini")
    base, plug = statistics.median(without), statistics.median(with_)
    print(f"suite: {args.modules} modules, {n_tests} tests; {args.repeat} alternated fresh-process collections each")
    print(f"without the plugin (-p no:snowpipe): median {base:.3f} s CPU  (min {min(without):.3f}, max {max(without):.3f})")
    print(f"with the plugin installed:           median {plug:.3f} s CPU  (min {min(with_):.3f}, max {max(with_):.3f})")
    ratio = plug / base
    print(f"ratio of medians: {ratio:.3f}x  (target < 1.05x: {'met' if ratio < 1.05 else 'NOT met'})")
    # on a shared VM the spread is wider than the effect; the minimum is the run least disturbed
    print(f"ratio of minimums: {min(with_) / min(without):.3f}x")
    print(f"files or folders the runs left beside the suite: {created or 'none'}")


if __name__ == "__main__":
    main()
