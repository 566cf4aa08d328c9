"""What a deploy would change, task by task: the compiled graph against the one deployed.

Each task is compared facet by facet (:data:`FACETS`): what its code ships (the digest compile stamps
into the COMMENT, :mod:`pytest_snowpipe.taskgraph.fingerprint`), its packages and versions, its
predecessors, its branch condition, its warehouse, its state, and on the root the schedule and config.
A facet reads one value from the compiled task and one from the task as snowflake.core fetched it;
another facet (the monitors of a stage's table, say) joins by appending to :data:`FACETS`.
"""
from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_snowpipe.errors import first_line
from pytest_snowpipe.taskgraph.compile import CompiledPipeline
from pytest_snowpipe.taskgraph.deploy import DeployError
from pytest_snowpipe.taskgraph.deployed import Snapshot, predecessors_of, snapshot
from pytest_snowpipe.taskgraph.fingerprint import digest_in
from pytest_snowpipe.taskgraph.monitors_deploy import monitors_in

KIND_ROOT = "root"
PACKAGES_RE = re.compile(r"PACKAGES\s*=\s*\(([^)]*)\)", re.IGNORECASE)


class Status(enum.StrEnum):
    """What a deploy does to one task."""

    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Planned:
    """One task of the compiled graph as the facets read it (``task`` is None for the root)."""

    name: str
    kind: str
    task: Any
    compiled: CompiledPipeline

    @property
    def dag(self) -> Any:
        return self.compiled.dag


@dataclass(frozen=True)
class Facet:
    """One compared property: ``new`` reads the compiled task, ``old`` the fetched one (None: does not apply)."""

    name: str
    new: Callable[[Planned], Any]
    old: Callable[[Any], Any]
    say: Callable[[Any, Any], str] = field(default=lambda old, new: f"{_shown(old)} -> {_shown(new)}")


@dataclass(frozen=True)
class FacetChange:
    facet: str
    old: Any
    new: Any
    text: str  # how the change reads: "pandas 2.3.3 -> 2.2.0"


@dataclass(frozen=True)
class TaskChange:
    name: str
    kind: str
    status: Status
    changes: tuple[FacetChange, ...] = ()


@dataclass(frozen=True)
class GraphDiff:
    """The whole comparison. ``deployed`` is False when there is no graph of that name yet."""

    dag: str
    where: str
    deployed: bool
    suspended: bool
    tasks: tuple[TaskChange, ...]

    @property
    def changed(self) -> list[TaskChange]:
        return [t for t in self.tasks if t.status != Status.UNCHANGED]

    @property
    def unchanged(self) -> bool:
        """A deploy would change nothing."""
        return self.deployed and not self.changed

    def count(self, status: Status) -> int:
        return sum(1 for t in self.tasks if t.status == status)

    def summary(self) -> str:
        counts = ", ".join(f"{self.count(s)} {s}" for s in Status)
        return f"Task Graph {self.dag} in {self.where}: {counts}"


# ---------------------------------------------------------------- facet readers


def _shown(value: Any) -> str:
    if value is None or value == ():
        return "(none)"
    if isinstance(value, tuple):
        return ", ".join(map(str, value))
    return str(value)


def _ident(name: str | None) -> str | None:
    if not name:
        return None
    name = name.strip()
    return name[1:-1] if len(name) >= 2 and name[0] == name[-1] == '"' else name.upper()


def _child(read: Callable[[Planned], Any]) -> Callable[[Planned], Any]:
    return lambda p: None if p.task is None else read(p)


def _new_predecessors(p: Planned) -> tuple[str, ...]:
    names = sorted(t.full_name.upper() for t in p.task.predecessors)
    if not names and not p.task._is_finalizer:
        return (p.dag.name.upper(),)
    return tuple(names)


def _old_predecessors(task: Any) -> tuple[str, ...] | None:
    if _is_root(task):
        return None
    return tuple(sorted(predecessors_of(task)))


def _is_root(task: Any) -> bool:
    return getattr(task, "_snowpipe_root", False) is True


