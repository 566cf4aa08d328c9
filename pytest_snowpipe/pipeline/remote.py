"""``sp.remote``: a stage that runs as a Snowflake ML Job, rehearsed locally in a fresh process.

Locally the decorated stage runs in a spawned Python process with its arguments and
result pickled by cloudpickle: the same trip an ML Job's payload makes, so anything that
would not survive it (a lock, an open file, a session) fails here, naming the argument.
Snowpark DataFrames are materialised to pandas before the trip, as a job reads its data.
The options stay on the stage (``__snowpipe_remote__``) for the Task Graph compiler.
"""
from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

REMOTE_ATTR = "__snowpipe_remote__"
_IDENT = re.compile(r'^([A-Za-z_][A-Za-z0-9_$]*|"([^"]|"")+")$')


def _is_identifier(name: str, allow_stage_prefix: bool = False) -> bool:
    if allow_stage_prefix and name.startswith("@"):
        name = name[1:]
    parts = name.split(".")
    return 1 <= len(parts) <= 3 and all(_IDENT.match(p) for p in parts)


@dataclass(frozen=True)
class RemoteSpec:
    """Where and how a remote stage runs in Snowflake (kept for the compiler)."""

    compute_pool: str
    stage_name: str
    target_instances: int = 1
    min_instances: int | None = None
    query_warehouse: str | None = None
    pip_requirements: tuple[str, ...] = ()
    external_access_integrations: tuple[str, ...] = ()
    env_vars: Mapping[str, str] = field(default_factory=dict)

    def validate(self, stage: str) -> None:
        """Raise a ValueError naming the stage and the option when an option is unusable."""
        where = f"sp.remote on stage {stage!r}"
        for opt, value in (("compute_pool", self.compute_pool), ("stage_name", self.stage_name)):
            if not isinstance(value, str) or not _is_identifier(
                value, allow_stage_prefix=opt == "stage_name"
            ):
                raise ValueError(
                    f"{where}: {opt}={value!r} is not a Snowflake identifier; use a name like "
                    f"{'DEMO_POOL' if opt == 'compute_pool' else 'JOB_STAGE'} "
                    "(letters, digits, _ and $, optionally db.schema.name)"
                )
        ti = self.target_instances
        if not isinstance(ti, int) or isinstance(ti, bool) or ti < 1:
            raise ValueError(f"{where}: target_instances={ti!r} is invalid; it must be an integer >= 1")
        mi = self.min_instances
        if mi is not None and (not isinstance(mi, int) or isinstance(mi, bool) or not 1 <= mi <= ti):
            raise ValueError(
                f"{where}: min_instances={mi!r} is invalid; it must be an integer between 1 and "
                f"target_instances ({ti})"
            )
        if self.query_warehouse is not None and not _is_identifier(self.query_warehouse):
            raise ValueError(f"{where}: query_warehouse={self.query_warehouse!r} is not an identifier")
        for eai in self.external_access_integrations:
            if not _is_identifier(eai):
                raise ValueError(f"{where}: external access integration {eai!r} is not an identifier")


def remote(
    compute_pool: str,
    stage_name: str,
    target_instances: int = 1,
    *,
    min_instances: int | None = None,
    query_warehouse: str | None = None,
    pip_requirements: tuple[str, ...] | list[str] = (),
    external_access_integrations: tuple[str, ...] | list[str] = (),
    env_vars: Mapping[str, str] | None = None,
) -> Callable[[F], F]:
    """Mark a stage as an ML Job; locally it runs in a fresh process (see module docstring).

    Put it under ``@pytest.fixture(scope="session")``::

        @pytest.fixture(scope="session")
        @sp.remote(compute_pool="DEMO_POOL", stage_name="JOB_STAGE", target_instances=2)
        def model(split): ...
    """
    spec = RemoteSpec(
        compute_pool=compute_pool,
        stage_name=stage_name,
        target_instances=target_instances,
        min_instances=min_instances,
        query_warehouse=query_warehouse,
        pip_requirements=tuple(pip_requirements),
        external_access_integrations=tuple(external_access_integrations),
        env_vars=dict(env_vars or {}),
    )

    def decorate(func: F) -> F:
        name = getattr(func, "__name__", repr(func))
        spec.validate(name)
        if inspect.isgeneratorfunction(func):
            raise ValueError(
                f"sp.remote on stage {name!r}: a remote stage cannot be a yield fixture (an ML "
                "Job returns one result); move the teardown to a separate fixture."
            )

        @functools.wraps(func)
        def run_remotely(*args: Any, **kwargs: Any) -> Any:
            return run_remote(func, name, spec, args, kwargs)

        setattr(run_remotely, REMOTE_ATTR, spec)
        return run_remotely  # type: ignore[return-value]

    return decorate


def remote_spec(func: Callable[..., Any]) -> RemoteSpec | None:
    """The RemoteSpec of a stage function, or None for a local stage."""
    return getattr(func, REMOTE_ATTR, None)


def materialize(value: Any) -> Any:
    """Turn Snowpark DataFrames (also inside dicts/lists/tuples) into pandas, as a job reads them."""
    from pytest_snowpipe.pipeline.frames import is_snowpark_frame, to_pandas

    if is_snowpark_frame(value):  # DataFrame and its subclasses (Table)
        return to_pandas(value)
    if isinstance(value, dict):
        return {k: materialize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(materialize(v) for v in value)
    return value


def run_remote(
    func: Callable[..., Any], stage: str, spec: RemoteSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Call a remote stage the way an ML Job would: arguments bound, DataFrames read, a fresh process."""
    from pytest_snowpipe.engines.job_process import run_in_fresh_process

    bound = inspect.signature(func).bind(*args, **kwargs)
    arguments = {name: materialize(value) for name, value in bound.arguments.items()}
    env = {**spec.env_vars, "SNOWFLAKE_JOBS_COUNT": str(spec.target_instances), "SNOWPIPE_REMOTE_STAGE": stage}
    return run_in_fresh_process(func, stage, arguments, env)
