"""Task Graph runs in one form, wherever they ran: the emulator's, a rehearsal's, or Snowflake's history.

A :class:`GraphRun` is a COMPLETE_TASK_GRAPHS row (run id = the graph run group id, scheduled time,
state, first error task, duration, config) with its TASK_HISTORY rows (state, return value, error of
each task) and what they mean for the pipeline: the branch each gate took (the gate task's return
value, read through the WHEN conditions dagv1 wrote on its successors) and the gate's metrics (the
metrics stage's output pointer, inline JSON, as the task runtime stores it).

Emulated and rehearsed runs are kept on disk, so ``snowpipe runs`` lists them offline and
``--snowpipe-replay`` reruns them: ``<runs dir>/<DAG>/<run id>/run.json`` and, beside it, each stage
output still there when the run ended (a stage cache folder, :class:`~pytest_snowpipe.local.cache_store.StageCache`,
one entry per stage under the key ``run``). The newest :data:`HISTORY_KEEP` runs of a graph are kept.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_snowpipe.errors import SnowpipeError

HISTORY_KEEP = 20  # emulated runs kept per graph (Snowflake: COMPLETE_TASK_GRAPHS 60 minutes, TASK_HISTORY 7 days)
RUN_FILE = "run.json"
OUTPUTS = "outputs"
OUTPUT_KEY = "run"  # the stage cache key a kept output is stored under
KEPT = "kept"
CLEANED = "cleaned by the finalizer"
KEEP_HINT = ("set ini snowpipe_keep_outputs = true and run the graph again to keep every output "
             "(the finalizer then leaves the run's tables and stage files)")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class RunHistoryError(SnowpipeError):
    """A run cannot be found or read; the message names it and the fix."""


@dataclass
class TaskRow:
    """One task of a graph run (a TASK_HISTORY row)."""

    name: str
    state: str
    return_value: str | None = None
    error: str | None = None
    duration_s: float | None = None
    condition: str | None = None


@dataclass
class GateRow:
    """What one gate decided in a run: its task's return value (the branch) and the metrics it judged."""

    task: str
    branch: str | None
    metrics: dict[str, Any] = field(default_factory=dict)
    state: str = ""


