"""``sp.remote``: a stage that runs as a Snowflake ML Job, rehearsed locally in a fresh process.

Locally the decorated stage runs in a spawned Python process with its arguments and
result pickled by cloudpickle: the same trip an ML Job's payload makes, so anything that
would not survive it (a lock, an open file, a session) fails here, naming the argument.
Snowpark DataFrames are materialised to pandas before the trip, as a job reads its data.
The options stay on the stage (``__snowpipe_remote__``) for the Task Graph compiler.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from pytest_snowpipe.errors import SnowpipeError

F = TypeVar("F", bound=Callable[..., Any])

REMOTE_ATTR = "__snowpipe_remote__"
_IDENT = re.compile(r'^([A-Za-z_][A-Za-z0-9_$]*|"([^"]|"")+")$')


def _is_identifier(name: str, allow_stage_prefix: bool = False) -> bool:
    if allow_stage_prefix and name.startswith("@"):
        name = name[1:]
    parts = name.split(".")
    return 1 <= len(parts) <= 3 and all(_IDENT.match(p) for p in parts)


# Options of ``snowflake.ml.jobs.remote`` (snowflake-ml-python 2.6) that we know natively: the
# named parameters of its signature and the keyword arguments its docstring lists. An option
# outside this set is looked up in the *installed* ``remote`` (imported only then): a newer
# snowflake-ml-python may take more, and they are passed through as they are.
NATIVE_OPTIONS = (
    "compute_pool", "stage_name", "target_instances", "pip_requirements", "external_access_integrations",
    "database", "schema", "min_instances", "env_vars", "enable_metrics", "query_warehouse", "imports",
    "runtime_environment", "artifact_repositories", "name", "comment",
)
_NOT_STORED = ("session",)  # a session is not an option of the stage: the job gets the task's own


class RemoteOptionError(SnowpipeError, TypeError):
    """An option ``sp.remote`` does not know (neither we nor the installed snowflake.ml.jobs.remote)."""


def installed_options() -> tuple[str, ...]:
    """The options the installed ``snowflake.ml.jobs.remote`` takes: its named parameters and the
    keyword arguments its docstring lists ("Supported arguments"). Imports snowflake.ml (slow)."""
    from snowflake.ml.jobs import remote as ml_remote

    names = [
        p.name for p in inspect.signature(ml_remote).parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD and p.name not in _NOT_STORED
    ]
    doc = inspect.getdoc(ml_remote) or ""
    if "Supported arguments:" in doc:
        block = doc.split("Supported arguments:", 1)[1]
        names += re.findall(r"^\s+(\w+) \(", block, flags=re.M)
    return tuple(dict.fromkeys(names))


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options not known natively, checked against the installed ``snowflake.ml.jobs.remote``.

    Raises RemoteOptionError naming the option and listing the valid ones.
    """
    unknown = [k for k in options if k not in NATIVE_OPTIONS]
    if not unknown:
        return {}
    try:
        valid = installed_options()
    except ImportError:
        valid = NATIVE_OPTIONS
    bad = [k for k in unknown if k not in valid or k in _NOT_STORED]
    if bad:
        raise RemoteOptionError(
            f"sp.remote got unknown option(s) {', '.join(repr(b) for b in bad)}. Valid options (those of "
            f"the installed snowflake.ml.jobs.remote): {', '.join(valid)}"
        )
    return {k: options[k] for k in unknown}


