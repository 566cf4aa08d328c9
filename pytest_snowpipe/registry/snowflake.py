"""Snowflake's Model Registry (``snowflake.ml.registry.Registry``) behind the one registry interface.

The champion is the version the ``CHAMPION`` alias names (``ALTER MODEL m VERSION v SET ALIAS =
CHAMPION``), read with ``Model.version("CHAMPION")``; a model promoted before aliases were set falls
back to its default version. A promote logs the version with its metrics (``log_model``), records
what the folder registry keeps in ``meta.json`` (fingerprints, lineage, the previous champion) as
the version's ``snowpipe`` metric, then makes it the default and moves the alias. A failure after
``log_model`` deletes the new version and puts the alias and default back: the registry is as it
was. ``rollback`` moves the alias and the default back to the previous champion and records who,
when and why on the demoted version. ``registry`` replaces the snowflake.ml Registry in tests.
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_snowpipe.errors import RegistryError, first_line
from pytest_snowpipe.registry.local import CHAMPION, ModelVersion, _user, jsonable
from pytest_snowpipe.registry.protocol import promoted_with

RECORD = "snowpipe"  # the metric holding what a promote records besides the user's metrics
ROLLED_BACK = "snowpipe_rolled_back"


class SnowflakeRegistry:
    """The Snowflake Model Registry of a session's database and schema (or the ones given)."""

    def __init__(
        self, session: Any, database: str | None = None, schema: str | None = None, registry: Any = None
    ) -> None:
        if registry is None:
            from snowflake.ml.registry import Registry

            registry = Registry(session=session, database_name=database, schema_name=schema)
        self.registry = registry

    @property
    def location(self) -> str:
        return f"snowflake://{getattr(self.registry, 'location', '?')}"

    # ------------------------------------------------------------------ reading

    def _model(self, model_name: str) -> Any | None:
        try:
            return self.registry.get_model(model_name)
        except ValueError:  # snowflake.ml: the model does not exist (before the first promote)
            return None

    def _champion_of(self, model: Any) -> tuple[Any | None, bool]:
        """(the version the CHAMPION alias names, True), else (the default version, False); (None, False)."""
        try:
            return model.version(CHAMPION), True
        except ValueError:  # no alias yet (promoted before aliases, or by hand): the default version
            try:
                return model.default, False
            except Exception:
                return None, False

    def _version(self, model_name: str, mv: Any, metrics: Mapping[str, Any] | None = None) -> ModelVersion:
        metrics = dict(mv.show_metrics() or {} if metrics is None else metrics)
        record = metrics.pop(RECORD, None)
        metrics.pop(ROLLED_BACK, None)
        return self._as_version(model_name, str(mv.version_name), metrics, record)

    def _as_version(self, model_name: str, version: str, metrics: dict[str, Any], record: Any) -> ModelVersion:
        record = record if isinstance(record, Mapping) else {}
        return ModelVersion(
            model_name=model_name, version=version, path=Path(self.location),
            metrics=metrics, config=record.get("config", {}), fingerprints=record.get("fingerprints", {}),
            created_at=str(record.get("created_at", "")), extra=record.get("extra", {}),
        )

    def default(self, model_name: str) -> ModelVersion | None:
        """The CHAMPION of ``model_name`` (its default version without the alias), or None."""
        model = self._model(model_name)
        mv = self._champion_of(model)[0] if model is not None else None
        return None if mv is None else self._version(model_name, mv)

    def unchanged_default(
        self, model_name: str, *, metrics: Mapping[str, Any], fingerprints: Mapping[str, Any]
    ) -> ModelVersion | None:
        current = self.default(model_name)
        return current if promoted_with(current, metrics, fingerprints) else None

    def versions(self, model_name: str) -> list[str]:
        """All versions of ``model_name``, oldest first (by ``created_on``)."""
        return [name for name, _ in self._rows(model_name)]

    def _rows(self, model_name: str) -> list[tuple[str, bool]]:
        model = self._model(model_name)
        if model is None:
            return []
        frame = model.show_versions()
        champion = self._champion_of(model)[0]
        held = str(champion.version_name).upper() if champion is not None else None
        rows = sorted(
            ((r["created_on"], str(r["name"]),
              str(r.get("is_default_version", "false")).lower() == "true" or str(r["name"]).upper() == held)
             for _, r in frame.iterrows()),
            key=lambda row: (row[0], row[1]),
        )
        return [(name, kept) for _, name, kept in rows]

    # ------------------------------------------------------------------ changing

    def promote(
        self, model_name: str, model: Any, *, metrics: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None, fingerprints: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None, version: str | None = None,
        log_model: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Log ``model`` as a new version, make it the default and the CHAMPION; on failure undo."""
        try:
            previous = self._model(model_name)
            before, before_aliased = self._champion_of(previous) if previous is not None else (None, False)
        except Exception as exc:
            raise RegistryError(
                f"model {model_name!r}: reading its champion in {self.location} failed ({first_line(exc)}); "
                "nothing was changed"
            ) from exc
        before_name = str(before.version_name) if before is not None else None
        name = version or "V_" + _dt.datetime.now(_dt.UTC).strftime("%Y%m%d_%H%M%S_%f")
        now = _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds")
        record = jsonable({
            "config": dict(config or {}), "fingerprints": dict(fingerprints or {}), "created_at": now,
            "extra": {**dict(extra or {}), **({"previous_champion": before_name} if before_name else {})},
        })
        try:
            mv = self.registry.log_model(
                model, model_name=model_name, version_name=name, metrics=jsonable(dict(metrics or {})),
                **dict(log_model or {}),
            )
        except Exception as exc:
            undo = self._drop_half_logged(model_name, name, created_model=previous is None)
            raise RegistryError(
                f"model {model_name!r}: logging version {name} into {self.location} failed ({first_line(exc)}); "
                + (f"removing what it left failed too ({undo}): check SHOW VERSIONS IN MODEL {model_name}" if undo
                   else "nothing was changed")
            ) from exc
        moved: list[str] = []  # the alias steps done, for the undo
        try:
            mv.set_metric(RECORD, record)
            self._crown(self.registry.get_model(model_name), mv, before if before_aliased else None, moved)
        except Exception as exc:
            undo = (self._undo_promote(model_name, mv, before, moved) if previous is not None
                    else self._drop_half_logged(model_name, name, created_model=True))
            raise RegistryError(
                f"model {model_name!r}: making {name} the champion failed ({first_line(exc)}); "
                + (f"undoing it failed too ({undo}): check SHOW VERSIONS IN MODEL {model_name}" if undo else
                   f"the new version was deleted and {before_name or 'no version'} is the champion again")
            ) from exc
        # what was written, not read back: a failing read after a promote that happened must not raise
        return self._as_version(model_name, str(mv.version_name), jsonable(dict(metrics or {})), record)

    def _crown(self, model: Any, mv: Any, aliased: Any | None, moved: list[str]) -> None:
        """Make ``mv`` the default and move the CHAMPION alias onto it (from ``aliased``, the version
        holding it); each alias step done is appended to ``moved``."""
        model.default = mv
        if aliased is not None:
            aliased.unset_alias(CHAMPION)
            moved.append("unset")
        mv.set_alias(CHAMPION)
        moved.append("set")

    def _undo_promote(self, model_name: str, mv: Any, before: Any | None, moved: list[str]) -> str | None:
        """Put the default and the alias back as they were and delete ``mv``; what failed, or None."""
        try:
            model = self.registry.get_model(model_name)
            if before is not None:
                model.default = before
            if "set" in moved:
                mv.unset_alias(CHAMPION)
            if "unset" in moved and before is not None:
                before.set_alias(CHAMPION)
            model.delete_version(str(mv.version_name))
        except Exception as exc:
            return first_line(exc)
        return None

    def _drop_half_logged(self, model_name: str, name: str, *, created_model: bool) -> str | None:
        """Remove version ``name`` if a failed promote left it (the model too if the promote created it).

        Snowflake refuses to drop a model's default version, and a model's first version is its
        default: a promote that created the model undoes by dropping the model. What failed, or None.
        """
        try:
            model = self._model(model_name)
            if model is None or name.upper() not in {v.upper() for v in self.versions(model_name)}:
                return None
            if created_model:
                self.registry.delete_model(model_name)
            else:
                model.delete_version(name)
        except Exception as exc:
            return first_line(exc)
        return None

    def rollback(self, model_name: str, reason: str, *, who: str | None = None) -> ModelVersion:
        """Move the CHAMPION and the default back to the previous champion; returns it.

        The demoted version records who rolled it back, when and why (its ``snowpipe_rolled_back``
        metric); nothing is deleted. A previous champion deleted since is skipped; with none left, a
        RegistryError says so and nothing changes.
        """
        if not isinstance(reason, str) or not reason.strip():
            raise RegistryError(f"rollback of {model_name!r}: say why (reason='the new model misroutes loans'); it is recorded")
        try:
            model = self._model(model_name)
            current, current_aliased = self._champion_of(model) if model is not None else (None, False)
            if model is None or current is None:
                raise RegistryError(f"rollback of {model_name!r}: it has no champion yet (nothing was promoted)")
            current_metrics = dict(current.show_metrics() or {})
            previous = self._version(model_name, current, current_metrics).extra.get("previous_champion")
            frame = model.show_versions()
            existing = {str(n).upper() for n in frame["name"]}
            if not isinstance(previous, str) or previous.upper() not in existing:
                raise RegistryError(
                    f"rollback of {model_name!r}: {current.version_name} is the first champion there is (no previous "
                    "champion to go back to, or it was deleted since); promote a better version instead"
                )
            default_before = next((str(r["name"]) for _, r in frame.iterrows()
                                   if str(r.get("is_default_version", "false")).lower() == "true"), None)
            target = model.version(previous)
            back = self._version(model_name, target)  # read before anything changes: nothing is read after
        except RegistryError:
            raise
        except Exception as exc:
            raise RegistryError(
                f"rollback of {model_name!r}: reading its versions in {self.location} failed ({first_line(exc)}); "
                "nothing was changed"
            ) from exc
        now = _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds")
        done: list[str] = []
        try:
            current.set_metric(ROLLED_BACK, {"by": who or _user(), "at": now, "reason": reason.strip(), "to": previous})
            done.append("record")
            model.default = target
            done.append("default")
            if current_aliased:
                current.unset_alias(CHAMPION)
                done.append("unset")
            target.set_alias(CHAMPION)
        except Exception as exc:
            undo = self._undo_rollback(model, current, done, default_before, current_metrics.get(ROLLED_BACK))
            raise RegistryError(
                f"rollback of {model_name!r} to {previous} failed ({first_line(exc)}); "
                + (f"undoing it failed too ({undo}): check SHOW VERSIONS IN MODEL {model_name}" if undo else
                   f"{current.version_name} is still the champion")
            ) from exc
        return back

    def _undo_rollback(
        self, model: Any, current: Any, done: list[str], default_before: str | None, old_record: Any,
    ) -> str | None:
        """Give ``current`` its alias, the default and its record back after a failed rollback; what failed, or None."""
        try:
            if "unset" in done:
                current.set_alias(CHAMPION)
            if "default" in done and default_before is not None:
                same = default_before.upper() == str(current.version_name).upper()
                model.default = current if same else model.version(default_before)
            if "record" in done:
                if old_record is None:
                    current.delete_metric(ROLLED_BACK)
                else:
                    current.set_metric(ROLLED_BACK, old_record)
        except Exception as exc:
            return first_line(exc)
        return None

    def prune(self, model_name: str, keep: int) -> list[str]:
        """Delete all but the ``keep`` newest versions, never the champion or default; return the deleted names."""
        if not isinstance(keep, int) or isinstance(keep, bool) or keep < 0:
            raise RegistryError(f"prune({model_name!r}, keep={keep!r}): keep takes an integer >= 0")
        rows = self._rows(model_name)
        keepers = {name for name, _ in rows[len(rows) - keep:]} if keep else set()
        doomed = [name for name, kept in rows if name not in keepers and not kept]
        if doomed:
            model = self.registry.get_model(model_name)
            for name in doomed:
                model.delete_version(name)
        return doomed

    def sweep_stale(self, model_name: str) -> None:
        """Nothing to sweep: a Snowflake promote leaves no staging folder behind."""
