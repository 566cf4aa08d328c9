"""The dry-run plan: what would ship, read from the compiled DAG itself (not from the graph).

Everything is read from attributes (``DAGTask.condition``, ``_to_low_level_task()``), since
``repr(task)`` and ``to_dict()`` of a Python task raise before the task exists in Snowflake.
"""
from __future__ import annotations

from typing import Any

from pytest_snowpipe.taskgraph.monitors_deploy import plan_lines as monitor_plan_lines


def _preds(task: Any, dag_name: str) -> list[str]:
    names = sorted(p.name for p in task.predecessors)
    if not names and not task._is_finalizer:
        return [f"{dag_name} (root)"]
    return names


def _package_lines(compiled: Any) -> list[str]:
    """One line per package: ``name==version  why`` (from compile's resolution, else the DAG's list)."""
    resolved = getattr(compiled, "packages", ()) or ()
    if not resolved:
        return [f"    {p}" for p in (compiled.dag.packages or [])]
    out = []
    for p in resolved:
        out.append(f"    {p.spec:<36} {p.reason}" + (f" ({p.note})" if p.note else ""))
    return out


def _shown_config(config: Any) -> dict[str, Any]:
    """The graph's config as the plan prints it: secret-named keys ``<redacted>``, secrets cut out."""
    from pytest_snowpipe.redact import Redactor

    config = dict(config or {})
    return Redactor.for_run(config, None).config(config)


def _fire_lines(schedule: Any) -> list[str]:
    """A cron schedule's next three fire times in its own time zone (what the account will do)."""
    from pytest_snowpipe.taskgraph.schedule import next_fire_times

    expr, tz = getattr(schedule, "expr", None), getattr(schedule, "timezone", None)
    if expr is None or tz is None:
        return []
    times = next_fire_times(expr, tz, 3)
    return [f"  next runs:  {', '.join(t.strftime('%Y-%m-%d %H:%M %Z') for t in times)} ({tz})"]


def format_plan(compiled: Any) -> str:
    """Every task with its kind, predecessors and branch condition; then the graph as Mermaid."""
    from pytest_snowpipe.taskgraph.schedule import describe_schedule

    dag = compiled.dag
    opts = compiled.options
    where = ".".join(x for x in (opts.database, opts.schema) if x) or "(the connection's database.schema)"
    lines = [
        f"Task Graph {dag.name} -> {where}",
        f"  schedule:   {describe_schedule(dag.schedule)}",
        *_fire_lines(dag.schedule),
        f"  warehouse:  {dag.warehouse or '(serverless / connection default)'}",
        f"  stage:      {dag.stage_location}",
        f"  packages:   {len(dag.packages or [])} (pinned to the installed versions Snowflake's channel has; checked "
        f"against {getattr(compiled, 'channel', 'the bundled snapshot')})",
        *_package_lines(compiled),
        f"  notify:     {opts.notification_integration or '(no notification integration: ini snowpipe_notification_integration)'}",
        f"  config:     {', '.join(f'{k}={v!r}' for k, v in _shown_config(dag.config).items()) or '(none)'}",
        f"  tasks:      {len(dag.tasks) + 1} (root counted)",
        "",
        f"  {'task':<32} {'kind':<14} predecessors / condition",
    ]
    finalizer = None
    for task in dag.tasks:
        job = getattr(task.definition, "describe", None)  # an ML Job task becomes SQL only at deploy
        low = None if job is not None else task._to_low_level_task()
        kind = compiled.kinds.get(task.name, "?")
        if task._is_finalizer:
            finalizer = (task, low)
            continue
        lines.append(f"  {task.name:<32} {kind:<14} after {', '.join(_preds(task, dag.name))}")
        condition = task.condition if low is None else low.condition
        if condition:
            lines.append(f"  {'':<32} {'':<14} when {condition}")
        if task.warehouse and task.warehouse != dag.warehouse:
            lines.append(f"  {'':<32} {'':<14} on warehouse {task.warehouse}")
        if job is not None:
            lines.append(f"  {'':<32} {'':<14} {job()}: CALL SYSTEM$EXECUTE_ML_JOB (ASYNC false), no procedure waits")
        output_location = getattr(compiled.bodies.get(task.name), "output_location", None)
        if output_location:
            lines.append(f"  {'':<32} {'':<14} outputs to {output_location}")
    if finalizer is not None:
        task, low = finalizer
        spec = compiled.bodies.get(task.name)
        teardowns = ", ".join(t.stage for t in getattr(spec, "teardowns", ())) or "none"
        lines.append(
            f"  {task.name:<32} {'finalizer':<14} finalize = {getattr(low, 'finalize', dag.name)} (after all tasks, on success "
            f"and failure): teardown of {teardowns}; drops the run's artifact tables"
        )
    lines += monitor_plan_lines(compiled)  # sp.expect(monitor=): the watched tables and their DMFs
    lines += ["", mermaid(compiled)]
    return "\n".join(lines)


