"""``--snowpipe-deploy``: turn validated settings into a compile / emulate / deploy call."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_snowpipe.graph import PipelineGraph
    from pytest_snowpipe.settings import Settings


def run_deploy(graph: PipelineGraph, settings: Settings, write: Callable[[str], Any]) -> int:
    """Run the deploy command; usage problems become ``pytest.UsageError``; returns the exit code."""
    from pytest_snowpipe.compile import CompileError, CompileOptions
    from pytest_snowpipe.deploy import DeployOptions, DeployUsageError, execute

    dep = settings.deploy
    assert dep is not None
    packages = None
    if dep.packages:
        from pytest_snowpipe.compile import default_packages

        packages = tuple(dict.fromkeys((*default_packages(graph), *dep.packages)))
    copts = CompileOptions(
        dag_name=dep.dag_name,
        schedule=dep.schedule,
        config=dict(settings.config),
        warehouse=dep.warehouse,
        stage_location=dep.stage_location,
        database=dep.database,
        schema=dep.schema,
        packages=packages,
        notification_integration=dep.notification_integration,
        registry_path=str(settings.registry),
    )
    session_factory = None
    if settings.connection:
        from pytest_snowpipe.backends.connection import create_session

        connection = settings.connection
        session_factory = lambda: create_session(connection)  # noqa: E731
    try:
        return execute(
            graph,
            DeployOptions(compile=copts),
            target=dep.target,
            dry_run=dep.dry_run,
            run_once=dep.run_once,
            session_factory=session_factory,
            write=write,
        )
    except (DeployUsageError, CompileError) as exc:
        raise pytest.UsageError(str(exc)) from None
