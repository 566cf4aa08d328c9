"""Run shipped task procedures in the environment Snowflake would give them.

The rehearsal (``--snowpipe-target local``, and the run before every real deploy) deploys the
compiled graph to an offline account (:mod:`.shipped`), then the emulator runs the graph with
an *executor* from here: each Python task's procedure code, exactly as registered, runs in an
interpreter (:mod:`.sandbox_worker`) whose imports are limited to the standard library, the
task's ``PACKAGES`` with their dependencies (:mod:`.environment`) and its ``IMPORTS``. Tasks
declaring the same packages share one interpreter (each interpreter costs seconds of imports; a
compiled graph declares one package list), whose path holds the IMPORTS of all of them: each
task's own are the plugin's zip, which all share, and its closure's zip, named uniquely by
Snowpark, so sharing them lets no task import what it would not find in Snowflake. The emulator keeps the run's semantics (order, branches, return values,
config), answering the procedures' system calls over a socket.
"""
from __future__ import annotations

import itertools
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any

from pytest_snowpipe.doubles.emulator import TaskFailed, record_output
from pytest_snowpipe.doubles.environment import owners, package_names, site_dirs
from pytest_snowpipe.doubles.shipped import ShippedGraph, ShippedTask
from pytest_snowpipe.errors import SnowpipeError

WORKER = Path(__file__).with_name("sandbox_worker.py")
PLUGIN_ROOT = Path(__file__).resolve().parents[2]  # the folder holding pytest_snowpipe: where an interpreter
# finds .environment to work out what its packages installed (then drops it: see sandbox_worker)
_LOG_TAIL = 3000


def _declares_runtime(packages: tuple[str, ...]) -> bool:
    """Whether ``packages`` hold the task runtime's own (every compiled graph's do): what an interpreter
    started before the packages were known has loaded is then theirs."""
    from pytest_snowpipe.taskgraph.packages import RUNTIME

    return package_names(RUNTIME) <= package_names(packages)


class SandboxError(SnowpipeError):
    """A sandbox interpreter could not be started."""


@dataclass
class _Interpreter:
    """One sandbox interpreter and the tasks it serves."""

    packages: tuple[str, ...] | None  # None: started before the tasks' packages were known (`prestart`)
    proc: subprocess.Popen[bytes]
    conn: Connection
    log: Path
    queues: dict[int, queue.Queue[tuple[Any, ...]]] = field(default_factory=dict)
    control: queue.Queue[tuple[Any, ...]] = field(default_factory=queue.Queue)
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    dead: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def send(self, *message: Any) -> None:
        with self.send_lock:
            self.conn.send(message)

    def read(self) -> None:
        """Route each message to the task waiting for it; on EOF, tell everyone the interpreter died."""
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                break
            if message[0] in ("ready", "init_failed"):
                self.control.put(message)
            elif message[1] in self.queues:
                self.queues[message[1]].put(message)
        code = self.proc.wait()
        self.dead = f"exit code {code}" + self.log_tail()
        for q in [self.control, *self.queues.values()]:
            q.put(("died",))

    def log_tail(self) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return f"; its output ends with:\n{text[-_LOG_TAIL:]}" if text.strip() else ""


