"""``report.md``: the JSON report as a page a person reads in a pull request.

Verdict first, then the gates with their metrics against the champion, each comparison,
the stage timings, the pipeline graph as Mermaid (GitHub renders it), the config, the code
keys, and the sections other plugins added. Rendered only from the (already redacted)
report dict, so it cannot show anything the JSON does not hold.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

ICONS = {"PASS": "✅", "FAIL": "❌", "ERROR": "💥", "INTERRUPTED": "⏹️"}


def render_markdown(report: Mapping[str, Any]) -> str:
    """The whole Markdown page."""
    out: list[str] = []
    verdict = report["verdict"]
    out.append(f"# {ICONS.get(verdict, '')} {verdict}: pytest-snowpipe pipeline report".replace("#  ", "# "))
    out.append("")
    out.append(f"**{verdict}**: {_inline(report['verdict_reason'])}")
    out.append("")
    tests = report.get("tests", {})
    counted = ", ".join(f"{tests[k]} {k}" for k in ("passed", "failed", "error", "skipped") if tests.get(k))
    out.append(
        f"Exit status **{report['exit_status']}** ({_inline(report['exit_meaning'])}). "
        f"Tests: {counted or 'none ran'}. Duration {report['duration_s']:.1f} s."
    )
    if report.get("interrupted_by"):
        out.append("")
        out.append(f"Interrupted by: `{_code(report['interrupted_by'])}`")
    out.extend(_gates(report.get("gates", [])))
    out.extend(_metrics(report.get("gates", [])))
    out.extend(_comparisons(report.get("gates", [])))
    out.extend(_history_charts(report.get("gates", [])))
    out.extend(_data(report.get("gates", [])))
    out.extend(_failures(report.get("tests", {}).get("failures", [])))
    out.extend(_stages(report.get("stages", [])))
    out.extend(_task_graph_runs(report.get("task_graph_runs", [])))
    mermaid = (report.get("graph") or {}).get("mermaid")
    if mermaid:
        out += ["", "## Pipeline graph", "", "```mermaid", mermaid, "```"]
    out.extend(_config(report.get("config", {})))
    out.extend(_code_keys(report.get("code", {})))
    for section in report.get("sections", []):
        out += ["", f"## {_inline(section['title'])}", "", section["markdown"].rstrip()]
    source = report.get("source") or {}
    provenance = ", ".join(f"{k} `{_code(v)}`" for k, v in source.items())
    out += [
        "",
        "---",
        f"<sub>{report['schema']} v{report['version']} · pytest-snowpipe {report['plugin_version']} · "
        f"{report['started_at']} → {report['finished_at']}{' · ' + provenance if provenance else ''}</sub>",
        "",
    ]
    return "\n".join(out)


def _gates(gates: Sequence[Mapping[str, Any]]) -> list[str]:
    if not gates:
        return ["", "## Gates", "", "No gate was collected."]
    rows = []
    for g in gates:
        action = g["action"]
        if action is not None:
            done = f"{action['name']}: {action['detail']}"
        elif g["action_error"]:
            done = f"action FAILED: {g['action_error']}"
        else:
            done = "no action"
        champion = g["champion"]
        champ = f"{champion['model_name']} {champion['version']} ({champion['promoted_at']})" if champion else g["champion_note"]
        why = g["message"] or g["failure"]
        rows.append([f"`{g['name']}`", f"{ICONS.get(g['verdict'], '')} {g['verdict']}", done, champ, _first_line(why)])
    return ["", "## Gates", "", *_table(["gate", "verdict", "action", "champion", "message"], rows)]


def _metrics(gates: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = []
    for g in gates:
        champion = g["champion"] or {}
        cmetrics = champion.get("metrics", {})
        for name, value in g["metrics"].items():
            delta = g["deltas"].get(name)
            rows.append(
                [
                    f"`{g['name']}`",
                    name,
                    _num(value),
                    _num(cmetrics[name]) if name in cmetrics else "–",
                    _num(delta["delta"], signed=True) if delta else "–",
                ]
            )
    if not rows:
        return []
    return ["", "## Metrics against the champion", "", *_table(["gate", "metric", "value", "champion", "delta"], rows)]


def _comparisons(gates: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = []
    for g in gates:
        for c in g["comparisons"]:
            result = "✅ pass" if c["passed"] else "❌ FAIL"
            rows.append(
                [
                    f"`{g['name']}`",
                    c["metric"],
                    c["kind"],
                    f"`{c['check']}`",
                    _num(c["value"]),
                    _num(c["bound"]) if c["bound"] is not None else "–",
                    _num(c["champion"]) if c["champion"] is not None else (c["note"] or "–"),
                    _num(c["delta"], signed=True) if c["delta"] is not None else "–",
                    result,
                ]
            )
    if not rows:
        return []
    header = ["gate", "metric", "kind", "check", "value", "bound", "champion", "delta", "result"]
    bootstraps = [
        f"- `{g['name']}` {c['note']}" for g in gates for c in g["comparisons"] if c.get("kind") == "bootstrap"
    ]
    return ["", "## Comparisons", "", *_table(header, rows), *(["", *bootstraps] if bootstraps else [])]


def _data(gates: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = [
        [f"`{g['name']}`", f"`{stage}`", f"`{fp}`"]
        for g in gates
        for stage, fp in (g.get("data") or {}).items()
    ]
    if not rows:
        return []
    return ["", "## Data the promoted model was trained on", "", *_table(["gate", "source stage", "content fingerprint"], rows)]


def _failures(failures: Sequence[Mapping[str, Any]]) -> list[str]:
    if not failures:
        return []
    rows = [[f"`{f['nodeid']}`", _first_line(f["error"])] for f in failures]
    return ["", "## Failed tests", "", *_table(["test", "error"], rows)]


def _history_charts(gates: Sequence[Mapping[str, Any]]) -> list[str]:
    from pytest_snowpipe.reports.history import markdown_section  # the gated metrics over the last versions

    return markdown_section(gates)


def _stages(stages: Sequence[Mapping[str, Any]]) -> list[str]:
    if not stages:
        return []
    rows = []
    for s in stages:
        output = s["error"] if s["status"] == "error" else " ".join(p for p in (s["kind"], s["shape"]) if p)
        rows.append(
            [
                f"`{s['name']}`" + (" (remote)" if s["remote"] else ""),
                s["status"],
                s["source"] or "–",
                (f"{s['wall_s']:.2f} s" if s["wall_s"] is not None else "–")
                + (f" (computed in {s['compute_s']:.2f} s)" if s.get("compute_s") is not None else ""),
                output,
                f"`{s['fingerprint']}`" if s["fingerprint"] else (s["fingerprint_note"] or "–"),
            ]
        )
    return ["", "## Stages", "", *_table(["stage", "status", "source", "time", "output", "fingerprint"], rows)]


def _task_graph_runs(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The emulator's runs (``--snowpipe-deploy``), every return value whole."""
    out: list[str] = []
    for run in runs:
        out += ["", f"## Task Graph run {_inline(run['dag'])}: {run['state']}", ""]
        if run.get("failed_gates"):
            out += [f"Quality gate(s) that took their on_fail branch: **{_inline(', '.join(run['failed_gates']))}**", ""]
        out += ["| task | state | duration | return value | error |", "|---|---|---:|---|---|"]
        for task in run["tasks"]:
            value = task.get("return_value")
            shown = "" if value is None else "`" + _code(value).replace("|", "\\|") + "`"
            problem = task.get("error") or (f"({task['reason']})" if task.get("reason") else "")
            out.append(
                f"| {_inline(task['name'])} | {task['state']} | {task['duration_s']:.3f} s | {shown} | {_inline(problem)} |"
            )
    return out


