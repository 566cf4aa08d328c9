"""The digest compile stamps into each task's COMMENT: what ships, not where it was written."""
from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

from pytest_snowpipe.taskgraph.compile import CompileOptions, compile_graph
from pytest_snowpipe.taskgraph.fingerprint import TAG, digest_in, task_digest, with_digest
from tests.taskgraph.test_compile import pipeline

MODULE = '''
SCALE = 10


def helper(x):
    return x * SCALE


def stage(raw):
    # the mean, scaled
    return helper(sum(raw) / len(raw))
'''


def load(folder: Path, name: str, source: str) -> ModuleType:
    """``source`` as module ``name`` from a file of its own in ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def digest(folder: Path, name: str, source: str) -> str:
    """The digest of ``stage`` in ``source``; one module name throughout (a project's module is named alike
    wherever it is checked out), in a folder of its own each time."""
    return task_digest(load(folder, name, source).stage)


def test_the_same_code_at_another_path_and_line_is_the_same_digest(tmp_path: Path) -> None:
    """A checkout in CI and one on a laptop, a line added above: the task ships the same code."""
    laptop = digest(tmp_path / "laptop", "fp_stages", MODULE)
    ci = digest(tmp_path / "ci" / "checkout", "fp_stages", "\n\n# moved down\n" + MODULE)
    assert laptop == ci and len(laptop) == 16


def test_a_comment_changes_nothing_that_ships(tmp_path: Path) -> None:
    assert digest(tmp_path / "a", "fp_stages", MODULE) == digest(
        tmp_path / "b", "fp_stages", MODULE.replace("# the mean, scaled", "# the average, times ten"))


def test_the_code_a_stage_reaches_and_its_constants_count(tmp_path: Path) -> None:
    base = digest(tmp_path / "base", "fp_stages", MODULE)
    assert digest(tmp_path / "own", "fp_stages", MODULE.replace("sum(raw) / len(raw)", "max(raw)")) != base
    assert digest(tmp_path / "helper", "fp_stages", MODULE.replace("return x * SCALE", "return x * SCALE + 1")) != base
    assert digest(tmp_path / "const", "fp_stages", MODULE.replace("SCALE = 10", "SCALE = 100")) != base


def test_the_tag_keeps_a_user_comment_and_is_set_once() -> None:
    assert digest_in(None) is None and digest_in("owned by the ML team") is None
    once = with_digest("owned by the ML team", "0123456789abcdef")
    assert once == f"owned by the ML team [{TAG}:0123456789abcdef]"
    again = with_digest(once, "fedcba9876543210")
    assert again == f"owned by the ML team [{TAG}:fedcba9876543210]" and digest_in(again) == "fedcba9876543210"


def test_compile_stamps_every_task_after_the_compile_hook(tmp_path: Path) -> None:
    def adjust(task: Any, kind: str, node: Any) -> None:
        task.comment = f"kind {kind}"

    compiled = compile_graph(pipeline(), CompileOptions(dag_name="DEMO", config={"threshold": 0.1, "out": str(tmp_path)},
                                                        adjust_task=adjust))
    comments = {t.name: t.comment for t in compiled.dag.tasks}
    assert len(comments) == 8 and all(c.startswith(f"kind {compiled.kinds[n]} [{TAG}:") for n, c in comments.items())
    digests = {n: digest_in(c) for n, c in comments.items()}
    assert len(set(digests.values())) == 8  # every task ships something of its own
    again = compile_graph(pipeline(), CompileOptions(dag_name="DEMO", config={"threshold": 0.9, "out": "elsewhere"}))
    assert {t.name: digest_in(t.comment) for t in again.dag.tasks} == digests  # the config is the root's, not code
