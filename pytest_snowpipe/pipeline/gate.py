"""The ``snowpipe_gate`` marker: its arguments, validated by binding to a signature.

Binding lets Python itself phrase "unexpected keyword" errors (pytest-django's
``_django_db_signature`` habit); we add the domain rules on top.
"""
from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_snowpipe.actions.table import NAMES, builtin
from pytest_snowpipe.errors import SnowpipeError

MARKER_NAME = "snowpipe_gate"
MARKER_HELP = (
    "snowpipe_gate(on_pass=None, on_fail=None, *, model=None, metrics=None, model_name=None, "
    "version_name=None, log_model=None): "
    "this test is a quality gate of the pipeline; its assertions choose between the on_pass "
    "and on_fail actions ('promote', 'alert' or a function taking an ActionContext). model_name "
    "may read the config ('{model_name}'), version_name the config and the run "
    "('v{run_scheduled:%Y%m%d_%H%M%S}'); log_model={...} passes options to the registry's log_model."
)

# Options of snowflake.ml.registry.Registry.log_model (snowflake-ml-python 2.6) a gate may pass with
# log_model={...}; model, model_name, version_name and metrics come from the gate itself.
LOG_MODEL_OPTIONS = (
    "comment", "conda_dependencies", "pip_requirements", "artifact_repository_map", "resource_constraint",
    "target_platforms", "python_version", "signatures", "sample_input_data", "user_files", "code_paths",
    "ext_modules", "task", "options",
)

ActionRef = str | Callable[..., Any] | None

# a model's registry name: a folder of the local registry and a Snowflake Model Registry name
MODEL_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_\-]*\Z")
MODEL_NAME_RULE = "use letters, digits, _ and -, starting with a letter or _"


def check_model_name(gate: str, name: str) -> None:
    """A registry name must be a folder name here and a Snowflake model name there."""
    if not MODEL_NAME.match(name):
        raise GateSpecError(
            f"gate {gate!r}: model_name={name!r} is not a valid registry name; {MODEL_NAME_RULE} "
            "(it names a folder of the model registry and a Snowflake model)"
        )


class GateSpecError(SnowpipeError, ValueError):
    """The marker's arguments are wrong; the message names the gate and the fix."""


def _gate_signature(
    on_pass: ActionRef = None,
    on_fail: ActionRef = None,
    *,
    model: str | None = None,
    metrics: str | None = None,
    model_name: str | None = None,
    version_name: str | None = None,
    log_model: Mapping[str, Any] | None = None,
) -> None:
    """The marker's signature; its body is never run."""


@dataclass(frozen=True)
class GateSpec:
    """What a gate leads to, and which stages hold the model and the metrics."""

    on_pass: ActionRef
    on_fail: ActionRef
    model: str | None
    metrics: str | None
    model_name: str | None
    version_name: str | None = None  # a template: config keys, {run_id}, {run_scheduled:%Y%m%d}, {run_target}
    log_model: Mapping[str, Any] = field(default_factory=dict)  # passed to the registry's log_model
    model_name_template: str | None = None  # the marker's model_name as written, when it read the config


def action_label(action: ActionRef) -> str:
    """How an action is named in summaries, plans and task names."""
    if action is None:
        return "none"
    if isinstance(action, str):
        return action
    return getattr(action, "__name__", repr(action))


def _check_action(gate: str, side: str, action: ActionRef) -> None:
    if action is None or callable(action):
        return
    if isinstance(action, str):
        if builtin(action) is None:
            raise GateSpecError(
                f"gate {gate!r}: {side}={action!r} is not an action. Valid actions: "
                f"{', '.join(repr(a) for a in NAMES)}, or a function taking an ActionContext."
            )
        return
    raise GateSpecError(
        f"gate {gate!r}: {side}={action!r} is neither an action name nor a function; use "
        f"{' or '.join(repr(a) for a in NAMES)} or a function taking an ActionContext."
    )


