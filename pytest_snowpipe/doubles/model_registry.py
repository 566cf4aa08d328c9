"""The Model Registry part of the offline account: models, versions, aliases, default version, metadata.

``snowflake.ml.registry.Registry`` is a thin client: every call is SQL (``SHOW MODELS``, ``SHOW VERSIONS
IN MODEL``, ``ALTER MODEL ... VERSION v SET ALIAS = a``, ``... MODIFY VERSION v SET METADATA=$$...$$``,
``... SET DEFAULT_VERSION = v``, ``... DROP VERSION v``, ``CREATE MODEL ... WITH VERSION v FROM @stage``).
This module answers those statements over an in-memory store, in the result shapes of Snowflake's
documented output columns (the ones snowflake-ml-python's ``model/_client/sql`` reads), and with the
rules Snowflake enforces (the default version cannot be dropped, an alias names one version of a
model, system aliases DEFAULT/FIRST/LAST). It also answers the catalogue lookups the Registry makes
when it opens (``SHOW DATABASES LIKE``, ``SHOW SCHEMAS LIKE ... IN DATABASE``) from the account's schemas.

``answer`` returns None for any other statement, so the account's own dispatch goes on.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_snowpipe.doubles.offline_account import InjectedError, _result, ident, split_fqn

if TYPE_CHECKING:
    from pytest_snowpipe.doubles.offline_account import OfflineAccount

SYSTEM_ALIASES = ("DEFAULT", "FIRST", "LAST")
_NAME = r'(?:"(?:[^"]|"")+"|[^\s."]+)'
_FQN = rf"({_NAME}(?:\.{_NAME}){{0,2}})"
_STATUS = ("status",)

# SHOW VERSIONS IN MODEL / SHOW MODELS / SHOW FUNCTIONS IN MODEL: Snowflake's documented columns, in order
VERSION_COLUMNS = [
    ("created_on", "timestamp_ltz"), ("name", "text"), ("aliases", "text"), ("comment", "text"),
    ("database_name", "text"), ("schema_name", "text"), ("model_name", "text"), ("is_default_version", "boolean"),
    ("functions", "text"), ("metadata", "text"), ("user_data", "text"), ("model_spec", "text"),
]
MODEL_COLUMNS = [
    ("created_on", "timestamp_ltz"), ("name", "text"), ("model_type", "text"), ("database_name", "text"),
    ("schema_name", "text"), ("comment", "text"), ("owner", "text"), ("default_version_name", "text"),
    ("versions", "text"), ("aliases", "text"),
]
FUNCTION_COLUMNS = [("name", "text"), ("arguments", "text"), ("return_type", "text"), ("language", "text")]


@dataclass
class Version:
    """One model version as Snowflake keeps it."""

    name: str
    created_on: dt.datetime
    metadata: dict[str, Any] = field(default_factory=dict)
    comment: str | None = None
    aliases: list[str] = field(default_factory=list)  # its user alias, at most one (system ones are derived)
    model_spec: str = ""  # the model.yaml the version was created from (YAML text)
    functions: list[tuple[str, str]] = field(default_factory=list)  # (name, return type)
    user_data: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, Any]:
        """What snowflake.ml reads as the version's metrics (``metadata.metrics``)."""
        metrics = self.metadata.get("metrics", {})
        return dict(metrics) if isinstance(metrics, dict) else {}


@dataclass
class Model:
    database: str
    schema: str
    name: str
    created_on: dt.datetime
    default_version: str
    versions: dict[str, Version] = field(default_factory=dict)  # by name, in creation order
    comment: str | None = None

    def aliases_of(self, version: Version) -> list[str]:
        """User and system aliases of ``version`` (the ``aliases`` column of SHOW VERSIONS)."""
        ordered = sorted(self.versions.values(), key=lambda v: v.created_on)
        system = [a for a, on in (("DEFAULT", self.default_version == version.name),
                                  ("FIRST", ordered[0] is version), ("LAST", ordered[-1] is version)) if on]
        return [*version.aliases, *system]

    def resolve(self, version_or_alias: str) -> Version:
        """The version named ``version_or_alias`` (a version name, a user alias or a system alias)."""
        if version_or_alias in self.versions:
            return self.versions[version_or_alias]
        for v in self.versions.values():
            if version_or_alias in self.aliases_of(v):
                return v
        raise InjectedError(2003, f"SQL compilation error:\nModel '{self.fqn}' version '{version_or_alias}' "
                                  "does not exist or not authorized.")

    @property
    def fqn(self) -> str:
        return f"{self.database}.{self.schema}.{self.name}"


