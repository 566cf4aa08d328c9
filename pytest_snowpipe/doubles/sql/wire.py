"""The embedded engine's HTTP wire, shaped like Snowflake's where fakesnow's is slow.

Two wrappers around fakesnow's query-request route (`query_request`), plus a chunk route:

* **Array-bound INSERT as one statement.** The connector sends ``executemany`` of an
  ``INSERT ... VALUES (?, ?, ...)`` (Snowpark's ``create_dataframe`` of more than 512 values
  does) as ONE request with array bindings; fakesnow runs it once per row, each a full
  parse and transform. Here the bindings become one Arrow table (one column per
  placeholder, converted as fakesnow's ``from_binding`` does), registered on the session's
  DuckDB connection under a unique name, and the statement is forwarded as
  ``INSERT INTO <target>(<cols>) SELECT <the VALUES row, ? -> column> FROM <name>``: one
  statement, whose "number of rows inserted" is the batch's row count, as Snowflake reports.
* **Large results in chunks.** fakesnow sends a whole result as one base64 Arrow stream
  inside the JSON body. Snowflake sends the first part inline (``rowsetBase64``) and the
  rest as ``chunks`` (``url``, ``rowCount``, ``uncompressedSize``, ``compressedSize``) that the
  connector downloads itself (``ArrowResultBatch._download``: a plain GET with the response's
  ``chunkHeaders``, none here; gzip optional) and decodes in its prefetch threads. Results
  above `INLINE_BYTES` are served so: each chunk is an Arrow IPC stream of the same
  Snowflake-typed table (`fakesnow.arrow.to_sf`, so the rowtype and field metadata are
  identical). `ChunkStore` holds each chunk as a slice of that table (no copy) until it is
  downloaded, its session logs out or the engine closes, and writes its stream only when it
  is downloaded: one chunk's bytes at a time, not the whole result's again beside the table.
"""

from __future__ import annotations

import contextvars
import gzip
import json
import secrets
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pytest_snowpipe.doubles.sql.fakesnow_adapter import DUCKDB_LOCK

if TYPE_CHECKING:
    import pyarrow as pa
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["CHUNK_BYTES", "INLINE_BYTES", "ChunkStore", "routes"]

INLINE_BYTES = 1 << 20  # a result whose Arrow data is larger travels in chunks
CHUNK_BYTES = 16 << 20  # about this much Arrow data per downloaded chunk
CHUNK_PATH = "/snowpipe/result-chunk/{chunk_id}"

# set by the query route for the request being served; read by the to_ipc hook
_pending: contextvars.ContextVar[list[pa.Table] | None] = contextvars.ContextVar(
    "snowpipe_pending_chunks", default=None
)


class ChunkStore:
    """Result chunks waiting for their download, by unguessable id, per session token."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chunks: dict[str, tuple[str, pa.Table]] = {}
        self.stored = 0  # chunks put, ever
        self.served = 0  # chunks downloaded, ever

    def put(self, token: str, part: pa.Table) -> str:
        chunk_id = secrets.token_urlsafe(24)
        with self._lock:
            self._chunks[chunk_id] = (token, part)
            self.stored += 1
        return chunk_id

    def pop(self, chunk_id: str) -> pa.Buffer | None:
        """The chunk's Arrow IPC stream (written now), or None if it is unknown or gone."""
        with self._lock:
            entry = self._chunks.pop(chunk_id, None)
            self.served += entry is not None
        return None if entry is None else _ipc(entry[1])

    def drop_session(self, token: str) -> None:
        with self._lock:
            for chunk_id in [k for k, (t, _) in self._chunks.items() if t == token]:
                del self._chunks[chunk_id]

    def clear(self) -> None:
        with self._lock:
            self._chunks.clear()

    def __len__(self) -> int:
        return len(self._chunks)

    @property
    def nbytes(self) -> int:
        """Arrow data of the chunks waiting (slices: shared with their result's table)."""
        with self._lock:
            return sum(part.nbytes for _, part in self._chunks.values())


def _ipc(table: pa.Table) -> pa.Buffer:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    buffer: pa.Buffer = sink.getvalue()
    return buffer