def _tuple(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@dataclass(frozen=True)
class RemoteSpec:
    """Where and how a remote stage runs in Snowflake (kept for the compiler).

    Every option of ``snowflake.ml.jobs.remote``; ``extra`` holds those of a newer installed
    snowflake-ml-python that we do not know by name. :meth:`job_options` is what the job is
    submitted with.
    """

    compute_pool: str
    stage_name: str
    target_instances: int = 1
    min_instances: int | None = None
    query_warehouse: str | None = None
    pip_requirements: tuple[str, ...] = ()
    external_access_integrations: tuple[str, ...] = ()
    env_vars: Mapping[str, str] = field(default_factory=dict)
    database: str | None = None
    schema: str | None = None
    enable_metrics: bool | None = None
    imports: tuple[Any, ...] = ()
    runtime_environment: str | None = None
    artifact_repositories: tuple[str, ...] = ()
    name: str | None = None
    comment: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def job_options(self) -> dict[str, Any]:
        """The keyword arguments for ``snowflake.ml.jobs.remote`` (unset options left out)."""
        out: dict[str, Any] = {"stage_name": self.stage_name, "target_instances": self.target_instances}
        for opt in NATIVE_OPTIONS[3:]:
            value = getattr(self, opt)
            if value is None or (isinstance(value, (tuple, Mapping)) and not value):
                continue
            out[opt] = dict(value) if isinstance(value, Mapping) else list(value) if isinstance(value, tuple) else value
        out.update(self.extra)
        return out

    def describe(self) -> str:
        """One line for the plan: pool, job stage, instances, then every other option that is set."""
        head = (
            f"on compute pool {self.compute_pool}, job stage {self.stage_name}, {self.target_instances} instance(s)"
        )
        shown = {"compute_pool", "stage_name", "target_instances"}
        rest = {k: v for k, v in self.job_options().items() if k not in shown}
        return head + "".join(f", {k}={v!r}" for k, v in rest.items())

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
        for opt in ("query_warehouse", "database", "schema"):
            value = getattr(self, opt)
            if value is not None and (not isinstance(value, str) or not _is_identifier(value)):
                raise ValueError(f"{where}: {opt}={value!r} is not an identifier")
        if self.database and not self.schema:
            raise ValueError(f"{where}: database={self.database!r} needs schema= too (snowflake.ml.jobs does)")
        for eai in self.external_access_integrations:
            if not _is_identifier(eai):
                raise ValueError(f"{where}: external access integration {eai!r} is not an identifier")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.env_vars.items()):
            raise ValueError(f"{where}: env_vars takes a dict of str to str")


_ERROR_ATTR = "__snowpipe_remote_error__"


@overload
def remote(compute_pool: F) -> F: ...  # @sp.remote without parentheses: a usage error, see _bare


@overload
def remote(compute_pool: str, stage_name: str, target_instances: int = 1, **options: Any) -> Callable[[F], F]: ...


def remote(
    compute_pool: Any,
    stage_name: Any = None,
    target_instances: int = 1,
    **options: Any,
) -> Any:
    """Mark a stage as an ML Job; locally it runs in a fresh process (see module docstring).

    Takes every option of the installed ``snowflake.ml.jobs.remote`` (``database``, ``schema``,
    ``min_instances``, ``pip_requirements``, ``external_access_integrations``, ``env_vars``,
    ``query_warehouse``, ``runtime_environment``, ...). Put it under
    ``@pytest.fixture(scope="session")``::

        @pytest.fixture(scope="session")
        @sp.remote(compute_pool="DEMO_POOL", stage_name="JOB_STAGE", target_instances=2)
        def model(split): ...

    An unknown option is a RemoteOptionError (a TypeError) naming it and the valid ones; under
    pytest it is reported when the pipeline is built (a usage error, not a conftest traceback).
    """
    if callable(compute_pool):
        return _bare(compute_pool)
    if stage_name is None:
        raise TypeError("sp.remote() missing 1 required argument: 'stage_name' (the ML Job's stage)")
    error: RemoteOptionError | None = None
    try:
        extra = check_options(options)
    except RemoteOptionError as exc:
        error, extra = exc, {}
    known = {k: v for k, v in options.items() if k in NATIVE_OPTIONS}
    spec = RemoteSpec(
        compute_pool=compute_pool,
        stage_name=stage_name,
        target_instances=target_instances,
        min_instances=known.get("min_instances"),
        query_warehouse=known.get("query_warehouse"),
        pip_requirements=_tuple(known.get("pip_requirements")),
        external_access_integrations=_tuple(known.get("external_access_integrations")),
        env_vars=dict(known.get("env_vars") or {}),
        database=known.get("database"),
        schema=known.get("schema"),
        enable_metrics=known.get("enable_metrics"),
        imports=_tuple(known.get("imports")),
        runtime_environment=known.get("runtime_environment"),
        artifact_repositories=_tuple(known.get("artifact_repositories")),
        name=known.get("name"),
        comment=known.get("comment"),
        extra=extra,
    )

    def decorate(func: F) -> F:
        __tracebackhide__ = True  # a usage error points at the user's decorator line
        from pytest_snowpipe.pipeline.order import refuse_fixture

        refuse_fixture(func, "sp.remote(...)")
        name = getattr(func, "__name__", repr(func))
        if error is None:
            spec.validate(name)
        if inspect.isgeneratorfunction(func):
            raise ValueError(
                f"sp.remote on stage {name!r}: a remote stage cannot be a yield fixture (an ML "
                "Job returns one result); move the teardown to a separate fixture."
            )

        @functools.wraps(func)
        def run_remotely(*args: Any, **kwargs: Any) -> Any:
            if error is not None:
                raise error
            return run_remote(func, name, spec, args, kwargs)

        setattr(run_remotely, REMOTE_ATTR, spec)
        if error is not None:
            setattr(run_remotely, _ERROR_ATTR, error)
        return run_remotely  # type: ignore[return-value]

    return decorate


