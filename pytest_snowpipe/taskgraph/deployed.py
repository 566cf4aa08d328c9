"""The graph as deployed: fetch it before a change, recreate it exactly if the change fails.

Read the way snowflake.core's own dagv1 reads a graph: the relations come from each task's
``task_relations`` (``Predecessors``, the root's ``FinalizerTask``, the finalizer's
``FinalizedRootTask``) as well as the ``predecessors``/``finalize`` fields, since an account may
report a relation in one place only. A restore recreates every task (the finalizer with its
``finalize`` set back), then resumes children before the root, as Snowflake requires.
"""
from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from typing import Any

IMPORTS_RE = re.compile(r"IMPORTS\s*=\s*\(([^)]*)\)", re.IGNORECASE)
STAGE_PATH_RE = re.compile(r'"STAGE_PATH"\s*:\s*"(@[^"]+)"')


def stage_files_of(definition: str | None) -> set[str]:
    """The stage files a task definition imports (``IMPORTS=('@DB.S.ST/x/a.zip', ...)``)."""
    out: set[str] = set()
    for group in IMPORTS_RE.findall(definition or ""):
        out.update(f for f in re.findall(r"'([^']*)'", group) if f.startswith("@"))
    return out


def job_stage_paths_of(definition: str | None) -> set[str]:
    """The payload folders an ML Job task's ``SYSTEM$EXECUTE_ML_JOB`` reads (its spec's ``STAGE_PATH``)."""
    return set(STAGE_PATH_RE.findall((definition or "").replace('\\"', '"')))


def relations(task: Any) -> dict[str, Any]:
    """A fetched task's ``task_relations`` JSON (empty when absent or unreadable)."""
    text = getattr(task, "task_relations", None)
    if not text:
        return {}
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _short(name: str) -> str:
    return name.split(".")[-1].strip('"').upper()


def predecessors_of(task: Any) -> list[str]:
    """Short upper-case names of a fetched task's predecessors (field, else ``task_relations``)."""
    names = list(getattr(task, "predecessors", None) or relations(task).get("Predecessors") or [])
    return [_short(p) for p in names]


def finalized_root_of(task: Any) -> str | None:
    """The root a fetched task finalizes (``finalize``, else ``task_relations.FinalizedRootTask``)."""
    value = getattr(task, "finalize", None) or relations(task).get("FinalizedRootTask")
    return _short(value) if value else None


@dataclass
class Snapshot:
    """The deployed graph before a change: every task as snowflake.core fetched it (root first)."""

    root: Any
    children: list[Any]  # predecessors before successors
    finalizer: Any | None

    @property
    def tasks(self) -> list[Any]:
        return [self.root, *self.children, *([self.finalizer] if self.finalizer is not None else [])]

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def suspended(self) -> bool:
        """The user (or a failure policy) suspended the graph: a redeploy keeps it so."""
        return bool(self.root.state != "started")


def snapshot(tasks: Any, name: str) -> Snapshot | None:
    """Fetch the deployed graph ``name`` (None when there is none)."""
    from snowflake.core.exceptions import NotFoundError

    try:
        root = tasks[name].fetch()
    except NotFoundError:
        return None
    fetched = [t for t in tasks[name].fetch_task_dependents() if t.name.upper() != root.name.upper()]
    root_name = root.name.upper()
    finalizer_name = _short(relations(root).get("FinalizerTask") or "") or None
    finalizer = next(
        (t for t in fetched if finalized_root_of(t) == root_name or t.name.upper() == finalizer_name), None
    )
    if finalizer is None and finalizer_name:  # named by the root, not listed among its dependents
        try:
            finalizer = tasks[finalizer_name].fetch()
        except NotFoundError:
            finalizer = None
    rest = [t for t in fetched if t is not finalizer]
    done: set[str] = {root_name}
    ordered: list[Any] = []
    while rest:  # predecessors first (the graph is acyclic: Snowflake checked it)
        ready = [t for t in rest if all(p in done for p in predecessors_of(t))] or rest[:1]
        for t in ready:
            ordered.append(t)
            done.add(t.name.upper())
            rest.remove(t)
    return Snapshot(root=root, children=ordered, finalizer=finalizer)


def writable(task: Any, *, finalizes: str | None = None) -> Any:
    """A fetched task as a create body: read-only fields (id, state, owner, ...) dropped, relations kept."""
    from snowflake.core.task import Task
    from snowflake.core.task._generated.models import Task as TaskModel

    body = task.to_dict(hide_readonly_properties=True)
    if not body.get("predecessors") and predecessors_of(task):
        body["predecessors"] = list(getattr(task, "predecessors", None) or relations(task).get("Predecessors") or [])
    if finalizes and not body.get("finalize"):
        body["finalize"] = finalizes
    return Task._from_rest_model(TaskModel.from_dict(body))


def restore(op: Any, dag_name: str, old: Snapshot | None) -> None:
    """Drop whatever exists of graph ``dag_name``, then recreate ``old`` as it was (states included)."""
    from snowflake.core import CreateMode

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        op.drop(dag_name, drop_finalizer=True)
    if old is None:
        return
    tasks = op.schema.tasks
    for task in [old.root, *old.children]:
        tasks.create(writable(task), mode=CreateMode.or_replace)
    if old.finalizer is not None:
        tasks.create(writable(old.finalizer, finalizes=old.root.name), mode=CreateMode.or_replace)
    for task in [*old.children, *([old.finalizer] if old.finalizer is not None else [])]:
        if task.state == "started":  # children first: Snowflake resumes a root only after them
            tasks[task.name].resume()
    if old.root.state == "started":
        tasks[old.root.name].resume()


__all__ = [
    "Snapshot", "finalized_root_of", "job_stage_paths_of", "predecessors_of", "relations", "restore", "snapshot",
    "stage_files_of", "writable",
]
