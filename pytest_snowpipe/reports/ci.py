"""The CI report: ``report.json`` (a versioned schema) and ``report.md``, written at the end of every session.

Written from ``pytest_sessionfinish``, which pytest calls in every case (gates pass or fail, a
stage errors, Ctrl-C, ``pytest.exit``, collection errors), so CI always has a report to
upload. The schema is documented in ``docs/report-schema.md``; ``version`` changes only
when a field changes meaning or disappears. Every string passes through the run's
:class:`~pytest_snowpipe.redact.Redactor` before anything is written.

Under pytest-xdist the stages and gates run in workers: each worker hands its part
(:func:`run_part`) to the controller through ``workeroutput``, and the controller merges the
parts (:func:`merge_parts`) before writing.
"""
from __future__ import annotations

import copy
import datetime as _dt
import json
import math
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_snowpipe.pipeline.states import Verdict
from pytest_snowpipe.redact import Redactor, redactor_for
from pytest_snowpipe.registry.local import jsonable
from pytest_snowpipe.reports.evidence import CiState

if TYPE_CHECKING:
    import pytest

    from pytest_snowpipe.local.run import PipelineRun
    from pytest_snowpipe.settings import Settings

SCHEMA = "pytest-snowpipe/report"
SCHEMA_VERSION = 1
JSON_NAME = "report.json"
MD_NAME = "report.md"
WORKER_KEY = "snowpipe_report"


EXIT_MEANINGS = {
    0: "OK: every test passed, so every gate passed",
    1: "TESTS_FAILED: a test failed or errored (a gate failed, a stage or gate errored, or another test failed)",
    2: "INTERRUPTED: the run was stopped (Ctrl-C, pytest.exit, or errors during collection)",
    3: "INTERNAL_ERROR: pytest or a plugin crashed",
    4: "USAGE_ERROR: pytest was misused (bad option or configuration)",
    5: "NO_TESTS_COLLECTED: no test was collected",
}
SNOWPARK_NOT_COMPUTED = "not computed: a Snowpark DataFrame (the report runs no queries)"
# the CI provenance worth naming in a report ("from what code"); none of these is a secret
CI_VARIABLES = ("GITHUB_REPOSITORY", "GITHUB_SHA", "GITHUB_REF", "GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT", "GITHUB_WORKFLOW")


# ------------------------------------------------------------------ the part of the process that ran the pipeline


def run_part(run: PipelineRun, state: CiState, fingerprints: bool = True) -> dict[str, Any]:
    """Stages, gates, code keys and graph of one run, JSON-able (what an xdist worker sends).

    ``fingerprints=False`` skips hashing the outputs: only the report shows them, not the summary.
    """
    from pytest_snowpipe.pipeline.gate import action_label

    stages = []
    for stage in run.graph.stages:
        rec = run.stages[stage.name]
        ran = rec.status != "not run"
        fp, note = (None, "")
        if fingerprints and rec.status == "ok" and stage.name in run.outputs:
            fp, note = cheap_fingerprint(run.outputs[stage.name])
        stages.append(
            {
                "name": stage.name,
                "key": stage.key,
                "remote": stage.remote is not None,
                "predecessors": list(stage.predecessors),
                "status": rec.status,
                "source": getattr(rec, "source", "computed") if ran else None,
                "wall_s": round(rec.wall_s, 4) if ran else None,
                "compute_s": getattr(rec, "compute_s", None),  # cached: its compute time when it was stored
                "kind": rec.kind,
                "shape": rec.shape,
                "fingerprint": fp,
                "fingerprint_note": note,
                "error": rec.error,
            }
        )
    gates = []
    for nodeid, grec in run.gates.items():
        gate = grec.gate
        evidence = state.gates.get(nodeid)
        metrics = run.outputs.get(gate.metrics_stage) if gate.metrics_stage else None
        metrics = jsonable(metrics) if isinstance(metrics, Mapping) else {}
        champion = evidence.champion if evidence is not None else None
        outcome = grec.outcome
        version = outcome.version if outcome is not None else None
        gates.append(
            {
                "nodeid": nodeid,
                "name": gate.name,
                "model_name": gate.model_name,
                "key": gate.key,
                "reads": list(gate.reads),
                "verdict": grec.verdict,
                "message": grec.message[:4000],
                "failure": state.failures.get(nodeid, ""),
                "on_pass": action_label(gate.spec.on_pass),
                "on_fail": action_label(gate.spec.on_fail),
                "action": None if outcome is None else {
                    "name": outcome.action,
                    "detail": outcome.detail,
                    "version": version.version if version is not None else None,
                },
                "action_error": grec.action_error,
                "metrics": metrics,
                "champion": champion.to_dict() if champion is not None else None,
                "champion_note": _champion_note(evidence, gate.model_name),
                "deltas": _deltas(metrics, champion.metrics if champion is not None else {}),
                "comparisons": [c.to_dict() for c in (evidence.comparisons if evidence is not None else [])],
                "data": jsonable(version.fingerprints.get("data", {})) if version is not None else None,
                "history": _history(run, gate.model_name, version.version if version is not None else None),
                "branch": None,  # the compiled run's (--snowpipe-deploy, reports/rehearsal.py)
            }
        )
    part = {
        "stages": stages,
        "gates": gates,
        "code": {
            "graph": run.graph.key,
            "stages": {s.name: s.key for s in run.graph.stages},
            "gates": {g.name: g.key for g in run.graph.gates},
        },
        "graph": {"mermaid": run.graph.to_mermaid()},
    }
    plain: dict[str, Any] = json.loads(json.dumps(part, default=str))  # plain types: it may cross to the xdist controller
    return plain


