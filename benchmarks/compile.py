"""Compile time of generated pipelines vs pytest's own collection of an equivalent suite.

Shape (chain-and-fan, within Snowflake's limits): W=10 source stages; stage i >= W reads
stages i-W and i-W-1 (so every stage has <= 2 predecessors and <= 2 children); one gate reads
the last W stages, on_pass='alert' (one action task); plus the root and the finalizer. So N
stages make N + 4 tasks, and the largest size, 996 stages, is exactly 1000 tasks (root counted).

Timed per size: building the PipelineGraph + compile_graph (validation, the dagv1 DAG, the
cloudpickle check of every body, the dry-run plan). Best of 3. Compared with ``pytest --collect-only -q``
of a generated conftest with N session fixtures and one gate, in a subprocess (startup
included and also reported separately). Target: the 1000-task graph compiles in under 1 s.

Run: /work/venv/bin/python benchmarks/compile.py
"""
from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WIDTH = 10
SIZES = (10, 100, 996)


def preds(i: int) -> list[int]:
    return [] if i < WIDTH else [j for j in (i - WIDTH, i - WIDTH - 1) if j >= 0]


def module_source(n: int, fixtures: bool) -> str:
    lines = ["import pytest", ""]
    for i in range(n):
        args = ", ".join(f"s{j}" for j in preds(i))
        if fixtures:
            lines.append('@pytest.fixture(scope="session")')
        lines += [f"def s{i}({args}):", f"    return {i}", ""]
    reads = ", ".join(f"s{j}" for j in range(n - WIDTH, n))
    gate = "gate" if not fixtures else "test_gate"
    lines += [f"def {gate}({reads}):", "    assert True", ""]
    return "\n".join(lines)


def build_and_compile(mod: object, n: int) -> tuple[float, int]:
    from pytest_snowpipe.pipeline.gate import GateSpec
    from pytest_snowpipe.pipeline.graph import Gate, PipelineGraph, Stage
    from pytest_snowpipe.taskgraph.compile import CompileOptions, compile_graph

    t0 = time.perf_counter()
    stages = tuple(
        Stage(name=f"s{i}", func=getattr(mod, f"s{i}"), predecessors=tuple(f"s{j}" for j in preds(i)),
              environment=(), is_yield=False, remote=None, location="gen", key=str(i))
        for i in range(n)
    )
    reads = tuple(f"s{j}" for j in range(n - WIDTH, n))
    gate = Gate(name="gate", nodeid="gen::gate", func=mod.gate, reads=reads, environment=(),
                upstream=tuple(s.name for s in stages), spec=GateSpec("alert", None, None, None, None),
                model_stage=None, metrics_stage=None, location="gen", key="g")
    graph = PipelineGraph(stages=stages, gates=(gate,))
    compiled = compile_graph(graph, CompileOptions(dag_name="BENCH"))
    return time.perf_counter() - t0, len(compiled.dag.tasks) + 1


def collect_time(folder: Path, repeat: int = 3) -> float:
    """Best of ``repeat`` subprocess runs (process start-up is noisy)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", str(folder)],
                       check=True, capture_output=True, cwd=folder)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="snowpipe-bench-") as tmp:
        root = Path(tmp)
        sys.path.insert(0, str(root))
        # warm the imports (snowflake.core, snowpark) once so sizes compare compile work only
        t0 = time.perf_counter()
        import snowflake.core.task.dagv1
        import snowflake.snowpark  # noqa: F401
        warm = time.perf_counter() - t0
        (root / "gen_warm.py").write_text(module_source(12, fixtures=False))
        build_and_compile(importlib.import_module("gen_warm"), 12)  # first-compile costs, paid once per session
        empty = root / "empty"
        empty.mkdir()
        (empty / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
        baseline = collect_time(empty)
        print(f"one-off import of snowflake.core + snowpark: {warm:.3f}s; pytest startup (1-test suite): {baseline:.3f}s")
        print(f"{'stages':>6} {'tasks':>6} {'compile':>9} {'collect':>9} {'collect-startup':>15} {'ratio':>6} {'ratio*':>6}")
        for n in SIZES:
            (root / f"gen_{n}.py").write_text(module_source(n, fixtures=False))
            mod = importlib.import_module(f"gen_{n}")
            compile_s, tasks = min(build_and_compile(mod, n) for _ in range(3))
            suite = root / f"suite_{n}"
            suite.mkdir()
            (suite / "conftest.py").write_text(module_source(n, fixtures=True).split("def test_gate")[0])
            reads = ", ".join(f"s{j}" for j in range(n - WIDTH, n))
            (suite / "test_gate.py").write_text(f"def test_gate({reads}):\n    assert True\n")
            collect_s = collect_time(suite)
            net = max(collect_s - baseline, 1e-3)
            print(f"{n:>6} {tasks:>6} {compile_s:>8.3f}s {collect_s:>8.3f}s {net:>14.3f}s "
                  f"{compile_s / collect_s:>6.2f} {compile_s / net:>6.2f}")
        print("ratio = compile / pytest collection (subprocess, startup included); ratio* = startup excluded")
        print("target: 1000 tasks compile in under 1 s")


if __name__ == "__main__":
    main()
