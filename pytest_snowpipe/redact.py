"""Keep secrets out of everything the plugin writes: reports, step summaries, JUnit properties.

Three nets, because no single one is enough: config keys whose *name* looks secret are
replaced whole; known secret *values* (the webhook URL from its environment variable,
secret-named config values, secret-named environment variables, a connection's password or
token) are cut out of any text; and *patterns* catch what nobody declared: URL credentials
(``//user:pass@``), ``token=...``/``password: ...`` pairs, ``Bearer ...`` headers.
"""
from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

REDACTED = "<redacted>"

# A name is secret if one of its parts (split at separators, camelCase and digits, case-insensitive) is
# one of these: whole parts, so ``monkey``, ``keyboard``, ``path``, ``author``, ``passenger`` are not.
_SECRET_PARTS = frozenset(
    {"key", "keys", "apikey", "privatekey", "pass", "pwd", "passwd", "password", "passwords", "passphrase",
     "passcode", "pat", "token", "tokens", "secret", "secrets", "webhook", "private", "credential",
     "credentials", "auth", "oauth", "authorization", "cookie", "sig", "signature"}
)
# ... or a part ends with one of these longer words (``dbpassword``, ``apitoken``, ``clientsecret``)
_SECRET_ENDINGS = ("password", "passwd", "passphrase", "secret", "secrets", "token", "tokens", "credential",
                   "credentials", "apikey", "pwd")
_MIN_ENV_SECRET = 6  # shorter values of secret-named variables ("1", "true") would mangle unrelated text
MIN_SECRET = 8  # a secret handed in shorter than this cannot be masked safely: it matches ordinary words
_NOT_SECRET_ENV = frozenset({"PWD", "OLDPWD"})  # the shell's working directories, not passwords
_WORD = "A-Za-z0-9_"  # a secret is masked as a whole token: never inside a longer word

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


def name_parts(name: str) -> list[str]:
    """``dbPass_2FA-token`` -> ``['db', 'pass', '2', 'fa', 'token']``: the parts a secret name is judged by."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])",
                    " ", name)
    return [part for part in re.split(r"[^a-z0-9]+", spaced.lower()) if part]


def is_secret_name(name: str) -> bool:
    """True for ``api_token``, ``WEBHOOK_URL``, ``private_key_file``, ``db-password``, ``db_pass``,
    ``snowflake_pat``, ``SNOWSQL_PWD``, ``clientSecret``; false for ``monkey``, ``keyboard``, ``path``."""
    return any(part in _SECRET_PARTS or part.endswith(_SECRET_ENDINGS) for part in name_parts(name))


def short_secret_problems(config: Mapping[str, Any], origin: str = "snowpipe_config") -> list[str]:
    """Secret-named text values too short to mask safely (``password = test`` would be cut out of
    ``pytest`` and ``test_gate``, and its places would give it away): each is refused, naming the key."""
    return [
        f"{origin}: {key!r} is a secret by its name, and its value has {len(value)} characters: too short to "
        f"mask safely in reports and logs (it would match ordinary words). Use a secret of at least "
        f"{MIN_SECRET} characters, or rename the key if it holds no secret"
        for key, value in config.items()
        if isinstance(value, str) and is_secret_name(str(key)) and 0 < len(value.strip()) < MIN_SECRET
    ]


def is_shipped_secret_name(name: str) -> bool:
    """Stricter than :func:`is_secret_name`, for refusing a config key in a deploy (a refusal blocks it):
    a name that is secret only by a ``key`` part (``model_key``, ``partition_key``) passes; ``api_key``,
    ``private_key``, ``db_pass``, ``snowflake_pat``, ``SNOWSQL_PWD`` do not."""
    parts = name_parts(name)
    joined = "".join(parts)
    hits = {part for part in parts if part in _SECRET_PARTS or part.endswith(_SECRET_ENDINGS)}
    return bool(hits - {"key", "keys"}) or any(word in joined for word in ("apikey", "privatekey", "accesskey"))


def deploy_secret_problems(config: Mapping[str, Any]) -> list[str]:
    """Config keys a deploy refuses: the graph's config is shipped in clear (DESCRIBE TASK, the plan)."""
    return [
        f"snowpipe_config: key {key!r} looks like a secret, and --snowpipe-deploy ships the config as the Task "
        "Graph's config, which anyone who can DESCRIBE the task reads in clear: keep secrets out of "
        "snowpipe_config (read them inside the stage from a Snowflake SECRET or the environment), or rename the key"
        for key in config
        if is_shipped_secret_name(str(key))
    ]


class Redactor:
    """Removes known secret values and secret-looking patterns from text and nested data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # longest first, so a secret containing another is cut whole (no tail of the longer one is left)
        self.secrets = sorted({s for s in secrets if isinstance(s, str) and s.strip()}, key=len, reverse=True)
        alternatives = "|".join(re.escape(s) for s in self.secrets)
        self._secret_re = re.compile(f"(?<![{_WORD}])(?:{alternatives})(?![{_WORD}])") if self.secrets else None

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
            if is_secret_name(str(key)) and isinstance(value, str) and len(value.strip()) >= MIN_SECRET:
                secrets.append(value)  # shorter ones are refused when the config is read
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
        if self._secret_re is not None:  # one pass: the regex tries the longest secret first at each place
            value = self._secret_re.sub(REDACTED, value)
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


def scrub_report(report: Any, redactor: Redactor) -> None:
    """Cut the run's secrets out of a pytest report in place: its traceback (source lines, ``-l`` locals,
    function arguments, assertion-rewrite explanations), crash line and captured sections, which the
    terminal, ``-rA`` summaries and JUnit print; a ``dict(snowpipe_config)`` copy or a password passed
    to a call shows there."""
    report.longrepr = _scrub(report.longrepr, redactor.text)
    report.sections = [(title, redactor.text(text)) for title, text in report.sections]


def _scrub(value: Any, text: Callable[[str], str]) -> Any:
    """Every string inside pytest's repr objects (dataclasses, lists, tuples) through ``text``."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, list):
        value[:] = [_scrub(v, text) for v in value]
        return value
    if isinstance(value, tuple):
        return tuple(_scrub(v, text) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            object.__setattr__(value, f.name, _scrub(getattr(value, f.name), text))
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
    redactor = Redactor.for_run(settings.config, settings.webhook_env, environ, connection)
    engines = sys.modules.get("pytest_snowpipe.doubles.sql.embedded")  # loaded: the run's engine credential too
    engine = engines.running_engine() if engines is not None else None
    if engine is not None:
        redactor = Redactor([*redactor.secrets, str(engine.connection_params()["password"])])
    return redactor
