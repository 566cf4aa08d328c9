"""An embedded Snowflake double: fakesnow's HTTP server (DuckDB) in a thread of this process.

`EmbeddedEngine` starts fakesnow's Starlette app under uvicorn on 127.0.0.1 (a free port,
chosen by binding the socket ourselves, so there is no find-then-bind race), lazily on first
use. The real Snowpark and connector code talk to it over HTTP, unchanged.

State and persistence (fakesnow 0.12.1):

* fakesnow's server keeps ONE module-global in-memory DuckDB (`fakesnow.server.shared_fs`)
  shared by every login, plus a module-global `sessions` dict and stage bucket folder
  (`fakesnow.transforms.stage.LOCAL_BUCKET_PATH`). The engine swaps in a fresh DuckDB and a
  fresh bucket folder when it starts and restores/deletes them on close, so each engine starts
  empty. Consequently only one engine may run per process at a time (enforced).
* Persistence: a login may send the session parameter ``FAKESNOW_DB_PATH``; fakesnow then
  gives THAT connection its own DuckDB with each database ATTACHed from
  ``<db_path>/<DATABASE>.db`` (the directory must exist). Those connections do not share the
  in-memory database with other logins, so the engine does not use it: data is per engine,
  in memory.

The wire (`pytest_snowpipe.doubles.sql.wire`) is fakesnow's, with two of Snowflake's shapes where
fakesnow's is slow: an array-bound INSERT runs as one statement, and a large result travels as
an inline first part plus chunks the connector downloads.

Another process (e.g. a remote stage's fresh subprocess) reaches the same data by creating a
session from `EmbeddedEngine.connection_params()`; all logins share the engine's DuckDB. Those
parameters carry a credential minted when the engine starts: any other login is refused.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import shutil
import socket
import threading
import time
import warnings
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pytest_snowpipe.errors import SnowpipeError

if TYPE_CHECKING:
    import uvicorn
    from fakesnow.instance import FakeSnow
    from snowflake.snowpark import Session

    from pytest_snowpipe.doubles.sql.wire import ChunkStore

__all__ = ["EmbeddedEngine", "EngineError"]

_RUNNING_LOCK = threading.Lock()
_running: EmbeddedEngine | None = None


class EngineError(SnowpipeError, RuntimeError):
    """The embedded engine could not be started or used."""


THREAD_SAFE_SESSION = "PYTHON_SNOWPARK_ENABLE_THREAD_SAFE_SESSION"


ENGINE_USER = "snowpipe"  # the one user the engine lets in, with the run's password (minted at start)


def _refused(user: str) -> dict[str, Any]:
    """Snowflake's answer to a wrong login (the connector raises it as a DatabaseError, errno 390100)."""
    return {
        "data": None, "code": "390100", "success": False,
        "message": (
            f"Incorrect username or password was specified (user {user[:64]!r}). This is the embedded engine of a "
            "pytest-snowpipe run: it takes only the sessions of its own run and their child processes, which get "
            "the run's credential from EmbeddedEngine.connection_params() (minted when the engine started)"
        ),
    }


def _signed_uploads(gcs_stage_info: Any, upload_key: str) -> Any:
    """fakesnow's PUT stage info with the upload url signed: ``/fs_bucket/<key>/<path>`` (the connector
    PUTs a file to the url it is given, with no session token), so no other process can write a stage file."""

    def signed(request: Any, expr: Any, put_stage_data: Any) -> dict[str, Any]:
        info: dict[str, Any] = gcs_stage_info(request, expr, put_stage_data)
        if "presignedUrl" in info:  # with the adapter, LOCAL_FS: the client copies the file itself
            info["presignedUrl"] = info["presignedUrl"].replace("/fs_bucket/", f"/fs_bucket/{upload_key}/", 1)
        return info

    return signed


