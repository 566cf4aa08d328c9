"""Every option and ini key, validated in one place; errors list the valid values.

pytest-asyncio's habit: one function reads the command line and the ini file and either
returns a frozen Settings or raises a ConfigError naming the option and the fix.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_snowpipe.config import ConfigError, ConfigValue, apply_overrides, freeze, parse_lines

DEFAULT_REGISTRY = ".snowpipe/registry"

# (name, type, default, help) of every ini key; the plugin registers them from here.
INI_KEYS: tuple[tuple[str, str, Any, str], ...] = (
    ("snowpipe_config", "linelist", [], "pipeline config, one 'key = value' per line (str/int/float/bool)"),
    ("snowpipe_registry", "string", DEFAULT_REGISTRY, "folder of the local model registry (relative to the rootdir)"),
    (
        "snowpipe_alert_webhook_env",
        "string",
        "SNOWPIPE_ALERT_WEBHOOK",
        "name of the environment variable holding the alert webhook URL (the URL itself never goes in a file)",
    ),
    ("snowpipe_connection", "string", "", "default Snowflake connection name from connections.toml"),
)


@dataclass(frozen=True)
class Settings:
    """The validated options of one pytest run."""

    config: Mapping[str, ConfigValue]
    registry: Path
    webhook_env: str
    connection: str | None


def read_settings(
    getoption: Any, getini: Any, rootpath: Path, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read and validate every option; raise ConfigError (shown as a UsageError) on bad input."""
    env = os.environ if environ is None else environ
    base = parse_lines(getini("snowpipe_config"), origin="ini snowpipe_config")
    config = apply_overrides(base, getoption("snowpipe_config") or [])
    registry = Path(str(getini("snowpipe_registry") or DEFAULT_REGISTRY)).expanduser()
    if not registry.is_absolute():
        registry = rootpath / registry
    webhook_env = str(getini("snowpipe_alert_webhook_env") or "SNOWPIPE_ALERT_WEBHOOK")
    if not webhook_env.replace("_", "").isalnum():
        raise ConfigError(
            f"snowpipe_alert_webhook_env = {webhook_env!r} is not an environment variable name; "
            "give the NAME of the variable (e.g. SNOWPIPE_ALERT_WEBHOOK), never the URL itself."
        )
    connection = (
        getoption("snowpipe_connection")
        or str(getini("snowpipe_connection") or "")
        or env.get("SNOWFLAKE_CONNECTION_NAME")
        or None
    )
    return Settings(config=freeze(config), registry=registry, webhook_env=webhook_env, connection=connection)
