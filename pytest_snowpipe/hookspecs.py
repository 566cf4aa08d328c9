"""Extension points of pytest-snowpipe: hooks other plugins (or a conftest.py) implement.

Added from ``pytest_addhooks`` (pytest-xdist's ``newhooks.py`` habit). Every hook takes
keyword arguments; implement only the ones you need, with any subset of the arguments.
Hooks marked ``firstresult`` provide one thing: the first implementation that returns
something other than ``None`` wins, and the plugin's own default runs last.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_snowpipe.actions.context import ActionContext, ActionOutcome
    from pytest_snowpipe.pipeline.graph import Gate, PipelineGraph, Stage
    from pytest_snowpipe.registry.local import ModelVersion


def pytest_snowpipe_graph_built(graph: PipelineGraph, config: pytest.Config) -> str | None:
    """The pipeline graph was built from the collected gates: inspect it, or veto it.

    Return a reason (a string) to veto: the run stops with a usage error that lists every
    plugin's reason. Return ``None`` to accept. Called once per session, before any stage runs
    and before any compile or deploy.
    """


def pytest_snowpipe_compile_task(
    task: Any, kind: str, node: Stage | Gate | None, config: pytest.Config
) -> None:
    """A ``snowflake.core`` ``DAGTask`` of the compiled graph, before it is checked and shipped.

    Adjust it in place: ``task.warehouse``, ``task.condition``, ``task.comment``,
    ``task.user_task_timeout_ms``, ``task.session_parameters``... ``kind`` is ``"stage"``,
    ``"remote ML Job"``, ``"branch"``, ``"action"`` or ``"finalizer"``; ``node`` is the pipeline
    stage or gate it came from (the gate for its action tasks, ``None`` for the finalizer).
    Runs for ``--snowpipe-deploy`` in every target (dry run, emulator, Snowflake), so what is
    rehearsed is what ships; the pickle check and the plan run after the adjustments.
    """


@pytest.hookspec(firstresult=True)
def pytest_snowpipe_artifact_location(stage: Stage | None, config: pytest.Config) -> str | None:
    """Where a compiled task stores its output files: a Snowflake stage path such as ``@ML.OUT``.

    ``stage`` is the pipeline stage, or ``None`` for the graph-wide location (task code and the
    per-run index). Returning ``None`` keeps the default: the graph-wide location for a stage,
    and the ``snowpipe_stage_location`` ini value for the graph.
    """


@pytest.hookspec(firstresult=True)
def pytest_snowpipe_alert(ctx: ActionContext, text: str) -> ActionOutcome | None:
    """Deliver an alert (Slack, e-mail, PagerDuty...). Return an ``ActionOutcome`` to claim it.

    The plugin's own implementation runs last: it reports in the terminal summary and posts
    to the webhook named by ``snowpipe_alert_webhook_env``. ``text`` never holds a secret.
    """


def pytest_snowpipe_promote_before(ctx: ActionContext, model_name: str) -> None:
    """A model is about to become the default. Raise to stop the promote (the registry is untouched).

    Not called when the promote is a no-op: the default version already has the same code,
    data and metrics fingerprints, so nothing is written (the summary says "unchanged").
    """


def pytest_snowpipe_promote_after(ctx: ActionContext, version: ModelVersion) -> None:
    """A model version became the default (hand it to a serving system, post a message...).

    Not called for a no-op promote (the default was already this code, data and metrics):
    no new version exists to hand on.
    """


def pytest_snowpipe_report_sections(report: dict[str, Any], config: pytest.Config) -> list[tuple[str, str]] | None:
    """Extra sections for the run report: a list of ``(title, markdown)`` pairs.

    ``report`` is the JSON report being written (read it, do not change it). Each section is
    added to ``report.md`` under its title and to ``report.json`` under ``"sections"``.
    """
