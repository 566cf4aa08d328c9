"""Which package versions Snowflake offers: the account's ``information_schema.packages``, or a snapshot.

The account is the authority: Snowpark checks every ``PACKAGES`` entry against that view when the
task's procedure is registered, and a version its channel lacks fails the deploy. So a real deploy
reads the view first (one query, before anything changes) and pins against it. Without an account
(the dry run, CI) the packages are judged against a snapshot: the user's own (written from their
account with ``--snowpipe-write-packages-snapshot``, pointed at by ini ``snowpipe_packages_snapshot``)
or the one bundled here, which is a guess; a package a snapshot does not know is a warning there
("checked against the account at deploy"), never an error.
"""
from __future__ import annotations

import datetime as _dt
import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_snowpipe.errors import SnowpipeUsageError, first_line

BUNDLED = Path(__file__).with_name("packages_snapshot.json")


class ChannelError(SnowpipeUsageError):
    """The channel could not be read (account query failed, snapshot unreadable)."""


@dataclass(frozen=True)
class Channel:
    """Package name -> versions offered, where that came from, and whether it is the account's own word."""

    versions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    source: str = "the bundled snapshot"
    authoritative: bool = False  # True: read from the account; a missing package is an error, not a warning

    def describe(self) -> str:
        return self.source


def _rows_to_versions(rows: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for row in rows:
        if str(row.get("language", "python")).lower() == "python":
            out.setdefault(str(row["package_name"]), []).append(str(row["version"]))
    return {k: tuple(v) for k, v in out.items()}


@functools.cache
def _read_snapshot(path: str) -> dict[str, tuple[str, ...]]:
    try:
        data = json.loads(Path(path).read_text())
        rows = data["rows"] if isinstance(data, dict) else data
        return _rows_to_versions(rows)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ChannelError(
            f"the packages snapshot {path} cannot be read ({type(exc).__name__}: {exc}); write it again with "
            "--snowpipe-write-packages-snapshot=PATH --snowpipe-connection NAME, or unset ini snowpipe_packages_snapshot"
        ) from None


def from_snapshot(path: str | Path | None = None) -> Channel:
    """The channel a snapshot file records (the bundled one when ``path`` is None)."""
    if path is None:
        return Channel(_read_snapshot(str(BUNDLED)), "the bundled snapshot (a guess, not your account)")
    return Channel(_read_snapshot(str(Path(path).resolve())), f"the packages snapshot {path}")


def _spellings(name: str) -> set[str]:
    """A distribution's possible channel spellings (the channel mixes ``-``, ``_`` and ``.``)."""
    low = name.lower()
    return {low, low.replace("_", "-").replace(".", "-"), low.replace("-", "_")}


def query(names: Iterable[str] | None, database: str | None = None) -> tuple[str, list[str]]:
    """The one query (qmark parameters) reading the offered versions of ``names`` (all when None); with
    ``database``, its information schema (a session without a current database has none)."""
    view = f"{database}.information_schema.packages" if database else "information_schema.packages"
    sql = f"select package_name, version from {view} where language = 'python'"
    params = sorted({spelling for n in names or () for spelling in _spellings(n)})
    if names is not None:
        sql += f" and package_name in ({', '.join('?' * len(params))})" if params else " and false"
    return sql + " order by package_name", params


def from_account(session: Any, names: Iterable[str] | None = None, database: str | None = None) -> Channel:
    """The account's channel for ``names`` (every Python package when None), in one query."""
    sql, params = query(names, database)
    try:
        rows = session.sql(sql, params=params or None).collect()
    except Exception as exc:
        raise ChannelError(
            f"reading the account's packages (information_schema.packages) failed "
            f"({first_line(exc)}); nothing was changed. Check the connection's "
            "role and database, or deploy with a database the role can use"
        ) from exc
    return Channel(
        _rows_to_versions({"package_name": r[0], "version": r[1]} for r in rows),
        "the account's information_schema.packages",
        authoritative=True,
    )


def write_snapshot(session: Any, path: str | Path) -> int:
    """Write the account's whole Python channel to ``path`` (the snapshot format); return the row count."""
    channel = from_account(session)
    rows = [
        {"package_name": name, "version": v, "language": "python"}
        for name, versions in sorted(channel.versions.items()) for v in versions
    ]
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    data = {"source": f"information_schema.packages of the account, read {stamp}", "rows": rows}
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=1) + "\n")
    _read_snapshot.cache_clear()
    return len(rows)


__all__ = ["BUNDLED", "Channel", "ChannelError", "from_account", "from_snapshot", "query", "write_snapshot"]
