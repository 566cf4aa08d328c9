"""The built-in ``promote``: log the gate's model with its metrics and lineage, make it the CHAMPION.

Written once for every registry (:class:`~pytest_snowpipe.registry.protocol.ModelRegistry`): the
folder registry locally and on the emulator, Snowflake's Model Registry in a task on an account.
A promote whose code, data and metrics are unchanged writes nothing; one whose code and data are
unchanged but whose metrics moved is "not reproducible" and writes nothing either.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_snowpipe.actions.context import ActionContext, ActionOutcome
from pytest_snowpipe.errors import ActionError
from pytest_snowpipe.pipeline.gate import fill_template
from pytest_snowpipe.pipeline.run_info import new_local_run
from pytest_snowpipe.redact import Redactor
from pytest_snowpipe.registry.protocol import ModelVersion, jsonable


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
        log_model=options,
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
        "promote", f"{name} {version.version} is now the default ({ctx.registry.location})", version
    )


run = promote
