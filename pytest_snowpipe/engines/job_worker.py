"""Entry point of the fresh process a remote stage runs in: load, call, store the result."""
from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

PARENT_ENV = "SNOWPIPE_PARENT_PID"  # set by job_process: the pytest process that waits for this one
READY_ENV = "SNOWPIPE_WARM_READY"  # a file a warm worker creates once its libraries are imported


def timing_path(result: Path) -> Path:
    """Where the worker writes when the stage function started and ended (wall clock, JSON)."""
    return result.with_name(result.stem + ".timing.json")


_TRIP: dict[str, Path | None] = {}  # "folder": the trip's temp folder, once known (a warm worker learns it late)


def die_with_parent(parent: int, folder: Path | None) -> None:
    """Exit, removing ``folder`` (the trip's temp folder), as soon as the pytest process is gone.

    pytest killed with ``kill -9`` cannot stop its workers: on Linux the kernel sends this
    process SIGTERM when its parent dies (``PR_SET_PDEATHSIG``); everywhere a daemon thread
    also notices the parent change (``os.getppid``). Both clean up and exit at once, taking the
    worker's process group along (it leads its own): the processes the stage itself started.
    """
    import shutil
    import signal
    import threading

    watching = "folder" in _TRIP
    _TRIP["folder"] = folder
    if watching:  # a warm worker set the watch up before it knew its trip: only the folder changes
        return

    def leave(*_: object) -> None:
        trip = _TRIP.get("folder")
        if trip is not None:
            shutil.rmtree(trip, ignore_errors=True)
        if hasattr(os, "killpg") and os.getpgid(0) == os.getpid():  # the leader of its own group (never pytest's)
            os.killpg(os.getpid(), signal.SIGKILL)  # what the stage started goes too, then this process
        os._exit(1)

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            signal.signal(signal.SIGTERM, leave)
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError, ValueError):
            pass
    if os.getppid() != parent:  # gone before the watch was set up
        leave()

    def watch() -> None:
        stop = threading.Event()
        while not stop.wait(0.2):
            if os.getppid() != parent:
                leave()

    threading.Thread(target=watch, name="snowpipe-parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    """``python -m pytest_snowpipe.engines.job_worker PAYLOAD RESULT``."""
    import cloudpickle

    inp, out = Path(argv[0]), Path(argv[1])
    if os.environ.get(PARENT_ENV, "").isdigit():
        die_with_parent(int(os.environ[PARENT_ENV]), inp.parent)
    params = os.environ.get("SNOWPIPE_ENGINE_SESSION")
    if params:  # the stage asks for the active session: one on the parent's embedded engine
        import json

        from snowflake.snowpark import Session

        from pytest_snowpipe.doubles.sql import bulk_load

        bulk_load.install()
        Session.builder.configs(json.loads(params)).create()
    func, arguments = cloudpickle.loads(inp.read_bytes())
    stage = getattr(func, "__name__", "?")
    import json
    import time

    started = time.time()
    try:
        result = func(**arguments)
    except BaseException as exc:  # report every failure to the parent, which re-raises it
        tb = traceback.format_exc()
        try:
            blob = cloudpickle.dumps((False, exc, tb))
        except Exception:
            blob = cloudpickle.dumps((False, None, tb))
        out.write_bytes(blob)
        return 1
    ended = time.time()
    try:
        blob = cloudpickle.dumps((True, result, ""))
    except Exception as exc:
        msg = (
            f"remote stage {stage!r}: its return value ({type(result).__name__}) cannot make the "
            f"trip back from the compute pool: {type(exc).__name__}: {exc}. Return data or a model "
            "object that pickles."
        )
        out.write_bytes(cloudpickle.dumps((False, None, msg)))
        return 1
    out.write_bytes(blob)
    timing = {"work_start": started, "work_end": ended, "result_written": time.time()}
    timing_path(out).write_text(json.dumps(timing))  # the parent's live progress shows where the time went
    return 0


def warm() -> int:
    """``python -m pytest_snowpipe.engines.job_worker --warm``: import the libraries the remote
    stages use (``SNOWPIPE_PRELOAD``) while the earlier stages run, then wait for one trip, given
    on stdin as JSON ``{"payload", "result", "env"}``; an empty stdin (no trip came) ends it."""
    import importlib
    import json

    if os.environ.get(PARENT_ENV, "").isdigit():
        die_with_parent(int(os.environ[PARENT_ENV]), None)
    for name in filter(None, os.environ.get("SNOWPIPE_PRELOAD", "").split(",")):
        try:
            importlib.import_module(name)
        except Exception:  # the trip itself will name what cannot be imported
            continue
    if os.environ.get(READY_ENV):  # benchmarks/remote_trip.py measures a trip to a ready worker
        Path(os.environ[READY_ENV]).touch()
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    trip = json.loads(line)
    os.environ.update(trip["env"])
    sys.argv[1:] = [trip["payload"], trip["result"]]  # the stage sees what a cold worker's does
    return main(sys.argv[1:])


def leave(code: int) -> None:
    """Exit as soon as the result is written: the parent waits for this exit, and a normal one tears
    the interpreter down first (pandas, a model's library: 0.1-0.5 s of the trip for nothing)."""
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    leave(warm() if sys.argv[1:] == ["--warm"] else main(sys.argv[1:]))