def _history(run: PipelineRun, model_name: str | None, candidate: str | None) -> list[dict[str, Any]]:
    """The model's last registry versions and their metrics (report.md draws them with the candidate)."""
    from pytest_snowpipe.reports.history import metric_history

    root = getattr(run.registry, "root", None)
    return metric_history(root, model_name, exclude=candidate) if root is not None else []


def _champion_note(evidence: Any, model_name: str | None) -> str:
    if not model_name:
        return "the gate names no model"
    if evidence is None or not evidence.champion_read:
        return "not read (the gate did not run)"
    note: str = evidence.champion_note
    return note


def _deltas(metrics: Mapping[str, Any], champion: Mapping[str, Any]) -> dict[str, dict[str, float | int]]:
    out: dict[str, dict[str, float | int]] = {}
    for key, value in metrics.items():
        other: Any = champion.get(key)
        if _is_number(value) and _is_number(other):
            if isinstance(value, int) and isinstance(other, int):  # counts stay counts
                out[key] = {"value": value, "champion": other, "delta": value - other}
            else:
                out[key] = {"value": float(value), "champion": float(other), "delta": float(value) - float(other)}
    return out


def cheap_fingerprint(value: Any) -> tuple[str | None, str]:
    """(fingerprint, note): a content hash when it costs no query (Snowpark frames are left out)."""
    from pytest_snowpipe.pipeline.frames import fingerprint

    if _holds_snowpark(value):
        return None, SNOWPARK_NOT_COMPUTED
    try:
        return fingerprint(value), ""
    except Exception as exc:
        return None, f"not computed: {type(exc).__name__}"


def _holds_snowpark(value: Any, depth: int = 0) -> bool:
    from pytest_snowpipe.pipeline.frames import is_snowpark_frame

    if is_snowpark_frame(value):
        return True
    if depth < 3 and isinstance(value, Mapping):
        return any(_holds_snowpark(v, depth + 1) for v in value.values())
    if depth < 3 and isinstance(value, (list, tuple)):
        return any(_holds_snowpark(v, depth + 1) for v in value)
    return False


