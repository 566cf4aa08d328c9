"""An offline Snowflake account for the deploy path, served at the wire.

The real snowflake-connector-python, Snowpark and snowflake.core run unchanged: the only thing
replaced is the network peer. ``OfflineAccount`` starts a loopback HTTP server (stdlib
``ThreadingHTTPServer``, port chosen by the OS) that speaks the two protocols the clients use:

* the connector's v1 protocol (``/session/v1/login-request``, ``/queries/v1/query-request``,
  ``/session``, ``/telemetry/send``): SQL statements, incl. PUT (answered with a ``LOCAL_FS``
  upload command, so the connector's own file transfer writes into this account's stage
  directory), ``LIST``/``REMOVE``, ``information_schema.packages`` from a snapshot file;
* snowflake.core's REST API (``/api/v2/databases/{db}/schemas/{s}/tasks...``): tasks, with the
  request and response bodies validated through snowflake.core's own generated ``Task`` model.

Every SQL statement and REST call is recorded, in order, in ``account.calls``; a failure can be
injected at the Nth call or at the first call matching a predicate.
"""
from __future__ import annotations

import dataclasses
import gzip
import json
import re
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from pytest_snowpipe.taskgraph.channel import BUNDLED

if TYPE_CHECKING:
    from snowflake.connector import SnowflakeConnection
    from snowflake.core import Root
    from snowflake.snowpark import Session

DEFAULT_SNAPSHOT = BUNDLED  # the channel snapshot the package ships (taskgraph/channel.py)
Kind = Literal["sql", "rest"]


# --------------------------------------------------------------------------- call log


@dataclass(frozen=True)
class Call:
    """One SQL statement or one REST call, as the account received it."""

    index: int  # 1-based, over SQL and REST calls together
    kind: Kind
    method: str  # HTTP method for REST; the statement's first keyword for SQL (PUT, SELECT, ...)
    path: str  # REST: the path after /api/v2/ (e.g. "databases/DB/schemas/S/tasks/DAG:resume"); SQL: ""
    query: dict[str, str] = field(default_factory=dict)  # REST query parameters
    body: Any = None  # REST: parsed JSON body; SQL: the statement text
    status: int = 0  # HTTP status answered (SQL errors: the Snowflake error code)
    error: str | None = None  # the error answered, if any

    @property
    def sql(self) -> str:
        return self.body if self.kind == "sql" else ""

    @property
    def summary(self) -> str:
        """A short, stable line: ``POST tasks?createMode=orReplace``, ``POST tasks/DAG$T1:resume``, ``SQL PUT``."""
        if self.kind == "sql":
            return f"SQL {self.method}"
        path = re.sub(r"^databases/[^/]+/schemas/[^/]+/", "", self.path)
        mode = f"?createMode={self.query['createMode']}" if "createMode" in self.query else ""
        return f"{self.method} {path}{mode}"


@dataclass
class _Failure:
    predicate: Callable[[Call], bool]
    status: int
    message: str
    times: int  # how many matching calls fail; -1 = all


