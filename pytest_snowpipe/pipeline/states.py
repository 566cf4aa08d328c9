"""Verdicts and task states, defined once: strings on the wire and in reports, enums in the code.

``StrEnum`` members compare equal to their strings and serialise as them, so report.json, JUnit
properties and Snowflake's own state strings are unchanged. What is kept on a record is the plain
string (``str(member)``): execnet, which carries xdist workers' reports, sends only exact built-ins.
"""
from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """A gate's verdict locally and in a graph run; INTERRUPTED only for a whole run."""

    PASS = "PASS"
    FAIL = "FAIL"
    ERROR = "ERROR"
    SKIPPED = "SKIPPED"
    NOT_RUN = "NOT RUN"
    INTERRUPTED = "INTERRUPTED"


class TaskState(StrEnum):
    """A Task Graph task's (and graph run's) state, as Snowflake's TASK_HISTORY names it."""

    SCHEDULED = "SCHEDULED"
    EXECUTING = "EXECUTING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"
    NOT_EXECUTED = "NOT_EXECUTED"


RUNNING = (TaskState.SCHEDULED, TaskState.EXECUTING)

__all__ = ["RUNNING", "TaskState", "Verdict"]
