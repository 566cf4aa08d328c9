"""Keep secrets out of everything the plugin writes: reports, step summaries, JUnit properties.

Three nets, because no single one is enough: config keys whose *name* looks secret are
replaced whole; known secret *values* (the webhook URL from its environment variable,
secret-named config values, secret-named environment variables, a connection's password or
token) are cut out of any text; and *patterns* catch what nobody declared: URL credentials
(``//user:pass@``), ``token=...``/``password: ...`` pairs, ``Bearer ...`` headers.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "<redacted>"

# a name is secret if one of its parts is one of these, or it contains one of the longer words
_SECRET_PARTS = frozenset(
    {"key", "apikey", "pwd", "passwd", "password", "passphrase", "passcode", "token", "secret", "webhook",
     "private", "credential", "credentials", "auth", "authorization", "cookie", "sig", "signature"}
)
_SECRET_WORDS = ("password", "passwd", "token", "secret", "webhook", "private", "credential", "apikey", "api_key")
_MIN_ENV_SECRET = 6  # shorter values of secret-named variables ("1", "true") would mangle unrelated text
_NOT_SECRET_ENV = frozenset({"PWD", "OLDPWD"})  # the shell's working directories, not passwords

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host -> scheme://<redacted>@host
    (re.compile(r"(?<=//)[^/\s:@]+:[^/\s@]+@"), REDACTED + "@"),
    # Authorization: Bearer abc / token abc
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    # token=abc, api_key: abc, "password": "abc", client_secret=abc (query strings, logs, dict reprs)
    (
        re.compile(
            r"(?i)\b([\w.-]*(?:password|passwd|pwd|passcode|token|secret|api[_-]?key|signature|sig|webhook[_-]?url))"
            r"(['\"]?\s*[:=]\s*['\"]?)([^\s&'\",;)}\]]+)"
        ),
        r"\1\2" + REDACTED,
    ),
    # Slack / Teams / Discord style webhook paths carry their secret in the path
    (re.compile(r"(?i)(hooks\.slack\.com/(?:services|workflows|triggers)/)[\w/-]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)(discord(?:app)?\.com/api/webhooks/)[\w/-]+"), r"\1" + REDACTED),
)


def is_secret_name(name: str) -> bool:
    """True for names such as ``api_token``, ``WEBHOOK_URL``, ``private_key_file``, ``db-password``."""
    lowered = name.lower()
    if any(word in lowered for word in _SECRET_WORDS):
        return True
    return any(part in _SECRET_PARTS for part in re.split(r"[^a-z0-9]+", lowered) if part)


class Redactor:
    """Removes known secret values and secret-looking patterns from text and nested data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # longest first, so a secret containing another is cut whole
        self.secrets = sorted({s for s in secrets if isinstance(s, str) and s.strip()}, key=len, reverse=True)

    @classmethod
    def for_run(
        cls,
        config: Mapping[str, Any],
        webhook_env: str | None,
        environ: Mapping[str, str] | None = None,
        connection: Mapping[str, Any] | None = None,
    ) -> Redactor:
        """A redactor that knows this run's secrets: config, webhook URL, environment, connection."""
        env = os.environ if environ is None else environ
        secrets: list[str] = []
        for key, value in config.items():
            if is_secret_name(str(key)) and isinstance(value, str):
                secrets.append(value)
        if webhook_env and env.get(webhook_env, "").strip():
            secrets.append(env[webhook_env].strip())
        for name, value in env.items():
            if name not in _NOT_SECRET_ENV and is_secret_name(name) and len(value.strip()) >= _MIN_ENV_SECRET:
                secrets.append(value.strip())
        for key, value in (connection or {}).items():
            if is_secret_name(str(key)) and isinstance(value, str):
                secrets.append(value)
        return cls(secrets)

    def text(self, value: str) -> str:
        """``value`` with every known secret and secret-looking pattern replaced by ``<redacted>``."""
        for secret in self.secrets:
            value = value.replace(secret, REDACTED)
        for pattern, replacement in _PATTERNS:
            value = pattern.sub(replacement, value)
        return value

    def config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The config with secret-named keys replaced whole and other text values scrubbed."""
        return {
            str(k): REDACTED if is_secret_name(str(k)) else (self.text(v) if isinstance(v, str) else v)
            for k, v in config.items()
        }

    def deep(self, value: Any) -> Any:
        """Scrub every string inside nested dicts and lists (keys are names, kept as they are)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.deep(v) for v in value]
        return value


def redactor_for(settings: Any, environ: Mapping[str, str] | None = None) -> Redactor:
    """The run's redactor from its Settings: config, webhook variable, environment, connection secrets."""
    connection: dict[str, Any] = {}
    if getattr(settings, "connection", None):
        from pytest_snowpipe.engines.connection import ConnectionConfigError, load_connection

        try:
            connection = load_connection(settings.connection)
        except ConnectionConfigError:
            connection = {}
    return Redactor.for_run(settings.config, settings.webhook_env, environ, connection)