class Sandbox:
    """The interpreters of one rehearsal; ``run`` is the emulator's executor."""

    def __init__(self, shipped: ShippedGraph | None, engine: dict[str, Any] | None, workdir: Path,
                 import_dir: Path | None = None, preload: tuple[str, ...] = ()) -> None:
        """``shipped=None``: the deploy is still to come (`expect` starts interpreters, `attach` gives it);
        ``import_dir`` is where it will put the IMPORTS, which an interpreter is told when it starts.
        ``engine=None``: the engine's connection parameters come later (`connect`), before `attach`.
        ``preload``: modules the shipped code imports, imported by each interpreter while it waits."""
        self.shipped = shipped
        self.import_dir = shipped.import_dir if shipped is not None else import_dir or workdir
        self.engine = engine
        self.preload = preload
        self.workdir = workdir
        self.interpreters: dict[tuple[str, ...], _Interpreter] = {}
        self.early: dict[tuple[str, ...], _Interpreter] = {}  # started by `expect`, not yet given their IMPORTS
        self.base: _Interpreter | None = None  # started by `prestart`, not yet told its packages
        self.ids = itertools.count(1)
        self.start_s = 0.0
        self._t0 = time.perf_counter()

    # ------------------------------------------------------------------ life cycle

    def __enter__(self) -> Sandbox:
        if self.shipped is not None:
            self.attach(self.shipped)
        return self

    def prestart(self) -> None:
        """Start an interpreter before the graph's packages are known (the rehearsal's start, while pytest
        collects): it imports what every task needs (Snowpark, TaskContext) meanwhile, its guard letting
        in only the task runtime's own packages until `expect` tells it the graph's."""
        if self.base is None:
            self.base = self._spawn(None, [])

    def expect(self, packages: tuple[str, ...]) -> None:
        """Start an interpreter for tasks declaring ``packages`` now, before the deploy that ships them:
        its imports (Snowpark, the session, TaskContext) overlap the deploy. `attach` gives it its
        IMPORTS if a shipped task declares exactly these packages, and ends it otherwise. The
        interpreter `prestart` started, if alive, is told the packages and serves them (if they hold the
        task runtime's own, which it loaded meanwhile; else it ends and a fresh one starts)."""
        if packages in self.early:
            return
        base, self.base = self.base, None
        if base is not None and base.dead is None and _declares_runtime(packages):
            base.packages = packages
            base.send("packages", {"packages": list(packages), "preload": list(self.preload), "owners": owners()})
            self.early[packages] = base
        else:
            if base is not None:
                self._end(base)
            self.early[packages] = self._spawn(packages, [])

    def connect(self, engine: dict[str, Any]) -> None:
        """The engine's connection parameters, for the interpreters started before them and those to come."""
        self.engine = engine
        for interp in self.early.values():
            if interp.dead is None:
                interp.send("engine", engine)

    def attach(self, shipped: ShippedGraph) -> None:
        """The interpreters of ``shipped``'s tasks (one per package list), started or adopted, and ready."""
        if self.engine is None:
            raise SandboxError("the sandbox was attached before it was told the engine's connection parameters")
        self.shipped = shipped
        groups: dict[tuple[str, ...], list[str]] = {}
        for t in shipped.tasks.values():
            paths = groups.setdefault(t.packages, [])
            paths.extend(str(shipped.files[p]) for p in t.imports if str(shipped.files[p]) not in paths)
        adoptable = shipped.import_dir == self.import_dir  # what the early interpreters were told
        self.import_dir = shipped.import_dir
        for packages, paths in sorted(groups.items()):
            early = self.early.get(packages)
            if adoptable and early is not None and early.dead is None:
                del self.early[packages]
                early.send("imports", paths)
                self.interpreters[packages] = early
            else:
                self.interpreters[packages] = self._spawn(packages, paths)
        self._end_unattached()  # dead, for packages no shipped task declares, or never told any
        for interp in self.interpreters.values():
            self._await_ready(interp)
        self.start_s = time.perf_counter() - self._t0

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        for interp in self.interpreters.values():
            self._end(interp)
        self._end_unattached()

    def _end_unattached(self) -> None:
        """End the interpreters started ahead (`prestart`, `expect`) that serve no attached task."""
        for interp in [*self.early.values(), *([self.base] if self.base is not None else [])]:
            self._end(interp)
        self.early.clear()
        self.base = None

    @staticmethod
    def _end(interp: _Interpreter) -> None:
        if interp.conn.closed:  # ended before (close() again: the early rehearsal's cleanup)
            return
        if interp.dead is None:
            try:
                interp.send("exit")
            except OSError:
                pass
        try:
            interp.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            interp.proc.kill()
            interp.proc.wait()
        interp.conn.close()

    def _spawn(self, packages: tuple[str, ...] | None, import_paths: list[str]) -> _Interpreter:
        """An interpreter for tasks declaring ``packages`` (None: told later); it works out the files they
        installed itself (:func:`.environment.resolve`, 0.15-0.3 s), off this process's way to the first task.
        Who owns each module (for naming a refused one) comes from here: this process has it already."""
        ours, theirs = socket.socketpair()
        log = Path(tempfile.mkstemp(prefix="sandbox-", suffix=".log", dir=self.workdir)[1])
        scratch = self.workdir / "tmp"  # what the procedures and the connector make in the temp folder goes
        scratch.mkdir(exist_ok=True)  # with the rehearsal's folder, not into the machine's /tmp
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-X", f"snowflake_import_directory={self.import_dir}",
                 str(WORKER), str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=os.getcwd(),  # files a task writes land where they would in-process; imports never see it (-I)
                env={**os.environ, "TMPDIR": str(scratch)},
            )
        theirs.close()
        conn = Connection(os.dup(ours.fileno()))
        ours.close()
        interp = _Interpreter(packages=packages, proc=proc, conn=conn, log=log)
        threading.Thread(target=interp.read, name=f"sandbox-{proc.pid}", daemon=True).start()
        interp.send("init", {
            "import_paths": import_paths, "site_dirs": list(site_dirs()), "plugin_root": str(PLUGIN_ROOT),
            "packages": None if packages is None else list(packages), "engine": self.engine,
            "preload": list(self.preload), "owners": {} if packages is None else owners(),
        })
        return interp

    def _await_ready(self, interp: _Interpreter) -> None:
        message = interp.control.get()
        if message[0] == "ready":
            interp.info = message[1]
            return
        detail = message[1] if message[0] == "init_failed" else f"it exited ({interp.dead})"
        raise SandboxError(
            f"the rehearsal's sandbox interpreter for packages {', '.join(interp.packages or ()) or 'none'} could not "
            f"start: {detail}"
        )

    # ------------------------------------------------------------------ the executor

    def run(self, task: Any, proxy: Any) -> None:
        """Run ``task``'s shipped procedure in its interpreter; answer its system calls with ``proxy``."""
        shipped: ShippedTask | None = self.shipped.tasks.get(task.name) if self.shipped is not None else None
        if shipped is None:
            raise TaskFailed(f"task {task.name}: the deploy shipped no Python procedure for it, so it cannot be rehearsed")
        interp = self.interpreters[shipped.packages]
        task_id = next(self.ids)
        inbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
        interp.queues[task_id] = inbox
        try:
            if interp.dead is not None:
                raise TaskFailed(f"task {task.name}: the sandbox interpreter is gone ({interp.dead})")
            interp.send("run", task_id, {"task": task.name, "code": shipped.code, "handler": shipped.handler,
                                         "job": shipped.job})
            while True:
                message = inbox.get()
                if message[0] == "died":
                    raise TaskFailed(f"task {task.name}: the sandbox interpreter died while running it ({interp.dead})")
                if message[0] == "done":
                    result = message[2]
                    record_output(result["output"], result["cut"])
                    if result["error"] is not None:
                        raise TaskFailed(result["error"], result["traceback"])
                    return
                interp.send("reply", task_id, *self._answer(proxy, message))
        finally:
            interp.queues.pop(task_id, None)

    @staticmethod
    def _answer(proxy: Any, message: tuple[Any, ...]) -> tuple[bool, Any]:
        """A procedure's system call, answered by the emulator's task session: (ok, value or error)."""
        from pytest_snowpipe.doubles.emulator import _TaskFailure

        try:
            if message[0] == "call":
                return True, proxy.call(message[2], *message[3])
            return True, proxy.sql(message[2]).collect()[0][0]
        except _TaskFailure as exc:
            return False, str(exc)
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"


__all__ = ["WORKER", "Sandbox", "SandboxError"]