def merge_parts(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One part from several workers' parts: a stage or gate that ran wins over one that did not.

    Every worker sets up the session-scoped stages its tests need, so the same stage may appear
    in several parts: ``workers`` lists each worker that set it up and ``computed_by`` the ones
    that computed it rather than load it from the stage cache (one, unless the cache is off).
    """
    merged: dict[str, Any] = {"stages": [], "gates": [], "code": None, "graph": None}
    stages: dict[str, dict[str, Any]] = {}
    gates: dict[str, dict[str, Any]] = {}
    for part in parts:
        worker = part.get("worker")
        merged["code"] = merged["code"] or part.get("code")
        merged["graph"] = merged["graph"] or part.get("graph")
        for stage in part.get("stages", []):
            known = stages.get(stage["name"])
            if known is None or (known["status"] == "not run" and stage["status"] != "not run"):
                stages[stage["name"]] = dict(stage, workers=[])
                known = stages[stage["name"]]
            if worker and stage["status"] != "not run":
                known["workers"].append(worker)
                if stage.get("source") == "computed":  # the stage cache makes one worker compute, others load
                    known["source"] = "computed"
                    known["computed_by"] = [*known.get("computed_by", []), worker]
        for gate in part.get("gates", []):
            known = gates.get(gate["nodeid"])
            if known is None or (known["verdict"] == Verdict.NOT_RUN and gate["verdict"] != Verdict.NOT_RUN):
                gates[gate["nodeid"]] = dict(gate, worker=worker) if worker else gate
    merged["stages"] = list(stages.values())
    merged["gates"] = list(gates.values())
    if not worker_ids(parts):
        for stage in merged["stages"]:
            stage.pop("workers", None)
    return merged


def worker_ids(parts: list[dict[str, Any]]) -> list[str]:
    """The xdist workers that sent a part."""
    return [str(p["worker"]) for p in parts if p.get("worker")]


# ------------------------------------------------------------------ the whole report


def verdict_of(exitstatus: int, part: Mapping[str, Any], state: CiState, deploy: bool = False) -> tuple[str, str]:
    """PASS / FAIL / ERROR / INTERRUPTED (a plain string), with the reason in one line."""
    verdict, reason = _verdict_of(exitstatus, part, state, deploy)
    return str(verdict), reason


def _verdict_of(exitstatus: int, part: Mapping[str, Any], state: CiState, deploy: bool) -> tuple[Verdict, str]:
    gates = part.get("gates", [])
    failed = [g for g in gates if g["verdict"] == "FAIL"]
    if exitstatus == 2:
        return Verdict.INTERRUPTED, state.interrupted_by or "the session was interrupted"
    if deploy:  # the gates did not run as tests: the compiled run's gates and the deploy command's result count
        run = state.task_graph_runs[-1] if state.task_graph_runs else {}
        if run.get("failed_gates"):
            names = ", ".join(run["failed_gates"])
            return Verdict.FAIL, f"gate {names} took its on_fail branch in the compiled Task Graph run (every task ran; the quality gate failed)"
        if run.get("state") == "FAILED":
            return Verdict.FAIL, f"the compiled Task Graph run FAILED: task {run.get('first_error_task_name')}: {run.get('first_error_message')}"
        what = state.interrupted_by or f"exit status {exitstatus}"
        return (Verdict.PASS, "--snowpipe-deploy succeeded") if exitstatus == 0 else (Verdict.ERROR, f"--snowpipe-deploy failed: {what}")
    if exitstatus == 0:
        passed = [g for g in gates if g["verdict"] == "PASS"]
        return Verdict.PASS, f"{len(passed)} gate{'s' if len(passed) != 1 else ''} passed" if gates else "no gate was collected"
    if exitstatus == 1:
        if failed:
            first = failed[0]
            text = (first["message"] or first["failure"]).strip().splitlines()
            more = f" (and {len(failed) - 1} more gate{'s' if len(failed) > 2 else ''})" if len(failed) > 1 else ""
            return Verdict.FAIL, f"gate {first['name']} failed: {text[0] if text else 'assertion failed'}{more}"
        broken = [s for s in part.get("stages", []) if s["status"] == "error"]
        if broken:
            return Verdict.ERROR, f"stage {broken[0]['name']} errored: {broken[0]['error']}"
        errored = [g for g in gates if g["verdict"] == "ERROR"]
        if errored:
            return Verdict.ERROR, f"gate {errored[0]['name']} errored: {errored[0]['failure'] or errored[0]['message']}"
        failures = [f"{nodeid} ({text})" for nodeid, text in state.failures.items()]
        return Verdict.FAIL, "every gate passed, but test(s) outside the gates failed: " + "; ".join(failures[:3])
    return Verdict.ERROR, EXIT_MEANINGS.get(exitstatus, f"pytest exit status {exitstatus}")


def build_report(
    part: Mapping[str, Any],
    *,
    settings: Settings,
    exitstatus: int,
    state: CiState,
    tests: Mapping[str, Any],
    redactor: Redactor,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The report dict (schema version 1), redacted."""
    from pytest_snowpipe import __version__

    env = os.environ if environ is None else environ
    verdict, reason = verdict_of(exitstatus, part, state, deploy=settings.deploy is not None)
    now = time.time()
    report = {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "plugin_version": __version__,
        "verdict": verdict,
        "verdict_reason": reason,
        "exit_status": exitstatus,
        "exit_meaning": EXIT_MEANINGS.get(exitstatus, "a code set by pytest.exit or a plugin"),
        "interrupted_by": state.interrupted_by or None,
        "mode": "deploy" if settings.deploy is not None else "local",
        "started_at": _iso(state.started),
        "finished_at": _iso(now),
        "duration_s": round(now - state.started, 3),
        "source": {name.lower(): env[name] for name in CI_VARIABLES if env.get(name)},
        "tests": dict(tests, failures=[{"nodeid": k, "error": v} for k, v in state.failures.items()]),
        "stages": part.get("stages", []),
        "gates": part.get("gates", []),
        "config": redactor.config(settings.config),
        "code": part.get("code") or {"graph": None, "stages": {}, "gates": {}},
        "graph": part.get("graph") or {"mermaid": None},
        "workers": worker_ids(state.worker_parts),
        "task_graph_runs": list(state.task_graph_runs),
        "sections": [],
    }
    redacted: dict[str, Any] = _finite(redactor.deep(report))
    return redacted


def outcome_counts(session: pytest.Session) -> dict[str, int]:
    """How many tests were collected and how each ended (from the terminal reporter, if any)."""
    counts = {"collected": int(getattr(session, "testscollected", 0) or 0)}
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = getattr(reporter, "stats", {}) or {}
    for key in ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "deselected"):
        counts[key] = len(stats.get(key, []))
    return counts


