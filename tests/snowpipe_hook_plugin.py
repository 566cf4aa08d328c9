"""A test plugin implementing every pytest-snowpipe hookspec; each behaviour is switched on by
an environment variable so one plugin serves every test in ``test_hookspecs.py``.

Observations go to the file named by ``HOOKTEST_LOG`` (one JSON object per line).
"""
from __future__ import annotations

import json
import os
from typing import Any

import pytest


def _log(event: str, **data: Any) -> None:
    path = os.environ.get("HOOKTEST_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"event": event, **data}) + "\n")


def pytest_snowpipe_graph_built(graph: Any, config: pytest.Config) -> str | None:
    _log("graph_built", stages=[s.name for s in graph.stages], gates=[g.name for g in graph.gates])
    return os.environ.get("HOOKTEST_VETO") or None


def pytest_snowpipe_compile_task(task: Any, kind: str, node: Any, config: pytest.Config) -> None:
    _log("compile_task", task=task.name, kind=kind, node=getattr(node, "name", None))
    warehouse = os.environ.get("HOOKTEST_MODEL_WAREHOUSE")
    if warehouse and node is not None and node.name == "model" and kind != "branch":
        task.warehouse = warehouse


def pytest_snowpipe_artifact_location(stage: Any, config: pytest.Config) -> str | None:
    if stage is None:
        return os.environ.get("HOOKTEST_GRAPH_STAGE") or None
    if stage.name == "model":
        return os.environ.get("HOOKTEST_MODEL_STAGE") or None
    return None


def pytest_snowpipe_alert(ctx: Any, text: str) -> Any:
    if not os.environ.get("HOOKTEST_PAGER"):
        return None
    from pytest_snowpipe import ActionOutcome

    _log("alert", gate=ctx.gate.name, verdict=ctx.verdict, text=text)
    return ActionOutcome("alert", f"paged on-call: {ctx.gate.name} {ctx.verdict}")


def pytest_snowpipe_promote_before(ctx: Any, model_name: str) -> None:
    _log("promote_before", model=model_name)
    if os.environ.get("HOOKTEST_FREEZE"):
        raise RuntimeError(f"model freeze: {model_name} may not change today")


def pytest_snowpipe_promote_after(ctx: Any, version: Any) -> None:
    _log("promote_after", model=version.model_name, version=version.version)


def pytest_snowpipe_report_sections(report: dict[str, Any], config: pytest.Config) -> list[tuple[str, str]] | None:
    title = os.environ.get("HOOKTEST_SECTION")
    if not title:
        return None
    return [(title, f"{len(report.get('stages', []))} stages seen by the hook plugin")]
