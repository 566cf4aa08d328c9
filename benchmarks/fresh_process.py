"""What the end-to-end benchmarks share: a timed fresh process, and the bytecode cache they run with.

Imported by the benchmark scripts (``python benchmarks/<name>.py`` puts this folder first on the path).
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Finished:
    """One fresh process, run to its end."""

    wall: float  # seconds
    usage: resource.struct_rusage  # of the process and the descendants it waited for (``wait4``)
    out: str  # stdout and stderr


def run(cmd: list[str], env: dict[str, str], cwd: Path = ROOT) -> Finished:
    """Run ``cmd`` as a fresh process; exits with its output's tail if it failed."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"command failed ({code}): {' '.join(cmd)}\n{out[-4000:]}")
    return Finished(wall, usage, out)


def use_bytecode_cache(env: dict[str, str], folder: Path) -> None:
    """Let the runs of ``env`` cache bytecode in ``folder``, as on users' machines from their second run on.

    Where ``PYTHONDONTWRITEBYTECODE`` is set (this sandbox sets it), every run compiles every module
    and pytest assertion-rewrites every plugin's package again: about a second that users do not pay.
    """
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(folder)


def bytecode_mode(env: dict[str, str]) -> str:
    """What the runs of ``env`` do with bytecode, for the benchmark's header."""
    return "off (PYTHONDONTWRITEBYTECODE is set)" if "PYTHONDONTWRITEBYTECODE" in env else "on"
