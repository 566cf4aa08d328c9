"""Record a deploy's SQL and REST traffic on the client side, in the offline account's own terms.

The offline account (offline_account.py) is a double: it is only as good as its agreement with a
real account. This module records what the real clients send, from inside the client process, so
that a live deploy can be recorded once and compared, call by call, with the same deploy against
the double (``differences``). It wraps the two lowest client-side seams and nothing else:

* ``snowflake.connector.cursor.SnowflakeCursor.execute``: every SQL statement the connector runs,
  Snowpark's included (registration, PUT, LIST);
* ``snowflake.core._generated.rest.RESTClientObject.request``: every REST call snowflake.core makes.

Records are ``offline_account.Call`` values, so ``sequence``/``Call.summary`` apply to both sides.
Nothing secret is kept: no headers (they carry the session token), and every SQL text and body
goes through the run's ``Redactor``.
"""
from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from difflib import unified_diff
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pytest_snowpipe.doubles.offline_account import Call, bind_params
from pytest_snowpipe.redact import Redactor

_API = "/api/v2/"


class Recorder:
    """The calls seen while ``record`` is active, in the order the client made them."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        self.calls: list[Call] = []
        self._redactor = redactor or Redactor([])
        self._lock = threading.Lock()

    def _add(self, kind: str, method: str, path: str, query: dict[str, str], body: Any) -> int:
        with self._lock:
            index = len(self.calls) + 1
            self.calls.append(Call(index, kind, method, path, query, self._redactor.deep(body)))  # type: ignore[arg-type]
            return index - 1

    def _finish(self, at: int, status: int, error: str | None = None) -> None:
        with self._lock:
            old = self.calls[at]
            self.calls[at] = Call(old.index, old.kind, old.method, old.path, old.query, old.body, status,
                                  self._redactor.text(error) if error else None)

    def sql(self, text: str) -> int:
        first = re.match(r"\s*(\w+)", text)
        return self._add("sql", first[1].upper() if first else "", "", {}, text)

    def rest(self, method: str, url: str, query: Any, body: Any) -> int:
        parts = urlsplit(url)
        path = unquote(parts.path)
        path = path[path.index(_API) + len(_API):] if _API in path else path.lstrip("/")
        params = {str(k): str(v) for k, v in (query or [])} if not isinstance(query, dict) else \
            {str(k): str(v) for k, v in query.items()}
        if isinstance(body, (bytes, str)):
            try:
                body = json.loads(body)
            except ValueError:
                body = body.decode(errors="replace") if isinstance(body, bytes) else body
        return self._add("rest", method.upper(), path, params, body)

    def save(self, path: Path) -> Path:
        """Write the calls as JSON (one object per call, ``Call``'s fields)."""
        path.write_text(json.dumps([asdict(c) for c in self.calls], indent=1, default=str))
        return path


def load(path: Path) -> list[Call]:
    """Calls written by ``Recorder.save``."""
    return [Call(**item) for item in json.loads(path.read_text())]


def peer_of(params: dict[str, Any]) -> str:
    """``host:port`` of the account a connection's parameters point at (the connector's defaults filled in)."""
    host = params.get("host") or f"{params.get('account', '')}.snowflakecomputing.com"
    return f"{str(host).lower()}:{params.get('port') or 443}"


@contextmanager
def record(peer: str | None = None, redactor: Redactor | None = None) -> Iterator[Recorder]:
    """Record the SQL statements and REST calls this process sends to ``peer`` (``host:port``; all if None).

    The filter keeps out what is not the deploy: the embedded engine's SQL during the rehearsal,
    another account's session.
    """
    from snowflake.connector.cursor import SnowflakeCursor
    from snowflake.core._generated.rest import RESTClientObject

    recorder = Recorder(redactor)
    real_execute = SnowflakeCursor.execute
    real_request: Callable[..., Any] = RESTClientObject.request

    def execute(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        conn = getattr(self, "connection", None)
        if peer is not None and f"{str(getattr(conn, 'host', '')).lower()}:{getattr(conn, 'port', '')}" != peer:
            return real_execute(self, command, *args, **kwargs)
        params = kwargs.get("params", args[0] if args else None)
        at = recorder.sql(bind_params(command, params))
        try:
            result = real_execute(self, command, *args, **kwargs)
        except Exception as exc:
            recorder._finish(at, int(getattr(exc, "errno", 0) or 0), str(exc))
            raise
        recorder._finish(at, 200)
        return result

    def request(self: Any, root: Any, method: str, url: str, query_params: Any = None, headers: Any = None,
                body: Any = None, *args: Any, **kwargs: Any) -> Any:
        netloc = urlsplit(url).netloc.lower()
        if peer is not None and (netloc if ":" in netloc else f"{netloc}:443") != peer:
            return real_request(self, root, method, url, query_params, headers, body, *args, **kwargs)
        at = recorder.rest(method, url, query_params, body)
        try:
            response = real_request(self, root, method, url, query_params, headers, body, *args, **kwargs)
        except Exception as exc:
            recorder._finish(at, int(getattr(exc, "status", 0) or 0), str(exc))
            raise
        recorder._finish(at, int(getattr(response, "status", 200) or 200))
        return response

    SnowflakeCursor.execute = execute  # type: ignore[method-assign]
    RESTClientObject.request = request  # type: ignore[method-assign]
    try:
        yield recorder
    finally:
        SnowflakeCursor.execute = real_execute  # type: ignore[method-assign]
        RESTClientObject.request = real_request  # type: ignore[method-assign]


def differences(recorded: list[Call], offline: list[Call]) -> list[str]:
    """Where the double's call sequence departs from a recorded one: a unified diff of summaries.

    Empty when both made the same calls in the same order with the same outcome class (2xx or not).
    """
    def lines(calls: list[Call]) -> list[str]:
        return [f"{c.summary} -> {'ok' if 200 <= (c.status or 200) < 300 else c.status}" for c in calls]

    return list(unified_diff(lines(recorded), lines(offline), "recorded", "offline account", lineterm="", n=1))


__all__ = ["Recorder", "differences", "load", "peer_of", "record"]
