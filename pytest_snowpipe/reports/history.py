"""A model's metrics over its registry versions: for report.md's chart and the ``snowpipe`` command.

Mermaid's ``xychart-beta`` renders on GitHub, so the chart is text in report.md: the gated
metrics of the last versions and of this run's candidate, one chart per metric (xychart has no
legend, so one series each keeps it readable).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_snowpipe.errors import RegistryError
from pytest_snowpipe.registry.local import LocalRegistry, jsonable

LAST = 10  # versions shown before the candidate


def metric_history(root: str | Path, model_name: str | None, exclude: str | None = None, last: int = LAST) -> list[dict[str, Any]]:
    """The last ``last`` versions (oldest first) with their metrics; ``exclude``: the candidate's own version."""
    if not model_name:
        return []
    registry = LocalRegistry(root)
    try:
        names = [v for v in registry.versions(model_name) if v != exclude][-last:]
        found = [registry.get(model_name, v) for v in names]
    except (RegistryError, OSError, ValueError):
        return []
    return [{"version": v.version, "created_at": v.created_at, "metrics": jsonable(dict(v.metrics))} for v in found]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def charted_metrics(gate: Mapping[str, Any]) -> list[str]:
    """The metrics the gate compared (else every metric between 0 and 1: scores, not counts)."""
    compared = list(dict.fromkeys(c["metric"] for c in gate.get("comparisons", []) if c.get("metric")))
    if compared:
        return compared
    values = gate.get("metrics") or {}
    return [k for k, v in values.items() if (n := _number(v)) is not None and 0.0 <= n <= 1.0]


def xychart(title: str, points: Sequence[tuple[str, float]]) -> str:
    """A Mermaid ``xychart-beta`` line chart of ``(label, value)`` points."""
    values = [v for _, v in points]
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or abs(high) * 0.05 or 0.05
    labels = ", ".join('"' + label.replace('"', "'") + '"' for label, _ in points)
    return "\n".join([
        "xychart-beta",
        f'    title "{title}"',
        f"    x-axis [{labels}]",
        f'    y-axis "value" {low - pad:.4g} --> {high + pad:.4g}',
        f"    line [{', '.join(f'{v:.6g}' for v in values)}]",
    ])


def gate_charts(gate: Mapping[str, Any]) -> list[str]:
    """One chart per charted metric: the history's versions, then ``candidate``."""
    charts = []
    for metric in charted_metrics(gate):
        points = [(h["version"], n) for h in gate.get("history", []) if (n := _number(h["metrics"].get(metric))) is not None]
        candidate = _number((gate.get("metrics") or {}).get(metric))
        if candidate is not None:
            points.append(("candidate", candidate))
        if len(points) >= 2:
            charts.append(xychart(f"{gate.get('model_name') or gate['name']}: {metric}", points))
    return charts


def markdown_section(gates: Sequence[Mapping[str, Any]]) -> list[str]:
    """report.md's ``Metrics over versions`` section (nothing without two points to draw)."""
    out: list[str] = []
    for gate in gates:
        for chart in gate_charts(gate):
            out += ["", "```mermaid", chart, "```"]
    return ["", "## Metrics over versions", *out] if out else []
