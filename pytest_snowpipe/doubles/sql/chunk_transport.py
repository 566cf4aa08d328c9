"""Result chunks of this process's engine handed to the connector without a socket.

A large result reaches the connector as chunks it downloads itself (`wire`): a GET per 16 MB
chunk through ``requests``, whose ``Response.content`` joins the body from 10 kB reads. With the
engine in the same process, both ends of that socket share one interpreter: four chunks of an
800k-row read (130 MB) cost about a second of thread time, a quarter of a second of the read.

This is a ``requests`` transport adapter, the layer below everything the connector does: mounted
for the chunk URLs of the engine running in this process, it answers a GET with the chunk's
bytes from the engine's `ChunkStore` (what the chunk route would send), and the connector
downloads, checks and decodes them as it does any chunk. Sessions of another process (a remote
stage's, the rehearsal's sandbox) reach the engine over HTTP as before.
"""
from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_snowpipe.doubles.sql.wire import ChunkStore

__all__ = ["install", "mount_prefix"]

_ORIGINAL: dict[str, Any] = {}


def mount_prefix(port: int) -> str:
    """The URL prefix of the chunks of the engine listening on ``port``."""
    from pytest_snowpipe.doubles.sql.wire import CHUNK_PATH

    return f"http://127.0.0.1:{port}" + CHUNK_PATH.split("{", 1)[0]


def _adapter(store: ChunkStore, prefix: str) -> Any:
    # the connector's own copy of requests: its sessions, its Response type (untyped: Any here)
    requests: Any = importlib.import_module("snowflake.connector.vendored.requests")
    base: Any = requests.adapters.BaseAdapter

    class InProcessChunks(base):  # type: ignore[misc]
        """GET <prefix><chunk id>: the chunk's Arrow IPC stream, or 404 as the chunk route says."""

        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            url = str(request.url)
            payload = store.pop(url[len(prefix):]) if request.method == "GET" and url.startswith(prefix) else None
            response = requests.Response()
            response.status_code = 404 if payload is None else 200
            response.reason = "Not Found" if payload is None else "OK"
            response._content = b"" if payload is None else payload.to_pybytes()
            response.headers = requests.structures.CaseInsensitiveDict({"Content-Type": "application/octet-stream"})
            response.url, response.request, response.encoding = url, request, None
            return response

        def close(self) -> None:
            """Nothing to close: no connection was opened."""

    return InProcessChunks()


def install() -> None:
    """Mount the adapter on every ``requests`` session the connector makes while an engine runs here
    (for the process's life: a session made for an engine since closed gets 404, as from its route)."""
    if _ORIGINAL:
        return
    from snowflake.connector.session_manager import SessionManager

    from pytest_snowpipe.doubles.sql import embedded

    mount = SessionManager._mount_adapters
    _ORIGINAL["mount"] = mount

    @functools.wraps(mount)
    def _mount_adapters(self: Any, session: Any) -> None:
        mount(self, session)
        engine = embedded.running_engine()
        store = None if engine is None else engine.chunk_store
        if engine is not None and store is not None:
            prefix = mount_prefix(engine.port)
            session.mount(prefix, _adapter(store, prefix))

    SessionManager._mount_adapters = _mount_adapters  # type: ignore[method-assign]

