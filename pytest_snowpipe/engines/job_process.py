"""The local stand-in for an ML Job's compute pool: a fresh interpreter, inputs and result pickled.

Anything that would not survive a job's trip (a lock, an open file, a session) fails here,
naming the argument. The user's project modules are pickled by value, as they are not
importable where the code runs (a fresh process, a stored procedure, an ML Job).
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pytest_snowpipe.engines import prefetch
from pytest_snowpipe.engines.job_worker import PARENT_ENV, timing_path
from pytest_snowpipe.engines.tempdirs import owned_temporary_directory
from pytest_snowpipe.errors import RemoteError

TEMP_PREFIX = "snowpipe-remote-"  # + the pid of the pytest process that owns the folder
_PHASES: dict[str, dict[str, float]] = {}  # stage -> where its last trip's time went (see trip_phases)


def trip_phases(stage: str) -> dict[str, float] | None:
    """Where the last trip of ``stage`` spent its time, once (the live progress shows it).

    ``entered`` (``time.perf_counter()`` when the trip began, after its inputs were read into
    pandas), then in seconds ``pickle``, ``worker start`` (interpreter start, imports and
    unpickling; ``warm`` is 1 when a waiting worker took it), ``work`` (the stage function),
    ``result pickle``, ``worker exit`` and ``result load`` (unpickling here).
    """
    return _PHASES.pop(stage, None)


def sweep_orphaned_folders() -> None:
    """Remove temp folders left by a pytest process that no longer exists (killed with -9)."""
    from pytest_snowpipe.engines.tempdirs import sweep_orphans

    sweep_orphans()


def project_modules(func: Callable[..., Any]) -> list[Any]:
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
    # installed and standard-library modules are most of sys.modules: tell them by their path as
    # written before resolving any (resolving every module's path cost 0.1 s a call)
    paths = sysconfig.get_paths()
    installed = tuple({paths["stdlib"], paths["platstdlib"]})
    out = []
    for mod in list(sys.modules.values()):
        file = getattr(mod, "__file__", None)
        if not file or not isinstance(file, str):
            continue
        if "site-packages" in file or "dist-packages" in file or file.startswith(installed):
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


PRELOAD_ENV = "SNOWPIPE_PRELOAD"  # comma-separated modules a warm worker imports while it waits
_WARM: list[subprocess.Popen[bytes]] = []  # at most one interpreter, started ahead, waiting for a trip
_PRELOAD: list[str] = []  # what the warm workers of this run import
_TRIPS_LEFT = [0]  # remote stages of this run not yet run: a next warm worker is started only for them


def preload_modules(funcs: Iterable[Callable[..., Any]]) -> list[str]:
    """The libraries the remote stages' code imports (read from their project modules' source).

    A warm worker imports them while the earlier stages run, so the trip pays only for the
    stage's own work. Project modules are left out: they travel pickled by value.
    """
    import ast
    import importlib.util

    names: dict[str, None] = {"cloudpickle": None}
    for func in funcs:
        modules = project_modules(func)
        own = {m.__name__.split(".")[0] for m in modules}
        for mod in modules:
            try:
                tree = ast.parse(Path(mod.__file__).read_text(encoding="utf-8"))
            except (OSError, SyntaxError, TypeError, ValueError):
                continue
            for node in ast.walk(tree):
                found = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
                )
                for name in found:
                    top = name.split(".")[0]
                    if top not in own and top != "__future__":
                        names.setdefault(name, None)
    out = []
    for name in names:
        try:
            if importlib.util.find_spec(name.split(".")[0]) is not None:
                out.append(name)
        except (ImportError, ValueError):
            continue
    return out


def prestart(preload: Iterable[str], trips: int = 1) -> None:
    """Start a worker interpreter now that imports ``preload`` and then waits for one trip.

    ``trips``: how many remote stages the run has; after each trip a next worker is started
    only while some are left (one started during a trip would take the trip's CPU on a small
    machine, and one no stage uses is pure cost).
    """
    _TRIPS_LEFT[0] = trips
    _PRELOAD[:] = list(preload)
    _start_warm()


def _start_warm() -> None:
    if _TRIPS_LEFT[0] <= 0 or any(proc.poll() is None for proc in _WARM):
        return
    env = dict(os.environ)
    env[PARENT_ENV] = str(os.getpid())
    env[PRELOAD_ENV] = ",".join(_PRELOAD)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_snowpipe.engines.job_worker", "--warm"], stdin=subprocess.PIPE, env=env,
        start_new_session=True,  # its own process group: what the stage starts dies with it
    )
    _WARM[:] = [proc]
    if not getattr(prestart, "_registered", False):
        import atexit

        atexit.register(stop_warm)
        prestart._registered = True  # type: ignore[attr-defined]


def stop_warm() -> None:
    """End a worker that no trip used (the run is over)."""
    for proc in _WARM:
        end_group(proc)
    _WARM.clear()


def end_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill a worker's process group (it leads its own session): the worker and whatever the stage
    started, which would otherwise outlive the trip as orphans."""
    import signal

    if os.name == "posix":
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _warm_run(inp: Path, out: Path, env: dict[str, str]) -> int | None:
    """Hand the trip to the waiting worker; None when there is none."""
    import json

    proc = next((p for p in _WARM if p.poll() is None), None)
    if proc is None or proc.stdin is None:
        return None
    _WARM.clear()
    message = json.dumps({"payload": str(inp), "result": str(out), "env": env}) + "\n"
    try:
        proc.stdin.write(message.encode())
        proc.stdin.close()
    except OSError:  # it died while waiting: the caller starts a fresh one
        end_group(proc)
        return None
    try:
        return proc.wait()
    finally:
        end_group(proc)


