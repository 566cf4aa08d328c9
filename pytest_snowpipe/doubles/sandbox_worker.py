"""The interpreter a rehearsal runs shipped task procedures in (started by :mod:`.sandbox`).

Run as ``python -I -S -X snowflake_import_directory=DIR sandbox_worker.py FD``: isolated mode
and no ``site``, so neither the environment, the working directory, ``.pth`` files nor the
user's site reach ``sys.path``. It imports only the standard library until the parent has said
what the procedures' environment holds; from then on an import guard (first on
``sys.meta_path``) lets a module load from site-packages only if its file belongs to a declared
package or one of their dependencies, as in Snowflake, and refuses it otherwise with an error
naming the task, the module, its distribution and the fix.

Protocol (pickled tuples of builtins over the inherited socket ``FD``):
parent -> here: ``("init", {...})`` (``packages`` None: they come later as
``("packages", {"packages", "preload", "owners"})``), ``("engine", params)``, ``("imports", paths)``,
``("run", id, {"task", "code", "handler"})``, ``("reply", id, ok, value)``, ``("exit",)``; here -> parent: ``("ready", info)``,
``("init_failed", text)``, ``("call", id, name, args)``, ``("sql", id, query)``,
``("done", id, {"error", "traceback", "output", "cut"})``.
A task's ``session.call("SYSTEM$...")`` and its ``system$task_runtime_info`` query are answered
by the parent's emulator (the one place that knows the run); all other SQL goes straight to the
embedded engine over this interpreter's own Snowpark session.
"""
from __future__ import annotations

import codecs
import importlib
import importlib.machinery
import importlib.util
import inspect
import io
import os
import queue
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

OUTPUT_LIMIT = 64 * 1024  # characters of one task's output sent to the parent (which keeps less)

_JOB_LOCK = threading.Lock()  # an ML Job's launcher reads os.environ when imported: one at a time
_LOCAL = threading.local()  # .task: the running task's name; .buffer: its output; .guarding


class TaskFailure(Exception):
    """The parent's emulator refused a system call of the task (its message is recorded as is)."""


class ImportGuard:
    """Refuse a module from site-packages whose file no declared package installed."""

    def __init__(self, site_dirs: list[str], allowed: set[str], owners: dict[str, str], packages: list[str]) -> None:
        self.site_dirs = tuple(os.path.join(os.path.normpath(d), "") for d in site_dirs)
        self.allowed = allowed
        self.owners = owners
        self.packages = packages
        self.refused: list[str] = []

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if getattr(_LOCAL, "guarding", False):
            return None
        _LOCAL.guarding = True
        try:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        finally:
            _LOCAL.guarding = False
        origin = getattr(spec, "origin", None)
        if spec is None or not origin or origin in ("namespace", "built-in", "frozen"):
            return spec  # not found here (the next finders decide), or a namespace portion
        where = os.path.normpath(origin)
        if not where.startswith(self.site_dirs) or where in self.allowed:
            return spec  # the standard library, an IMPORTS file, or a declared package's file
        owner = self.owners.get(fullname.split(".")[0])
        task = getattr(_LOCAL, "task", None) or "(a thread outside any task)"
        self.refused.append(fullname)
        what = f"distribution {owner}" if owner else f"{where}, a file no installed distribution lists"
        fix = (f"add {owner.split(',')[0]!r} to ini snowpipe_packages (or import it at the top of the stage's module, "
               "where the package inference sees it)" if owner else "make it part of an installed package the "
               "tasks declare, or move the code into the stage's module")
        raise ModuleNotFoundError(
            f"task {task} imports module {fullname!r} ({what}), which is not in the task's environment: "
            f"Snowflake gives a procedure only the standard library, its PACKAGES with their dependencies and its "
            f"IMPORTS (PACKAGES: {', '.join(self.packages) or 'none'}). Fix: {fix}",
            name=fullname,
        )


class _BinaryOut(io.BufferedIOBase):
    """``sys.stdout.buffer`` of a task stream: bytes are decoded (incrementally, so a character split
    across writes survives) and written as text."""

    def __init__(self, text: TaskTextStream) -> None:
        self._text = text
        self._decoder = codecs.getincrementaldecoder(text.encoding)("replace")

    def write(self, data: Any) -> int:
        raw = bytes(data)
        self._text.write(self._decoder.decode(raw))
        return len(raw)

    def flush(self) -> None:
        self._text.flush()

    def writable(self) -> bool:
        return True


