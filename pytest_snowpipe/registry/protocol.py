"""The one interface of a model registry: what promote, rollback, prune and the champion read need.

Two registries implement it: the folder registry (:class:`~pytest_snowpipe.registry.local.LocalRegistry`,
local runs and the emulator) and Snowflake's Model Registry
(:class:`~pytest_snowpipe.registry.snowflake.SnowflakeRegistry`, a task on an account). The champion is
the version the ``CHAMPION`` alias names (the default version too); rollback moves the alias back.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from pytest_snowpipe.registry.local import CHAMPION, ModelVersion, jsonable


@runtime_checkable
class ModelRegistry(Protocol):
    """A model registry as the built-in actions, ``snowpipe_registry`` and the champion read use it."""

    @property
    def location(self) -> str:
        """Where it is, for messages and reports (a folder, or ``snowflake://DB.SCHEMA``)."""
        ...

    def default(self, model_name: str) -> ModelVersion | None:
        """The CHAMPION of ``model_name`` (also its default version), or None before the first promote."""
        ...

    def unchanged_default(
        self, model_name: str, *, metrics: Mapping[str, Any], fingerprints: Mapping[str, Any]
    ) -> ModelVersion | None:
        """The champion if it was promoted with these very metrics and fingerprints (a promote is then a no-op)."""
        ...

    def promote(
        self, model_name: str, model: Any, *, metrics: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None, fingerprints: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None, version: str | None = None,
        log_model: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Log ``model`` as a new version and make it the CHAMPION; on failure nothing changed."""
        ...

    def rollback(self, model_name: str, reason: str, *, who: str | None = None) -> ModelVersion:
        """Move the CHAMPION back to the previous champion, recording who, when and why; returns it."""
        ...

    def versions(self, model_name: str) -> list[str]:
        """All versions, oldest first."""
        ...

    def prune(self, model_name: str, keep: int) -> list[str]:
        """Delete all but the ``keep`` newest versions, never the champion; return the deleted names."""
        ...

    def sweep_stale(self, model_name: str) -> None:
        """Remove what killed promotes left (nothing to do where the registry is transactional)."""
        ...


def promoted_with(version: ModelVersion | None, metrics: Mapping[str, Any], fingerprints: Mapping[str, Any]) -> bool:
    """Whether ``version`` was promoted with these metrics and fingerprints, compared as stored (JSON-safe)."""
    return (
        version is not None
        and jsonable(dict(metrics)) == dict(version.metrics)
        and jsonable(dict(fingerprints)) == dict(version.fingerprints)
    )


__all__ = ["CHAMPION", "ModelRegistry", "ModelVersion", "jsonable", "promoted_with"]
