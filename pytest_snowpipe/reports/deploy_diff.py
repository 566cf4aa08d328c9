"""``deploy-diff.md``: what a deploy changes, as a pull-request comment a reviewer reads before approving.

One table row per task that a deploy adds, removes or changes (what changed in it: code digest,
packages, predecessors, branch condition, schedule, config, warehouse, state), the unchanged tasks
folded away. Rendered from the :class:`~pytest_snowpipe.taskgraph.diff.GraphDiff` alone; the config
values in it are already redacted by name, and the caller scrubs the page as it does every report.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_snowpipe.taskgraph.diff import GraphDiff, Status

FILE_NAME = "deploy-diff.md"
ICONS = {Status.ADDED: "🟢", Status.REMOVED: "🔴", Status.CHANGED: "🟡", Status.UNCHANGED: "⚪"}


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def _code(text: Any) -> str:
    return str(text).replace("`", "'").replace("\n", " ")


def render_diff_markdown(diff: GraphDiff) -> str:
    """The whole page."""
    out = [f"## Deploy diff: Task Graph `{_code(diff.dag)}` in `{_code(diff.where)}`", ""]
    if not diff.deployed:
        out.append(f"Not deployed yet: a deploy **adds all {len(diff.tasks)} tasks**.")
    elif diff.unchanged:
        out.append(f"**Up to date**: the {len(diff.tasks)} deployed tasks are what would ship; a deploy changes nothing.")
    else:
        counts = ", ".join(f"**{diff.count(s)} {s}**" if s != Status.UNCHANGED and diff.count(s) else
                           f"{diff.count(s)} {s}" for s in Status)
        out.append(f"A deploy changes {len(diff.changed)} of {len(diff.tasks)} tasks: {counts}.")
    if diff.changed:
        out += ["", "| | task | kind | what changes |", "|---|---|---|---|"]
        for task in diff.changed:
            what = "<br>".join(f"**{_cell(c.facet)}**: `{_cell(_code(c.text))}`" for c in task.changes)
            if not what:
                what = "new task" if task.status == Status.ADDED else "dropped with its runs' history"
            out.append(f"| {ICONS[task.status]} {task.status} | `{_cell(task.name)}` | {_cell(task.kind)} | {what} |")
    same = [t for t in diff.tasks if t.status == Status.UNCHANGED]
    if same and diff.changed:
        names = ", ".join(f"`{_cell(t.name)}`" for t in same)
        out += ["", f"<details><summary>{len(same)} unchanged task(s)</summary>", "", names, "", "</details>"]
    if diff.deployed and diff.suspended:
        out += ["", "The deployed graph is **suspended**; a deploy keeps it so."]
    out += ["", "<sub>pytest-snowpipe deploy diff: code is compared by the digest each task's COMMENT carries</sub>", ""]
    return "\n".join(out)


def write_diff_markdown(diff: GraphDiff, folder: Path, scrub: Any = None) -> Path:
    """Write ``deploy-diff.md`` into ``folder`` (``scrub``: text -> text, the run's redaction); return its path."""
    text = render_diff_markdown(diff)
    path = Path(folder) / FILE_NAME
    path.write_text(scrub(text) if scrub is not None else text, encoding="utf-8")
    return path


__all__ = ["FILE_NAME", "render_diff_markdown", "write_diff_markdown"]
