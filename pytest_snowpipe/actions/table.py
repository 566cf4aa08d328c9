"""The built-in actions a gate may name, and what each needs from the graph and from a deploy.

One table, consulted by the gate marker's check, the graph, the compiler, the deploy, the run and
the stage cache instead of matching action names as strings. A new built-in action is one row here
and one module under ``actions/`` with a ``run(ctx) -> ActionOutcome``.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BuiltinAction:
    """One built-in action: where it is carried out and what it needs."""

    name: str
    module: str  # the module (under pytest_snowpipe.actions) whose ``run(ctx)`` carries it out
    needs_model: bool = False  # the gate must name a model stage (snowpipe_gate(model=...))
    writes_registry: bool = False  # it writes the model registry: the run sweeps what killed promotes left
    records_sources: bool = False  # it records the source stages' fingerprints (the stage cache keeps them)
    ships_ml: bool = False  # its task needs snowflake-ml-python in Snowflake
    needs_notification_integration: bool = False  # in Snowflake it notifies through an integration


BUILTIN_ACTIONS: dict[str, BuiltinAction] = {
    a.name: a
    for a in (
        BuiltinAction("promote", "pytest_snowpipe.actions.promote", needs_model=True, writes_registry=True,
                      records_sources=True, ships_ml=True),
        BuiltinAction("alert", "pytest_snowpipe.actions.alert", needs_notification_integration=True),
    )
}
NAMES = tuple(BUILTIN_ACTIONS)


def builtin(action: Any) -> BuiltinAction | None:
    """The built-in action a gate side names (None for a function, None, or an unknown name)."""
    return BUILTIN_ACTIONS.get(action) if isinstance(action, str) else None


def builtins_of(on_pass: Any, on_fail: Any) -> list[BuiltinAction]:
    """The built-in actions a gate names on either side, once each."""
    found = [b for b in (builtin(on_pass), builtin(on_fail)) if b is not None]
    return list({b.name: b for b in found}.values())


def needs(spec: Any, trait: str) -> bool:
    """Whether a gate spec (``on_pass``/``on_fail``) names a built-in action with ``trait``."""
    return any(getattr(b, trait) for b in builtins_of(spec.on_pass, spec.on_fail))


def any_gate(specs: Iterable[Any], trait: str) -> bool:
    """Whether some gate spec names a built-in action with ``trait``."""
    return any(needs(s, trait) for s in specs)


__all__ = ["BUILTIN_ACTIONS", "NAMES", "BuiltinAction", "any_gate", "builtin", "builtins_of", "needs"]
