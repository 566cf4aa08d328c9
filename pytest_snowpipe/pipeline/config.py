"""The pipeline's config: ini lines ``key = value`` overridden per run by ``--snowpipe-config``.

Values are limited to str/int/float/bool because that is all a Snowflake Task Graph
config can carry; the same mapping becomes the compiled graph's config.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pytest_snowpipe.errors import SnowpipeUsageError

ConfigValue = str | int | float | bool

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")


class ConfigError(SnowpipeUsageError):
    """A config line or override is malformed; the message says which and how to fix it."""


def parse_value(text: str) -> ConfigValue:
    """Parse one value: ``true``/``false`` -> bool, integers, floats, otherwise a string.

    Quotes force a string (``"0.8"`` stays the text 0.8).
    """
    raw = text.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    if _INT.match(raw):
        return int(raw)
    if _FLOAT.match(raw):
        return float(raw)
    return raw


def _split(line: str, origin: str) -> tuple[str, str]:
    if "=" not in line:
        raise ConfigError(
            f"{origin}: {line!r} is not 'key=value'; write it as e.g. metric_threshold=0.7"
        )
    key, _, value = line.partition("=")
    key = key.strip()
    if not _KEY.match(key):
        raise ConfigError(
            f"{origin}: config key {key!r} is not a valid name; use letters, digits and "
            "underscores, starting with a letter (it becomes a Task Graph config key)"
        )
    return key, value


def parse_lines(lines: Iterable[str], origin: str = "snowpipe_config") -> dict[str, ConfigValue]:
    """Parse ini lines (blank lines and ``#`` comments ignored); a key given twice is an error."""
    out: dict[str, ConfigValue] = {}
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, value = _split(stripped, origin)
        if key in out:
            raise ConfigError(f"{origin}: config key {key!r} is given twice; keep one line")
        out[key] = parse_value(value)
    return out


def _type_name(value: ConfigValue) -> str:
    return type(value).__name__


def apply_overrides(
    base: Mapping[str, ConfigValue], overrides: Iterable[str]
) -> dict[str, ConfigValue]:
    """Apply ``--snowpipe-config key=value`` overrides to the ini config.

    An override must name a declared key (typos would otherwise be silently ignored by the
    pipeline) and keep its type: an int key accepts an int, a float key an int or a float,
    a bool key ``true``/``false``; a str key accepts anything.
    """
    merged = dict(base)
    for item in overrides:
        key, text = _split(item, "--snowpipe-config")
        if key not in base:
            known = ", ".join(sorted(base)) or "(none declared)"
            raise ConfigError(
                f"--snowpipe-config: unknown key {key!r}. Known keys: {known}. "
                "Declare new keys in the snowpipe_config ini option first."
            )
        current = base[key]
        value = parse_value(text)
        if isinstance(current, bool):
            ok = isinstance(value, bool)
        elif isinstance(current, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok:
                value = float(value)
        elif isinstance(current, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = True
            value = text.strip()
        if not ok:
            raise ConfigError(
                f"--snowpipe-config: {key}={text.strip()!r} is not a {_type_name(current)} "
                f"(the ini value is {current!r}); give a {_type_name(current)}"
            )
        merged[key] = value
    return merged


class SnowpipeConfig(Mapping[str, ConfigValue]):
    """The run's config: read-only, and redacted when shown.

    pytest prints the arguments of a failing test (``-l``, ``-vv``, JUnit): the repr of this
    object is all it can show, so secret-named keys (``password``, ``api_token``) appear as
    ``<redacted>`` and URL credentials or ``token=...`` pairs in other values are cut out.
    Reading a key gives the real value.
    """

    __slots__ = ("_data",)
    _data: dict[str, ConfigValue]

    def __init__(self, data: Mapping[str, ConfigValue]) -> None:
        object.__setattr__(self, "_data", dict(data))

    def __getitem__(self, key: str) -> ConfigValue:
        value: ConfigValue = self._data[key]
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("the pipeline config is read-only")

    def __reduce__(self) -> tuple[Any, ...]:
        return (SnowpipeConfig, (self._data,))

    def __repr__(self) -> str:
        from pytest_snowpipe.redact import Redactor

        return f"SnowpipeConfig({Redactor.for_run(self._data, None).config(self._data)!r})"

    __str__ = __repr__


def freeze(config: Mapping[str, ConfigValue]) -> Mapping[str, ConfigValue]:
    """A read-only view whose repr is redacted: stages must not change the config other stages read."""
    return SnowpipeConfig(config)
