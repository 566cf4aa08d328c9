"""A rehearsal's report agrees with itself: stages and gates as they ran, as tasks, on the emulator.

Under ``--snowpipe-deploy`` the fixtures are not called in pytest, so the local run's records say
"not run" for every stage and "NOT RUN" for every gate, beside a verdict of FAIL taken from the
compiled run. The report's stages and gates take their task's outcome instead: a stage its state
and time, a gate the verdict and branch it took, and the action task that branch ran.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_snowpipe.pipeline.states import TaskState, Verdict
from pytest_snowpipe.taskgraph.compile import task_name

_STATUS = {TaskState.SUCCEEDED: "ok", TaskState.FAILED: "error"}  # SKIPPED / NOT_EXECUTED: the stage did not run


def apply_task_graph_run(part: dict[str, Any], run: Mapping[str, Any] | None) -> dict[str, Any]:
    """``part`` (stages and gates of the report) with each entry taken from its task in ``run``."""
    if not run:
        return part
    tasks = {str(t["name"]): t for t in run.get("tasks", [])}
    for stage in part.get("stages", []):
        task = tasks.get(task_name(stage["name"]))
        if task is None:
            continue
        stage.update(
            status=_STATUS.get(task["state"], "not run"),
            source=f"task {task['state']}",
            wall_s=task.get("duration_s") if task["state"] in _STATUS else None,
            error=task.get("error") or task.get("reason") or "",
        )
    failed = set(run.get("failed_gates", []))
    for gate in part.get("gates", []):
        task = tasks.get(task_name(gate["name"]))
        if task is None:
            continue
        branch = task.get("return_value")
        if task["state"] != TaskState.SUCCEEDED:
            gate["verdict"] = str(Verdict.ERROR if task["state"] == TaskState.FAILED else Verdict.NOT_RUN)
            gate["message"] = f"its task {task['name']} {task['state']}: {task.get('error') or task.get('reason') or ''}".strip()
            continue
        gate["verdict"] = "FAIL" if gate["name"] in failed else "PASS"
        gate["branch"] = branch
        gate["message"] = f"branch task {task['name']} returned {branch} in the compiled Task Graph run"
        action = tasks.get(str(branch)) if branch else None
        if action is not None:
            side = "on_fail" if gate["name"] in failed else "on_pass"
            detail = action.get("return_value") or action.get("error") or action.get("reason") or ""
            gate["action"] = {"name": gate.get(side) or str(branch), "detail": f"task {action['name']} {action['state']}: {detail}",
                              "version": None}
    return part
