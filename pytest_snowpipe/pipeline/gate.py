"""The ``snowpipe_gate`` marker: its arguments, validated by binding to a signature.

Binding lets Python itself phrase "unexpected keyword" errors (pytest-django's
``_django_db_signature`` habit); we add the domain rules on top.
"""
from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BUILTIN_ACTIONS = ("promote", "alert")

MARKER_NAME = "snowpipe_gate"
MARKER_HELP = (
    "snowpipe_gate(on_pass=None, on_fail=None, *, model=None, metrics=None, model_name=None): "
    "this test is a quality gate of the pipeline; its assertions choose between the on_pass "
    "and on_fail actions ('promote', 'alert' or a function taking an ActionContext)."
)

ActionRef = str | Callable[..., Any] | None

# a model's registry name: a folder of the local registry and a Snowflake Model Registry name
MODEL_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_\-]*\Z")
MODEL_NAME_RULE = "use letters, digits, _ and -, starting with a letter or _"


class GateSpecError(ValueError):
    """The marker's arguments are wrong; the message names the gate and the fix."""


def _gate_signature(
    on_pass: ActionRef = None,
    on_fail: ActionRef = None,
    *,
    model: str | None = None,
    metrics: str | None = None,
    model_name: str | None = None,
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
        if action not in BUILTIN_ACTIONS:
            raise GateSpecError(
                f"gate {gate!r}: {side}={action!r} is not an action. Valid actions: "
                f"{', '.join(repr(a) for a in BUILTIN_ACTIONS)}, or a function taking an ActionContext."
            )
        return
    raise GateSpecError(
        f"gate {gate!r}: {side}={action!r} is neither an action name nor a function; use "
        f"{' or '.join(repr(a) for a in BUILTIN_ACTIONS)} or a function taking an ActionContext."
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
    for key in ("model", "metrics", "model_name"):
        if args[key] is not None and not isinstance(args[key], str):
            raise GateSpecError(f"gate {gate!r}: {key}= takes a fixture name (str), got {args[key]!r}")
    if args["model_name"] is not None and not MODEL_NAME.match(args["model_name"]):
        raise GateSpecError(
            f"gate {gate!r}: model_name={args['model_name']!r} is not a valid registry name; {MODEL_NAME_RULE} "
            "(it names a folder of the model registry and a Snowflake model)"
        )
    return GateSpec(
        on_pass=args["on_pass"],
        on_fail=args["on_fail"],
        model=args["model"],
        metrics=args["metrics"],
        model_name=args["model_name"],
    )
