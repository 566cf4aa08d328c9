"""``sp.remote``: a stage that runs as a Snowflake ML Job, rehearsed locally in a fresh process.

Locally the decorated stage runs in a spawned Python process with its arguments and
result pickled by cloudpickle: the same trip an ML Job's payload makes, so anything that
would not survive it (a lock, an open file, a session) fails here, naming the argument.
Snowpark DataFrames are materialised to pandas before the trip, as a job reads its data.
The options stay on the stage (``__snowpipe_remote__``) for the Task Graph compiler.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pytest_snowpipe.errors import RemoteError

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
            return run_in_fresh_process(func, name, spec, args, kwargs)

        setattr(run_remotely, REMOTE_ATTR, spec)
        return run_remotely  # type: ignore[return-value]

    return decorate


def remote_spec(func: Callable[..., Any]) -> RemoteSpec | None:
    """The RemoteSpec of a stage function, or None for a local stage."""
    return getattr(func, REMOTE_ATTR, None)


def materialize(value: Any) -> Any:
    """Turn Snowpark DataFrames (also inside dicts/lists/tuples) into pandas, as a job reads them."""
    from pytest_snowpipe.frames import is_snowpark_frame, to_pandas

    if is_snowpark_frame(value):  # DataFrame and its subclasses (Table)
        return to_pandas(value)
    if isinstance(value, dict):
        return {k: materialize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(materialize(v) for v in value)
    return value


def _project_modules(func: Callable[..., Any]) -> list[Any]:
    """Modules that the child cannot import by name: the stage's own and the project's.

    pytest imports conftest and test modules from the rootdir, and the stage may call
    helpers from sibling modules: all of those are pickled by value.
    """
    target = sys.modules.get(getattr(func, "__module__", ""), None)
    roots: list[Path] = []
    if target is not None and getattr(target, "__file__", None):
        roots.append(Path(target.__file__).resolve().parent)  # type: ignore[arg-type]
    roots.append(Path.cwd().resolve())
    site = [Path(p).resolve() for p in sys.path if "site-packages" in p or "dist-packages" in p]
    out = []
    for mod in list(sys.modules.values()):
        file = getattr(mod, "__file__", None)
        if not file or not isinstance(file, str):
            continue
        path = Path(file).resolve()
        if any(path.is_relative_to(s) for s in site) or "site-packages" in path.parts:
            continue
        if mod.__name__.startswith(("pytest_snowpipe", "_pytest", "pytest")):
            continue
        if any(path.is_relative_to(r) for r in roots):
            out.append(mod)
    if target is not None and target not in out:
        out.append(target)
    return out


@contextlib.contextmanager
def modules_pickled_by_value(modules: Iterable[Any]) -> Iterator[None]:
    """While active, cloudpickle copies these modules' functions by value (they are not
    importable where the code runs: a fresh process, a stored procedure, an ML Job)."""
    import cloudpickle

    registered = []
    for mod in modules:
        try:
            cloudpickle.register_pickle_by_value(mod)
            registered.append(mod)
        except (ValueError, TypeError):  # not in sys.modules, or already registered
            continue
    try:
        yield
    finally:
        for mod in registered:
            with contextlib.suppress(ValueError):
                cloudpickle.unregister_pickle_by_value(mod)


def _describe_unpicklable(stage: str, what: str, exc: BaseException) -> RemoteError:
    return RemoteError(
        f"remote stage {stage!r}: {what} cannot make the trip to a compute pool "
        f"({type(exc).__name__}: {exc}). An ML Job receives its inputs pickled: pass data "
        "(DataFrames, arrays, plain values), not locks, open files, sessions or connections."
    )


def _refuse_session(stage: str, name: str, value: Any) -> None:
    if type(value).__name__ == "Session" and type(value).__module__.startswith("snowflake.snowpark"):
        raise RemoteError(
            f"remote stage {stage!r}: argument {name!r} is a Snowpark Session, which cannot travel "
            "to an ML Job; the job has its own session: call "
            "snowflake.snowpark.context.get_active_session() inside the stage instead."
        )


def _unpicklable_part(stage: str, arguments: dict[str, Any], exc: BaseException) -> RemoteError:
    """After the payload failed to pickle: name the first argument that cannot, else the function."""
    import cloudpickle

    for name, value in arguments.items():
        try:
            cloudpickle.dumps(value)
        except Exception as arg_exc:  # cloudpickle raises TypeError, PicklingError, AttributeError...
            return _describe_unpicklable(stage, f"argument {name!r}", arg_exc)
    return _describe_unpicklable(stage, "the stage function", exc)


def run_in_fresh_process(
    func: Callable[..., Any],
    stage: str,
    spec: RemoteSpec,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Run ``func(*args, **kwargs)`` in a spawned interpreter, the way an ML Job would."""
    import cloudpickle

    bound = inspect.signature(func).bind(*args, **kwargs)
    arguments = {name: materialize(value) for name, value in bound.arguments.items()}
    for name, value in arguments.items():
        _refuse_session(stage, name, value)

    with modules_pickled_by_value(_project_modules(func)):
        try:  # one pass over the data; only a failure pays for finding the culprit
            payload = cloudpickle.dumps((func, arguments))
        except Exception as exc:
            raise _unpicklable_part(stage, arguments, exc) from None

    with tempfile.TemporaryDirectory(prefix="snowpipe-remote-") as tmp:
        inp, out = Path(tmp) / "payload.pkl", Path(tmp) / "result.pkl"
        inp.write_bytes(payload)
        env = dict(os.environ)
        env.update(spec.env_vars)
        env["SNOWFLAKE_JOBS_COUNT"] = str(spec.target_instances)
        env["SNOWPIPE_REMOTE_STAGE"] = stage
        proc = subprocess.run(
            [sys.executable, "-m", "pytest_snowpipe.remote_worker", str(inp), str(out)],
            env=env,
            check=False,
        )
        if not out.exists():
            raise RemoteError(
                f"remote stage {stage!r}: its process exited with code {proc.returncode} "
                "without a result (killed, or out of memory?)"
            )
        ok, result, remote_tb = cloudpickle.loads(out.read_bytes())
    if ok:
        return result
    if isinstance(result, BaseException):
        result.add_note(f"raised in remote stage {stage!r} (fresh process):\n{remote_tb}")
        raise result
    raise RemoteError(f"remote stage {stage!r} failed in its process:\n{remote_tb}")
