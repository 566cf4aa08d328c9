"""``--snowpipe-deploy``: turn validated settings into a compile / emulate / deploy call."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_snowpipe.graph import PipelineGraph
    from pytest_snowpipe.settings import Settings


def run_deploy(
    graph: PipelineGraph, settings: Settings, write: Callable[[str], Any], config: pytest.Config | None = None
) -> int:
    """Run the deploy command; usage problems become ``pytest.UsageError``; returns the exit code.

    With ``config``, the plugin's hooks shape the compile: ``pytest_snowpipe_artifact_location``
    (where outputs live) and ``pytest_snowpipe_compile_task`` (a last look at every task).
    """
    from pytest_snowpipe.compile import CompileError, CompileOptions
    from pytest_snowpipe.deploy import DeployOptions, DeployUsageError, execute

    dep = settings.deploy
    assert dep is not None
    packages = None
    if dep.packages:
        from pytest_snowpipe.compile import default_packages

        packages = tuple(dict.fromkeys((*default_packages(graph), *dep.packages)))
    stage_location = dep.stage_location
    artifact_location = adjust_task = None
    if config is not None:
        hook = config.hook
        stage_location = hook.pytest_snowpipe_artifact_location(stage=None, config=config) or stage_location
        artifact_location = lambda stage: hook.pytest_snowpipe_artifact_location(  # noqa: E731
            stage=stage, config=config
        )
        adjust_task = lambda task, kind, node: hook.pytest_snowpipe_compile_task(  # noqa: E731
            task=task, kind=kind, node=node, config=config
        )
    copts = CompileOptions(
        dag_name=dep.dag_name,
        schedule=dep.schedule,
        config=dict(settings.config),
        warehouse=dep.warehouse,
        stage_location=stage_location,
        database=dep.database,
        schema=dep.schema,
        packages=packages,
        notification_integration=dep.notification_integration,
        registry_path=str(settings.registry),
        artifact_location=artifact_location,
        adjust_task=adjust_task,
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