@dataclass
class GraphRun:
    """One graph run, in the form ``snowpipe runs`` lists and ``--snowpipe-replay`` reads."""

    run_id: str
    dag: str
    source: str  # emulator | rehearsal | snowflake
    state: str
    scheduled: str  # ISO 8601
    duration_s: float | None
    first_error_task: str | None
    first_error_message: str | None
    config: dict[str, Any]
    tasks: list[TaskRow]
    gates: list[GateRow] = field(default_factory=list)
    stages: dict[str, str] = field(default_factory=dict)  # stage name -> its task name
    outputs: dict[str, str] = field(default_factory=dict)  # stage name -> KEPT, CLEANED or why there is none
    database: str | None = None
    schema: str | None = None

    def task(self, name: str) -> TaskRow | None:
        return next((t for t in self.tasks if t.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GraphRun:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["tasks"] = [TaskRow(**t) for t in data.get("tasks", [])]
        values["gates"] = [GateRow(**g) for g in data.get("gates", [])]
        return cls(**values)


def short_name(dag: str, name: str) -> str:
    """``ROOT$MODEL`` (TASK_HISTORY's name of a child task) -> ``MODEL``."""
    prefix = f"{dag.upper()}$"
    return name[len(prefix):] if name.upper().startswith(prefix) else name


def inline_value(pointer: str | None) -> Any:
    """The value an inline pointer (``{"kind": "json"}``) carries; None for any other pointer or text."""
    if not pointer:
        return None
    try:
        parsed = json.loads(pointer)
    except ValueError:
        return None
    if isinstance(parsed, dict) and parsed.get("kind") == "json":
        return parsed.get("value")
    return None


def gates_of(dag: str, tasks: Sequence[TaskRow], metrics_task: Mapping[str, str | None] | None = None) -> list[GateRow]:
    """The gates of a run: every task another task's WHEN condition reads (dagv1's branch form).

    ``metrics_task`` maps a gate task to its metrics stage's task (known from the compiled graph);
    without it (Snowflake's history alone) a task named ``METRICS`` or ``*_METRICS`` is taken, the
    gate marker's default.
    """
    from pytest_snowpipe.doubles.emulator import parse_branch_condition

    branches: list[str] = []
    for row in tasks:
        if not row.condition:
            continue
        try:
            clauses = parse_branch_condition(row.condition)
        except ValueError:
            continue
        for pred, _ in clauses:
            name = short_name(dag, pred)
            if name not in branches:
                branches.append(name)
    by_name = {t.name: t for t in tasks}
    default_metrics = [t.name for t in tasks if t.name == "METRICS" or t.name.endswith("_METRICS")]
    out = []
    for name in branches:
        gate = by_name.get(name)
        source = metrics_task.get(name) if metrics_task is not None else (
            default_metrics[0] if len(default_metrics) == 1 else None)
        metrics = inline_value(by_name[source].return_value) if source in by_name else None
        out.append(GateRow(
            task=name, branch=gate.return_value if gate is not None else None,
            metrics=dict(metrics) if isinstance(metrics, dict) else {},
            state=gate.state if gate is not None else "NOT_EXECUTED",
        ))
    return out


# ------------------------------------------------------------------ the emulator's runs


def from_record(compiled: Any, record: Any, source: str) -> GraphRun:
    """A GraphRun from the emulator's RunRecord and the compiled pipeline it ran."""
    from pytest_snowpipe.taskgraph.compile import KIND_BRANCH, KIND_REMOTE, KIND_STAGE

    dag_tasks = compiled.tasks
    rows = [
        TaskRow(name=r.name, state=r.state, return_value=r.return_value, error=r.error,
                duration_s=round(r.duration_s, 3) if r.attempt else None,
                condition=getattr(dag_tasks.get(r.name), "condition", None))
        for r in record.tasks.values()
    ]
    stages = {spec.name: task for task, spec in compiled.bodies.items()
              if compiled.kinds.get(task) in (KIND_STAGE, KIND_REMOTE)}
    gates = {g.name: g for g in compiled.graph.gates}
    metrics_task: dict[str, str | None] = {}
    for task, kind in compiled.kinds.items():
        if kind == KIND_BRANCH:
            gate = gates.get(compiled.bodies[task].name)
            metrics_stage = getattr(gate, "metrics_stage", None)
            metrics_task[task] = stages.get(metrics_stage) if metrics_stage else None
    return GraphRun(
        run_id=record.run_group_id, dag=record.dag_name, source=source, state=record.state,
        scheduled=record.started.isoformat(), duration_s=round(record.duration_s, 3),
        first_error_task=record.first_error_task_name, first_error_message=record.first_error_message,
        config=dict(record.config), tasks=rows, gates=gates_of(record.dag_name, rows, metrics_task), stages=stages,
        database=compiled.options.database, schema=compiled.options.schema,
    )


def run_folder(runs_dir: Path, dag: str, run_id: str) -> Path:
    return runs_dir / _SAFE.sub("_", dag.upper()) / _SAFE.sub("_", run_id)


def stored_outputs(run: GraphRun) -> Iterator[tuple[str, TaskRow]]:
    """(stage, its task's row) for each stage whose task succeeded with a stored output; the others get
    ``run.outputs[stage]`` saying why there is none."""
    for stage, task in run.stages.items():
        row = run.task(task)
        if row is None or row.state != "SUCCEEDED" or not row.return_value:
            run.outputs[stage] = f"none: its task {task} {row.state if row else 'did not run'}"
            continue
        yield stage, row


def keep_run(runs_dir: Path, compiled: Any, record: Any, session: Any, source: str) -> GraphRun:
    """Write the run and every stage output still readable now (before the engine goes) under ``runs_dir``.

    A table the finalizer dropped is recorded as CLEANED; the newest :data:`HISTORY_KEEP` runs are kept.
    """
    from pytest_snowpipe.local.cache_store import StageCache
    from pytest_snowpipe.taskgraph.artifacts import load

    run = from_record(compiled, record, source)
    folder = run_folder(runs_dir, run.dag, run.run_id)
    folder.mkdir(parents=True, exist_ok=True)
    store = StageCache(folder / OUTPUTS, max_bytes=2**62)
    for stage, row in stored_outputs(run):
        try:
            store.put(stage, OUTPUT_KEY, load(session, row.return_value, unpickle=False))  # a model stays bytes
            run.outputs[stage] = KEPT
        except Exception as exc:  # a table the finalizer dropped, a stage file it removed
            run.outputs[stage] = f"{CLEANED} ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
    tmp = folder / f".{RUN_FILE}.tmp"
    tmp.write_text(json.dumps(run.to_json(), indent=1, default=str), encoding="utf-8")
    tmp.replace(folder / RUN_FILE)  # last: a run folder without run.json is not a run
    prune(runs_dir / folder.parent.name)
    return run


def keeper(runs_dir: Path | None, warn: Callable[[str], Any]) -> Callable[[Any, Any, Any, bool], None] | None:
    """``DeployOptions.keep_run`` for the plugin: keep each emulated run; a failure to keep is a warning only."""
    if runs_dir is None:
        return None

    def keep(compiled: Any, record: Any, session: Any, rehearsal: bool) -> None:
        import time

        t0 = time.perf_counter()
        try:
            run = keep_run(runs_dir, compiled, record, session, "rehearsal" if rehearsal else "emulator")
        except Exception as exc:  # never changes the run's outcome
            warn(f"snowpipe runs: could not keep this run in {runs_dir}: {type(exc).__name__}: {exc}")
            return
        kept = sum(1 for state in run.outputs.values() if state == KEPT)
        warn(f"run {run.run_id} kept in {runs_dir} with {kept} of {len(run.outputs)} stage outputs "
             f"({time.perf_counter() - t0:.2f}s; `snowpipe runs`; replay it with --snowpipe-replay={run.run_id})")

    return keep


def prune(dag_folder: Path, keep: int = HISTORY_KEEP) -> None:
    """Remove all but the newest ``keep`` runs of one graph."""
    runs = sorted(_run_files(dag_folder), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in runs[keep:]:
        shutil.rmtree(stale.parent, ignore_errors=True)


def _run_files(dag_folder: Path) -> list[Path]:
    return [p for p in dag_folder.glob(f"*/{RUN_FILE}") if p.is_file()] if dag_folder.is_dir() else []


def kept_runs(runs_dir: Path, dag: str | None = None) -> list[GraphRun]:
    """Every kept run (of ``dag``, else of every graph), newest first; unreadable files are skipped."""
    folders = [runs_dir / _SAFE.sub("_", dag.upper())] if dag else (
        sorted(p for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else [])
    runs = []
    for folder in folders:
        for path in _run_files(folder):
            try:
                runs.append(GraphRun.from_json(json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, TypeError):
                continue
    return sorted(runs, key=lambda r: r.scheduled, reverse=True)


def pick(runs: Sequence[GraphRun], wanted: str, where: str, keeps: str) -> GraphRun:
    """The run ``wanted`` names (its id, a unique prefix of it, or ``last``) among ``runs``."""
    if wanted == "last" and runs:
        return runs[0]
    exact = [r for r in runs if r.run_id == wanted]
    found = exact or [r for r in runs if r.run_id.startswith(wanted)]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise RunHistoryError(f"run {wanted!r} is ambiguous in {where}: it starts {len(found)} run ids "
                              f"({', '.join(r.run_id for r in found[:5])}); give more of it")
    latest = ", ".join(r.run_id for r in runs[:5]) or "none"
    raise RunHistoryError(
        f"run {wanted!r} is not in {where}: it does not exist or is older than the history keeps ({keeps}). "
        f"Latest runs: {latest}. List them with `snowpipe runs`"
    )


def outputs_store(runs_dir: Path, run: GraphRun) -> Path:
    return run_folder(runs_dir, run.dag, run.run_id) / OUTPUTS


# ------------------------------------------------------------------ the listing


def format_runs(runs: Iterable[GraphRun]) -> list[str]:
    """One row per run: id, scheduled, state, first error task, each gate's branch and metrics, duration."""
    rows = []
    for run in runs:
        gates = "; ".join(
            f"{g.task} -> {g.branch if g.branch is not None else g.state}"
            + (" (" + ", ".join(f"{k}={_fmt(v)}" for k, v in g.metrics.items()) + ")" if g.metrics else "")
            for g in run.gates
        ) or "-"
        rows.append([run.run_id, run.scheduled[:19].replace("T", " "), run.state, run.first_error_task or "-",
                     gates, "-" if run.duration_s is None else f"{run.duration_s:.1f}s", run.source])
    if not rows:
        return []
    header = ["run id", "scheduled (UTC)", "state", "first error", "gates: branch (metrics)", "duration", "where"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]


def format_run(run: GraphRun) -> list[str]:
    """One run in detail: its tasks, config and kept outputs."""
    lines = [*format_runs([run]), "", "tasks:"]
    for t in run.tasks:
        took = "-" if t.duration_s is None else f"{t.duration_s:.3f}s"
        detail = t.error or (t.return_value or "")
        lines.append(f"  {t.name:<28} {t.state:<13} {took:>9}  {detail[:160]}")
    if run.config:
        lines.append("config: " + ", ".join(f"{k}={_fmt(v)}" for k, v in run.config.items()))
    for stage, state in run.outputs.items():
        lines.append(f"output of {stage}: {state}")
    return lines


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def retry_command(run: GraphRun, latest_failed: bool) -> str:
    """The statement that retries ``run`` in Snowflake from its failed tasks (runs up to 14 days old)."""
    root = ".".join(p for p in (run.database, run.schema, run.dag.upper()) if p)
    if run.source != "snowflake":
        return (f"run {run.run_id} ran on the emulator: nothing to retry in Snowflake; a deployed graph's failed run "
                f"is retried with: EXECUTE TASK {root} RETRY LAST")
    if run.state not in ("FAILED", "CANCELLED"):
        return f"run {run.run_id} {run.state}: Snowflake retries only a FAILED or CANCELLED run"
    group = run.run_id.replace("'", "''")
    text = f"retry it in Snowflake (from its failed tasks, within 14 days): EXECUTE TASK {root} RETRY GRAPH RUN GROUP '{group}'"
    return text + (f"  (it is the latest run: EXECUTE TASK {root} RETRY LAST does the same)" if latest_failed else "")


__all__ = [
    "CLEANED",
    "HISTORY_KEEP",
    "KEEP_HINT",
    "KEPT",
    "GateRow",
    "GraphRun",
    "RunHistoryError",
    "TaskRow",
    "format_run",
    "format_runs",
    "from_record",
    "gates_of",
    "keep_run",
    "keeper",
    "kept_runs",
    "pick",
    "retry_command",
    "stored_outputs",
]
