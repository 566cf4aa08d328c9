"""The offline account's tables and Data Metric Functions: what a monitor deploy says, and reads back.

It keeps tables (columns, ``DATA_METRIC_SCHEDULE``, DMF associations with expectations) and custom DMFs, and
answers ``SHOW TABLES LIKE``, the DDL of :mod:`pytest_snowpipe.taskgraph.monitors_deploy` and the
expectation-status view :func:`pytest_snowpipe.contracts.monitors.latest_monitor_results` reads (rows a test
puts in ``results``). ``supported=False`` is an account below Enterprise Edition: every DMF statement fails
with Snowflake's "Unsupported feature" compilation error.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

UNSUPPORTED = "SQL compilation error: Unsupported feature 'DATA METRIC FUNCTION'."
_NAME = r'((?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)(?:\.(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)){0,2})'


@dataclass
class Table:
    """One table of the account: its columns, its DMF schedule and associations."""

    columns: list[tuple[str, str]]
    schedule: str | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)  # function, on, expectation, expression


class MonitorState:
    """The tables and DMFs of one offline account (its lock is held by the caller)."""

    def __init__(self, supported: bool = True) -> None:
        self.supported = supported
        self.tables: dict[tuple[str, str, str], Table] = {}
        self.functions: dict[tuple[str, str, str], str] = {}  # custom DMF -> body
        self.results: list[dict[str, Any]] = []  # rows of DATA_QUALITY_MONITORING_EXPECTATION_STATUS (lower-case keys)

    def table(self, fqn: str) -> Table | None:
        from pytest_snowpipe.doubles.offline_account import split_fqn

        key = split_fqn(fqn)
        return self.tables.get((key[0], key[1], key[2])) if len(key) == 3 else None

    def _key(self, sess: dict[str, str | None], text: str) -> tuple[str, str, str]:
        from pytest_snowpipe.doubles.offline_account import split_fqn

        parts = split_fqn(text)
        full = [*[str(sess["database"]), str(sess["schema"])][: 3 - len(parts)], *parts]
        return full[0], full[1], full[2]

    def _get(self, key: tuple[str, str, str]) -> Table:
        from pytest_snowpipe.doubles.offline_account import InjectedError

        if key not in self.tables:
            raise InjectedError(2003, f"SQL compilation error: Table '{'.'.join(key)}' does not exist or not authorized.")
        return self.tables[key]

    def _dmf(self) -> None:
        from pytest_snowpipe.doubles.offline_account import InjectedError

        if not self.supported:
            raise InjectedError(2, UNSUPPORTED)

    def handle(self, sess: dict[str, str | None], sql: str) -> dict[str, Any] | None:
        """The answer to ``sql`` when it is a table/DMF statement; None when it is none of them."""
        from pytest_snowpipe.doubles.offline_account import _result, ident

        ok = _result(["status"], [["Statement executed successfully."]], type_id=0x6000)
        if m := re.match(rf"create\s+(or\s+replace\s+)?table\s+(if\s+not\s+exists\s+)?{_NAME}\s*\((.*)\)$", sql, re.I | re.S):
            key = self._key(sess, m[3])
            if m[2] and key in self.tables:
                return ok
            cols = [(ident(c.strip().rsplit(" ", 1)[0]), c.strip().rsplit(" ", 1)[1]) for c in re.split(r",(?![^()]*\))", m[4])]
            self.tables[key] = Table(cols)
            return ok
        if m := re.match(rf"create\s+data\s+metric\s+function\s+(if\s+not\s+exists\s+)?{_NAME}\s*\((.*)\)\s+returns\s+number\s+as\s+\$\$(.*)\$\$$", sql, re.I | re.S):
            self._dmf()
            self.functions.setdefault(self._key(sess, m[2]), m[4])
            return ok
        if m := re.match(rf"alter\s+table\s+{_NAME}\s+set\s+data_metric_schedule\s*=\s*'([^']*)'$", sql, re.I):
            self._dmf()
            self._get(self._key(sess, m[1])).schedule = m[2]
            return ok
        if m := re.match(rf"alter\s+table\s+{_NAME}\s+add\s+data\s+metric\s+function\s+{_NAME}\s+on\s*\(([^)]*)\)\s*"
                         r"(?:expectation\s+(\w+)\s*\((.*)\))?$", sql, re.I | re.S):
            self._dmf()
            return self._associate(sess, m)
        if m := re.match(rf"alter\s+table\s+{_NAME}\s+swap\s+with\s+{_NAME}$", sql, re.I):
            a, b = self._key(sess, m[1]), self._key(sess, m[2])
            self.tables[a], self.tables[b] = self._get(b), self._get(a)
            return ok
        if m := re.match(rf"alter\s+table\s+{_NAME}\s+rename\s+to\s+{_NAME}$", sql, re.I):
            a, b = self._key(sess, m[1]), self._key(sess, m[2])
            self.tables[b] = self._get(a)
            del self.tables[a]
            return ok
        if m := re.match(rf"drop\s+table\s+(if\s+exists\s+)?{_NAME}$", sql, re.I):
            key = self._key(sess, m[2])
            if key not in self.tables and not m[1]:
                self._get(key)
            self.tables.pop(key, None)
            return ok
        if m := re.match(rf"show\s+tables\s+like\s+'([^']*)'\s+in\s+schema\s+{_NAME}$", sql, re.I):
            db, schema = self._key(sess, m[2] + ".X")[:2]
            rx = re.compile("^" + re.escape(m[1]).replace("%", ".*").replace("_", ".") + "$", re.I)
            rows = [["2026-01-01 00:00:00", n, d, s] for (d, s, n) in sorted(self.tables) if (d, s) == (db, schema) and rx.match(n)]
            return _result(["created_on", "name", "database_name", "schema_name"], rows)
        if "data_quality_monitoring_expectation_status" in sql.lower():
            return self._status(sql)
        return None

    def _associate(self, sess: dict[str, str | None], m: re.Match[str]) -> dict[str, Any]:
        from pytest_snowpipe.doubles.offline_account import InjectedError, _result, ident

        table = self._get(self._key(sess, m[1]))
        function = ".".join(self._key(sess, m[2])) if not m[2].upper().startswith("SNOWFLAKE.CORE.") else m[2].upper()
        if not function.startswith("SNOWFLAKE.CORE.") and self._key(sess, m[2]) not in self.functions:
            raise InjectedError(2003, f"SQL compilation error: Data metric function '{function}' does not exist or not authorized.")
        on = [ident(c) for c in m[3].split(",") if c.strip()]
        missing = [c for c in on if c not in {n for n, _ in table.columns}]
        if missing:
            raise InjectedError(904, f"SQL compilation error: error line 0 at position 0 invalid identifier '{missing[0]}'")
        if table.schedule is None:
            raise InjectedError(2, "SQL compilation error: a DATA_METRIC_SCHEDULE must be set before adding a data metric function.")
        table.metrics.append({"function": function, "on": on, "expectation": m[4], "expression": m[5]})
        return _result(["status"], [["Statement executed successfully."]], type_id=0x6000)

    def _status(self, sql: str) -> dict[str, Any]:
        from pytest_snowpipe.doubles.offline_account import _result

        names_m = re.search(r"upper\(table_name\)\s+in\s*\(([^)]*)\)", sql, re.I)
        names = set(re.findall(r"'((?:[^']|'')*)'", names_m[1])) if names_m else None
        latest: dict[tuple[Any, ...], dict[str, Any]] = {}
        for r in self.results:
            if names is not None and str(r["table_name"]).upper() not in names:
                continue
            k = (r["table_database"], r["table_schema"], r["table_name"], r["expectation_name"])
            if k not in latest or str(r["measurement_time"]) > str(latest[k]["measurement_time"]):
                latest[k] = r
        cols = ["table_database", "table_schema", "table_name", "metric_name", "expectation_name", "expectation_expression",
                "value", "expectation_violated", "measurement_time"]
        rows = [[_text(r[c]) for c in cols] for _, r in sorted(latest.items(), key=lambda kv: (kv[0][2], kv[0][3]))]
        types = ["text"] * 6 + ["text", "boolean", "text"]
        return _result([c.upper() for c in cols], rows, types=types)


def _text(value: Any) -> Any:
    """A cell as the wire carries it (a boolean is ``1``/``0``)."""
    return ("1" if value else "0") if isinstance(value, bool) else value


__all__ = ["UNSUPPORTED", "MonitorState", "Table"]
