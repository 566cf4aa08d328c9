"""The state of one local run of the pipeline: stage timings and outputs, gate verdicts, actions.

The plugin feeds it from pytest's hooks; the summary and reports read it.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_snowpipe.actions.context import ActionContext, ActionOutcome
from pytest_snowpipe.actions.run import run_action
from pytest_snowpipe.actions.table import needs
from pytest_snowpipe.errors import hide_deliberate
from pytest_snowpipe.pipeline.frames import describe
from pytest_snowpipe.pipeline.graph import Gate, PipelineGraph
from pytest_snowpipe.pipeline.run_info import RunInfo
from pytest_snowpipe.pipeline.states import Verdict
from pytest_snowpipe.registry.local import LocalRegistry

__tracebackhide__ = hide_deliberate  # a stage's violation shows its table, not this module (errors.py)


@dataclass
class StageRecord:
    """How one stage ran: wall time, what it returned, or how it failed."""

    name: str
    status: str = "not run"  # "ok" | "error" | "not run"
    wall_s: float = 0.0
    kind: str = ""
    shape: str = ""
    error: str = ""
    source: str = "computed"  # "computed" | "cached" (loaded from the stage cache, not run)
    compute_s: float | None = None  # cached: how long computing it took when it was stored


@dataclass
class GateRecord:
    """A gate's verdict and the action it led to."""

    gate: Gate
    verdict: str = str(Verdict.NOT_RUN)
    message: str = ""
    outcome: ActionOutcome | None = None
    action_error: str = ""


@dataclass
class PipelineRun:
    """Everything recorded during one local run of the pipeline."""

    graph: PipelineGraph
    config: Mapping[str, Any]
    registry: LocalRegistry
    webhook_env: str
    hook: Any = None  # pytest's hook relay (the plugin's hookspecs); None outside pytest
    outputs: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, StageRecord] = field(default_factory=dict)
    gates: dict[str, GateRecord] = field(default_factory=dict)
    checks: list[tuple[str, str, str]] = field(default_factory=list)  # (stage, target, verdict line)
    cache_note: str = ""  # one line on the stage cache (where, how big, or why it is off)
    fingerprint_of: Callable[[str], str] | None = None  # the stage cache's, when it is on (see ActionContext)
    info: RunInfo | None = None  # snowpipe_run: this run's id, scheduled time, target, config

    def __post_init__(self) -> None:
        self.stages = {s.name: StageRecord(s.name) for s in self.graph.stages}
        self.gates = {g.nodeid: GateRecord(g) for g in self.graph.gates}

    def sweep_registry(self) -> None:
        """At run start: remove the staging folders of promotes that were killed (over an hour old)."""
        from pytest_snowpipe.errors import RegistryError

        for gate in self.graph.gates:
            if gate.model_name and needs(gate.spec, "writes_registry"):
                try:
                    self.registry.sweep_stale(gate.model_name)
                except RegistryError:
                    continue

    def gate_for(self, nodeid: str) -> GateRecord | None:
        """The record of the gate with this pytest node id, if it is one."""
        return self.gates.get(nodeid)

    def stage_started(self) -> float:
        """A timestamp for :meth:`stage_done`."""
        return time.perf_counter()

    def stage_done(self, name: str, started: float, value: Any = None, error: BaseException | None = None) -> None:
        """Record a stage's result (or failure)."""
        rec = self.stages[name]
        rec.wall_s = time.perf_counter() - started
        if error is not None:
            rec.status = "error"
            rec.error = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            return
        rec.status = "ok"
        self.outputs[name] = value
        try:
            rec.kind, rec.shape = describe(value)
        except Exception as exc:  # a summary must never break the run
            rec.kind, rec.shape = type(value).__name__, f"(shape unavailable: {type(exc).__name__})"

    def stage_checked(self, name: str, started: float) -> None:
        """The stage's time includes its contract checks (they run before any consumer can)."""
        self.stages[name].wall_s = time.perf_counter() - started

    def check_stage(self, name: str, func: Any, value: Any) -> None:
        """Run the stage's contracts (if any); record each; re-raise a violation."""
        from pytest_snowpipe.pipeline.checks import check_output, expectations_of

        if self.stages[name].source == "cached" or not expectations_of(func):
            return  # a cached output was stored only after its checks passed (and they are in its key)
        try:
            outcomes = check_output(name, func, value)
        except AssertionError as exc:
            result = getattr(exc, "result", None)
            broken = ", ".join(f"{v.column}.{v.rule} ({v.failing_rows} rows)" for v in getattr(result, "violations", []))
            self.checks.append((name, "contract", f"FAIL: {broken}"))
            self.stages[name].status = "error"
            self.stages[name].error = "contract violated"
            raise
        except Exception as exc:  # e.g. not a DataFrame: the stage's error, not its consumer's
            self.stages[name].status = "error"
            self.stages[name].error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            raise
        for out in outcomes:
            queries = getattr(out.result, "queries", None)
            extra = f", {queries} quer{'y' if queries == 1 else 'ies'}" if queries else ""
            self.checks.append((name, out.expectation.label, f"PASS ({out.result.rows} rows{extra})"))

    def setup_failure(self, rec: GateRecord, exc: BaseException) -> str:
        """Why a gate could not run: the failed upstream stage if there is one, else the setup error."""
        failed = [s for s in rec.gate.upstream if self.stages[s].status == "error"]
        if failed:
            return f"stage {failed[0]} failed: {self.stages[failed[0]].error}"
        text = str(exc).strip()
        return f"setup failed: {type(exc).__name__}: {text.splitlines()[0] if text else ''}"

    def decide(self, nodeid: str, verdict: str, message: str = "") -> GateRecord | None:
        """Record the verdict and run the matching action (PASS -> on_pass, FAIL -> on_fail).

        ERROR and SKIPPED run no action: in a Task Graph the branch task would have failed.
        Action errors propagate (the test then fails) after being recorded.
        """
        rec = self.gates.get(nodeid)
        if rec is None:
            return None
        rec.verdict, rec.message = str(verdict), message
        if verdict not in (Verdict.PASS, Verdict.FAIL):
            return rec
        action = rec.gate.spec.on_pass if verdict == Verdict.PASS else rec.gate.spec.on_fail
        ctx = ActionContext(
            gate=rec.gate,
            verdict=verdict,
            message=message,
            stages=self.outputs,
            config=self.config,
            graph=self.graph,
            registry=self.registry,
            webhook_env=self.webhook_env,
            hook=self.hook,
            fingerprint_of=self.fingerprint_of,
            run=self.info,
        )
        try:
            rec.outcome = run_action(action, ctx)
        except Exception as exc:
            rec.action_error = str(exc)
            raise
        return rec
