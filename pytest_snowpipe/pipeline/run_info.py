"""``snowpipe_run``: the identity of one pipeline run, the same object locally and in a task.

``run_id``, ``scheduled`` (a timezone-aware datetime), ``target`` (``'local'`` for a pytest run,
``'emulator'`` for the compiled graph on the local emulator, ``'snowflake'`` in a deployed
graph) and ``config`` (the pipeline config; in a task the graph's config). Inside a compiled
task it is read from ``TaskContext``: the run id is ``CURRENT_TASK_GRAPH_RUN_GROUP_ID``, the
scheduled time ``get_current_task_graph_original_schedule()`` (what the seed names its model
version after), the config ``get_task_graph_config()``.

A stage that reads it is keyed on what it reads (``run.target``, ``run.config["k"]``...), as
config keys are: a stage reading ``run.run_id`` or ``run.scheduled`` is recomputed every run.
"""
from __future__ import annotations

import datetime as _dt
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RUN_FIXTURE = "snowpipe_run"
TARGETS = ("local", "emulator", "snowflake")
FIELDS = ("run_id", "scheduled", "target", "config")


@dataclass(frozen=True)
class RunInfo:
    """Who this run is: see the module docstring."""

    run_id: str
    scheduled: _dt.datetime
    target: str
    config: Mapping[str, Any] = field(default_factory=dict)

    def template_values(self) -> dict[str, Any]:
        """What ``{...}`` templates (gate marker options) may name besides config keys."""
        return {"run_id": self.run_id, "run_scheduled": self.scheduled, "run_target": self.target}

    def to_json(self) -> dict[str, Any]:
        """The identity without the config (for pytest-xdist workers and reports)."""
        return {"run_id": self.run_id, "scheduled": self.scheduled.isoformat(), "target": self.target}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], config: Mapping[str, Any]) -> RunInfo:
        return cls(str(data["run_id"]), _dt.datetime.fromisoformat(str(data["scheduled"])), str(data["target"]), config)


def new_local_run(config: Mapping[str, Any], now: _dt.datetime | None = None) -> RunInfo:
    """A pytest run's identity: scheduled = its start (UTC), run id = that time + a random suffix."""
    start = (now or _dt.datetime.now(_dt.UTC)).replace(microsecond=0)
    return RunInfo(f"local-{start:%Y%m%d_%H%M%S}-{secrets.token_hex(3)}", start, "local", config)


def sample_runs(config: Mapping[str, Any]) -> list[RunInfo]:
    """One run of each target with the run id in the form that target gives it (a pytest run's, the
    emulator's ``emulator-<uuid4>``), at the widest times: what a template is checked against."""
    import uuid

    late = _dt.datetime(2099, 12, 31, 23, 59, 59, tzinfo=_dt.UTC)
    return [
        new_local_run(config, _dt.datetime(2000, 1, 1, tzinfo=_dt.UTC)),
        RunInfo(f"emulator-{uuid.UUID(int=0)}", late, "emulator", config),
        RunInfo(f"emulator-{uuid.uuid4()}", late, "emulator", config),
    ]


def _as_datetime(value: Any) -> _dt.datetime:
    if isinstance(value, _dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=_dt.UTC)
    try:
        parsed = _dt.datetime.fromisoformat(str(value))
    except ValueError:
        return _dt.datetime.now(_dt.UTC).replace(microsecond=0)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=_dt.UTC)


def from_task_context(ctx: Any, target: str, config: Mapping[str, Any]) -> RunInfo:
    """The identity inside a compiled task (``ctx`` is a snowflake.core ``TaskContext``)."""
    return RunInfo(
        run_id=str(ctx.get_current_task_graph_run_group_id()),
        scheduled=_as_datetime(ctx.get_current_task_graph_original_schedule()),
        target=target,
        config=config,
    )