class InjectedError(Exception):
    """Raised inside the account to answer a call with an error (status for REST, code for SQL)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------- names


def ident(name: str) -> str:
    """Snowflake identifier resolution: unquoted names are upper-cased, quoted ones kept as written."""
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return name[1:-1].replace('""', '"')
    return name.upper()


def split_fqn(text: str) -> list[str]:
    """``DB."my s".X`` -> ``["DB", "my s", "X"]`` (resolved)."""
    parts = re.findall(r'"(?:[^"]|"")+"|[^.]+', text.strip())
    return [ident(p) for p in parts]


# --------------------------------------------------------------------------- tasks


@dataclass
class _Task:
    database: str
    schema: str
    name: str
    body: dict[str, Any]  # the request body, normalised by snowflake.core's Task model
    state: str = "suspended"
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    created_on: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime()))

    @property
    def predecessors(self) -> list[str]:
        return [ident(p.split(".")[-1]) if "." in p else ident(p) for p in self.body.get("predecessors") or []]

    @property
    def finalize(self) -> str | None:
        f = self.body.get("finalize")
        return split_fqn(f)[-1] if f else None


@dataclass(frozen=True)
class StageFile:
    name: str  # stage-relative path, e.g. "task_handler_sp/udf_py_1.zip"
    size: int
    md5: str


# --------------------------------------------------------------------------- the account


class OfflineAccount:
    """One in-memory Snowflake account, reachable by the real connector and snowflake.core.

    >>> with OfflineAccount(schemas=["DB.S"], stages=["DB.S.ST"]) as account:
    ...     root = account.root()            # real snowflake.core.Root
    ...     session = account.session()      # real snowpark.Session
    """

    def __init__(
        self,
        *,
        schemas: Iterable[str] = ("DB.S",),
        stages: Iterable[str] = (),
        packages_snapshot: Path | str = DEFAULT_SNAPSHOT,
        warehouse: str = "WH",
        role: str = "SYSADMIN",
        compute_pools: Iterable[str] = (),
        pool_max_nodes: int = 4,
        dmf_supported: bool = True,
    ) -> None:
        from pytest_snowpipe.doubles.offline_monitors import MonitorState

        self.monitors = MonitorState(dmf_supported)  # tables, DMFs and their results (sp.expect monitor=)
        self.warehouse = warehouse
        self.compute_pools = {ident(p): pool_max_nodes for p in compute_pools}
        self.role = role
        self._lock = threading.RLock()
        self._schemas: set[tuple[str, str]] = {tuple(split_fqn(s)) for s in schemas}  # type: ignore[misc]
        self._tasks: dict[tuple[str, str, str], _Task] = {}
        from pytest_snowpipe.engines.tempdirs import make_owned

        self._dir = make_owned("offline-account-")  # carries our pid: swept if we are killed
        self._stages: dict[tuple[str, str, str], Path] = {}
        for st in stages:
            self.create_stage(st)
        snap = json.loads(Path(packages_snapshot).read_text())
        self.packages: list[dict[str, str]] = snap["rows"] if isinstance(snap, dict) else snap
        self.calls: list[Call] = []
        self.executions: list[dict[str, Any]] = []
        # graph runs (TaskRun JSON): what get_current_graphs / get_complete_graphs answer. EXECUTE TASK on a
        # root appends a completed run in state ``execute_outcome`` when it is set (no task body runs here).
        self.graph_runs: list[dict[str, Any]] = []
        self.execute_outcome: str | None = None
        self.task_history: list[dict[str, Any]] = []  # TASK_HISTORY rows (add_task_run)
        self._failures: list[_Failure] = []
        self._sessions: dict[str, dict[str, str | None]] = {}
        self._results: dict[str, tuple[list[dict[str, Any]], list[list[Any]]]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        from pytest_snowpipe.doubles.model_registry import ModelRegistry

        self.models = ModelRegistry(self)  # the Model Registry's models, versions, aliases (doubles/model_registry.py)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> OfflineAccount:
        if self._server is None:
            account = self

            class Handler(_Handler):
                pass

            Handler.account = account
            self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            self._server.daemon_threads = True
            self._thread = threading.Thread(target=self._server.serve_forever, name="offline-account", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> OfflineAccount:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        assert self.start()._server is not None
        return self._server.server_address[1]  # type: ignore[union-attr]

    # ----------------------------------------------------------------- clients

    def connection_parameters(self, database: str | None = "DB", schema: str | None = "S") -> dict[str, Any]:
        """What to give ``snowflake.connector.connect`` or ``Session.builder.configs``."""
        params: dict[str, Any] = {
            "account": "offline",
            "user": "offline_user",
            "password": "offline",
            "host": "127.0.0.1",
            "port": self.port,
            "protocol": "http",
            "warehouse": self.warehouse,
            "role": self.role,
            "login_timeout": 10,
            "network_timeout": 10,
            "client_session_keep_alive": False,
        }
        if database:
            params["database"] = database
        if schema:
            params["schema"] = schema
        return params

    def connect(self, database: str | None = "DB", schema: str | None = "S") -> SnowflakeConnection:
        import snowflake.connector

        return snowflake.connector.connect(**self.connection_parameters(database, schema))

    def session(self, database: str | None = "DB", schema: str | None = "S") -> Session:
        """A real Snowpark Session over a real connector connection to this account."""
        from snowflake.snowpark import Session

        session: Session = Session.builder.configs(self.connection_parameters(database, schema)).create()
        return session

    def root(self, session: Session | None = None) -> Root:
        """A real ``snowflake.core.Root`` on ``session`` (a new one of this account's if not given)."""
        from snowflake.core import Root

        return Root(session if session is not None else self.session())

    # ----------------------------------------------------------------- call log and failures

    def rest_calls(self) -> list[Call]:
        return [c for c in self.calls if c.kind == "rest"]

    def sql_calls(self) -> list[Call]:
        return [c for c in self.calls if c.kind == "sql"]

    def clear_log(self) -> None:
        with self._lock:
            self.calls.clear()

    def fail_at(self, n: int, *, status: int = 500, message: str = "injected failure") -> None:
        """Answer the Nth call (1-based, counted from now, SQL and REST together) with an error."""
        start = len(self.calls)
        self.fail_when(lambda c: c.index == start + n, status=status, message=message)

    def fail_when(
        self, predicate: Callable[[Call], bool], *, status: int = 500, message: str = "injected failure", times: int = 1
    ) -> None:
        """Answer the calls matching ``predicate`` (the first ``times`` of them; -1 = all) with an error.

        REST calls get HTTP ``status``; SQL statements get a failed result with ``message`` (the
        connector raises ``ProgrammingError``).
        """
        with self._lock:
            self._failures.append(_Failure(predicate, status, message, times))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def _record(self, call: Call) -> Call:
        """Give the call its index, apply injected failures (raises InjectedError), log it."""
        with self._lock:
            call = dataclasses.replace(call, index=len(self.calls) + 1)
            for f in self._failures:
                if f.times != 0 and f.predicate(call):
                    f.times -= 1 if f.times > 0 else 0
                    self.calls.append(dataclasses.replace(call, status=f.status, error=f.message))
                    raise InjectedError(f.status, f.message)
            self.calls.append(call)
            return call

    def _finish(self, call: Call, status: int, error: str | None = None) -> None:
        with self._lock:
            i = call.index - 1
            if 0 <= i < len(self.calls) and self.calls[i].index == call.index:
                self.calls[i] = dataclasses.replace(self.calls[i], status=status, error=error)

    # ----------------------------------------------------------------- tasks (state, for tests)

    def task(self, name: str, database: str = "DB", schema: str = "S") -> dict[str, Any]:
        """The task as the REST API returns it (snowflake.core's model JSON)."""
        with self._lock:
            return self._task_json(self._get_task(ident(database), ident(schema), ident(name)))

    def task_names(self, database: str = "DB", schema: str = "S") -> list[str]:
        with self._lock:
            return [t.name for (d, s, _), t in self._tasks.items() if (d, s) == (ident(database), ident(schema))]

    def add_graph_run(
        self, root: str, state: str, *, database: str = "DB", schema: str = "S", first_error_task_name: str | None = None,
        first_error_message: str | None = None, graph_run_group_id: str | None = None, config: str | None = None,
        attempt_number: int = 1, scheduled_time: str | None = None, duration_s: float = 0.0,
    ) -> dict[str, Any]:
        """Record a graph run of ``root`` (SCHEDULED/EXECUTING: current; else complete), as TaskRun JSON; it is
        also a COMPLETE_TASK_GRAPHS row (``graph_run_group_id``, ``config`` JSON, ``attempt_number``)."""
        now = scheduled_time or time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime())
        done = time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime(_epoch(now) + duration_s))
        run = {
            "root_task_name": ident(root), "database_name": ident(database), "schema_name": ident(schema),
            "state": state, "scheduled_time": now, "next_scheduled_time": now, "query_start_time": now,
            "completed_time": None if state in ("SCHEDULED", "EXECUTING") else done,
            "root_task_id": "offline", "graph_version": 1, "run_id": len(self.graph_runs) + 1,
            "first_error_task_name": first_error_task_name, "first_error_message": first_error_message,
            "graph_run_group_id": graph_run_group_id or str(uuid.uuid4()), "config": config,
            "attempt_number": attempt_number,
        }
        with self._lock:
            self.graph_runs.append(run)
        return run

    def add_task_run(
        self, graph_run: dict[str, Any], name: str, state: str, *, return_value: str | None = None,
        error_message: str | None = None, condition_text: str | None = None, duration_s: float = 0.0,
    ) -> dict[str, Any]:
        """Record one task's run in ``graph_run`` (from :meth:`add_graph_run`): a TASK_HISTORY row. ``name`` is
        the task's name as Snowflake stores it (a child of root R: ``R$TASK``)."""
        start = graph_run["query_start_time"]
        row = {
            "NAME": name, "DATABASE_NAME": graph_run["database_name"], "SCHEMA_NAME": graph_run["schema_name"],
            "STATE": state, "RETURN_VALUE": return_value, "ERROR_MESSAGE": error_message, "CONDITION_TEXT": condition_text,
            "SCHEDULED_TIME": graph_run["scheduled_time"], "QUERY_START_TIME": start,
            "COMPLETED_TIME": time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime(_epoch(start) + duration_s)),
            "GRAPH_RUN_GROUP_ID": graph_run["graph_run_group_id"], "ATTEMPT_NUMBER": graph_run["attempt_number"],
        }
        with self._lock:
            self.task_history.append(row)
        return row

    def _history_query(self, sql: str) -> dict[str, Any]:
        """COMPLETE_TASK_GRAPHS / TASK_HISTORY table functions: the selected columns of the rows the WHERE names
        (database, schema, root task, run groups), as the functions return them (newest first)."""
        head = re.match(r"\s*select\s+(.*?)\s+from\s", sql, re.I | re.S)
        cols = [ident(c.strip()) for c in head[1].split(",")] if head else []
        db, sch = re.search(r"database_name\s*=\s*'([^']*)'", sql, re.I), re.search(r"schema_name\s*=\s*'([^']*)'", sql, re.I)
        if "complete_task_graphs" in sql.lower():
            root = re.search(r"root_task_name\s*=>\s*'([^']*)'", sql, re.I)
            limit = re.search(r"result_limit\s*=>\s*(\d+)", sql, re.I)
            rows = [{k.upper(): v for k, v in r.items()} for r in reversed(self.graph_runs)
                    if r["state"] not in ("SCHEDULED", "EXECUTING") and (root is None or r["root_task_name"] == ident(root[1]))]
            rows = rows[: int(limit[1])] if limit else rows
        else:
            groups = re.search(r"graph_run_group_id\s+in\s*\(([^)]*)\)", sql, re.I)
            wanted = set(re.findall(r"'((?:[^']|'')*)'", groups[1])) if groups else None
            rows = [r for r in self.task_history if wanted is None or r["GRAPH_RUN_GROUP_ID"] in wanted]
        rows = [r for r in rows if (db is None or r["DATABASE_NAME"] == ident(db[1]))
                and (sch is None or r["SCHEMA_NAME"] == ident(sch[1]))]
        types = ["fixed" if c == "ATTEMPT_NUMBER" else "text" for c in cols]
        return _result(cols, [[r.get(c) for c in cols] for r in rows], types=types)

    # ----------------------------------------------------------------- stages

    def create_stage(self, fqn: str, *, replace: bool = False, if_not_exists: bool = False) -> None:
        key = tuple(split_fqn(fqn))
        if len(key) != 3:
            raise ValueError(f"stage name must be DB.SCHEMA.NAME, got {fqn!r}")
        with self._lock:
            if key in self._stages and not replace:
                if if_not_exists:
                    return
                raise InjectedError(2002, f"SQL compilation error:\nObject '{'.'.join(key)}' already exists.")
            path = self._dir / "stages" / "/".join(key)
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            self._stages[key] = path

    def _stage_dir(self, stage: str, db: str | None = None, schema: str | None = None) -> tuple[Path, str]:
        """``@DB.S.ST/a/b`` -> (stage directory, "a/b")."""
        text = stage.strip().strip("'")
        text = text[1:] if text.startswith("@") else text
        m = re.match(r'((?:"(?:[^"]|"")+"|[^./"]+)(?:\.(?:"(?:[^"]|"")+"|[^./"]+)){0,2})(/.*)?$', text)
        if not m:
            raise InjectedError(2003, f"SQL compilation error:\nInvalid stage location '{stage}'.")
        parts = split_fqn(m.group(1))
        parts = {1: [db or "", schema or "", *parts], 2: [db or "", *parts], 3: parts}[len(parts)]
        key = tuple(parts)
        if key not in self._stages:
            raise InjectedError(2003, f"SQL compilation error:\nStage '{'.'.join(key)}' does not exist or not authorized.")
        return self._stages[key], (m.group(2) or "").strip("/")

    def put_file(self, stage: str, path: str, data: bytes) -> None:
        base, prefix = self._stage_dir(stage)
        target = base / prefix / path if prefix else base / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def get_file(self, stage: str, path: str) -> bytes:
        base, prefix = self._stage_dir(stage)
        return (base / prefix / path).read_bytes()

    def list_stage(self, stage: str) -> list[StageFile]:
        import hashlib

        base, prefix = self._stage_dir(stage)
        out = []
        for p in sorted(base.rglob("*")):
            rel = p.relative_to(base).as_posix()
            if p.is_file() and rel.startswith(prefix):
                data = p.read_bytes()
                out.append(StageFile(rel, len(data), hashlib.md5(data).hexdigest()))
        return out

    def remove(self, stage: str) -> list[str]:
        base, _ = self._stage_dir(stage)
        gone = [f.name for f in self.list_stage(stage)]
        for name in gone:
            (base / name).unlink()
        return gone

    # ----------------------------------------------------------------- REST: tasks

    def _get_task(self, db: str, schema: str, name: str) -> _Task:
        task = self._tasks.get((db, schema, name))
        if task is None:
            raise InjectedError(404, f"Task '{db}.{schema}.{name}' does not exist or not authorized.")
        return task

    def _check_schema(self, db: str, schema: str) -> None:
        if (db, schema) not in self._schemas:
            raise InjectedError(404, f"Schema '{db}.{schema}' does not exist or not authorized.")

    def _graph_root(self, task: _Task) -> _Task:
        seen: set[str] = set()
        cur = task
        while True:
            if cur.finalize:
                nxt = self._tasks.get((cur.database, cur.schema, cur.finalize))
            elif cur.predecessors:
                nxt = self._tasks.get((cur.database, cur.schema, cur.predecessors[0]))
            else:
                return cur
            if nxt is None or nxt.name in seen:
                return cur
            seen.add(cur.name)
            cur = nxt

    def _require_suspended_root(self, task: _Task) -> None:
        root = self._graph_root(task)
        if root is not task and root.state == "started":
            raise InjectedError(
                400,
                f"Unable to update graph with root task {root.database}.{root.schema}.{root.name} "
                "since that root task is not suspended.",
            )

    def _children(self, task: _Task) -> list[_Task]:
        return [
            t for (d, s, _), t in self._tasks.items()
            if (d, s) == (task.database, task.schema) and task.name in t.predecessors
        ]

    def _finalizer_of(self, task: _Task) -> _Task | None:
        return next(
            (t for (d, s, _), t in self._tasks.items() if (d, s) == (task.database, task.schema) and t.finalize == task.name),
            None,
        )

    def _task_json(self, task: _Task) -> dict[str, Any]:
        from snowflake.core.task._generated.models import Task as TaskModel

        relations: dict[str, Any] = {
            "Predecessors": [f"{task.database}.{task.schema}.{p}" for p in task.predecessors]
        }
        if (fin := self._finalizer_of(task)) is not None:
            relations["FinalizerTask"] = f"{task.database}.{task.schema}.{fin.name}"
        if task.finalize:
            relations["FinalizedRootTask"] = f"{task.database}.{task.schema}.{task.finalize}"
        body = {
            **task.body,
            "name": task.name,
            "state": task.state,
            "id": task.id,
            "created_on": task.created_on,
            "database_name": task.database,
            "schema_name": task.schema,
            "owner": self.role,
            "owner_role_type": "ROLE",
            "task_relations": json.dumps(relations),
        }
        if task.body.get("warehouse") is None:
            body.pop("warehouse", None)
        return TaskModel.from_dict(body).to_dict()  # round-trip through snowflake.core's own model

    def _create_task(self, db: str, schema: str, body: dict[str, Any], mode: str) -> dict[str, Any]:
        from snowflake.core.task._generated.models import Task as TaskModel

        self._check_schema(db, schema)
        model = TaskModel.from_dict(body)  # validates like the client (name regex, enums, ...)
        name = ident(model.name)
        key = (db, schema, name)
        new = _Task(db, schema, name, model.to_dict(hide_readonly_properties=True))
        existing = self._tasks.get(key)
        if existing is not None:
            if mode == "ifNotExists":
                return {"status": "Task statement executed successfully."}
            if mode != "orReplace":
                raise InjectedError(409, f"Object '{name}' already exists.")
        for p in new.predecessors:
            if (db, schema, p) not in self._tasks:
                raise InjectedError(404, f"Task '{db}.{schema}.{p}' does not exist or not authorized.")
        if new.finalize:
            root = self._tasks.get((db, schema, new.finalize))
            if root is None:
                raise InjectedError(404, f"Task '{db}.{schema}.{new.finalize}' does not exist or not authorized.")
            other = self._finalizer_of(root)
            if other is not None and other.name != name:
                raise InjectedError(400, f"Root task {root.name} already has finalizer task {other.name}.")
            if root.state == "started":
                self._require_suspended_root(new)
        if new.predecessors or new.finalize:
            self._require_suspended_root(new)
        if existing is not None and existing.state == "started" and not (new.predecessors or new.finalize):
            raise InjectedError(400, f"Cannot replace task {name} while it is started; suspend it first.")
        self._tasks[key] = new
        return {"status": f"Task {name} successfully created."}

    def _drop_task(self, task: _Task) -> None:
        if task.predecessors or task.finalize:
            self._require_suspended_root(task)
        del self._tasks[(task.database, task.schema, task.name)]
        for t in self._tasks.values():  # children lose the edge, as in Snowflake
            if task.name in t.predecessors:
                t.body["predecessors"] = [p for p in t.body["predecessors"] if ident(p.split(".")[-1]) != task.name]

    def _dependents(self, task: _Task, recursive: bool) -> list[_Task]:
        out, queue, seen = [task], deque([task]), {task.name}
        while queue:
            cur = queue.popleft()
            for child in self._children(cur):
                if child.name not in seen:
                    seen.add(child.name)
                    out.append(child)
                    if recursive:
                        queue.append(child)
        fin = self._finalizer_of(task)
        if fin is not None and fin.name not in seen:
            out.append(fin)
        return out

    def _rest(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        m = re.match(r"databases/([^/]+)/schemas/([^/]+)/tasks(?:/([^/:]+))?(?::([a-z-]+)|/([a-z_-]+))?$", path)
        if not m:
            raise InjectedError(404, f"offline account: no REST resource {method} /api/v2/{path}")
        db, schema, name, action, sub = ident(unquote(m[1])), ident(unquote(m[2])), m[3], m[4], m[5]
        name = ident(unquote(name)) if name else None
        with self._lock:
            self._check_schema(db, schema)
            if name is None:
                if method == "POST":
                    return 200, self._create_task(db, schema, body or {}, query.get("createMode", "errorIfExists"))
                if method == "GET":
                    rows = [t for (d, s, _), t in self._tasks.items() if (d, s) == (db, schema)]
                    if query.get("rootOnly", "false") == "true":
                        rows = [t for t in rows if not t.predecessors and not t.finalize]
                    if like := query.get("like"):
                        rx = re.compile("^" + re.escape(like.upper()).replace("%", ".*").replace("_", ".") + "$")
                        rows = [t for t in rows if rx.match(t.name.upper())]
                    if sw := query.get("startsWith"):
                        rows = [t for t in rows if t.name.startswith(sw)]
                    return 200, [self._task_json(t) for t in rows]
            elif action is None and sub is None:
                if method == "GET":
                    return 200, self._task_json(self._get_task(db, schema, name))
                if method == "PUT":
                    return 200, self._create_task(db, schema, {**(body or {}), "name": name}, "orReplace")
                if method == "DELETE":
                    task = self._tasks.get((db, schema, name))
                    if task is None:
                        if query.get("ifExists") == "true":
                            return 200, {"status": "Drop statement executed successfully."}
                        self._get_task(db, schema, name)
                    self._drop_task(task)  # type: ignore[arg-type]
                    return 200, {"status": f"{name} successfully dropped."}
            elif action in ("resume", "suspend") and method == "POST":
                task = self._get_task(db, schema, name)
                task.state = "started" if action == "resume" else "suspended"
                return 200, {"status": "Statement executed successfully."}
            elif action == "execute" and method == "POST":
                task = self._get_task(db, schema, name)
                if task.predecessors or task.finalize:
                    raise InjectedError(400, f"Task {name} is not a root task: EXECUTE TASK needs the root.")
                self.executions.append({"task": name, "retry_last": query.get("retryLast") == "true"})
                if self.execute_outcome is not None:
                    self.add_graph_run(name, self.execute_outcome, database=db, schema=schema)
                return 200, {"status": "Task executed successfully."}
            elif sub == "dependents" and method == "GET":
                task = self._get_task(db, schema, name)
                recursive = query.get("recursive", "true") == "true"
                return 200, [self._task_json(t) for t in self._dependents(task, recursive)]
            elif sub in ("complete-graphs", "complete_graphs", "current-graphs", "current_graphs") and method == "GET":
                self._get_task(db, schema, name)
                current = sub.startswith("current")
                error_only = query.get("errorOnly", "true") == "true"
                return 200, [
                    r for r in self.graph_runs
                    if (r["database_name"], r["schema_name"], r["root_task_name"]) == (db, schema, name)
                    and (r["state"] in ("SCHEDULED", "EXECUTING")) == current
                    and (current or not error_only or r["state"] != "SUCCEEDED")
                ]
        raise InjectedError(405, f"offline account: {method} /api/v2/{path} is not supported")

    # ----------------------------------------------------------------- SQL

    def _sql(self, sess: dict[str, str | None], sql: str, describe_only: bool) -> dict[str, Any]:
        s = sql.strip().rstrip(";").strip()
        low = s.lower()
        if (registry := self.models.answer(sess, s, describe_only)) is not None:
            return registry
        if low.startswith("select system$client_version_info()"):
            return _result(["SYSTEM$CLIENT_VERSION_INFO()"], [["[]"]])
        if low.startswith("select system$get_default_python_artifact_repository("):
            return _result(["SYSTEM$GET_DEFAULT_PYTHON_ARTIFACT_REPOSITORY"], [[None]])  # NULL: never set
        if low.startswith("select system$are_anaconda_terms_acknowledged()"):
            return _result(["SYSTEM$ARE_ANACONDA_TERMS_ACKNOWLEDGED()"], [["1"]], types=["boolean"])
        if low.startswith("select system$cancel_all_queries("):
            return _result(["SYSTEM$CANCEL_ALL_QUERIES"], [["0 queries cancelled."]])
        if low.startswith("select current_account()"):
            return _result(["CURRENT_ACCOUNT()"], [["OFFLINE"]])
        if m := re.search(r"result_scan\('([^']+)'\)", s, re.I):
            return self._result_scan(m[1], s)
        if re.search(r"information_schema\.(complete_task_graphs|task_history)\s*\(", low):
            return self._history_query(s)
        if "information_schema.packages" in low:
            return self._packages_query(s, describe_only)
        if m := re.match(r"(describe|desc)\s+stage\s+(?:identifier\('([^']*)'\)|(\S+))$", s, re.I):
            named = m[2] or m[3]
            self._stage_dir(named if "." in named else self._qualify(named, sess))  # raises when missing
            return _result(["parent_property", "property", "property_type", "property_value"],
                           [["STAGE_LOCATION", "URL", "String", "[]"]])
        if m := re.match(r"create\s+stage\s+if\s+not\s+exists\s+identifier\('([^']*)'\)", s, re.I):
            named = split_fqn(m[1])
            parts = [*[str(sess["database"]), str(sess["schema"])][: 3 - len(named)], *named]
            self.create_stage(".".join(f'"{p}"' for p in parts), if_not_exists=True)
            return _result(["status"], [[f"Stage area {parts[-1]} successfully created."]], type_id=0x6000)
        if m := re.match(r"show\s+compute\s+pools\s+like\s+'([^']*)'", s, re.I):
            rows = [[name, "ACTIVE", 1, n] for name, n in self.compute_pools.items() if name == ident(m[1])]
            return _result(["name", "state", "min_nodes", "max_nodes"], rows, types=["text", "text", "fixed", "fixed"])
        if m := re.match(r"call\s+system\$get_ml_job_runtime\(\s*'([^']*)'", s, re.I):
            if ident(m[1]) not in self.compute_pools:
                raise InjectedError(2003, f"Compute pool '{ident(m[1])}' does not exist or not authorized.")
            return _result(["SYSTEM$GET_ML_JOB_RUNTIME"], [["/snowflake/images/snowflake_images/st_plat/runtime/x86/runtime_image/snowbooks:offline"]])
        if m := re.match(r"select\s+current_(database|schema|warehouse|role)\(\)\s*$", low):
            return _result([f"CURRENT_{m[1].upper()}()"], [[sess.get(m[1])]])
        if re.match(r"(alter\s+session|begin|commit|rollback)\b", low):
            return _result(["status"], [["Statement executed successfully."]], type_id=0x6000)
        if m := re.match(r"use\s+(?:(database|schema|warehouse|role)\s+)?(.+)$", s, re.I):
            what, value = (m[1] or "schema").lower(), split_fqn(m[2])
            if what == "schema" and len(value) == 2:
                sess["database"], sess["schema"] = value
            else:
                sess[what] = value[-1]
            return _result(["status"], [["Statement executed successfully."]], type_id=0x6000)
        if m := re.match(r"create\s+(or\s+replace\s+)?(?:temp(?:orary)?\s+)?stage\s+(if\s+not\s+exists\s+)?(\S+)", s, re.I):
            named = split_fqn(m[3])
            parts = [*[str(sess["database"]), str(sess["schema"])][: 3 - len(named)], *named]
            self.create_stage(".".join(f'"{p}"' for p in parts), replace=bool(m[1]), if_not_exists=bool(m[2]))
            return _result(["status"], [[f"Stage area {parts[-1]} successfully created."]], type_id=0x6000)
        if m := re.match(r"put\s+('[^']*'|\S+)\s+('[^']*'|\S+)(.*)$", s, re.I | re.S):
            return self._put(sess, m[1].strip("'"), m[2], m[3])
        if m := re.match(r"(?:list|ls)\s+('[^']*'|\S+)", s, re.I):
            base, _ = self._stage_dir(m[1], sess["database"], sess["schema"])
            stage_name = base.name.lower()
            rows = [[f"{stage_name}/{f.name}", f.size, f.md5, "Thu, 1 Jan 2026 00:00:00 GMT"] for f in self.list_stage(m[1] if "." in m[1] else self._qualify(m[1], sess))]
            return _result(["name", "size", "md5", "last_modified"], rows, types=["text", "fixed", "text", "text"])
        if m := re.match(r"(?:remove|rm)\s+('[^']*'|\S+)", s, re.I):
            gone = self.remove(m[1] if "." in m[1] else self._qualify(m[1], sess))
            return _result(["name", "result"], [[g, "removed"] for g in gone])
        if (answer := self.monitors.handle(sess, s)) is not None:
            return answer
        raise InjectedError(1003, f"SQL compilation error: the offline account does not support this statement: {s[:200]}")

    def _result_scan(self, qid: str, sql: str) -> dict[str, Any]:
        """``SELECT "a", "b" FROM (SELECT * FROM TABLE(RESULT_SCAN('<id>')))``: project an earlier result."""
        if qid not in self._results:
            raise InjectedError(2003, f"SQL compilation error: result of query '{qid}' is not available.")
        rowtype, rows = self._results[qid]
        names = [c["name"] for c in rowtype]
        head = re.match(r"\s*select\s+(.*?)\s+from\s", sql, re.I | re.S)
        cols = [c.strip() for c in head[1].split(",")] if head else ["*"]
        if cols != ["*"]:
            idx = [names.index(ident(c)) if ident(c) in names else names.index(c.strip('"')) for c in cols]
            rowtype = [rowtype[i] for i in idx]
            rows = [[r[i] for i in idx] for r in rows]
        return {**_result([], []), "rowtype": rowtype, "rowset": rows, "total": len(rows), "returned": len(rows)}

    def _qualify(self, stage: str, sess: dict[str, str | None]) -> str:
        text = stage.strip("'").lstrip("@")
        return f"@{sess['database']}.{sess['schema']}.{text}"

    def _put(self, sess: dict[str, str | None], src: str, target: str, options: str) -> dict[str, Any]:
        target = target.strip("'")
        base, prefix = self._stage_dir(target if "." in target.split("/")[0] else self._qualify(target, sess))
        opts = {k.upper(): v.upper() for k, v in re.findall(r"(\w+)\s*=\s*'?(\w+)'?", options)}
        location = base / prefix if prefix else base
        location.mkdir(parents=True, exist_ok=True)
        return {
            "command": "UPLOAD",
            "src_locations": [src.replace("file://", "", 1)],
            "parallel": int(opts.get("PARALLEL", 4)),
            "autoCompress": opts.get("AUTO_COMPRESS", "TRUE") == "TRUE",
            "sourceCompression": opts.get("SOURCE_COMPRESSION", "AUTO_DETECT").lower(),
            "overwrite": opts.get("OVERWRITE", "FALSE") == "TRUE",
            "stageInfo": {"locationType": "LOCAL_FS", "location": str(location), "creds": {}},
            "_raw": True,
        }

    def _packages_query(self, sql: str, describe_only: bool) -> dict[str, Any]:
        names_m = re.search(r'"?package_name"?\s+in\s*\(([^)]*)\)', sql, re.I)
        names = re.findall(r"'((?:[^']|'')*)'", names_m[1]) if names_m else None
        lang_m = re.search(r""""?language"?\s*=\s*'([^']*)'""", sql, re.I)
        lang = lang_m[1] if lang_m else "python"
        rows = [r for r in self.packages if r.get("language", "python") == lang and (names is None or r["package_name"] in names)]
        if re.search(r"array_agg", sql, re.I):
            grouped: dict[str, list[str]] = {}
            for r in rows:
                grouped.setdefault(r["package_name"], []).append(r["version"])
            alias = re.search(r'array_agg\([^)]*\)\s+as\s+("[^"]+"|\w+)', sql, re.I)
            col = ident(alias[1]) if alias else 'ARRAY_AGG("VERSION")'
            data = [[k, json.dumps(v, indent=2)] for k, v in grouped.items()]
            return _result(["PACKAGE_NAME", col], [] if describe_only else data, types=["text", "array"])
        data = [[r["package_name"], r["version"], r.get("language", "python")] for r in rows]
        return _result(["PACKAGE_NAME", "VERSION", "LANGUAGE"], [] if describe_only else data)

    def _handle_query(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        sess = self._sessions.get(token)
        if sess is None:
            return {"success": False, "code": "390104", "message": "User must login again to access the service.", "data": None}
        sql = bind(body.get("sqlText", ""), body.get("bindings"))
        first = re.match(r"\s*(\w+)", sql)
        verb = first[1].upper() if first else ""
        call = Call(0, "sql", verb, "", {}, sql)
        try:
            call = self._record(call)
            with self._lock:
                data = self._sql(sess, sql, bool(body.get("describeOnly")))
        except InjectedError as exc:
            self._finish(call, exc.status, exc.message) if call.index else None
            code = f"{exc.status:06d}" if exc.status >= 1000 else "000603"
            return {"success": False, "code": code, "message": exc.message,
                    "data": {"errorCode": code, "sqlState": "42000", "queryId": str(uuid.uuid4())}}
        self._finish(call, 200)
        if "rowtype" in data:
            with self._lock:
                self._results[data["queryId"]] = (data["rowtype"], data["rowset"])
        if data.pop("_raw", False):
            return {"success": True, "data": data}
        data.update(finalDatabaseName=sess.get("database"), finalSchemaName=sess.get("schema"),
                    finalWarehouseName=sess.get("warehouse"), finalRoleName=sess.get("role"))
        return {"success": True, "data": data}

    def _login(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        token = uuid.uuid4().hex
        sess: dict[str, str | None] = {
            "database": ident(query["databaseName"]) if query.get("databaseName") else None,
            "schema": ident(query["schemaName"]) if query.get("schemaName") else None,
            "warehouse": ident(query["warehouse"]) if query.get("warehouse") else None,
            "role": ident(query["roleName"]) if query.get("roleName") else self.role,
        }
        with self._lock:
            self._sessions[token] = sess
        return {
            "success": True,
            "data": {
                "token": token,
                "masterToken": "master-" + token,
                "validityInSeconds": 3600,
                "masterValidityInSeconds": 14400,
                "sessionId": abs(hash(token)) % 10**12,
                "serverVersion": "9.99.0-offline",
                "parameters": [
                    {"name": "AUTOCOMMIT", "value": True},
                    {"name": "CLIENT_SESSION_KEEP_ALIVE_HEARTBEAT_FREQUENCY", "value": 3600},
                    {"name": "CLIENT_STAGE_ARRAY_BINDING_THRESHOLD", "value": 0},
                    {"name": "TIMEZONE", "value": "Etc/UTC"},
                ],
                "sessionInfo": {
                    "databaseName": sess["database"],
                    "schemaName": sess["schema"],
                    "warehouseName": sess["warehouse"],
                    "roleName": sess["role"],
                },
            },
        }


def bind(sql: str, bindings: dict[str, Any] | None) -> str:
    """The statement with qmark/numeric bindings written in as literals, as the server binds them."""
    if not bindings:
        return sql
    values = [bindings[k] for k in sorted(bindings, key=int)]

    def literal(b: dict[str, Any]) -> str:
        v = b.get("value")
        if v is None:
            return "NULL"
        if str(b.get("type", "TEXT")).upper() in ("FIXED", "REAL", "BOOLEAN"):
            return str(v)
        return "'" + str(v).replace("'", "''") + "'"

    out, i, quoted, n = [], 0, False, 0
    while i < len(sql):
        ch = sql[i]
        if ch == "'":
            quoted = not quoted
        if not quoted and ch == "?" and n < len(values):
            out.append(literal(values[n]))
            n += 1
        elif not quoted and ch == ":" and i + 1 < len(sql) and sql[i + 1].isdigit():
            j = i + 1
            while j < len(sql) and sql[j].isdigit():
                j += 1
            out.append(literal(values[int(sql[i + 1:j]) - 1]))
            i = j
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def bind_params(sql: str, params: Any) -> str:
    """``sql`` with client-side parameters (a sequence, as Snowpark and the connector pass them) written in as
    the server would bind them: what a recorder of real traffic logs, to compare with this account's log."""
    if not isinstance(params, (list, tuple)) or not params:
        return sql
    kinds = {bool: "BOOLEAN", int: "FIXED", float: "REAL"}
    return bind(sql, {str(i): {"type": kinds.get(type(v), "TEXT"), "value": None if v is None else str(v)}
                      for i, v in enumerate(params, 1)})


def _epoch(stamp: str) -> float:
    import calendar

    return float(calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")))


def _result(
    names: list[str], rows: list[list[Any]], *, types: list[str] | None = None, type_id: int = 0x1000
) -> dict[str, Any]:
    types = types or ["text"] * len(names)
    rowtype = [
        {"name": n, "database": "", "schema": "", "table": "", "nullable": True, "type": t,
         "length": 16777216 if t == "text" else None, "byteLength": 16777216 if t == "text" else None,
         "precision": 38 if t == "fixed" else None, "scale": 0 if t == "fixed" else None, "collation": None}
        for n, t in zip(names, types, strict=True)
    ]
    return {
        "rowtype": rowtype,
        "rowset": [[None if v is None else str(v) for v in r] for r in rows],
        "total": len(rows),
        "returned": len(rows),
        "queryId": str(uuid.uuid4()),
        "queryResultFormat": "json",
        "statementTypeId": type_id,
        "parameters": [],
    }


# --------------------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    account: OfflineAccount
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid the 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if self.headers.get("Content-Encoding") == "gzip" and raw:
            raw = gzip.decompress(raw)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload, default=lambda o: o.isoformat() if hasattr(o, "isoformat") else str(o)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        m = re.search(r'Token="([^"]*)"', auth)
        return m[1] if m else None

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        acct = self.account
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        body = self._body()
        path = url.path
        try:
            if path == "/session/v1/login-request":
                return self._send(200, acct._login(query, body or {}))
            if path in ("/session", "/session/heartbeat", "/session/token-request"):
                if query.get("delete") == "true":
                    acct._sessions.pop(self._token() or "", None)
                return self._send(200, {"success": True, "data": None, "code": None, "message": None})
            if path.startswith("/telemetry"):
                return self._send(200, {"success": True, "data": "Log Received"})
            if path == "/queries/v1/query-request":
                return self._send(200, acct._handle_query(self._token() or "", body or {}))
            if path == "/queries/v1/abort-request":
                return self._send(200, {"success": True})
            if path.startswith("/api/v2/"):
                return self._rest(method, unquote(path[len("/api/v2/"):]), query, body)
            self._send(404, {"success": False, "message": f"offline account: no route {method} {path}"})
        except Exception as exc:  # a bug in the double: answer 500 so the client fails loudly
            self._send(500, {"code": "000000", "message": f"offline account bug: {type(exc).__name__}: {exc}"})

    def _rest(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
        acct = self.account
        if self._token() not in acct._sessions:
            return self._send(401, {"code": "390104", "message": "User must login again to access the service."})
        call = Call(0, "rest", method, path, query, body)
        try:
            call = acct._record(call)
            status, payload = acct._rest(method, path, query, body)
        except InjectedError as exc:
            if call.index:
                acct._finish(call, exc.status, exc.message)
            return self._send(exc.status, {"code": str(exc.status), "message": exc.message,
                                           "error_code": str(exc.status), "request_id": str(uuid.uuid4())})
        acct._finish(call, status)
        self._send(status, payload)


def sequence(calls: Iterable[Call]) -> list[str]:
    """The summaries of ``calls``: the shape of a deploy, for assertions."""
    return [c.summary for c in calls]


__all__ = ["Call", "InjectedError", "OfflineAccount", "StageFile", "ident", "sequence", "split_fqn"]
