"""Errors the plugin raises; each message names the thing that is wrong and the fix."""
from __future__ import annotations


class SnowpipeError(Exception):
    """Base class of every error pytest-snowpipe raises on purpose."""


class GraphError(SnowpipeError):
    """The fixtures and gates do not form a valid pipeline."""


class RemoteError(SnowpipeError):
    """A remote stage could not make the trip to its (local) compute process."""


class RegistryError(SnowpipeError):
    """The model registry is unreadable, unwritable or corrupt; nothing was changed."""


class ActionError(SnowpipeError):
    """A gate's action (promote, alert, user-defined) failed."""


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message``: enough to name a failure in one of our messages, no traceback."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