def mermaid(compiled: Any) -> str:
    """The compiled DAG as a Mermaid flowchart (root, branch edges labelled with their side)."""
    dag = compiled.dag
    out = ["flowchart LR", f'    {dag.name}(["{dag.name} (root)"])']
    shape = {"branch": ("{{", "}}"), "action": ("([", "])"), "finalizer": ("[/", "/]")}
    for task in dag.tasks:
        kind = compiled.kinds.get(task.name, "stage")
        left, right = shape.get(kind, ("[", "]"))
        out.append(f'    {task.name}{left}"{task.name}<br/>{kind}"{right}')
        if task._is_finalizer:
            out.append(f"    {dag.name} -. finally .-> {task.name}")
            continue
        preds = sorted(p.name for p in task.predecessors) or [dag.name]
        for p in preds:
            spec = compiled.bodies.get(p)
            if getattr(spec, "on_pass", None) == task.name:
                out.append(f"    {p} -- pass --> {task.name}")
            elif getattr(spec, "on_fail", None) == task.name:
                out.append(f"    {p} -- fail --> {task.name}")
            else:
                out.append(f"    {p} --> {task.name}")
    return "\n".join(out)




def format_plan_notes(graph: Any, items: Any) -> str:
    """What the plan's tasks leave out: the tests that do not ship (and why), and where contracts run.

    Only gates become tasks; every other collected test runs in pytest only. A ``sp.expect``
    contract runs inside its stage's task right after the stage returns (a violation fails that
    task, and its successors are NOT_EXECUTED); a contract a test checks itself runs where that
    test runs.
    """
    from pytest_snowpipe.pipeline.checks import expectations_of
    from pytest_snowpipe.taskgraph.compile import task_name

    gates = {g.nodeid for g in graph.gates}
    lines = []
    others = [i for i in items if i.nodeid not in gates]
    if others:
        lines.append(f"not shipped: {len(others)} test(s) run in pytest only (only gates become tasks):")
        for item in others:
            lines.append(f"  {item.nodeid:<60} {_why_not_shipped(item)}")
    checks = [(stage, exp) for stage in graph.stages for exp in expectations_of(stage.func)]
    if checks:
        lines.append("contracts (sp.expect) run inside their stage's task, after the stage returns; a violation "
                     "fails the task and its successors do not run:")
        for stage, exp in checks:
            columns = len(getattr(exp.contract, "columns", {}) or {})
            lines.append(f"  {stage.name} {exp.label:<10} a contract on {columns} column(s), in task {task_name(stage.name)}")
    return "\n".join(lines)


def _why_not_shipped(item: Any) -> str:
    func = getattr(item, "obj", None)
    if getattr(func, "is_hypothesis_test", False) or hasattr(func, "hypothesis"):
        return "a property test (hypothesis): it checks code, not a run's data"
    return "an ordinary test (no snowpipe_gate mark): a check of the suite, not a step of the graph"


__all__ = ["format_plan", "format_plan_notes", "mermaid"]