def chunked_to_ipc(original: Callable[[pa.Table], Any]) -> Callable[[pa.Table], Any]:
    """A `fakesnow.arrow.to_ipc` that keeps only the first part of a large result inline.

    The rest is written as further IPC streams into the request's pending list (when the
    query route asked for it), which the route turns into ``chunks``.
    """

    def to_ipc(table: pa.Table) -> Any:
        pending = _pending.get()
        if pending is None or table.nbytes <= INLINE_BYTES or table.num_rows < 2:
            return original(table)
        per_row = max(1, table.nbytes // table.num_rows)
        inline_rows = max(1, INLINE_BYTES // per_row)
        chunk_rows = max(1, CHUNK_BYTES // per_row)
        for start in range(inline_rows, table.num_rows, chunk_rows):
            pending.append(table.slice(start, chunk_rows))  # written when downloaded (ChunkStore.pop)
        return original(table.slice(0, inline_rows))

    return to_ipc


# --------------------------------------------------------------------------------------------
# array-bound INSERT ... VALUES
# --------------------------------------------------------------------------------------------


def _insert_select(sql_text: str, n_bindings: int, source: str) -> str | None:
    """``INSERT INTO t(c) VALUES (?, f(?))`` -> ``INSERT INTO t(c) SELECT "1", f("2") FROM source``.

    None unless the statement is an INSERT of ONE VALUES row whose placeholders are all the
    statement's placeholders, ``n_bindings`` of them (so the k-th binding is the k-th ``?``).
    """
    import sqlglot
    from sqlglot import exp

    try:
        statement = sqlglot.parse_one(sql_text, read="snowflake")
    except sqlglot.errors.ParseError:
        return None
    if not (
        isinstance(statement, exp.Insert)
        and isinstance(values := statement.expression, exp.Values)
        and len(values.expressions) == 1
        and not statement.args.get("with_")
    ):
        return None
    placeholders = list(statement.find_all(exp.Placeholder, bfs=False))  # source order
    row = values.expressions[0]
    if len(placeholders) != n_bindings or any(p.find_ancestor(exp.Values) is not values for p in placeholders):
        return None
    if any(p.name and p.name != "?" for p in placeholders):
        return None  # :1 / :name styles: not positional in order
    row = row.copy()
    for i, placeholder in enumerate(list(row.find_all(exp.Placeholder, bfs=False)), start=1):
        placeholder.replace(exp.column(exp.to_identifier(str(i), quoted=True)))
    select = exp.select(*row.expressions).from_(exp.to_table(source, dialect="snowflake"))
    statement.set("expression", select)
    return statement.sql(dialect="snowflake")


def _column(binding: dict[str, Any]) -> pa.Array:
    """One placeholder's values as an Arrow array, each as fakesnow's ``from_binding`` gives it."""
    import pyarrow as pa
    from fakesnow.converter import from_binding

    type_, values = binding["type"], binding["value"]
    if type_ in ("TEXT", "REAL", "ANY", "ARRAY", "OBJECT", "VARIANT") or type_ not in (
        "FIXED", "BINARY", "BOOLEAN", "DATE", "TIME", "TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIMESTAMP_TZ",
    ):
        return pa.array(values, pa.string())  # from_binding passes these through as str
    if type_ == "FIXED":
        try:
            return pa.array(values, pa.string()).cast(pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # beyond int64: Python ints below
    return pa.array([None if v is None else from_binding({"type": type_, "value": v}) for v in values])


def _bindings_table(bindings: dict[str, Any]) -> pa.Table | None:
    import pyarrow as pa

    n = len(bindings)
    if n == 0 or sorted(bindings) != sorted(str(i) for i in range(1, n + 1)):
        return None
    columns = [bindings[str(i)] for i in range(1, n + 1)]
    if not all(isinstance(c.get("value"), list) for c in columns):
        return None
    try:
        arrays = [_column(c) for c in columns]
        return pa.Table.from_arrays(arrays, names=[str(i) for i in range(1, n + 1)])
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        return None  # fakesnow's row-by-row path decides


# --------------------------------------------------------------------------------------------
# routes
# --------------------------------------------------------------------------------------------


def _replace_body(request: Request, body: bytes) -> Request:
    """The same request with another (uncompressed) body."""
    from starlette.requests import Request

    scope = dict(request.scope)
    scope["headers"] = [(k, v) for k, v in request.scope["headers"] if k.lower() != b"content-encoding"]
    new = Request(scope, request.receive)
    new._body = body
    return new


def routes(store: ChunkStore) -> list[Any]:
    """The query route (batch INSERTs, chunked results), the chunk route and a logout that drops chunks."""
    import fakesnow.server as fs_server
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    query_request: Callable[[Request], Awaitable[Response]] = fs_server.query_request

    async def query(request: Request) -> Response:
        body = await request.body()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        body_json = json.loads(body)
        token = (request.headers.get("Authorization") or "")[17:-1]
        conn = fs_server.sessions.get(token)
        bindings = body_json.get("bindings") or {}
        registered: str | None = None
        if (
            conn is not None
            and not body_json.get("describeOnly")
            and bindings
            and any(isinstance(b.get("value"), list) for b in bindings.values())
        ):
            name = f"_snowpipe_batch_{secrets.token_hex(8)}"
            sql = _insert_select(body_json["sqlText"], len(bindings), name)
            table = None if sql is None else await run_in_threadpool(_bindings_table, bindings)
            if sql is not None and table is not None:
                with DUCKDB_LOCK:  # the connection is shared: never touch it while a statement runs
                    conn._duck_conn.register(name, table)
                registered = name
                body_json = {**body_json, "sqlText": sql}
                body_json.pop("bindings")
                request = _replace_body(request, json.dumps(body_json).encode())
        pending: list[pa.Table] = []
        reset = _pending.set(pending)
        try:
            response = await query_request(request)
        finally:
            _pending.reset(reset)
            if registered is not None and conn is not None:
                with DUCKDB_LOCK:
                    conn._duck_conn.unregister(registered)
        if not pending:
            return response
        result = json.loads(bytes(response.body))
        data = result["data"]
        base = f"{request.url.scheme}://{request.url.netloc}"
        data["chunks"] = [  # sizes are the Arrow data's: the connector only reports them
            {
                "url": base + CHUNK_PATH.format(chunk_id=store.put(token, part)),
                "rowCount": part.num_rows,
                "uncompressedSize": part.nbytes,
                "compressedSize": part.nbytes,
            }
            for part in pending
        ]
        return JSONResponse(result, status_code=response.status_code)

    async def chunk(request: Request) -> Response:
        payload = await run_in_threadpool(store.pop, request.path_params["chunk_id"])  # writes the stream
        if payload is None:
            return Response(status_code=404)
        return Response(memoryview(payload), media_type="application/octet-stream")

    session_route: Callable[[Request], Awaitable[Response]] = fs_server.session

    async def session(request: Request) -> Response:
        if request.query_params.get("delete"):
            store.drop_session((request.headers.get("Authorization") or "")[17:-1])
        return await session_route(request)

    return [
        Route("/queries/v1/query-request", query, methods=["POST"]),
        Route(CHUNK_PATH, chunk, methods=["GET"]),
        Route("/session", session, methods=["POST"]),
    ]