class ModelRegistry:
    """The models of one offline account, and the SQL that reads and changes them."""

    def __init__(self, account: OfflineAccount) -> None:
        self.account = account
        self.models: dict[tuple[str, str, str], Model] = {}
        self._last = _T0  # created_on only moves forward: versions made in the same microsecond still order

    # ----------------------------------------------------------------- state, for tests

    def add_version(
        self, model: str, version: str, *, metrics: dict[str, Any] | None = None, database: str = "DB",
        schema: str = "S", functions: tuple[str, ...] = ("PREDICT",), model_spec: str | None = None,
    ) -> Version:
        """A version as ``log_model`` leaves it (``CREATE MODEL``/``ADD VERSION`` then the metrics metadata)."""
        key = (ident(database), ident(schema), ident(model))
        spec = model_spec if model_spec is not None else _minimal_spec(functions)
        v = self._create_version(key, ident(version), spec, [(f, "OBJECT") for f in functions])
        if metrics:
            v.metadata = {"metrics": dict(metrics), "snowpark_ml_schema_version": "2024-01-01"}
        return v

    def model(self, name: str, database: str = "DB", schema: str = "S") -> Model:
        found = self.models.get((ident(database), ident(schema), ident(name)))
        if found is None:
            raise KeyError(f"no model {database}.{schema}.{name} in the offline account")
        return found

    def champion(self, name: str, alias: str = "CHAMPION", database: str = "DB", schema: str = "S") -> str | None:
        """The version ``alias`` names, or None."""
        m = self.models.get((ident(database), ident(schema), ident(name)))
        return next((v.name for v in m.versions.values() if ident(alias) in v.aliases), None) if m else None

    # ----------------------------------------------------------------- SQL

    def answer(self, sess: dict[str, str | None], sql: str, describe_only: bool = False) -> dict[str, Any] | None:
        """The result of ``sql`` if it is a registry statement, else None."""
        s = sql.strip().rstrip(";").strip()
        if re.match(r"select\s+system\$ml_platform_capabilities\(\)", s, re.I):  # no feature flags: the defaults
            return _table([("FEATURES", "text")], [["{}"]], describe_only)
        if m := re.match(rf"create\s+scoped\s+temporary\s+stage\s+{_FQN}$", s, re.I):  # log_model's staging area
            key = self._key(m[1], sess)
            self.account.create_stage(".".join(f'"{p}"' for p in key))
            return _status(f"Stage area {key[2]} successfully created.")
        if m := re.match(r"show\s+databases\s+like\s+'([^']*)'$", s, re.I):
            names = sorted({d for d, _ in self.account._schemas if _like(d, m[1])})
            return _table([("created_on", "timestamp_ltz"), ("name", "text"), ("is_default", "text"),
                           ("is_current", "text"), ("origin", "text"), ("owner", "text"), ("comment", "text"),
                           ("options", "text"), ("retention_time", "text"), ("kind", "text")],
                          [[_epoch(_T0), d, "N", "Y" if d == sess.get("database") else "N", "", self.account.role,
                            "", "", "1", "STANDARD"] for d in names], describe_only)
        if m := re.match(r"show\s+schemas\s+like\s+'([^']*)'\s+in\s+database\s+(\S+)$", s, re.I | re.S):
            db = ident(m[2])
            names = sorted({sc for d, sc in self.account._schemas if d == db and _like(sc, m[1])})
            return _table([("created_on", "timestamp_ltz"), ("name", "text"), ("is_default", "text"),
                           ("is_current", "text"), ("database_name", "text"), ("owner", "text"), ("comment", "text"),
                           ("options", "text"), ("retention_time", "text"), ("owner_role_type", "text")],
                          [[_epoch(_T0), sc, "N", "N", db, self.account.role, "", "", "1", "ROLE"] for sc in names],
                          describe_only)
        if m := re.match(rf"show\s+models(?:\s+like\s+'([^']*)')?\s+in\s+schema\s+{_FQN}$", s, re.I):
            db, schema = self._schema_of(m[2], sess)
            rows = [self._model_row(x) for (d, sc, _), x in sorted(self.models.items())
                    if (d, sc) == (db, schema) and (m[1] is None or _like(x.name, m[1]))]
            return _table(MODEL_COLUMNS, rows, describe_only)
        if m := re.match(rf"show\s+versions(?:\s+like\s+'([^']*)')?\s+in\s+model\s+{_FQN}$", s, re.I):
            model = self._get(m[2], sess)
            rows = [self._version_row(model, v) for v in model.versions.values() if m[1] is None or _like(v.name, m[1])]
            return _table(VERSION_COLUMNS, rows, describe_only)
        if m := re.match(rf"show\s+functions\s+in\s+model\s+{_FQN}\s+version\s+({_NAME})$", s, re.I):
            version = self._get(m[1], sess).resolve(ident(m[2]))
            return _table(FUNCTION_COLUMNS, [[f, f"{f}() RETURN {rt}", rt, "PYTHON"] for f, rt in version.functions],
                          describe_only)
        if describe_only and re.match(r"(alter|create|drop|comment\s+on)\s+model\b", s, re.I):
            return _table([("status", "text")], [], True)
        if m := re.match(rf"create\s+model\s+{_FQN}\s+with\s+version\s+({_NAME})\s+from\s+(\S+)$", s, re.I):
            key = self._key(m[1], sess)
            if key in self.models:
                raise InjectedError(2002, f"SQL compilation error:\nObject '{'.'.join(key)}' already exists.")
            self._from_stage(key, ident(m[2]), m[3], sess)
            return _status(f"Model {key[2]} successfully created.")
        if m := re.match(rf"alter\s+model\s+{_FQN}\s+(.*)$", s, re.I | re.S):
            return self._alter(self._get(m[1], sess), m[2].strip(), sess)
        if m := re.match(rf"drop\s+model\s+(if\s+exists\s+)?{_FQN}$", s, re.I):
            key = self._key(m[2], sess)
            if self.models.pop(key, None) is None and not m[1]:
                raise InjectedError(2003, f"SQL compilation error:\nModel '{'.'.join(key)}' does not exist or not authorized.")
            return _status(f"{key[2]} successfully dropped.")
        if m := re.match(rf"comment\s+on\s+model\s+{_FQN}\s+is\s+\$\$(.*)\$\$$", s, re.I | re.S):
            self._get(m[1], sess).comment = m[2]
            return _status("Statement executed successfully.")
        return None

    def _alter(self, model: Model, rest: str, sess: dict[str, str | None]) -> dict[str, Any]:
        if m := re.match(rf"set\s+default_version\s*=\s*'?({_NAME})'?$", rest, re.I):
            model.default_version = model.resolve(ident(m[1])).name
            return _status("Statement executed successfully.")
        if m := re.match(rf"version\s+({_NAME})\s+set\s+alias\s*=\s*'?({_NAME})'?$", rest, re.I):
            version, alias = model.resolve(ident(m[1])), ident(m[2])
            if alias in SYSTEM_ALIASES or alias in model.versions:
                raise InjectedError(2003, f"SQL compilation error:\nAlias '{alias}' is a version name or a system alias.")
            holder = next((v for v in model.versions.values() if alias in v.aliases), None)
            if holder is not None:
                raise InjectedError(2002, f"SQL compilation error:\nAlias '{alias}' already exists in model "
                                          f"'{model.fqn}' (version '{holder.name}').")
            if version.aliases:  # documented: "A version can have at most one alias."
                raise InjectedError(2002, f"SQL compilation error:\nVersion '{version.name}' of model '{model.fqn}' "
                                          f"already has the alias '{version.aliases[0]}'.")
            version.aliases.append(alias)
            return _status("Statement executed successfully.")
        if m := re.match(rf"version\s+({_NAME})\s+unset\s+alias$", rest, re.I):
            name = ident(m[1])
            holder = next((v for v in model.versions.values() if name in v.aliases), None)
            if holder is not None:  # an alias: it goes
                holder.aliases.remove(name)
            elif name in model.versions and model.versions[name].aliases:  # a version: its alias goes
                model.versions[name].aliases.clear()
            else:
                raise InjectedError(2003, f"SQL compilation error:\nAlias '{name}' does not exist in model '{model.fqn}'.")
            return _status("Statement executed successfully.")
        if m := re.match(rf"modify\s+version\s+({_NAME})\s+set\s+metadata\s*=\s*\$\$(.*)\$\$$", rest, re.I | re.S):
            version = model.resolve(ident(m[1]))
            try:
                metadata = json.loads(m[2])
            except ValueError as exc:
                raise InjectedError(2262, f"SQL compilation error:\nInvalid METADATA: {exc}") from None
            if not isinstance(metadata, dict):
                raise InjectedError(2262, "SQL compilation error:\nMETADATA must be a JSON object.")
            version.metadata = metadata
            return _status("Statement executed successfully.")
        if m := re.match(rf"modify\s+version\s+({_NAME})\s+set\s+comment\s*=\s*\$\$(.*)\$\$$", rest, re.I | re.S):
            model.resolve(ident(m[1])).comment = m[2]
            return _status("Statement executed successfully.")
        if m := re.match(rf"drop\s+version\s+({_NAME})$", rest, re.I):
            version = model.resolve(ident(m[1]))
            if version.name == model.default_version:
                raise InjectedError(2003, f"SQL compilation error:\nCannot drop the default version '{version.name}' "
                                          f"of model '{model.fqn}'; set another default version or drop the model.")
            del model.versions[version.name]
            return _status(f"Version {version.name} successfully dropped.")
        if m := re.match(rf"add\s+version\s+({_NAME})\s+from\s+(\S+)$", rest, re.I):
            self._from_stage((model.database, model.schema, model.name), ident(m[1]), m[2], sess)
            return _status("Statement executed successfully.")
        raise InjectedError(1003, f"SQL compilation error: the offline account does not support this statement: "
                                  f"ALTER MODEL {model.fqn} {rest[:200]}")

    # ----------------------------------------------------------------- helpers

    def _key(self, fqn: str, sess: dict[str, str | None]) -> tuple[str, str, str]:
        parts = split_fqn(fqn)
        full = [*[str(sess.get("database")), str(sess.get("schema"))][: 3 - len(parts)], *parts]
        return full[0], full[1], full[2]

    def _schema_of(self, fqn: str, sess: dict[str, str | None]) -> tuple[str, str]:
        parts = split_fqn(fqn)
        db, schema = (str(sess.get("database")), parts[0]) if len(parts) == 1 else (parts[0], parts[1])
        if (db, schema) not in self.account._schemas:
            raise InjectedError(2003, f"SQL compilation error:\nSchema '{db}.{schema}' does not exist or not authorized.")
        return db, schema

    def _get(self, fqn: str, sess: dict[str, str | None]) -> Model:
        key = self._key(fqn, sess)
        model = self.models.get(key)
        if model is None:
            raise InjectedError(2003, f"SQL compilation error:\nModel '{'.'.join(key)}' does not exist or not authorized.")
        return model

    def _now(self) -> dt.datetime:
        self._last = max(dt.datetime.now(dt.UTC), self._last + dt.timedelta(microseconds=1))
        return self._last

    def _create_version(
        self, key: tuple[str, str, str], name: str, spec: str, functions: list[tuple[str, str]]
    ) -> Version:
        if (key[0], key[1]) not in self.account._schemas:
            raise InjectedError(2003, f"SQL compilation error:\nSchema '{key[0]}.{key[1]}' does not exist or not authorized.")
        now = self._now()
        model = self.models.get(key)
        if model is None:
            model = self.models[key] = Model(key[0], key[1], key[2], now, default_version=name)
        if name in model.versions:
            raise InjectedError(2002, f"SQL compilation error:\nVersion '{name}' already exists in model '{model.fqn}'.")
        version = Version(name, now, model_spec=spec, functions=functions)
        model.versions[name] = version
        return version

    def _from_stage(self, key: tuple[str, str, str], name: str, location: str, sess: dict[str, str | None]) -> None:
        """A version from the files ``log_model`` staged: its functions from MANIFEST.yml, its spec from model.yaml."""
        import yaml

        stage = location if "." in location.split("/")[0] else self.account._qualify(location, sess)
        base, prefix = self.account._stage_dir(stage)
        root = base / prefix if prefix else base
        manifest_path = root / "MANIFEST.yml"
        if not manifest_path.is_file():
            raise InjectedError(2003, f"SQL compilation error:\nUnable to read file MANIFEST.yml in {location}.")
        manifest = yaml.safe_load(manifest_path.read_text()) or {}
        functions = [(ident(str(m["name"])), "TABLE ()" if m.get("type") == "TABLE_FUNCTION" else "OBJECT")
                     for m in manifest.get("methods", [])]
        spec = _model_spec(root, manifest)
        version = self._create_version(key, name, spec, functions)
        version.user_data = dict(manifest.get("user_data") or {})

    def _model_row(self, model: Model) -> list[Any]:
        return [_epoch(model.created_on), model.name, "USER_MODEL", model.database, model.schema, model.comment,
                self.account.role, model.default_version, json.dumps(list(model.versions)),
                json.dumps({a: v.name for v in model.versions.values() for a in v.aliases})]

    def _version_row(self, model: Model, v: Version) -> list[Any]:
        return [_epoch(v.created_on), v.name, json.dumps(model.aliases_of(v)), v.comment, model.database, model.schema,
                model.name, v.name == model.default_version, json.dumps([f for f, _ in v.functions]),
                json.dumps(v.metadata), json.dumps(v.user_data), v.model_spec]


