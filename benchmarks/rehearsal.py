"""Rehearsal: ``pytest examples/ --snowpipe-deploy --snowpipe-target local`` against ``pytest examples/``.

The rehearsal compiles the pipeline, deploys it to the offline account and runs every shipped task
once on the emulator, each in the sandbox Snowflake would give it; the local run runs the same
stages as pytest fixtures. Both run as fresh processes from the repository root, warm (one
unmeasured run of each first: bytecode and the page cache), interleaved (local, rehearsal, local,
...) with ``--snowpipe-no-cache`` so the local run computes every stage as the rehearsal does;
the best wall time of each side counts (a shared 2-core machine disturbs single runs by a third).
Also printed: each side's user+system CPU time of the whole process tree (``wait4``), which a
busy machine disturbs less than the wall time.
Bytecode: both sides run with Python's bytecode cache, in a private ``PYTHONPYCACHEPREFIX`` (the
warm-up runs fill it), as on users' machines, even where the environment sets
``PYTHONDONTWRITEBYTECODE`` (this sandbox does; then every sandbox interpreter compiles what it
imports on every run); ``--no-bytecode-cache`` keeps the environment.
Target: rehearsal at most 1.5x the local run.
Usage: python benchmarks/rehearsal.py [--repeat 2] [--no-bytecode-cache]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process tree) of one fresh process; exits if it failed."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{out[-4000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2, help="measured runs per side; the best counts")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="keep the environment's PYTHONDONTWRITEBYTECODE (every run compiles every module)")
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_bytecode_cache:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        print(f"bytecode cache: {'off (PYTHONDONTWRITEBYTECODE)' if 'PYTHONDONTWRITEBYTECODE' in env else 'on'}")
        base = [sys.executable, "-m", "pytest", "examples/", "-q", "-p", "no:cacheprovider"]
        sides = {
            "local": [*base, "--snowpipe-no-cache", "-o", f"snowpipe_registry={Path(tmp) / 'registry'}"],
            "rehearsal": [*base, "--snowpipe-deploy", "--snowpipe-target", "local"],
        }
        for cmd in sides.values():  # warm: bytecode compiled, libraries in the page cache
            _run(cmd, env)
        runs: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
        for _ in range(max(1, args.repeat)):
            for side, cmd in sides.items():
                runs[side].append(_run(cmd, env))
    print(f"{'side':<10}{'wall s':>8}{'cpu s':>8}   runs (wall)")
    best = {side: (min(w for w, _ in rs), min(c for _, c in rs)) for side, rs in runs.items()}
    for side, rs in runs.items():
        print(f"{side:<10}{best[side][0]:>8.1f}{best[side][1]:>8.1f}   " + ", ".join(f"{w:.1f}" for w, _ in rs))
    ratio = best["rehearsal"][0] / best["local"][0]
    print(f"rehearsal / local: wall {ratio:.2f}x (target <= 1.5x), cpu {best['rehearsal'][1] / best['local'][1]:.2f}x")


if __name__ == "__main__":
    main()
