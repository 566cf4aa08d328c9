"""What a gate leads to: the built-in ``promote`` and ``alert`` actions, or a user's function.

An action receives an :class:`ActionContext` (the gate, its verdict, the stage outputs,
the config, the registry). Locally ``promote`` logs into the folder registry and sets the
default version; ``alert`` reports in the terminal summary and, if the environment
variable named by ``snowpipe_alert_webhook_env`` holds a URL, posts to it. The URL is a
secret: it is never printed, logged or written to a report.
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_snowpipe.errors import ActionError, RegistryError
from pytest_snowpipe.pipeline.frames import fingerprint
from pytest_snowpipe.pipeline.gate import ActionRef, action_label
from pytest_snowpipe.pipeline.graph import Gate, PipelineGraph
from pytest_snowpipe.redact import Redactor
from pytest_snowpipe.registry.local import LocalRegistry, ModelVersion, jsonable

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
    registry: LocalRegistry
    webhook_env: str = DEFAULT_WEBHOOK_ENV
    notes: list[str] = field(default_factory=list)
    hook: Any = None  # pytest's hook relay: the plugin's hookspecs (None in a compiled task)
    # stage name -> content fingerprint of its output; the stage cache provides one that reads a
    # cached entry's stored fingerprint instead of loading it (None: hash the output itself)
    fingerprint_of: Callable[[str], str] | None = None
    run: Any = None  # RunInfo (snowpipe_run): fills version_name templates
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


def promote_fingerprints(ctx: ActionContext) -> dict[str, Any]:
    """What a promoted version records about its making: code keys and source data fingerprints.

    ``code``: the content keys of the gate's upstream stages (their code, the project code they
    call, the config values they read, their predecessors' keys); ``gate_code``: the gate's key;
    ``data``: the content fingerprint of each source stage (no predecessors) upstream of the gate.
    Nothing here loads a cached output (see :attr:`ActionContext.fingerprint_of`).
    """
    data = {
        s.name: ctx.data_fingerprint(s.name)
        for s in ctx.graph.stages
        if not s.predecessors and s.name in ctx.gate.upstream and s.name in ctx.stages
    }
    return {
        "code": {s: ctx.graph.stage(s).key for s in ctx.gate.upstream},
        "gate_code": ctx.gate.key,
        "data": data,
    }


NOT_REPRODUCIBLE = "not reproducible: same code and inputs, different output"


def output_fingerprints(ctx: ActionContext) -> dict[str, str]:
    """The content fingerprint of each stage's output upstream of the gate, in pipeline order: what a
    rerun with the same code and source data must give again."""
    out: dict[str, str] = {}
    for s in ctx.graph.stages:
        if s.name in ctx.gate.upstream and s.name in ctx.stages:
            try:
                out[s.name] = ctx.data_fingerprint(s.name)
            except Exception:  # an output that cannot be hashed (a lock, a connection): nothing to compare
                continue
    return out


def unreproduced(ctx: ActionContext, default: ModelVersion, fingerprints: Mapping[str, Any]) -> str | None:
    """Why this run, with the default version's code and source data, did not give its metrics.

    The first stage (in pipeline order) whose output fingerprint differs from the one the
    default version recorded is named: its code and inputs were the same, so it is the one
    that is not reproducible (randomness without a seed, the clock, an unseeded library).
    None when code or data differ (a legitimate new version).
    """
    if jsonable(dict(fingerprints)) != default.fingerprints or jsonable(dict(ctx.metrics)) == default.metrics:
        return None  # other code or data; or the same metrics (a default refused as damaged)
    stored = default.extra.get("outputs")
    before: Mapping[str, Any] = stored if isinstance(stored, Mapping) else {}
    now = output_fingerprints(ctx)
    differing = [stage for stage, fp in now.items() if stage in before and before[stage] != fp]
    stage = differing[0] if differing else (ctx.gate.metrics_stage or "?")
    return f"{NOT_REPRODUCIBLE} in stage {stage!r} (a seed, the clock, an unseeded library?)"


def version_name(ctx: ActionContext) -> str | None:
    """The gate's ``version_name`` template filled with the config and the run (None: numbered)."""
    template = ctx.gate.spec.version_name
    if not template:
        return None
    from pytest_snowpipe.pipeline.gate import fill_template
    from pytest_snowpipe.pipeline.run_info import new_local_run

    run = ctx.run if ctx.run is not None else new_local_run(ctx.config)
    return fill_template(template, {**dict(ctx.config), **run.template_values()}, ctx.gate.name, "version_name")


def lineage(ctx: ActionContext) -> dict[str, Any]:
    """The source stages a promoted model was made from: each one's declared sources (``sp.source``:
    tables, files) and the content fingerprint of its output."""
    out: dict[str, Any] = {}
    for s in ctx.graph.stages:
        if s.predecessors or s.name not in ctx.gate.upstream or s.name not in ctx.stages:
            continue
        out[s.name] = {
            "declared": s.sources.describe() if s.sources is not None else None,
            "fingerprint": ctx.data_fingerprint(s.name),
        }
    return out


def log_model_options(ctx: ActionContext) -> dict[str, Any]:
    """The gate's ``log_model`` options with ``sample_input_data="stage"`` (or ``"stage.key"`` for a
    dict output) replaced by that stage's output."""
    opts = dict(ctx.gate.spec.log_model)
    sample = opts.get("sample_input_data")
    if isinstance(sample, str):
        stage, _, key = sample.partition(".")
        if stage not in ctx.stages:
            raise ActionError(
                f"gate {ctx.gate.name!r}: log_model sample_input_data={sample!r} names no stage output "
                f"upstream of the gate (upstream: {', '.join(ctx.gate.upstream)})"
            )
        value = ctx.stages[stage]
        opts["sample_input_data"] = value[key] if key else value
    return opts


