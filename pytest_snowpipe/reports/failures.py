"""The failure first: a gate's or a contract's message heads its failure and its summary line.

The plugin's own frames are hidden by pytest itself: the modules a user's failure passes through
set ``__tracebackhide__`` (``errors.hide_deliberate``), as pytest cuts its own frames. What is
left here is the short summary, which pytest builds from the last visible frame.
"""
from __future__ import annotations

from typing import Any

import pytest

from pytest_snowpipe.errors import deliberate


def message_first(item: pytest.Item, report: pytest.TestReport, excinfo: pytest.ExceptionInfo[BaseException] | None) -> None:
    """The short summary of a failed gate check or contract shows its message, not the module path of its type.

    pytest's ``FAILED nodeid - <message>`` shows ``exconly()``, which for our exception types
    starts with ``pytest_snowpipe.registry.champion.GateCheckFailed:``: at 80 columns that prefix
    was all that remained. When every frame was hidden (a contract on a stage's output: only the
    plugin's frames), pytest has no crash location and would show no message: it points at the test.
    """
    if excinfo is None or not (isinstance(excinfo.value, AssertionError) and deliberate(excinfo.value)):
        return  # a usage or registry error keeps its type in the line: it is an ERROR, not a verdict
    text = _summary(excinfo.value)
    longrepr: Any = report.longrepr
    if not text or longrepr is None or isinstance(longrepr, (str, tuple)):
        return
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        crash.message = text
        return
    from _pytest._code.code import ReprFileLocation  # the type pytest's own reprcrash has

    path, lineno, _ = item.location
    longrepr.reprcrash = ReprFileLocation(path=path, lineno=(lineno or 0) + 1, message=text)


def _summary(exc: BaseException) -> str:
    """One line: the message, or for a contract its verdict and the broken rules."""
    text = str(exc).strip()
    violations = getattr(getattr(exc, "result", None), "violations", None)
    if not violations:
        return text
    head = text.splitlines()[0].split(";")[0].rstrip(":") if text else "contract violated"
    return head + ": " + ", ".join(f"{v.column}.{v.rule} ({v.failing_rows} rows)" for v in violations)
