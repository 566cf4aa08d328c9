"""What an action receives and returns: one context for built-in and user actions, locally and in tasks.

An action receives an :class:`ActionContext` (the gate, its verdict, the stage outputs, the config,
the model registry, and how to notify); it returns an :class:`ActionOutcome` (or anything, shown as
text). The registry is a :class:`~pytest_snowpipe.registry.protocol.ModelRegistry`: the folder
registry locally and on the embedded engine, Snowflake's Model Registry in a task on an account.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_snowpipe.pipeline.frames import fingerprint
from pytest_snowpipe.pipeline.graph import Gate, PipelineGraph
from pytest_snowpipe.registry.protocol import ModelRegistry, ModelVersion

DEFAULT_WEBHOOK_ENV = "SNOWPIPE_ALERT_WEBHOOK"


@dataclass
class ActionContext:
    """Everything an action may need; passed to built-in and user actions alike."""

    gate: Gate
    verdict: str  # "PASS" or "FAIL"
    message: str  # the assertion message on FAIL, "" on PASS
    stages: Mapping[str, Any]
    config: Mapping[str, Any]
    graph: PipelineGraph
    registry: ModelRegistry
    webhook_env: str = DEFAULT_WEBHOOK_ENV
    notes: list[str] = field(default_factory=list)
    hook: Any = None  # pytest's hook relay: the plugin's hookspecs (None in a compiled task)
    # stage name -> content fingerprint of its output; the stage cache provides one that reads a
    # cached entry's stored fingerprint instead of loading it (None: hash the output itself)
    fingerprint_of: Callable[[str], str] | None = None
    run: Any = None  # RunInfo (snowpipe_run): fills version_name templates
    # how an alert reaches people in Snowflake (a notification integration); None: the terminal/webhook
    notify: Callable[[str], str] | None = None
    _fingerprints: dict[str, str] = field(default_factory=dict, repr=False)  # promote and lineage ask twice

    @property
    def model(self) -> Any:
        """The output of the gate's model stage (None when the gate has none)."""
        return self.stages.get(self.gate.model_stage) if self.gate.model_stage else None

    @property
    def metrics(self) -> Mapping[str, Any]:
        """The output of the gate's metrics stage ({} when the gate has none)."""
        if self.gate.metrics_stage and isinstance(self.stages.get(self.gate.metrics_stage), Mapping):
            return self.stages[self.gate.metrics_stage]  # type: ignore[no-any-return]
        return {}

    def data_fingerprint(self, stage: str) -> str:
        """A content fingerprint of ``stage``'s output: equal data, equal fingerprint (cached or not)."""
        found = self._fingerprints.get(stage)
        if found is None:
            found = self.fingerprint_of(stage) if self.fingerprint_of is not None else fingerprint(self.stages[stage])
            self._fingerprints[stage] = found
        return found


@dataclass(frozen=True)
class ActionOutcome:
    """What an action did, one line for the summary and the report."""

    action: str
    detail: str
    version: ModelVersion | None = None


__all__ = ["DEFAULT_WEBHOOK_ENV", "ActionContext", "ActionOutcome"]
