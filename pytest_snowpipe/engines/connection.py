"""A real Snowflake session from ``connections.toml``, with errors that name the file.

We resolve and read ``connections.toml`` ourselves (same search rule as the connector:
``$SNOWFLAKE_HOME``, else ``~/.snowflake`` if it exists, else ``~/.config/snowflake``) so
that every error can name the exact file, and the connector never prints a traceback at
the user.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_snowpipe.errors import SnowpipeUsageError

if TYPE_CHECKING:
    from snowflake.snowpark import Session


class ConnectionConfigError(SnowpipeUsageError):
    """The named connection is missing, unreadable or cannot connect."""


def connections_file() -> Path:
    """The connections.toml the Snowflake connector would read."""
    home = os.environ.get("SNOWFLAKE_HOME")
    if home:
        return Path(home).expanduser() / "connections.toml"
    default = Path("~/.snowflake").expanduser()
    if default.exists():
        return default / "connections.toml"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(base) / "snowflake" / "connections.toml"


def account_configured() -> bool:
    """True when a Snowflake connection is configured on this machine (tests use a live account then)."""
    return bool(os.environ.get("SNOWFLAKE_CONNECTION_NAME")) or connections_file().is_file()


def load_connection(name: str) -> dict[str, Any]:
    """The parameters of connection ``name``; never returns or prints secrets elsewhere."""
    path = connections_file()
    if not path.is_file():
        raise ConnectionConfigError(
            f"Snowflake connection {name!r}: no connections file at {path}. Create it with a "
            f"[{name}] section (account, user, authenticator, ...) or set SNOWFLAKE_HOME, "
            "or drop --snowpipe-connection to run on the embedded local default."
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConnectionConfigError(
            f"Snowflake connection {name!r}: {path} is not readable TOML ({exc}); fix the file."
        ) from None
    section = data.get(name)
    if not isinstance(section, dict):
        known = ", ".join(sorted(k for k, v in data.items() if isinstance(v, dict))) or "none"
        raise ConnectionConfigError(
            f"Snowflake connection {name!r} is not defined in {path} (defined: {known}); "
            "add a section for it or pass one of those names."
        )
    return dict(section)


def create_session(name: str) -> Session:
    """Open a real Snowpark session for connection ``name``; failures become one clear error."""
    params = load_connection(name)
    from snowflake.snowpark import Session

    try:
        session: Session = Session.builder.configs(params).create()
        return session
    except Exception as exc:  # the connector raises many types; the user needs one message
        reason = type(exc).__name__
        text = str(exc).strip()
        msg = getattr(exc, "msg", None) or (text.splitlines()[0] if text else reason)
        for secret_key in ("password", "token", "private_key_file_pwd", "passcode"):
            secret = params.get(secret_key)
            if isinstance(secret, str) and secret:
                msg = str(msg).replace(secret, "***")
        raise ConnectionConfigError(
            f"Snowflake connection {name!r} from {connections_file()} failed to connect: "
            f"{reason}: {msg}. Check the account, user and credentials in that file."
        ) from None