def _app(store: Any, credential: tuple[str, str], upload_key: str) -> Any:
    """fakesnow's routes, with a login that also returns a master token and a telemetry sink,
    and `wire`'s query route (array-bound INSERTs as one statement, large results in chunks
    kept in ``store``).

    Without a master token the connector's ``close()`` fails before logging out
    (``delete_session`` needs one) and Snowpark's atexit hook later retries the dead server
    for a minute; telemetry posts would get 404.
    """
    import json

    import fakesnow.server as fs_server
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def login(request: Request) -> Response:
        import gzip
        import hmac

        raw = await request.body()  # starlette keeps it: fakesnow's handler reads it again
        if request.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        try:
            given = json.loads(raw).get("data") or {}
            user, password = str(given.get("LOGIN_NAME") or ""), str(given.get("PASSWORD") or "")
        except (ValueError, AttributeError):
            user, password = "", ""
        ok_user = hmac.compare_digest(user.encode(), credential[0].encode())
        if not (hmac.compare_digest(password.encode(), credential[1].encode()) and ok_user):
            return JSONResponse(_refused(user))
        response = await fs_server.login_request(request)
        body = json.loads(bytes(response.body))
        if body.get("success") and (data := body.get("data")):
            data.setdefault("masterToken", data["token"])
            # Snowpark shares one cursor among a session's threads unless the server turns on its
            # thread-safe session (a cursor per thread); without it, a PUT in one emulated task read
            # back another task's result columns (IndexError inside put_stream)
            data.setdefault("parameters", []).append({"name": THREAD_SAFE_SESSION, "value": True})
        return JSONResponse(body, status_code=response.status_code)

    async def bucket_upload(request: Request) -> Response:
        import hmac

        from starlette.concurrency import run_in_threadpool

        key, _, path = request.path_params["path"].partition("/")
        if not (path and hmac.compare_digest(key.encode(), upload_key.encode())):
            return Response("not a signed upload url of this run's engine", status_code=403)
        target = await run_in_threadpool(fs_server._write_bucket_file, path, await request.body())
        return Response(status_code=200 if target else 400)

    async def telemetry(request: Request) -> Response:
        return JSONResponse({"success": True, "data": None})

    from pytest_snowpipe.doubles.sql import wire

    ours = [Route("/session/v1/login-request", login, methods=["POST"]), *wire.routes(store),
            Route("/fs_bucket/{path:path}", bucket_upload, methods=["PUT"])]
    replaced = {r.path for r in ours}
    routes = [r for r in fs_server.routes if getattr(r, "path", None) not in replaced]
    routes.extend(ours)
    routes.append(Route("/telemetry/send", telemetry, methods=["POST"]))
    return Starlette(routes=routes)


