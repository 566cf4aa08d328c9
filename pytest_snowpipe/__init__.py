"""pytest-snowpipe: an ML pipeline written as a pytest suite, shipped as a Snowflake Task Graph.

The public API is imported lazily so that a suite which never uses the plugin pays
nothing for it (no Snowpark, snowflake.core, snowflake.ml or xgboost import).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "remote": "pytest_snowpipe.pipeline.remote",
    "RemoteSpec": "pytest_snowpipe.pipeline.remote",
    "PipelineGraph": "pytest_snowpipe.pipeline.graph",
    "Stage": "pytest_snowpipe.pipeline.graph",
    "Gate": "pytest_snowpipe.pipeline.graph",
    "ActionContext": "pytest_snowpipe.actions.context",
    "ActionOutcome": "pytest_snowpipe.actions.context",
    "SnowpipeError": "pytest_snowpipe.errors",
    "Contract": "pytest_snowpipe.contracts",
    "column": "pytest_snowpipe.contracts",
    "ContractViolation": "pytest_snowpipe.contracts",
    "expect": "pytest_snowpipe.pipeline.checks",
    "source": "pytest_snowpipe.pipeline.sources",
    "SnowpipeCacheWarning": "pytest_snowpipe.local.cache_store",
    "Champion": "pytest_snowpipe.registry.champion",
    "assert_metric": "pytest_snowpipe.registry.champion",
    "assert_no_regression": "pytest_snowpipe.registry.champion",
    "MetricMissing": "pytest_snowpipe.registry.champion",
    "assert_beats_champion": "pytest_snowpipe.registry.champion",
    "paired_bootstrap": "pytest_snowpipe.registry.bootstrap",
    "BootstrapError": "pytest_snowpipe.registry.bootstrap",
    "load": "pytest_snowpipe.notebook",
    "NotCached": "pytest_snowpipe.notebook",
}

__all__ = [  # noqa: RUF022 - grouped by topic, like _EXPORTS
    "remote",
    "RemoteSpec",
    "PipelineGraph",
    "Stage",
    "Gate",
    "ActionContext",
    "SnowpipeError",
    "Contract",
    "column",
    "ContractViolation",
    "expect",
    "source",
    "SnowpipeCacheWarning",
    "Champion",
    "assert_metric",
    "assert_no_regression",
    "MetricMissing",
    "assert_beats_champion",
    "paired_bootstrap",
    "BootstrapError",
    "load",
    "NotCached",
    "__version__",
]

if TYPE_CHECKING:  # pragma: no cover - the names the lazy __getattr__ resolves, for type checkers
    from pytest_snowpipe.actions.context import ActionContext as ActionContext
    from pytest_snowpipe.actions.context import ActionOutcome as ActionOutcome
    from pytest_snowpipe.contracts import Contract as Contract
    from pytest_snowpipe.contracts import ContractViolation as ContractViolation
    from pytest_snowpipe.contracts import column as column
    from pytest_snowpipe.errors import SnowpipeError as SnowpipeError
    from pytest_snowpipe.local.cache_store import SnowpipeCacheWarning as SnowpipeCacheWarning
    from pytest_snowpipe.notebook import NotCached as NotCached
    from pytest_snowpipe.notebook import load as load
    from pytest_snowpipe.pipeline.checks import expect as expect
    from pytest_snowpipe.pipeline.graph import Gate as Gate
    from pytest_snowpipe.pipeline.graph import PipelineGraph as PipelineGraph
    from pytest_snowpipe.pipeline.graph import Stage as Stage
    from pytest_snowpipe.pipeline.remote import RemoteSpec as RemoteSpec
    from pytest_snowpipe.pipeline.remote import remote as remote
    from pytest_snowpipe.pipeline.sources import source as source
    from pytest_snowpipe.registry.bootstrap import BootstrapError as BootstrapError
    from pytest_snowpipe.registry.bootstrap import paired_bootstrap as paired_bootstrap
    from pytest_snowpipe.registry.champion import Champion as Champion
    from pytest_snowpipe.registry.champion import MetricMissing as MetricMissing
    from pytest_snowpipe.registry.champion import assert_beats_champion as assert_beats_champion
    from pytest_snowpipe.registry.champion import assert_metric as assert_metric
    from pytest_snowpipe.registry.champion import assert_no_regression as assert_no_regression


def __dir__() -> list[str]:
    """The public names too (they are imported on first use): ``dir()``, ``help()`` and completion see them."""
    return sorted({n for n in globals() if n.startswith("__")} | set(__all__))


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_snowpipe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