def _sample_summary(value: Any) -> dict[str, Any]:
    """What the local registry keeps of a sample input: its columns and types (a signature), not rows."""
    from pytest_snowpipe.pipeline.frames import describe

    columns = getattr(value, "columns", None)
    dtypes = getattr(value, "dtypes", None)
    summary: dict[str, Any] = {"kind": " ".join(describe(value))}
    if columns is not None:
        summary["columns"] = [str(c) for c in columns]
    if dtypes is not None:
        try:
            summary["dtypes"] = {str(k): str(v) for k, v in dict(dtypes).items()} if hasattr(dtypes, "items") else [
                [str(k), str(v)] for k, v in dtypes
            ]
        except (TypeError, ValueError):
            pass
    return summary


def promote(ctx: ActionContext) -> ActionOutcome:
    """Log the gate's model with its metrics, config and fingerprints; make it the default.

    A no-op when the default version already has the same code, data and metrics: the model is
    then not loaded, nothing is written, and the promote hooks are not called (nothing is promoted).
    The config is not compared: the config values a stage reads are in its code key, so another
    config value cannot have changed the model.
    """
    name = ctx.gate.model_name
    if name is None or ctx.gate.model_stage not in ctx.stages:
        raise ActionError(
            f"gate {ctx.gate.name!r}: promote has no model (stage {ctx.gate.model_stage!r} "
            "produced nothing); name the model stage with snowpipe_gate(model=...)."
        )
    fingerprints = promote_fingerprints(ctx)
    current = ctx.registry.unchanged_default(name, metrics=ctx.metrics, fingerprints=fingerprints)
    if current is not None:
        return ActionOutcome(
            "promote",
            f"{name} {current.version} is already the default (unchanged: same code, data and metrics)",
            current,
        )
    default = ctx.registry.default(name)
    if default is not None and (why := unreproduced(ctx, default, fingerprints)) is not None:
        return ActionOutcome("promote", f"{name} {default.version} stays the default: {why}; no new version", default)
    wanted = version_name(ctx)
    options = log_model_options(ctx)
    extra: dict[str, Any] = {"gate": ctx.gate.nodeid, "lineage": lineage(ctx), "outputs": output_fingerprints(ctx)}
    if ctx.run is not None:
        extra["run"] = ctx.run.to_json()
    if options:  # the local registry keeps what is meaningful in a file: the sample's signature, the rest as given
        stored = {k: v for k, v in options.items() if k != "sample_input_data"}
        if "sample_input_data" in options:
            stored["sample_input_data"] = _sample_summary(options["sample_input_data"])
        extra["log_model"] = stored
    if ctx.hook is not None:  # a hook that raises stops the promote before the registry is touched
        ctx.hook.pytest_snowpipe_promote_before(ctx=ctx, model_name=name)
    version = ctx.registry.promote(
        name,
        ctx.model,
        metrics=ctx.metrics,
        config=Redactor.for_run(ctx.config, ctx.webhook_env).config(ctx.config),  # meta.json is a file: no secrets
        fingerprints=fingerprints,
        extra=extra,
        version=wanted,
    )
    if ctx.hook is not None:
        try:
            ctx.hook.pytest_snowpipe_promote_after(ctx=ctx, version=version)
        except Exception as exc:
            raise ActionError(
                f"gate {ctx.gate.name!r}: {name} {version.version} was promoted and is the default, "
                f"but a pytest_snowpipe_promote_after hook failed: {type(exc).__name__}: {exc}"
            ) from exc
    return ActionOutcome(
        "promote", f"{name} {version.version} is now the default ({ctx.registry.root})", version
    )


def _post_webhook(url: str, payload: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "code", None) or type(exc).__name__
        text = str(reason).replace(url, "<webhook URL>")
        raise ActionError(f"alert webhook post failed ({text}); the URL is withheld") from None


def alert(ctx: ActionContext) -> ActionOutcome:
    """Report the failed (or passed) gate; post to the webhook if one is configured."""
    text = f"pytest-snowpipe gate {ctx.gate.name} {ctx.verdict}"
    if ctx.message:
        text += f": {ctx.message.splitlines()[0][:500]}"
    if ctx.hook is not None:  # another plugin may deliver it (Slack, e-mail, PagerDuty...)
        delivered = ctx.hook.pytest_snowpipe_alert(ctx=ctx, text=text)
        if delivered is not None:
            return delivered if isinstance(delivered, ActionOutcome) else ActionOutcome("alert", str(delivered))
    url = os.environ.get(ctx.webhook_env, "").strip()
    if url:
        _post_webhook(
            url,
            {"text": text, "gate": ctx.gate.nodeid, "verdict": ctx.verdict, "metrics": dict(ctx.metrics)},
        )
        return ActionOutcome("alert", f"{text} (posted to ${ctx.webhook_env})")
    return ActionOutcome("alert", text)


BUILTINS: dict[str, Callable[[ActionContext], ActionOutcome]] = {"promote": promote, "alert": alert}


def run_action(action: ActionRef, ctx: ActionContext) -> ActionOutcome | None:
    """Run one action; a failure becomes an ActionError naming the gate and the action."""
    if action is None:
        return None
    label = action_label(action)
    func = BUILTINS[action] if isinstance(action, str) else action
    try:
        result = func(ctx)
    except (ActionError, RegistryError):
        raise
    except Exception as exc:
        raise ActionError(
            f"gate {ctx.gate.name!r}: action {label!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    if isinstance(result, ActionOutcome):
        return result
    return ActionOutcome(label, "" if result is None else str(result))