SESSION_ENV = "SNOWPIPE_ENGINE_SESSION"  # JSON connection parameters of the parent's embedded engine


def _engine_session_params(payload: bytes) -> str | None:
    """The parent's embedded engine, for a stage whose shipped code asks for the active session.

    An ML Job has a session of its own (``get_active_session()``); the fresh process gets one on
    the same engine as pytest, so the stage reads the same tables. Opening it costs about a
    second, so only code that names ``get_active_session`` (in the pickled payload) gets one.
    """
    if b"get_active_session" not in payload:
        return None
    engines = sys.modules.get("pytest_snowpipe.doubles.sql.embedded")
    engine = engines.running_engine() if engines is not None else None
    if engine is None:
        return None
    import json

    return json.dumps(engine.connection_params())


def run_in_fresh_process(
    func: Callable[..., Any],
    stage: str,
    arguments: dict[str, Any],
    env_vars: dict[str, str],
    prepare: Callable[[dict[str, Any], Path], dict[str, Any]] | None = None,
) -> Any:
    """Run ``func(**arguments)`` in a spawned interpreter, the way an ML Job would.

    ``prepare(arguments, folder)`` readies the arguments inside the trip's temp folder before the
    payload is pickled (the pipeline reads Snowpark frames into pandas and spills each to a file
    of its own there, one at a time: see ``engines/spilled.py``).
    """
    import cloudpickle

    for name, value in arguments.items():
        _refuse_session(stage, name, value)

    sweep_orphaned_folders()
    with owned_temporary_directory(TEMP_PREFIX) as tmp:
        if prepare is not None:
            arguments = prepare(arguments, Path(tmp))
        entered = time.perf_counter()
        with modules_pickled_by_value(project_modules(func)):
            try:  # one pass over the data; only a failure pays for finding the culprit
                payload = cloudpickle.dumps((func, arguments))
            except Exception as exc:
                raise _unpicklable_part(stage, arguments, exc) from None
        inp, out = Path(tmp) / "payload.pkl", Path(tmp) / "result.pkl"
        inp.write_bytes(payload)
        env = dict(os.environ)
        env.update(env_vars)
        env[PARENT_ENV] = str(os.getpid())  # the worker exits (and cleans up) when this process dies
        session_params = _engine_session_params(payload)
        if session_params is not None:
            env[SESSION_ENV] = session_params
        trip_env = {k: v for k, v in env.items() if os.environ.get(k) != v}  # what this trip adds
        pickled, handed = time.perf_counter(), time.time()
        prefetching = prefetch.start(_PRELOAD)  # the result's libraries, imported here while the worker works
        code = _warm_run(inp, out, trip_env)
        warm = code is not None
        if code is None:
            worker = subprocess.Popen(
                [sys.executable, "-m", "pytest_snowpipe.engines.job_worker", str(inp), str(out)],
                env=env, start_new_session=True,  # its own process group: what the stage starts dies with it
            )
            try:
                code = worker.wait()
            finally:  # also on Ctrl-C: the worker and every process the stage started
                end_group(worker)
        returned = time.time()
        _TRIPS_LEFT[0] -= 1
        _start_warm()  # ready for the next remote stage, if any (started after this trip: never competing with it)
        if not out.exists():
            raise RemoteError(
                f"remote stage {stage!r}: its process exited with code {code} "
                "without a result (killed, or out of memory?)"
            )
        if prefetching is not None:  # never two threads importing one package: a failed import in one
            prefetching.join()  # (a deadlock guard) removes the package the other is importing (KeyError)
        ok, result, remote_tb = cloudpickle.loads(out.read_bytes())
        _PHASES[stage] = _phases(entered, pickled, handed, returned, warm, timing_path(out))
    if ok:
        return result
    if isinstance(result, BaseException):
        result.add_note(f"raised in remote stage {stage!r} (fresh process):\n{remote_tb}")
        raise result
    raise RemoteError(f"remote stage {stage!r} failed in its process:\n{remote_tb}")


def _phases(entered: float, pickled: float, handed: float, returned: float, warm: bool, timing: Path) -> dict[str, float]:
    """The trip's phases from this side's clock and the worker's (wall clock: two processes)."""
    import json

    now = time.time()
    phases = {"entered": entered, "pickle": pickled - entered, "warm": float(warm), "result load": now - returned}
    try:
        worker = json.loads(timing.read_text())
        start, end, written = (float(worker[k]) for k in ("work_start", "work_end", "result_written"))
    except (OSError, ValueError, KeyError, TypeError):
        phases["trip"] = returned - handed  # the worker did not say (it failed): one figure for the trip
        return phases
    phases.update({
        "worker start": max(0.0, start - handed),  # interpreter, imports, unpickling the inputs
        "work": end - start,
        "result pickle": max(0.0, written - end),
        "worker exit": max(0.0, returned - written),  # the interpreter's shutdown
    })
    return phases