_T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _like(name: str, pattern: str) -> bool:
    """SQL LIKE, case-insensitive as in SHOW ... LIKE."""
    rx = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(rx, name, re.I | re.S) is not None


def _epoch(t: dt.datetime) -> str:
    return f"{t.timestamp():.9f}"


def _table(columns: list[tuple[str, str]], rows: list[list[Any]], describe_only: bool) -> dict[str, Any]:
    out = _result([n for n, _ in columns], [] if describe_only else rows, types=[t for _, t in columns])
    for col in out["rowtype"]:
        if col["type"].startswith("timestamp"):
            col["scale"], col["precision"] = 9, 0
    for row in out["rowset"]:  # booleans as the wire sends them
        for i, (_, t) in enumerate(columns):
            if t == "boolean" and row[i] is not None:
                row[i] = "1" if row[i] == "True" else "0"
    return out


def _status(text: str) -> dict[str, Any]:
    return _result(list(_STATUS), [[text]], type_id=0x6000)


def _minimal_spec(functions: tuple[str, ...]) -> str:
    """A model.yaml with one signature per function: what snowflake.ml's ModelVersion needs to open a version."""
    import yaml

    sig = {"inputs": [{"name": "X", "type": "DOUBLE", "nullable": True}],
           "outputs": [{"name": "Y", "type": "DOUBLE", "nullable": True}]}
    spec = {"creation_timestamp": _T0.isoformat(), "env": {"python_version": "3.11", "cuda_version": None},
            "metadata": None, "model_type": "custom", "models": {}, "name": "offline", "min_snowpark_ml_version": "1.0.0",
            "signatures": {f.lower(): sig for f in functions}, "version": "2023-12-01"}
    return str(yaml.safe_dump(spec))


def _model_spec(root: Path, manifest: dict[str, Any]) -> str:
    """The model.yaml next to the manifest's model directory (``model/model.yaml`` as log_model stages it)."""
    candidates = sorted(root.rglob("model.yaml"), key=lambda p: len(p.parts))
    if not candidates:
        raise InjectedError(2003, "SQL compilation error:\nThe staged model has no model.yaml.")
    return candidates[0].read_text()


__all__ = ["SYSTEM_ALIASES", "Model", "ModelRegistry", "Version"]
