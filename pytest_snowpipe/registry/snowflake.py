"""Housekeeping on the Snowflake Model Registry (``snowflake.ml.registry.Registry``).

The same ``prune(model_name, keep)`` as the local registry: keep the ``keep`` newest versions
(by ``created_on``), never the default, delete the rest with ``Model.delete_version``. Used
by ``snowpipe_registry`` inside a deployed task (a yield fixture's teardown: the seed's
``clean_up``). ``registry`` replaces the snowflake.ml Registry in tests.
"""
from __future__ import annotations

from typing import Any

from pytest_snowpipe.errors import RegistryError


class SnowflakeRegistry:
    """The Snowflake Model Registry of a session's database and schema (or the ones given)."""

    def __init__(
        self, session: Any, database: str | None = None, schema: str | None = None, registry: Any = None
    ) -> None:
        if registry is None:
            from snowflake.ml.registry import Registry

            registry = Registry(session=session, database_name=database, schema_name=schema)
        self.registry = registry

    def versions(self, model_name: str) -> list[str]:
        """All versions of ``model_name``, oldest first (by ``created_on``)."""
        return [name for name, _ in self._rows(model_name)]

    def _rows(self, model_name: str) -> list[tuple[str, bool]]:
        frame = self.registry.get_model(model_name).show_versions()
        rows = sorted(
            ((r["created_on"], str(r["name"]), str(r.get("is_default_version", "false")).lower() == "true")
             for _, r in frame.iterrows()),
            key=lambda row: (row[0], row[1]),
        )
        return [(name, default) for _, name, default in rows]

    def prune(self, model_name: str, keep: int) -> list[str]:
        """Delete all but the ``keep`` newest versions, never the default; return the deleted names."""
        if not isinstance(keep, int) or isinstance(keep, bool) or keep < 0:
            raise RegistryError(f"prune({model_name!r}, keep={keep!r}): keep takes an integer >= 0")
        rows = self._rows(model_name)
        keepers = {name for name, _ in rows[len(rows) - keep:]} if keep else set()
        doomed = [name for name, default in rows if name not in keepers and not default]
        model = self.registry.get_model(model_name)
        for name in doomed:
            model.delete_version(name)
        return doomed
