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
import sys
import tempfile
from pathlib import Path

from fresh_process import ROOT, Finished, bytecode_mode, run, use_bytecode_cache


def _wall_cpu(done: Finished) -> tuple[float, float]:
    """Wall seconds and the CPU seconds (user + system) of the whole process tree."""
    return done.wall, done.usage.ru_utime + done.usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2, help="measured runs per side; the best counts")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="keep the environment's PYTHONDONTWRITEBYTECODE (every run compiles every module)")
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_bytecode_cache:
            use_bytecode_cache(env, Path(tmp) / "pycache")
        print(f"bytecode cache: {bytecode_mode(env)}")
        base = [sys.executable, "-m", "pytest", "examples/", "-q", "-p", "no:cacheprovider"]
        sides = {
            "local": [*base, "--snowpipe-no-cache", "-o", f"snowpipe_registry={Path(tmp) / 'registry'}"],
            "rehearsal": [*base, "--snowpipe-deploy", "--snowpipe-target", "local"],
        }
        for cmd in sides.values():  # warm: bytecode compiled, libraries in the page cache
            run(cmd, env)
        runs: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
        for _ in range(max(1, args.repeat)):
            for side, cmd in sides.items():
                runs[side].append(_wall_cpu(run(cmd, env)))
    print(f"{'side':<10}{'wall s':>8}{'cpu s':>8}   runs (wall)")
    best = {side: (min(w for w, _ in rs), min(c for _, c in rs)) for side, rs in runs.items()}
    for side, rs in runs.items():
        print(f"{side:<10}{best[side][0]:>8.1f}{best[side][1]:>8.1f}   " + ", ".join(f"{w:.1f}" for w, _ in rs))
    ratio = best["rehearsal"][0] / best["local"][0]
    print(f"rehearsal / local: wall {ratio:.2f}x (target <= 1.5x), cpu {best['rehearsal'][1] / best['local'][1]:.2f}x")


if __name__ == "__main__":
    main()