def _config(config: Mapping[str, Any]) -> list[str]:
    if not config:
        return []
    rows = [[f"`{k}`", f"`{_code(str(v))}`"] for k, v in config.items()]
    return ["", "## Config", "", *_table(["key", "value"], rows)]


def _code_keys(code: Mapping[str, Any]) -> list[str]:
    rows = [[f"stage `{k}`", f"`{v}`"] for k, v in (code.get("stages") or {}).items()]
    rows += [[f"gate `{k}`", f"`{v}`"] for k, v in (code.get("gates") or {}).items()]
    if not rows:
        return []
    lines = ["", "## Code", "", f"Graph key `{code.get('graph')}` (equal keys: nothing the graph knows of changed).", ""]
    return lines + _table(["node", "content key"], rows)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def _inline(text: Any) -> str:
    return str(text).replace("\n", " ")


def _code(text: Any) -> str:
    return str(text).replace("`", "'").replace("\n", " ")


def _first_line(text: str) -> str:
    lines = [line for line in str(text or "").strip().splitlines() if line.strip()]
    first = lines[0] if lines else ""
    return first if len(first) <= 300 else first[:297] + "..."


def _num(value: Any, signed: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:+d}" if signed else str(value)
    return f"{value:+.4f}" if signed else f"{value:.4f}"
