"""Human-readable views of a run: the terminal summary, in one process or on a pytest-xdist controller."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pytest_snowpipe.local.run import PipelineRun
from pytest_snowpipe.pipeline.gate import action_label

NO_TIME = "       -"


def _stage_table(rows: list[tuple[str, str, str, str, str]]) -> list[str]:
    """Header and one line per stage: (label, status, source, time, output), aligned on the labels."""
    width = max([len(label) for label, *_ in rows] + [5])
    lines = [f"{'stage':<{width}}  {'status':<7}  {'source':<8}  {'time':>8}  output"]
    lines += [f"{label:<{width}}  {status:<7}  {source:<8}  {time_s}  {out}" for label, status, source, time_s, out in rows]
    return lines


def _gate_line(
    name: str, verdict: str, on_pass: str, on_fail: str, action: tuple[str, str] | None, action_error: str, message: str
) -> str:
    """``gate NAME: VERDICT (on_pass=..., on_fail=...) -> what happened`` (why, when it errored)."""
    line = f"gate {name}: {verdict} (on_pass={on_pass}, on_fail={on_fail})"
    if action is not None:
        return line + f" -> {action[0]}: {action[1]}"
    if action_error:
        return line + f" -> action FAILED: {action_error}"
    return line + " -> no action" + (f" ({message})" if verdict == "ERROR" and message else "")


def _output(status: str, error: str, kind: str | None, shape: str | None) -> str:
    return error if status == "error" else " ".join(p for p in (kind, shape) if p)


def summary_lines(run: PipelineRun, notes: Mapping[str, list[str]] | None = None) -> list[str]:
    """The summary printed at the end of ``pytest``: stages, then gates with their actions, each
    followed by its ``notes`` (by nodeid: the bootstrap comparisons' verdicts and intervals)."""
    rows = []
    for stage in run.graph.stages:
        rec = run.stages[stage.name]
        unloaded = rec.source == "cached" and rec.wall_s == 0.0  # a hit nothing needed to load
        time_s = NO_TIME if rec.status == "not run" or unloaded else f"{rec.wall_s:7.2f}s"
        source = rec.source if rec.status != "not run" else "-"
        label = stage.name + (" (remote)" if stage.remote else "")
        out = _output(rec.status, rec.error, rec.kind, rec.shape)
        if rec.source == "cached" and rec.compute_s is not None:  # what computing it cost, when it was stored
            out = f"(computed in {rec.compute_s:.2f}s) {out}"
        rows.append((label, rec.status, source, time_s, out))
    lines = _stage_table(rows)
    if run.cache_note:
        lines.append(run.cache_note)
    for checked, target, verdict in run.checks:
        lines.append(f"check {checked} {target}: {verdict}")
    for nodeid, gate_rec in run.gates.items():
        spec, outcome = gate_rec.gate.spec, gate_rec.outcome
        lines.append(
            _gate_line(
                gate_rec.gate.name, gate_rec.verdict, action_label(spec.on_pass), action_label(spec.on_fail),
                None if outcome is None else (outcome.action, outcome.detail), gate_rec.action_error, gate_rec.message,
            )
        )
        lines.extend(f"  {note}" for note in (notes or {}).get(nodeid, []))
    return lines


def write_summary(
    run: PipelineRun, write_sep: Callable[..., None], write_line: Callable[[str], None],
    notes: Mapping[str, list[str]] | None = None,
) -> None:
    """Write the summary section with the terminal reporter's own functions."""
    write_sep("=", "snowpipe pipeline")
    for line in summary_lines(run, notes):
        write_line(line)


def worker_summary_lines(part: Mapping[str, Any]) -> list[str]:
    """The summary on a pytest-xdist controller, from the workers' merged parts (``ci_report.run_part``)."""
    rows = []
    for st in part.get("stages", []):
        ran = st["status"] != "not run"
        time_s = f"{st['wall_s']:7.2f}s" if ran and st.get("wall_s") else NO_TIME
        computed = st.get("computed_by", [])
        where = ", ".join(w if w in computed else f"{w} loaded" for w in st.get("workers", []))
        out = _output(st["status"], st["error"], st.get("kind"), st.get("shape")) + (f"  [{where}]" if where else "")
        label = st["name"] + (" (remote)" if st.get("remote") else "")
        rows.append((label, st["status"], st.get("source") or "-", time_s, out))
    lines = _stage_table(rows)
    for gate in part.get("gates", []):
        action = gate.get("action")
        line = _gate_line(
            gate["name"], gate["verdict"], gate["on_pass"], gate["on_fail"],
            (action["name"], action["detail"]) if action else None, gate.get("action_error") or "", gate.get("message") or "",
        )
        lines.append(line + (f"  [{gate['worker']}]" if gate.get("worker") else ""))
    return lines


def write_worker_summary(part: Mapping[str, Any], write_sep: Callable[..., None], write_line: Callable[[str], None]) -> None:
    """Write the xdist controller's summary section (which worker ran each stage and gate)."""
    write_sep("=", "snowpipe pipeline (pytest-xdist workers)")
    for line in worker_summary_lines(part):
        write_line(line)
