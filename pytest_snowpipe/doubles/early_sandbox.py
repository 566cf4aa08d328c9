"""A local deploy run's folder and sandbox, made when the pytest session starts.

``pytest --snowpipe-deploy`` to the local target runs every shipped task in a sandbox interpreter
(:mod:`.sandbox`) that first imports what every task needs: Snowpark and snowflake.core's
TaskContext, about 2.5 s. Started while pytest still collects, on another core, that is done by
the time the graph is compiled and shipped; the graph's packages are told it then (`Sandbox.expect`).
Kept light to import: it runs at ``pytest_configure``, before collection.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from pytest_snowpipe.doubles.sandbox import Sandbox
from pytest_snowpipe.engines.tempdirs import owned_temporary_directory


@dataclass
class EarlyRehearsal:
    """The run's folder (its owner's pid on it: swept if pytest dies) and its sandbox."""

    workdir: Path
    sandbox: Sandbox
    stack: contextlib.ExitStack = field(repr=False)

    def close(self) -> None:
        """End the sandbox's interpreters and remove the folder (again: a no-op)."""
        self.stack.close()


def prepare_rehearsal() -> EarlyRehearsal:
    """The folder, and a sandbox whose first interpreter starts importing now (``release._run_local``
    adopts both; `close` them if it never runs)."""
    stack = contextlib.ExitStack()
    try:
        workdir = Path(stack.enter_context(owned_temporary_directory("snowpipe-rehearsal-")))
        sandbox = stack.enter_context(Sandbox(None, None, workdir, import_dir=workdir / "imports"))
        sandbox.prestart()
    except BaseException:
        stack.close()
        raise
    return EarlyRehearsal(workdir, sandbox, stack)


__all__ = ["EarlyRehearsal", "prepare_rehearsal"]
