"""Errors the plugin raises; each message names the thing that is wrong and the fix."""
from __future__ import annotations


class SnowpipeError(Exception):
    """Base class of every error pytest-snowpipe raises on purpose."""


class SnowpipeUsageError(SnowpipeError, ValueError):
    """The run was asked for in a way that cannot work: an option, an ini key, a connection, a graph that
    cannot ship. The plugin shows it as pytest's usage error, in one place (no traceback)."""


class GraphError(SnowpipeUsageError):
    """The fixtures and gates do not form a valid pipeline."""


class RemoteError(SnowpipeError):
    """A remote stage could not make the trip to its (local) compute process."""


class RegistryError(SnowpipeError):
    """The model registry is unreadable, unwritable or corrupt; nothing was changed."""


class ActionError(SnowpipeError):
    """A gate's action (promote, alert, user-defined) failed."""


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message``: enough to name a failure in one of our messages, no traceback.

    A first line that only announces the next (Snowflake's ``SQL compilation error:`` + newline + what)
    takes the next line along: the what is the part worth reading.
    """
    text = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    head = f"{text[0]} {text[1]}" if len(text) > 1 and text[0].endswith(":") else (text[0] if text else "")
    return f"{type(exc).__name__}: {head}".rstrip(": ")


def deliberate(exc: BaseException) -> bool:
    """An error the plugin raises on purpose (a gate check, a contract, a usage error), not a bug."""
    if isinstance(exc, SnowpipeError):
        return True
    return isinstance(exc, AssertionError) and type(exc).__module__.startswith("pytest_snowpipe.")


def hide_deliberate(excinfo: object) -> bool:
    """``__tracebackhide__`` of the modules a user's failure passes through (pytest calls it).

    pytest hides a frame whose module sets ``__tracebackhide__``, as it cuts its own: a failed
    gate check or contract then shows the user's line and the message, not the plugin's source.
    An unexpected exception (a bug of the plugin) keeps every frame; ``--full-trace`` shows all.
    """
    value = getattr(excinfo, "value", None)
    return isinstance(value, BaseException) and deliberate(value)