def add_sections(report: dict[str, Any], config: pytest.Config, redactor: Redactor, state: CiState) -> None:
    """Ask other plugins for sections (hook ``pytest_snowpipe_report_sections``) and add them."""
    try:
        results = config.hook.pytest_snowpipe_report_sections(report=copy.deepcopy(report), config=config)
    except Exception as exc:
        state.problems.append(f"a pytest_snowpipe_report_sections hook failed: {type(exc).__name__}: {exc}")
        results = []
    for result in results:
        for item in result or []:
            if not (isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(x, str) for x in item)):
                state.problems.append(f"a report section must be a (title, markdown) pair of strings, got {item!r:.80}")
                continue
            report["sections"].append({"title": redactor.text(item[0]), "markdown": redactor.text(item[1])})


# ------------------------------------------------------------------ writing


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never a half-written report."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_reports(report: Mapping[str, Any], markdown: str, folder: Path) -> list[Path]:
    """Write report.json and report.md into ``folder`` (created if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / JSON_NAME, folder / MD_NAME
    write_atomic(json_path, json.dumps(report, indent=2, default=str, allow_nan=False) + "\n")
    write_atomic(md_path, markdown)
    return [json_path, md_path]


def append_step_summary(markdown: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Append to ``$GITHUB_STEP_SUMMARY`` when it is set (GitHub Actions); return its path."""
    env = os.environ if environ is None else environ
    target = env.get("GITHUB_STEP_SUMMARY", "").strip()
    if not target:
        return None
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(markdown.rstrip("\n") + "\n\n")
    return target


def finish_session(
    session: pytest.Session, exitstatus: int, run: PipelineRun | None, state: CiState, settings: Settings
) -> None:
    """At ``pytest_sessionfinish``: hand the part to the controller (xdist worker), or write the report."""
    config = session.config
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller writes
        if run is not None:
            worker = str(getattr(config, "workerinput", {}).get("workerid", ""))
            part = run_part(run, state, fingerprints=settings.report_dir is not None)
            workeroutput[WORKER_KEY] = dict(part, worker=worker)
        return
    if settings.report_dir is None:
        return
    parts = ([run_part(run, state)] if run is not None else []) + state.worker_parts
    redactor = redactor_for(settings)
    merged = merge_parts(parts)
    if settings.deploy is not None and state.task_graph_runs:  # stages and gates ran as tasks
        from pytest_snowpipe.reports.rehearsal import apply_task_graph_run

        merged = apply_task_graph_run(merged, state.task_graph_runs[-1])
    report = build_report(
        merged, settings=settings, exitstatus=int(exitstatus), state=state,
        tests=outcome_counts(session), redactor=redactor,
    )
    add_sections(report, config, redactor, state)
    from pytest_snowpipe.reports.markdown import render_markdown

    markdown = redactor.text(render_markdown(report))
    try:
        state.written = [str(p) for p in write_reports(report, markdown, settings.report_dir)]
    except OSError as exc:
        state.problems.append(f"could not write the report into {settings.report_dir}: {exc.strerror or exc}")
    try:
        target = append_step_summary(markdown)
        if target:
            state.written.append(f"$GITHUB_STEP_SUMMARY ({target})")
    except OSError as exc:
        state.problems.append(f"could not append to $GITHUB_STEP_SUMMARY: {exc.strerror or exc}")


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).isoformat(timespec="seconds")


def _is_number(value: Any) -> bool:
    if isinstance(value, (bool, str, bytes)) or value is None:
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _finite(value: Any) -> Any:
    """NaN and infinities as strings: strict JSON readers (jq, JSON.parse) reject the bare tokens."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