class TaskTextStream(io.TextIOBase):
    """What a task's ``sys.stdout``/``sys.stderr`` is: a real text stream (``buffer``, ``encoding``,
    ``errors``, ``isatty``, ``name``...) as a procedure's are in Snowflake, whose text a subclass routes."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self._buffer = _BinaryOut(self)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.real, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return getattr(self.real, "errors", None) or "strict"

    @property
    def buffer(self) -> io.BufferedIOBase:
        return self._buffer

    @property
    def name(self) -> str:
        return str(getattr(self.real, "name", "<task output>"))

    @property
    def mode(self) -> str:
        return "w"

    @property
    def line_buffering(self) -> bool:
        return False

    def isatty(self) -> bool:
        return False  # a task's output is a log, never a terminal

    def writable(self) -> bool:
        return True


class _Stream(TaskTextStream):
    """stdout/stderr: a task thread's writes go to its buffer, other threads' to the real stream."""

    def write(self, text: str) -> int:
        buffer = getattr(_LOCAL, "buffer", None)
        if buffer is None:
            return int(self.real.write(text))
        room = OUTPUT_LIMIT - buffer[1]
        if room > 0:
            buffer[0].append(text[:room])
        buffer[1] += len(text)
        return len(text)

    def flush(self) -> None:
        if getattr(_LOCAL, "buffer", None) is None:
            self.real.flush()


class _Rows:
    def __init__(self, value: Any) -> None:
        self._value = value

    def collect(self, *args: Any, **kwargs: Any) -> list[tuple[Any]]:
        return [(self._value,)]


class Worker:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.send_lock = threading.Lock()
        self.replies: dict[int, queue.Queue[tuple[bool, Any]]] = {}
        # a session per running task, as in Snowflake (a task's USE, CREATE SCHEMA or temporary
        # objects never reach a task running beside it), kept for the next task once it ends
        self.engine: dict[str, Any] | None = None
        self.sessions: list[Any] = []
        self.idle: list[Any] = []
        self.sessions_lock = threading.Lock()

    def send(self, *message: Any) -> None:
        with self.send_lock:
            self.conn.send(message)

    def rpc(self, task_id: int, *request: Any) -> Any:
        self.send(request[0], task_id, *request[1:])
        ok, value = self.replies[task_id].get()
        if not ok:
            raise TaskFailure(value)
        return value

    def take_session(self) -> Any:
        """An idle session, or a new one when every session is running a task."""
        with self.sessions_lock:
            if self.idle:
                return self.idle.pop()
        from snowflake.snowpark import Session

        session = Session.builder.configs(self.engine).create()
        with self.sessions_lock:
            self.sessions.append(session)
        return session

    def give_back(self, session: Any) -> None:
        with self.sessions_lock:
            self.idle.append(session)

    def task_session(self, task_id: int, session: Any) -> Any:
        worker = self

        class TaskSession:
            """The session a procedure gets: SYSTEM$ calls and runtime info from the emulator."""

            def __getattr__(self, name: str) -> Any:
                return getattr(session, name)

            def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
                if isinstance(name, str) and name.upper().startswith("SYSTEM$"):
                    return worker.rpc(task_id, "call", name, list(args))
                return session.call(name, *args, **kwargs)

            def sql(self, query: str, *args: Any, **kwargs: Any) -> Any:
                if isinstance(query, str) and "system$task_runtime_info" in query.lower():
                    return _Rows(worker.rpc(task_id, "sql", query))
                return session.sql(query, *args, **kwargs)

        return TaskSession()

    @staticmethod
    def handler(job: dict[str, Any]) -> Any:
        """The procedure's handler: a function of its inline body, or ``module.function`` of an import."""
        if job["code"] is None:
            module, _, name = job["handler"].rpartition(".")
            return getattr(importlib.import_module(module), name)
        namespace: dict[str, Any] = {"__name__": f"snowpipe_procedure_{job['task'].lower()}"}
        exec(compile(job["code"], f"<procedure of task {job['task']}>", "exec"), namespace)
        return namespace[job["handler"]]

    @staticmethod
    def run_ml_job(job: dict[str, Any], session: Any) -> None:
        """``SYSTEM$EXECUTE_ML_JOB`` on one node: snowflake-ml-python's own launcher, as uploaded to the job
        stage, runs the entry script's main function from the local mount, with the job's environment.

        The launcher reads its environment when imported (mount, payload folder, result path) and puts the
        payload and its zips on ``sys.path``; the main function gets the task's session (the job's own
        session would not reach the emulated graph's TaskContext), which the launcher may not close."""
        spec, mount = job["job"]["spec"], job["job"]["mount"]
        env = {k: str(v).replace("/mnt/job_stage", mount) for k, v in (spec.get("ENV_VARS") or {}).items()}
        env.update(MLRS_STAGE_MOUNT_PATH=mount, MLRS_RESULT_PATH=os.path.join(mount, "mljob_result"))
        env.pop("MLRS_SUBMITTED_TARGET_INSTANCES", None)  # one node here: the launcher waits for no other
        with _JOB_LOCK:
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            try:
                loader = importlib.util.spec_from_file_location(
                    f"mljob_launcher_{job['task'].lower()}", os.path.join(mount, "system", "mljob_launcher.py"))
                assert loader is not None and loader.loader is not None
                launcher = importlib.util.module_from_spec(loader)
                loader.loader.exec_module(launcher)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v

        class Unclosable:
            def __getattr__(self, name: str) -> Any:
                return getattr(session, name)

            def close(self) -> None:  # the launcher closes the job's session; the task's stays open
                pass

        entry = os.path.join(mount, "app", job["job"]["entry"])
        launcher.main(entry, session=Unclosable(), payload_args=(session,), script_main_func=job["job"]["main"])

    def run_task(self, task_id: int, job: dict[str, Any]) -> None:
        _LOCAL.task, _LOCAL.buffer = job["task"], [[], 0]
        error = tb = None
        session = None
        try:
            session = self.take_session()
            if job.get("job"):
                self.run_ml_job(job, self.task_session(task_id, session))
            else:
                self.handler(job)(self.task_session(task_id, session))
        except TaskFailure as exc:
            error, tb = str(exc), traceback.format_exc()
        except BaseException as exc:  # everything a procedure raises is its failure
            error, tb = f"{type(exc).__name__}: {exc}", traceback.format_exc()
        finally:
            if session is not None:
                self.give_back(session)
            parts, written = _LOCAL.buffer
            _LOCAL.task = _LOCAL.buffer = None
        output = "".join(parts)
        self.send("done", task_id, {"error": error, "traceback": tb, "output": output, "cut": written - len(output)})

    def start(self, init: dict[str, Any]) -> None:
        """Set up the guard and import what every task needs. ``init["packages"]`` None: an interpreter
        started before the tasks' packages were known (`declare` gives them); the guard lets in the task
        runtime's own packages meanwhile, which every compiled graph declares."""
        self.t0 = time.perf_counter()
        self.environments = _Environments(init["plugin_root"], list(init["site_dirs"]))
        packages = init.get("packages")
        allowed = self.environments.files(packages)
        sys.path[:0] = list(init["import_paths"])  # the procedure's IMPORTS come first
        sys.path.extend(p for p in init["site_dirs"] if p not in sys.path)
        self.guard = ImportGuard(init["site_dirs"], allowed, init.get("owners") or {}, list(packages or ()))
        sys.meta_path.insert(0, self.guard)
        from snowflake.snowpark import Session  # noqa: F401  (imported now: the session opens as soon as it can)

        # every task reads its run through snowflake.core's TaskContext (about 1.5 s of imports), and the
        # stages import their libraries (scikit-learn's datasets: 1.2 s): taken here, while the parent
        # still compiles and ships. A refused import stays the error of the task that makes it.
        self._preload(["snowflake.core.task.context"])
        if packages is not None:
            self.declare(packages, init.get("preload", ()), resolved=True)

    def declare(self, packages: list[str], preload: Any, resolved: bool = False, owners: Any = None) -> None:
        """The tasks' ``packages``: the guard lets their files in too, then what their modules import loads.
        ``owners``: top-level module -> its distributions, for naming a refused module (the parent's)."""
        if owners is not None:
            self.guard.owners = owners
        if not resolved:
            allowed = self.environments.files(packages)
            loaded = {os.path.normpath(f) for f in (getattr(m, "__file__", None) for m in list(sys.modules.values())) if f}
            early = {f for f in self.guard.allowed - allowed if f in loaded}
            if early:  # never with a compiled graph (it declares the runtime's packages): fail, never admit them
                raise RuntimeError(f"modules loaded before the packages were known are not theirs: {sorted(early)[:5]}")
            self.guard.allowed, self.guard.packages = allowed, list(packages)
        # what the ML Job launcher imports first (0.1 s inside the first job task)
        self._preload(["snowflake.ml.jobs._utils.constants", *preload])

    def _preload(self, modules: list[str]) -> None:
        for name in modules:
            if name in ("snowflake.core.task.context", "snowflake.ml.jobs._utils.constants") and not _declared(
                name, self.guard.allowed
            ):
                continue  # ours (TaskContext, the ML Job launcher's first import): only where the packages hold them
            try:
                importlib.import_module(name)
            except Exception:
                pass

    def connect(self, engine: dict[str, Any]) -> None:
        """The first tasks' session on the parent's engine (its parameters may come after the imports)."""
        self.engine = engine
        self.give_back(self.take_session())
        # Snowpark records the caller's source position of every expression it builds (Window,
        # columns: inspect.getframeinfo -> getmodule). For code imported from a zip, as the tasks'
        # is, each call maps every module loaded since the last call to its file: the first one,
        # inside the first task that builds an expression, mapped them all (0.2 s). Mapped here,
        # once the imports and the session's are done, while the parent still ships.
        inspect.getmodule(compile("", "<sandbox warm-up>", "exec"))

    def serve(self) -> None:
        sys.stdout, sys.stderr = _Stream(sys.stdout), _Stream(sys.stderr)
        message = self.conn.recv()
        try:
            self.start(message[1])
            engine = message[1].get("engine")
            declared = message[1].get("packages") is not None
            while engine is None or not declared:  # started before the engine or the packages: they come later
                message = self.conn.recv()
                if message[0] == "exit":
                    return
                if message[0] == "imports":
                    _add_imports(message[1])
                elif message[0] == "engine":
                    engine = message[1]
                elif message[0] == "packages":
                    self.declare(message[1]["packages"], message[1]["preload"], owners=message[1]["owners"])
                    declared = True
            self.connect(engine)
            info = {"start_s": time.perf_counter() - self.t0, "pid": os.getpid()}
        except EOFError:  # the parent is gone before the interpreter was ready
            os._exit(1)
        except BaseException as exc:  # everything a procedure raises is its failure
            self.send("init_failed", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            return
        self.send("ready", info)
        while True:
            try:
                message = self.conn.recv()
            except EOFError:  # the parent is gone: so is this interpreter
                os._exit(1)
            kind = message[0]
            if kind == "exit":
                break
            if kind == "imports":  # an interpreter started before the deploy learns its IMPORTS now
                _add_imports(message[1])
            elif kind == "run":
                task_id = message[1]
                self.replies[task_id] = queue.Queue()
                threading.Thread(target=self.run_task, args=(task_id, message[2]), daemon=True).start()
            elif kind == "reply":
                self.replies[message[1]].put((message[2], message[3]))
        for session in self.sessions:
            try:
                session.close()
            except Exception:
                pass


def _declared(module: str, allowed: set[str]) -> bool:
    """Whether ``module``'s file (as a module or a package) is one of the ``allowed`` files."""
    base = os.path.join(*module.split("."))
    return any(f.endswith((base + ".py", os.path.join(base, "__init__.py"))) for f in allowed)


class _Environments:
    """Which files a package list and its dependencies installed (:func:`.environment.resolve`), worked
    out here, not in the parent, whose way to the first task it was on (0.15-0.3 s).

    The plugin's ``.environment`` is loaded once and kept (its cache of installed distributions
    serves the second list), but out of ``sys.modules``: what loading it brought from the plugin's
    folder and site-packages (``packaging``) is dropped again, so no task finds it loaded, and
    tasks import the plugin from their IMPORTS as in Snowflake. The standard library's modules stay
    (every procedure has them).
    """

    def __init__(self, plugin_root: str, site_dirs: list[str]) -> None:
        self.plugin_root, self.site_dirs = plugin_root, site_dirs
        self.resolve: Any = None
        self.runtime: tuple[str, ...] = ()

    def files(self, packages: list[str] | None) -> set[str]:
        """The files of ``packages`` (None: the task runtime's own, which every compiled graph declares)."""
        before = set(sys.modules)
        saved = list(sys.path)
        sys.path[:] = [self.plugin_root, *saved, *(d for d in self.site_dirs if d not in saved)]
        try:
            if self.resolve is None:
                from pytest_snowpipe.doubles.environment import resolve
                from pytest_snowpipe.taskgraph.packages import RUNTIME

                self.resolve, self.runtime = resolve, RUNTIME
            return set(self.resolve(self.runtime if packages is None else packages).files)
        finally:
            sys.path[:] = saved
            roots = tuple(os.path.join(os.path.normpath(d), "") for d in (self.plugin_root, *self.site_dirs))
            for name in set(sys.modules) - before:
                origin = os.path.normpath(getattr(sys.modules[name], "__file__", None) or "")
                if name.split(".")[0] == "pytest_snowpipe" or origin.startswith(roots):
                    del sys.modules[name]


def _add_imports(paths: list[str]) -> None:
    """The procedure's IMPORTS, first on the path (an interpreter started before the deploy gets them late)."""
    sys.path[:0] = [path for path in paths if path not in sys.path]


def main() -> None:
    conn = Connection(int(sys.argv[1]))  # one end of the parent's socketpair, inherited
    Worker(conn).serve()
    conn.close()
    sys.stdout.flush()
    os._exit(0)  # no waiting on Snowpark's or the connector's background threads


if __name__ == "__main__":
    main()
