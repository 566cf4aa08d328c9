"""A remote stage submitted as a real Snowflake ML Job (``snowflake.ml.jobs.remote``).

Used by compiled tasks on an account and by a local run with ``--snowpipe-remote=job``: the
stage function is decorated with the stage's options and the session, called with its inputs
bound (pickled into the job's payload, the project's modules by value), and its result waited
for. ``remote_factory`` replaces ``snowflake.ml.jobs.remote`` in tests.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pytest_snowpipe.engines.job_process import modules_pickled_by_value, project_modules
from pytest_snowpipe.errors import RemoteError

FAILED_STATES = ("FAILED", "INTERNAL_ERROR", "CANCELLED", "DELETED")


def submit_job(
    func: Callable[..., Any],
    stage: str,
    compute_pool: str,
    options: Mapping[str, Any],
    arguments: Mapping[str, Any],
    session: Any,
    remote_factory: Callable[..., Any] | None = None,
) -> Any:
    """Run ``func(**arguments)`` as an ML Job on ``compute_pool`` and return its result.

    ``options`` are the keyword arguments of ``snowflake.ml.jobs.remote`` (``RemoteSpec.job_options()``).
    A job that ends FAILED (or cancelled, deleted) raises RemoteError with the job's logs.
    """
    factory = remote_factory
    if factory is None:
        from snowflake.ml.jobs import remote as ml_remote

        factory = ml_remote
    with modules_pickled_by_value(project_modules(func)):
        job_fn = factory(compute_pool, session=session, **dict(options))(func)
        job = job_fn(**dict(arguments))
    status = str(job.wait()).upper()
    if any(status.endswith(s) for s in FAILED_STATES):
        try:
            logs = job.get_logs()
        except Exception as exc:  # the logs are a courtesy: the failure is the news
            logs = f"(logs unavailable: {type(exc).__name__})"
        raise RemoteError(f"remote stage {stage!r}: ML Job {getattr(job, 'id', '?')} ended {status}:\n{logs}")
    return job.result()
