"""A digest of what each task ships, stamped into the task's COMMENT so that a later deploy can compare.

A Python task's definition is an anonymous procedure whose code Snowpark uploads under random names,
so its SQL differs on every deploy even when nothing changed: the definition cannot be compared. What
ships is the task's spec and, pickled by value, its functions. The digest covers exactly that, read
the way it runs rather than the way it is laid out: each function's bytecode, constants and names
(not its file path or line numbers, which differ between a laptop and CI and move when a line is added
above), the project-local code and constants it reaches (:func:`pipeline.codedeps.analyze`, by source),
the spec's plain fields, and this plugin's version (its runtime ships with every task). Left out: the
graph an action carries for its lineage and of its gate all but what the action reads (a change upstream
or in the gate's test changes that stage's or gate's task, not the action's), and the local registry
path (a path of the machine that deployed).
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_snowpipe.pipeline.graph import Gate

TAG = "snowpipe-digest"
TAG_RE = re.compile(rf"\[?{TAG}:([0-9a-f]{{16}})\]?")
_SKIPPED_FIELDS = frozenset({"graph", "registry_path", "location", "key"})  # lineage, machine paths, cascades
_MAX_DEPTH = 6


def digest_in(comment: str | None) -> str | None:
    """The digest a task's COMMENT carries (None when it has none: deployed by hand or by an older version)."""
    found = TAG_RE.search(comment or "")
    return found.group(1) if found else None


def with_digest(comment: str | None, digest: str) -> str:
    """``comment`` with its digest tag set to ``digest`` (a comment of the user's is kept before it)."""
    kept = TAG_RE.sub("", comment or "").strip()
    return f"{kept} [{TAG}:{digest}]" if kept else f"[{TAG}:{digest}]"


def stamp(dag: Any, bodies: Mapping[str, Any]) -> None:
    """Set the digest of every task of ``dag`` whose spec is in ``bodies`` (task name -> runtime spec)."""
    for task in dag.tasks:
        spec = bodies.get(task.name)
        if spec is not None:
            task.comment = with_digest(task.comment, task_digest(spec, getattr(task.definition, "packages", ())))


def task_digest(spec: Any, extra: Any = ()) -> str:
    """The digest of one task's spec (``extra``: what else its definition ships, e.g. an ML Job's packages)."""
    from pytest_snowpipe import __version__

    h = hashlib.sha256(f"pytest-snowpipe {__version__}\0".encode())
    h.update(_part(spec, 0).encode())
    h.update(_part(extra, 0).encode())
    return h.hexdigest()[:16]


def _part(value: Any, depth: int) -> str:
    """A stable text for ``value``: no memory addresses, paths or line numbers."""
    if depth > _MAX_DEPTH:
        return f"<{type(value).__qualname__}>"
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_part(v, depth + 1) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k!r}:{_part(v, depth + 1)}" for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))) + "}"
    if isinstance(value, (set, frozenset)):
        return "{" + ",".join(sorted(_part(v, depth + 1) for v in value)) + "}"
    if isinstance(value, types.FunctionType):
        return _function(value, depth)
    if isinstance(value, Gate):  # in an action's spec: what the action reads of its gate, not the gate's own code
        spec = value.spec
        return _part((value.name, value.nodeid, value.upstream, value.model_stage, value.metrics_stage,
                      value.model_name, spec.version_name, spec.log_model), depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = (f.name for f in dataclasses.fields(value) if f.name not in _SKIPPED_FIELDS)
        return f"{type(value).__qualname__}(" + ",".join(
            f"{name}={_part(getattr(value, name), depth + 1)}" for name in fields) + ")"
    func = getattr(value, "func", None)  # functools.partial and the like
    if callable(value) and isinstance(func, types.FunctionType):
        return f"{type(value).__qualname__}({_function(func, depth)},{_part(getattr(value, 'args', ()), depth + 1)})"
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def _function(func: types.FunctionType, depth: int) -> str:
    from pytest_snowpipe.pipeline.codedeps import analyze

    try:
        reached = analyze(func, Path("/")).digest  # project-local callees and constants, by source
    except Exception:  # an analysis gap must not stop a deploy: the function's own code still counts
        reached = "?"
    defaults = (func.__defaults__, func.__kwdefaults__)
    return f"fn {func.__qualname__}:{_code(func.__code__)}:{reached}:{_part(defaults, depth + 1)}"


def _code(code: types.CodeType) -> str:
    """What a code object does, not where it was written (no co_filename, co_firstlineno, line table)."""
    h = hashlib.sha256(code.co_code)
    consts = [_code(c) if isinstance(c, types.CodeType) else _part(c, 0) for c in code.co_consts]
    h.update(repr((consts, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars,
                   code.co_argcount, code.co_kwonlyargcount, code.co_flags)).encode())
    return h.hexdigest()[:16]


__all__ = ["TAG", "digest_in", "stamp", "task_digest", "with_digest"]