def _bare(func: F) -> F:
    """``@sp.remote`` written without parentheses: the stage is marked with a usage error naming the fix
    (reported when the graph is built), instead of Python's "missing 'stage_name'" at import."""
    name = getattr(func, "__name__", repr(func))
    error = RemoteOptionError(
        f"sp.remote on stage {name!r} is written without parentheses; it takes the ML Job's compute pool and "
        'stage: @sp.remote(compute_pool="POOL", stage_name="JOB_STAGE", target_instances=1)'
    )

    @functools.wraps(func)
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise error

    setattr(refuse, _ERROR_ATTR, error)
    return refuse  # type: ignore[return-value]


def remote_error(func: Callable[..., Any]) -> RemoteOptionError | None:
    """The option error of an ``sp.remote`` stage (reported by the graph as a usage error), or None."""
    return getattr(func, _ERROR_ATTR, None)


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


# --snowpipe-remote=job: while set (the plugin sets it around a local run's test loop), remote stages
# are submitted as real ML Jobs on the session this returns, instead of a fresh local process.
_JOBS: contextvars.ContextVar[tuple[Callable[[], Any], Callable[..., Any] | None] | None] = contextvars.ContextVar(
    "snowpipe_remote_jobs", default=None
)


@contextlib.contextmanager
def jobs_via(get_session: Callable[[], Any], remote_factory: Callable[..., Any] | None = None) -> Iterator[None]:
    """While active, remote stages run as ML Jobs on ``get_session()`` (``remote_factory``: a test's
    stand-in for ``snowflake.ml.jobs.remote``)."""
    token = _JOBS.set((get_session, remote_factory))
    try:
        yield
    finally:
        _JOBS.reset(token)


def run_remote(
    func: Callable[..., Any], stage: str, spec: RemoteSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Call a remote stage the way an ML Job would: arguments bound, DataFrames read, a fresh process
    (or, under :func:`jobs_via`, a real ML Job)."""
    from pytest_snowpipe.engines.job_process import run_in_fresh_process

    bound = inspect.signature(func).bind(*args, **kwargs)
    jobs = _JOBS.get()
    if jobs is not None:
        from pytest_snowpipe.engines.ml_job import submit_job

        arguments = {name: materialize(value) for name, value in bound.arguments.items()}
        get_session, factory = jobs
        return submit_job(func, stage, spec.compute_pool, spec.job_options(), arguments, get_session(), factory)
    from pytest_snowpipe.pipeline.trip_inputs import spill_inputs

    env = {**spec.env_vars, "SNOWFLAKE_JOBS_COUNT": str(spec.target_instances), "SNOWPIPE_REMOTE_STAGE": stage}
    # frames are read into pandas one at a time, each spilled to the trip's folder (the same frames arrive)
    return run_in_fresh_process(func, stage, dict(bound.arguments), env, prepare=spill_inputs)