def packages_of(definition: str | None) -> tuple[str, ...] | None:
    """The ``PACKAGES=(...)`` of a Python task's definition, sorted (None: the definition has none)."""
    found = PACKAGES_RE.search(definition or "")
    if found is None:
        return None
    return tuple(sorted(re.findall(r"'([^']*)'", found.group(1)), key=str.lower))


def _new_packages(p: Planned) -> tuple[str, ...] | None:
    if p.task is None or not callable(p.task.definition):  # an ML Job's packages are in its digest
        return None
    return tuple(sorted(map(str, p.dag.packages or ()), key=str.lower))


def _pins(specs: Any) -> dict[str, str]:
    """``{"pandas": "2.3.3"}`` from ``("pandas==2.3.3",)`` (a bare name maps to "", a range is kept as written)."""
    out = {}
    for spec in specs or ():
        found = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", spec)
        name, version = (found.group(1), found.group(2)) if found else (spec, "")
        out[name.lower()] = version.removeprefix("==").strip()
    return out


def _say_packages(old: Any, new: Any) -> str:
    if old is None or new is None:
        return f"{_shown(old)} -> {_shown(new)}"
    before, after = _pins(old), _pins(new)
    parts = [f"{n} {before[n] or '(any)'} -> {after[n] or '(any)'}"
             for n in sorted(before.keys() & after.keys()) if before[n] != after[n]]
    parts += [f"+ {n} {after[n]}".rstrip() for n in sorted(after.keys() - before.keys())]
    parts += [f"- {n} {before[n]}".rstrip() for n in sorted(before.keys() - after.keys())]
    return "; ".join(parts)


def _schedule(value: Any) -> str:
    from pytest_snowpipe.taskgraph.schedule import describe_schedule

    return describe_schedule(value)


def _config_of(value: Any) -> str:
    return json.dumps(dict(value or {}), sort_keys=True, default=str)


def _say_config(old: Any, new: Any) -> str:
    from pytest_snowpipe.redact import Redactor

    before, after = json.loads(old), json.loads(new)
    shown_before = Redactor.for_run(before, None).config(before)
    shown_after = Redactor.for_run(after, None).config(after)
    parts = []
    for key in sorted(before.keys() | after.keys()):
        if key not in before:
            parts.append(f"+ {key} = {shown_after[key]!r}")
        elif key not in after:
            parts.append(f"- {key} (was {shown_before[key]!r})")
        elif before[key] != after[key]:
            parts.append(f"{key}: {shown_before[key]!r} -> {shown_after[key]!r}")
    return "; ".join(parts)


def _say_code(old: Any, new: Any) -> str:
    if old is None:
        return f"the deployed task records no code digest (deployed by hand or by an older pytest-snowpipe) -> {new}"
    return f"{old} -> {new}"


FACETS: list[Facet] = [
    Facet("code", _child(lambda p: digest_in(p.task.comment)),
          lambda t: None if _is_root(t) else digest_in(getattr(t, "comment", None)), _say_code),
    Facet("packages", _new_packages, lambda t: packages_of(getattr(t, "definition", None)), _say_packages),
    Facet("predecessors", _child(_new_predecessors), _old_predecessors),
    Facet("condition", _child(lambda p: p.task.condition or None), lambda t: getattr(t, "condition", None) or None),
    Facet("schedule", lambda p: _schedule(p.dag.schedule) if p.task is None else None,
          lambda t: _schedule(getattr(t, "schedule", None)) if _is_root(t) else None),
    Facet("config", lambda p: _config_of(p.dag.config) if p.task is None else None,
          lambda t: _config_of(getattr(t, "config", None)) if _is_root(t) else None, _say_config),
    Facet("warehouse", lambda p: _ident(p.dag.warehouse if p.task is None else p.task.warehouse),
          lambda t: _ident(getattr(t, "warehouse", None))),
    Facet("monitors", _child(lambda p: monitors_in(p.task.comment)),
          lambda t: None if _is_root(t) else monitors_in(getattr(t, "comment", None)),
          lambda old, new: f"{_shown(old)} -> {_shown(new)} (the contract's Data Metric Functions or their schedule)"),
    Facet("state", _child(lambda p: "started"), lambda t: None if _is_root(t) else getattr(t, "state", None),
          lambda old, new: f"{old} -> {new} (a deploy resumes it)"),
]


