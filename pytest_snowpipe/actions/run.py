"""Run a gate's action: a built-in one from the action table, or the user's function."""
from __future__ import annotations

import importlib

from pytest_snowpipe.actions.context import ActionContext, ActionOutcome
from pytest_snowpipe.actions.table import BUILTIN_ACTIONS
from pytest_snowpipe.errors import ActionError, RegistryError
from pytest_snowpipe.pipeline.gate import ActionRef, action_label


def run_action(action: ActionRef, ctx: ActionContext) -> ActionOutcome | None:
    """Run one action; a failure becomes an ActionError naming the gate and the action."""
    if action is None:
        return None
    label = action_label(action)
    func = importlib.import_module(BUILTIN_ACTIONS[action].module).run if isinstance(action, str) else action
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
