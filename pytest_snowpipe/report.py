"""Human-readable views of a run: the terminal summary (and, later, JSON/Markdown reports)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pytest_snowpipe.gate import action_label
from pytest_snowpipe.localrun import PipelineRun


def summary_lines(run: PipelineRun) -> list[str]:
    """The summary printed at the end of ``pytest``: stages, then gates with their actions."""
    width = max([len(s.name) + (9 if s.remote else 0) for s in run.graph.stages] + [5])
    lines = [f"{'stage':<{width}}  {'status':<7}  {'source':<8}  {'time':>8}  output"]
    for stage in run.graph.stages:
        rec = run.stages[stage.name]
        label = stage.name + (" (remote)" if stage.remote else "")
        unloaded = rec.source == "cached" and rec.wall_s == 0.0  # a hit nothing needed to load
        time_s = "       -" if rec.status == "not run" or unloaded else f"{rec.wall_s:7.2f}s"
        source = rec.source if rec.status != "not run" else "-"
        out = rec.error if rec.status == "error" else " ".join(p for p in (rec.kind, rec.shape) if p)
        lines.append(f"{label:<{width}}  {rec.status:<7}  {source:<8}  {time_s}  {out}")
    if run.cache_note:
        lines.append(run.cache_note)
    for checked, target, verdict in run.checks:
        lines.append(f"check {checked} {target}: {verdict}")
    for gate_rec in run.gates.values():
        spec = gate_rec.gate.spec
        line = (
            f"gate {gate_rec.gate.name}: {gate_rec.verdict} "
            f"(on_pass={action_label(spec.on_pass)}, on_fail={action_label(spec.on_fail)})"
        )
        if gate_rec.outcome is not None:
            line += f" -> {gate_rec.outcome.action}: {gate_rec.outcome.detail}"
        elif gate_rec.action_error:
            line += f" -> action FAILED: {gate_rec.action_error}"
        else:
            line += " -> no action"
            if gate_rec.verdict == "ERROR" and gate_rec.message:
                line += f" ({gate_rec.message})"
        lines.append(line)
    return lines


def write_summary(run: PipelineRun, write_sep: Callable[..., None], write_line: Callable[[str], None]) -> None:
    """Write the summary section with the terminal reporter's own functions."""
    write_sep("=", "snowpipe pipeline")
    for line in summary_lines(run):
        write_line(line)


def worker_summary_lines(part: Mapping[str, Any]) -> list[str]:
    """The summary on a pytest-xdist controller, from the workers' merged parts (``ci_report.run_part``)."""
    stages = part.get("stages", [])
    width = max([len(st["name"]) + (9 if st.get("remote") else 0) for st in stages] + [5])
    lines = [f"{'stage':<{width}}  {'status':<7}  {'source':<8}  {'time':>8}  output"]
    for st in stages:
        label = st["name"] + (" (remote)" if st.get("remote") else "")
        ran = st["status"] != "not run"
        time_s = f"{st['wall_s']:7.2f}s" if ran and st.get("wall_s") else "       -"
        out = st["error"] if st["status"] == "error" else " ".join(p for p in (st.get("kind"), st.get("shape")) if p)
        computed = st.get("computed_by", [])
        where = ", ".join(w if w in computed else f"{w} loaded" for w in st.get("workers", []))
        where = f"  [{where}]" if where else ""
        lines.append(f"{label:<{width}}  {st['status']:<7}  {(st.get('source') or '-'):<8}  {time_s}  {out}{where}")
    for gate in part.get("gates", []):
        action = gate.get("action")
        line = f"gate {gate['name']}: {gate['verdict']} (on_pass={gate['on_pass']}, on_fail={gate['on_fail']})"
        if action:
            line += f" -> {action['name']}: {action['detail']}"
        elif gate.get("action_error"):
            line += f" -> action FAILED: {gate['action_error']}"
        else:
            line += " -> no action" + (f" ({gate['message']})" if gate["verdict"] == "ERROR" and gate.get("message") else "")
        lines.append(line + (f"  [{gate['worker']}]" if gate.get("worker") else ""))
    return lines


def write_worker_summary(part: Mapping[str, Any], write_sep: Callable[..., None], write_line: Callable[[str], None]) -> None:
    """Write the xdist controller's summary section (which worker ran each stage and gate)."""
    write_sep("=", "snowpipe pipeline (pytest-xdist workers)")
    for line in worker_summary_lines(part):
        write_line(line)