# ---------------------------------------------------------------- comparison


def planned(compiled: CompiledPipeline) -> list[Planned]:
    """The compiled graph's tasks, root first, each named as Snowflake names it (upper-case)."""
    dag = compiled.dag
    out = [Planned(dag.name.upper(), KIND_ROOT, None, compiled)]
    out += [Planned(t.full_name.upper(), compiled.kinds.get(t.name, "task"), t, compiled) for t in dag.tasks]
    return out


def compare(compiled: CompiledPipeline, old: Snapshot | None, facets: Sequence[Facet] | None = None) -> GraphDiff:
    """``compiled`` against the deployed ``old`` (None: nothing deployed, every task is added)."""
    facets = FACETS if facets is None else facets
    opts = compiled.options
    where = ".".join(x for x in (opts.database, opts.schema) if x) or "(the connection's schema)"
    tasks = planned(compiled)
    if old is None:
        return GraphDiff(compiled.dag.name, where, False, False, tuple(TaskChange(p.name, p.kind, Status.ADDED) for p in tasks))
    fetched: dict[str, Any] = {t.name.upper(): t for t in old.tasks}
    root_name = old.root.name.upper()
    out = []
    for p in tasks:
        task = fetched.pop(p.name, None)
        if task is None:
            out.append(TaskChange(p.name, p.kind, Status.ADDED))
            continue
        view = _RootView(task) if p.name == root_name else task
        changes = []
        for facet in facets:
            new, was = facet.new(p), facet.old(view)
            if new != was:
                changes.append(FacetChange(facet.name, was, new, facet.say(was, new)))
        out.append(TaskChange(p.name, p.kind, Status.CHANGED if changes else Status.UNCHANGED, tuple(changes)))
    out += [TaskChange(name, "task", Status.REMOVED) for name in fetched]
    return GraphDiff(compiled.dag.name, where, True, old.suspended, tuple(out))


class _RootView:
    """A fetched root task, marked as the root for the facets (which read it through attributes)."""

    _snowpipe_root = True

    def __init__(self, task: Any) -> None:
        self._task = task

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)


def fetch_diff(op: Any, compiled: CompiledPipeline) -> GraphDiff:
    """Fetch the deployed graph through ``op`` (a dagv1 ``DAGOperation``) and compare; changes nothing.

    Raises :class:`DeployError` naming the graph when the account cannot be read or answers with
    something that is not a Task Graph.
    """
    name = compiled.dag.name
    opts = compiled.options
    try:
        return compare(compiled, snapshot(op.schema.tasks, name))
    except Exception as exc:
        raise DeployError(
            f"reading the deployed Task Graph {name} from {opts.database}.{opts.schema} to compare it failed "
            f"({first_line(exc)}); nothing was changed. Check that the role can see the schema's tasks "
            f"(SHOW TASKS LIKE '{name}%' IN SCHEMA {opts.database}.{opts.schema}) and try again"
        ) from exc


# ---------------------------------------------------------------- text


MARKS = {Status.ADDED: "+", Status.REMOVED: "-", Status.CHANGED: "~", Status.UNCHANGED: " "}


def format_diff(diff: GraphDiff) -> str:
    """The diff for the terminal: one line per added, removed or changed task, then what changed in it."""
    if not diff.deployed:
        lines = [f"deploy diff: Task Graph {diff.dag} is not deployed in {diff.where}: "
                 f"all {len(diff.tasks)} tasks would be added"]
    elif diff.unchanged:
        return f"deploy diff: Task Graph {diff.dag} in {diff.where} is up to date: no task would change"
    else:
        lines = [f"deploy diff: {diff.summary()}"]
    for task in diff.changed:
        lines.append(f"  {MARKS[task.status]} {task.name} ({task.kind})" if task.status != Status.REMOVED
                     else f"  {MARKS[task.status]} {task.name}")
        lines.extend(f"      {c.facet}: {c.text}" for c in task.changes)
    return "\n".join(lines)


__all__ = [
    "FACETS", "Facet", "FacetChange", "GraphDiff", "Planned", "Status", "TaskChange", "compare",
    "fetch_diff", "format_diff", "packages_of", "planned",
]