def _prompt_server(config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn's server, made to stop at once when told (`stop_prompt_server`).

    uvicorn notices ``should_exit`` on a 0.1 s tick and then sleeps another 0.1 s for open
    connections to notice the shutdown: 0.2 s at the end of every run, whose sessions are closed
    by then. This one wakes on the request, and skips the wait when no connection is left.
    """
    import asyncio

    import uvicorn

    class PromptServer(uvicorn.Server):
        async def main_loop(self) -> None:
            self.snowpipe_wake = asyncio.Event()  # names of ours: none of uvicorn's
            self.snowpipe_loop = asyncio.get_running_loop()
            counter = 0
            while not await self.on_tick(counter):
                counter = (counter + 1) % 864000
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.snowpipe_wake.wait(), 0.1)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            if self.server_state.connections or self.server_state.tasks:
                await super().shutdown(sockets)
                return
            for server in self.servers:
                server.close()
            for sock in sockets or []:
                sock.close()
            for server in self.servers:
                await server.wait_closed()

    return PromptServer(config)


def _stop_prompt_server(server: uvicorn.Server) -> None:
    """Ask a `_prompt_server` to stop, waking its main loop (any uvicorn server: on its next tick)."""
    server.should_exit = True
    loop, wake = getattr(server, "snowpipe_loop", None), getattr(server, "snowpipe_wake", None)
    if loop is not None and wake is not None:
        with contextlib.suppress(RuntimeError):  # the loop already ended
            loop.call_soon_threadsafe(wake.set)


class EmbeddedEngine:
    """A lazily started fakesnow server plus Snowpark sessions connected to it.

    Use as a context manager, or call `close()`::

        with EmbeddedEngine() as engine:
            session = engine.session()
            session.sql("select 1").collect()

    Args:
        database: current database of sessions (created if missing).
        schema: current schema of sessions (created if missing).
        gaps: install the `fakesnow_adapter` rewrites (the DuckDB rewrites Snowpark needs).
    """

    def __init__(self, database: str = "SNOWPIPE", schema: str = "PUBLIC", *, gaps: bool = True) -> None:
        self.database = database
        self.schema = schema
        self.gaps = gaps
        self.timings: dict[str, float] = {}
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._sock: socket.socket | None = None
        self._bucket: str | None = None
        self._saved: tuple[FakeSnow, str, Any, Any] | None = None
        self._chunks: ChunkStore | None = None
        self._sessions: list[Session] = []
        self._password: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """True while the server thread is serving."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def chunk_store(self) -> ChunkStore | None:
        """The result chunks waiting for their download (None until started)."""
        return self._chunks

    @property
    def port(self) -> int:
        """The TCP port the server listens on (starts the server)."""
        self.start()
        assert self._port is not None
        return self._port

    def start(self) -> None:
        """Start the server if it is not running yet (idempotent)."""
        global _running
        if self.started:
            return
        t0 = time.perf_counter()
        import fakesnow.server as fs_server
        import fakesnow.transforms.stage as fs_stage
        import uvicorn
        from fakesnow.instance import FakeSnow

        from pytest_snowpipe.doubles.sql import chunk_transport, wire
        from pytest_snowpipe.doubles.sql.result_cache import BoundedResults
        from pytest_snowpipe.engines.tempdirs import make_owned, sweep_orphans

        # the server's per-statement INFO lines and sqlglot's "falling back to a Command" notes are
        # the double's business, not the user's: errors still reach the client as query errors
        logging.getLogger("fakesnow").setLevel(logging.WARNING)
        logging.getLogger("fakesnow.server").setLevel(logging.WARNING)  # it sets INFO on itself: a line per login
        logging.getLogger("sqlglot").setLevel(logging.ERROR)
        # DuckDB warns on every process's first DB-API Arrow fetch, which fakesnow's cursor makes
        warnings.filterwarnings("ignore", message="Arrow output on a DB-API result", category=UserWarning)
        if self.gaps:
            from pytest_snowpipe.doubles.sql import fakesnow_adapter

            fakesnow_adapter.install()
        self.timings["import_server"] = time.perf_counter() - t0

        with _RUNNING_LOCK:
            if _running is not None and _running is not self:
                raise EngineError("another EmbeddedEngine is running in this process; close it first")
            _running = self
        t1 = time.perf_counter()
        # fresh, private state for this engine; restored in close()
        self._saved = (fs_server.shared_fs, fs_stage.LOCAL_BUCKET_PATH, fs_server.to_ipc, fs_server.gcs_stage_info)  # type: ignore[attr-defined]
        sweep_orphans()  # folders of runs killed before their cleanup (kill -9, SIGTERM)
        if os.path.basename(self._saved[1]).startswith("fakesnow_bucket_"):
            with contextlib.suppress(OSError):  # fakesnow makes one at import; this engine brings its own
                os.rmdir(self._saved[1])  # only if empty (makedirs recreates it on a later upload)
        self._bucket = str(make_owned("snowpipe_stages_"))
        fs_stage.LOCAL_BUCKET_PATH = self._bucket
        fs_server.shared_fs = FakeSnow()
        # fakesnow kept every result for the whole run; it only sets and gets them (a mapping will do)
        fs_server.shared_fs.results_cache = BoundedResults()  # type: ignore[assignment]
        fs_server.to_ipc = wire.chunked_to_ipc(fs_server.to_ipc)  # type: ignore[attr-defined,assignment]
        self._chunks = wire.ChunkStore()
        chunk_transport.install()  # this process's sessions take the chunks without a socket

        # proto=IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on accepted sockets
        # whose proto says TCP, and with Nagle on every response's body (written after its
        # headers) waited ~40 ms for the client's delayed ACK: 52 ms a statement instead of 9
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._sock = sock  # asyncio serves on this very socket: close it only after the server
        self._port = sock.getsockname()[1]
        # a per-run credential: any local process can reach 127.0.0.1 (the port is in /proc/net/tcp), only
        # this run's sessions and the child processes it hands connection_params() to can log in
        self._password = secrets.token_urlsafe(32)
        upload_key = secrets.token_urlsafe(24)
        fs_server.gcs_stage_info = _signed_uploads(fs_server.gcs_stage_info, upload_key)
        app = _app(self._chunks, (ENGINE_USER, self._password), upload_key)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = _prompt_server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="snowpipe-embedded-engine", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise EngineError("fakesnow server failed to start")
            time.sleep(0.005)
        self.timings["server_start"] = time.perf_counter() - t1

    def close(self) -> None:
        """Close sessions, stop the server thread, drop the data and the stage folder."""
        global _running
        for s in self._sessions:
            try:
                s.close()
            except Exception:
                pass
        self._sessions.clear()
        if self._server is not None:
            _stop_prompt_server(self._server)
        if self._thread is not None:
            self._thread.join(timeout=30)
            if self._thread.is_alive():
                raise EngineError("fakesnow server thread did not stop")
        self._server = self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._saved is not None:
            import fakesnow.server as fs_server
            import fakesnow.transforms.stage as fs_stage

            fs_server.sessions.clear()
            fs_server.shared_fs.duck_conn.close()
            fs_server.shared_fs, fs_stage.LOCAL_BUCKET_PATH, fs_server.to_ipc, fs_server.gcs_stage_info = self._saved  # type: ignore[attr-defined]
            self._saved = None
        if self._chunks is not None:
            self._chunks.clear()
            self._chunks = None
        if self._bucket is not None:
            shutil.rmtree(self._bucket, ignore_errors=True)
            self._bucket = None
        self._password = None
        with _RUNNING_LOCK:
            if _running is self:
                _running = None

    def __enter__(self) -> EmbeddedEngine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- clients -----------------------------------------------------------------------------

    def connection_params(self) -> dict[str, Any]:
        """JSON-serialisable `Session.builder.configs(...)` parameters for this engine.

        They hold the run's credential: hand them only to the run's own processes (a remote stage's
        subprocess, the rehearsal's sandbox), by environment or an inherited pipe, never on a command
        line: ``Session.builder.configs(params).create()``.
        """
        port = self.port  # starts the engine, which mints the password
        return {
            "user": ENGINE_USER,
            "password": self._password,
            "account": "fakesnow",
            "host": "127.0.0.1",
            "port": port,
            "protocol": "http",
            "database": self.database,
            "schema": self.schema,
            # no telemetry; fail fast instead of retrying against a local server
            "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
            "network_timeout": 60,
            "login_timeout": 10,
        }

    def session(self) -> Session:
        """A new real `snowflake.snowpark.Session` on this engine, closed by `close()`."""
        params = self.connection_params()
        t0 = time.perf_counter()
        from snowflake.snowpark import Session

        from pytest_snowpipe.doubles.sql import bulk_load

        bulk_load.install()  # pandas loads without the connector's gzip Parquet detour
        self.timings.setdefault("import_snowpark", time.perf_counter() - t0)
        t1 = time.perf_counter()
        session: Session = Session.builder.configs(params).create()
        self.timings.setdefault("first_session", time.perf_counter() - t1)
        self._sessions.append(session)
        return session


# -- the run's engine ------------------------------------------------------------------------
# One engine per process (an xdist worker has its own), started when a stage first needs a
# session and closed by the plugin at the end of the run (and at interpreter exit, whatever
# happens), so no server outlives pytest.

_ENGINE: EmbeddedEngine | None = None
_ENGINE_LOCK = threading.Lock()
ACCOUNT = "fakesnow"  # what the engine's sessions report as their account


def engine() -> EmbeddedEngine:
    """This process's engine, started on first use."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = EmbeddedEngine()
            atexit.register(shutdown)
        current = _ENGINE
    current.start()
    return current


def create_embedded_session() -> Session:
    """A real Snowpark session on this process's embedded engine (the engine starts if needed)."""
    return engine().session()


def running_engine() -> EmbeddedEngine | None:
    """The engine if one was started in this process, without starting one."""
    return _ENGINE if _ENGINE is not None and _ENGINE.started else None


def shutdown() -> None:
    """Close this process's engine, if any: sessions, server thread, data, stage folder."""
    global _ENGINE
    with _ENGINE_LOCK:
        current, _ENGINE = _ENGINE, None
    if current is not None:
        current.close()


def is_embedded_session(session: Any) -> bool:
    """True for a Snowpark session whose server is an embedded engine (this process's or a parent's)."""
    return is_embedded_connection(getattr(getattr(session, "_conn", None), "_conn", None))


def is_embedded_connection(conn: Any) -> bool:
    """True for a connector connection to an embedded engine (this process's or a parent's)."""
    return getattr(conn, "host", None) == "127.0.0.1" and str(getattr(conn, "account", "")).lower() == ACCOUNT


_STAGES_MADE: set[tuple[int, str]] = set()


def ensure_stage(session: Any, location: str) -> None:
    """Create the stage a location names (``@[DB.][SCHEMA.]NAME[/path]``) on the embedded engine.

    An account that runs a graph has the graph's stage (deploy checks it exists); the embedded
    engine starts empty every run, so the emulator provisions it, with its database and schema.
    Idempotent and cached per engine.
    """
    stage = location.lstrip("@").split("/", 1)[0]
    current = running_engine()
    key = (current.port if current is not None else 0, stage.upper())
    if not stage or key in _STAGES_MADE:
        return
    parts = stage.split(".")
    # CREATE DATABASE/SCHEMA make the new one current (as in Snowflake), and fakesnow shares the
    # current schema between its sessions: put the previous one back
    database, schema = session.sql("SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()").collect()[0]
    try:
        if len(parts) >= 3:
            session.sql(f"CREATE DATABASE IF NOT EXISTS {parts[0]}").collect()
        if len(parts) >= 2:
            session.sql(f"CREATE SCHEMA IF NOT EXISTS {'.'.join(parts[:-1])}").collect()
        session.sql(f"CREATE STAGE IF NOT EXISTS {stage}").collect()
    finally:
        if database and schema:
            session.sql(f'USE SCHEMA "{database}"."{schema}"').collect()
    _STAGES_MADE.add(key)


# Two PUTs of one session at once against fakesnow's LOCAL_FS stages can leave one of them with
# an empty result (seen when the emulator runs independent tasks in parallel): file transfers to
# the embedded engine take turns. A real account is not affected (nothing else waits on this).
FILE_TRANSFER_LOCK = threading.Lock()