def parse_gate_marker(gate: str, markers: list[Any]) -> GateSpec:
    """Validate the gate's marker(s) and return its spec; raise GateSpecError otherwise."""
    if len(markers) > 1:
        raise GateSpecError(
            f"gate {gate!r} carries @pytest.mark.{MARKER_NAME} {len(markers)} times; a gate has one "
            "pair of actions: keep a single marker (also check class/module-level pytestmark)."
        )
    mark = markers[0]
    try:
        bound = inspect.signature(_gate_signature).bind(*mark.args, **mark.kwargs)
    except TypeError as exc:
        raise GateSpecError(
            f"gate {gate!r}: bad @pytest.mark.{MARKER_NAME} arguments: {exc}. Signature: "
            f"{MARKER_NAME}{inspect.signature(_gate_signature)}"
        ) from None
    bound.apply_defaults()
    args = bound.arguments
    _check_action(gate, "on_pass", args["on_pass"])
    _check_action(gate, "on_fail", args["on_fail"])
    if args["on_pass"] is not None and args["on_pass"] == args["on_fail"]:
        raise GateSpecError(
            f"gate {gate!r}: on_pass and on_fail are both {action_label(args['on_pass'])!r}; a gate "
            "chooses between two different actions (e.g. on_pass='promote', on_fail='alert')."
        )
    for key in ("model", "metrics", "model_name", "version_name"):
        if args[key] is not None and not isinstance(args[key], str):
            raise GateSpecError(f"gate {gate!r}: {key}= takes a str, got {args[key]!r}")
    name = args["model_name"]
    if name is not None and "{" not in name:  # a template is checked once the config filled it in
        check_model_name(gate, name)
    log_model = args["log_model"] or {}
    if not isinstance(log_model, Mapping):
        raise GateSpecError(f"gate {gate!r}: log_model= takes a dict of Registry.log_model options, got {log_model!r}")
    unknown = [k for k in log_model if k not in LOG_MODEL_OPTIONS]
    if unknown:
        raise GateSpecError(
            f"gate {gate!r}: log_model option(s) {', '.join(repr(k) for k in unknown)} unknown. Valid options: "
            f"{', '.join(LOG_MODEL_OPTIONS)} (model, model_name, version_name and metrics come from the gate)"
        )
    return GateSpec(
        on_pass=args["on_pass"],
        on_fail=args["on_fail"],
        model=args["model"],
        metrics=args["metrics"],
        model_name=args["model_name"],
        version_name=args["version_name"],
        log_model=dict(log_model),
    )


class _Missing(dict[str, Any]):
    def __missing__(self, key: str) -> Any:
        raise KeyError(key)


def fill_template(text: str, values: Mapping[str, Any], gate: str, option: str) -> str:
    """``text`` with its ``{key}`` / ``{key:format}`` fields filled from ``values`` (config and run).

    The same ``str.format_map`` templating ``sp.source(table=...)`` uses; an unknown key is a
    GateSpecError naming the option and the keys there are, and so is any other template error
    (a bad format spec, attribute or index): str.format raises each as a different exception.
    """
    try:
        return text.format_map(_Missing(values))
    except KeyError as exc:
        raise GateSpecError(
            f"gate {gate!r}: {option}={text!r} names {exc}, which is neither a snowpipe_config key nor a "
            f"run field; known: {', '.join(sorted(values)) or 'none'}"
        ) from None
    except (IndexError, ValueError, AttributeError, TypeError) as exc:
        raise GateSpecError(f"gate {gate!r}: {option}={text!r} is not a valid template ({exc})") from None


def check_version_template(template: str, config: Mapping[str, Any], gate: str) -> None:
    """Fill ``version_name`` with a sample of every run field now, so a template that cannot give a valid
    version name stops the run at collection (dry run included), before any stage has run."""
    from pytest_snowpipe.pipeline.run_info import sample_runs

    for run in sample_runs(config):
        name = fill_template(template, {**dict(config), **run.template_values()}, gate, "version_name")
        if not MODEL_NAME.match(name):
            raise GateSpecError(
                f"gate {gate!r}: version_name={template!r} gives {name!r} for a {run.target} run "
                f"(run_id {run.run_id!r}), not a valid version name; {MODEL_NAME_RULE}"
            )
