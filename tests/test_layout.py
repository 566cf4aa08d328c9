"""The package's folders follow the data's way: no module imports from a later layer.

pytest collection -> pipeline graph -> (local run | compile -> rehearse -> deploy); reports
read what runs produced; the plugin wires it all to pytest. Imports under ``TYPE_CHECKING``
are annotations only and are not counted.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_snowpipe"

# lower number = earlier on the data's way; a module may import its own layer or earlier ones
LAYERS: dict[str, int] = {
    "errors": 0,
    "engines": 1,
    "doubles.sql": 1,  # the embedded SQL engine: every local run's default session stands on it
    "actions.table": 1,  # what each built-in action needs: read by the gate marker's check
    "redact": 1,
    "pipeline": 2,
    "contracts": 2,
    "registry": 3,
    "actions": 4,  # promote and alert, written once over the registry interface
    "local": 5,
    "taskgraph": 6,  # what ships
    "doubles": 7,  # what stands in for the account a deploy talks to: it reads what taskgraph/ compiles
    "release": 8,  # rehearse on the doubles, then deploy: above both
    "reports": 8,
    "settings": 9,
    "hookspecs": 9,
    "run_state": 10,  # the run's state and the hooks that read it
    "plugin": 11,
    "notebook": 11,  # sp.load: runs a pytest session's start in-process, like the plugin
    "__init__": 11,
}


def _layer_of(dotted: str) -> tuple[str, int] | None:
    parts = dotted.split(".")
    if parts[0] != "pytest_snowpipe":
        return None
    top = parts[1] if len(parts) > 1 else "__init__"
    if top == "__version__":  # a constant of the package root, not its lazy public API
        return None
    sub = ".".join(parts[1:3])
    if sub in LAYERS:  # a sub-package with a layer of its own (doubles.sql)
        return sub, LAYERS[sub]
    return top, LAYERS[top]


def _runtime_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import that runs, at module level or inside functions."""
    out: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "pytest_snowpipe":  # from the package root: each name is a module or a constant
                out.extend((node.lineno, f"pytest_snowpipe.{a.name}") for a in node.names)
            else:
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_top_level_name_has_a_layer():
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in _modules()}
    assert tops <= set(LAYERS), f"place these in LAYERS: {sorted(tops - set(LAYERS))}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_against_the_data_s_way(path: Path):
    rel = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    own = _layer_of(f"pytest_snowpipe.{rel}")
    assert own is not None
    wrong = []
    for line, module in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
        target = _layer_of(module)
        if target is not None and target[1] > own[1]:
            wrong.append(f"line {line}: {module} ({target[0]}, layer {target[1]}) from {own[0]} (layer {own[1]})")
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_a_wrong_import():
    tree = ast.parse("def f():\n    from pytest_snowpipe.taskgraph.compile import compile_graph\n")
    assert _runtime_imports(tree) == [(2, "pytest_snowpipe.taskgraph.compile")]
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pytest_snowpipe.plugin import x\n")
    assert [m for _, m in _runtime_imports(tree)] == ["typing"]
