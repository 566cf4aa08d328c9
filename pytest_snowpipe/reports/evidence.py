"""What the CI report needs beyond the pipeline run: champions, comparisons, failures, interruption.

The plugin's hooks feed a :class:`CiState` (kept in the config's stash) while the session
runs; :mod:`pytest_snowpipe.reports.ci` reads it at the end. The champion of a gate is read
here, before the gate's promote can replace it, whether or not the gate asks for it, so the
report can always show the metrics against production.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_snowpipe.registry.champion import Champion, ChampionError, Comparison, read_local_champion

if TYPE_CHECKING:
    from pytest_snowpipe.local.run import PipelineRun

NOT_A_GATE = (
    "snowpipe_champion is requested by {nodeid}, which is not a pipeline gate: the champion is "
    "the production version of a gate's model. Mark the test @pytest.mark.snowpipe_gate(..., "
    "model_name=...) or read the registry with the snowpipe_registry fixture."
)


@dataclass
class GateEvidence:
    """What one gate compared, and against which champion."""

    champion: Champion | None = None
    champion_read: bool = False
    champion_note: str = ""  # why there is no champion: "no champion yet", or the error
    comparisons: list[Comparison] = field(default_factory=list)


@dataclass
class CiState:
    """Everything the report needs that the PipelineRun does not hold."""

    started: float = field(default_factory=time.time)
    gates: dict[str, GateEvidence] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # nodeid -> "when: first line"
    interrupted_by: str = ""
    worker_parts: list[dict[str, Any]] = field(default_factory=list)  # pytest-xdist workers' runs
    written: list[str] = field(default_factory=list)  # files written, for the terminal summary
    problems: list[str] = field(default_factory=list)  # report-writing problems, for the terminal summary
    task_graph_runs: list[dict[str, Any]] = field(default_factory=list)  # emulator runs of --snowpipe-deploy, whole values

    def gate(self, nodeid: str) -> GateEvidence:
        """The evidence of gate ``nodeid`` (created on first use)."""
        return self.gates.setdefault(nodeid, GateEvidence())

    def record_report(self, report: Any) -> None:
        """Keep the first line of each failed phase (works on pytest-xdist's controller too)."""
        if not getattr(report, "failed", False) or report.nodeid in self.failures:
            return
        longrepr = getattr(report, "longrepr", None)
        text = getattr(getattr(longrepr, "reprcrash", None), "message", None)
        if not text:  # collection errors and string reprs have no crash entry: take the last line
            lines = [line for line in str(longrepr or "").strip().splitlines() if line.strip()]
            text = re.sub(r"^E\s+", "", lines[-1].strip()) if lines else ""  # pytest's "E   " error prefix
        first = str(text).splitlines()[0] if text else ""
        self.failures[report.nodeid] = f"{report.when}: {first}"[:2000]

    def record_interrupt(self, excinfo: Any) -> None:
        """Why the run stopped early (Ctrl-C, ``pytest.exit``)."""
        value = excinfo.value
        message = getattr(value, "msg", None) or str(value)
        self.interrupted_by = f"{excinfo.typename}: {message}" if message else excinfo.typename


def champion_for_gate(run: PipelineRun | None, state: CiState, nodeid: str) -> Champion | None:
    """The champion of the gate ``nodeid`` (read once, before its promote); errors name the fix."""
    rec = run.gate_for(nodeid) if run is not None else None
    if rec is None:
        raise ChampionError(NOT_A_GATE.format(nodeid=nodeid))
    evidence = state.gate(nodeid)
    if evidence.champion_read:
        if evidence.champion_note.startswith("error: "):
            raise ChampionError(evidence.champion_note[len("error: "):])
        return evidence.champion
    model_name = rec.gate.model_name
    if not model_name:
        raise ChampionError(
            f"snowpipe_champion: gate {rec.gate.name!r} names no model, so it has no champion; add "
            "model_name=... to its snowpipe_gate marker"
        )
    try:
        champion = read_local_champion(run.registry.root, model_name)  # type: ignore[union-attr]
    except ChampionError as exc:
        evidence.champion_read, evidence.champion_note = True, f"error: {exc}"
        raise
    evidence.champion_read = True
    evidence.champion = champion
    evidence.champion_note = "" if champion is not None else "no champion yet"
    return champion


def note_champion(run: PipelineRun, state: CiState, nodeid: str) -> None:
    """Read the gate's champion for the report if the gate did not ask for it; never fails the gate."""
    rec = run.gate_for(nodeid)
    if rec is None or state.gate(nodeid).champion_read or not rec.gate.model_name:
        return
    try:
        champion_for_gate(run, state, nodeid)
    except ChampionError:
        pass  # recorded in the evidence; the gate did not depend on it


def bootstrap_notes(state: CiState) -> dict[str, list[str]]:
    """Each gate's bootstrap comparisons as terminal lines: ``bootstrap <verdict, interval, resamples>``."""
    return {
        nodeid: [f"bootstrap {c.note}" for c in ev.comparisons if c.kind == "bootstrap"]
        for nodeid, ev in state.gates.items()
    }


def junit_properties(
    run: PipelineRun, state: CiState, nodeid: str, redact: Callable[[str], str]
) -> list[tuple[str, object]]:
    """The gate's metrics, verdict, champion and comparisons as JUnit ``<property>`` pairs."""
    rec = run.gate_for(nodeid)
    if rec is None:
        return []
    props: list[tuple[str, object]] = [("snowpipe.verdict", rec.verdict)]
    metrics = run.outputs.get(rec.gate.metrics_stage) if rec.gate.metrics_stage else None
    if isinstance(metrics, Mapping):
        props.extend((f"snowpipe.metric.{k}", float(v)) for k, v in metrics.items() if _is_number(v))
    evidence = state.gates.get(nodeid)
    if evidence is not None:
        if evidence.champion is not None:
            props.append(("snowpipe.champion", str(evidence.champion)))
            props.extend(
                (f"snowpipe.champion.metric.{k}", float(v)) for k, v in evidence.champion.metrics.items() if _is_number(v)
            )
        for c in evidence.comparisons:
            detail = f"{c.value:.6g} {c.check}: {'pass' if c.passed else 'FAIL'}" if c.value is not None else c.check
            if c.kind == "bootstrap" and c.low is not None and c.high is not None:
                detail += (f" (champion {c.champion:.6g}, delta {c.delta:+.6g}, {c.confidence:.0%} interval "
                           f"[{c.low:+.6g}, {c.high:+.6g}], {c.resamples} resamples)")
            elif c.delta is not None:
                detail += f" (champion {c.champion:.6g}, delta {c.delta:+.6g})"
            elif c.note:
                detail += f" ({c.note})"
            props.append((f"snowpipe.check.{c.metric}.{c.kind}", detail))
    if rec.outcome is not None:
        props.append(("snowpipe.action", redact(f"{rec.outcome.action}: {rec.outcome.detail}")))
    return props


def gate_properties(run: PipelineRun, state: CiState, nodeid: str, settings: Any) -> list[tuple[str, object]]:
    """:func:`junit_properties` with the run's secrets redacted."""
    from pytest_snowpipe.redact import redactor_for

    return junit_properties(run, state, nodeid, redactor_for(settings).text)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, (str, bytes))
