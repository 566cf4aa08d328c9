"""SnowflakeRegistry behind the one registry interface: promote crowns the CHAMPION alias, rollback moves it back.

No account here: ``snowflake.ml``'s Registry is replaced by an in-memory model store with the same API
shape (``get_model`` raising ValueError for a missing model, ``Model.version(alias)``, ``Model.default``,
``ModelVersion.set_alias/unset_alias/set_metric/show_metrics``, ``delete_version``), checked against
snowflake-ml-python's source. The promote itself is the real built-in action (``actions/promote.py``).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest

from pytest_snowpipe.actions.context import ActionContext
from pytest_snowpipe.actions.promote import promote
from pytest_snowpipe.errors import RegistryError
from pytest_snowpipe.pipeline.gate import GateSpec
from pytest_snowpipe.pipeline.graph import Gate, PipelineGraph, Stage
from pytest_snowpipe.pipeline.run_info import RunInfo
from pytest_snowpipe.registry.protocol import CHAMPION, ModelRegistry
from pytest_snowpipe.registry.snowflake import SnowflakeRegistry


class _Version:
    def __init__(self, store: _Store, model: str, name: str, metrics: dict[str, Any]) -> None:
        self.store, self.model, self.version_name, self.metrics = store, model, name, dict(metrics)

    def show_metrics(self) -> dict[str, Any]:
        return dict(self.metrics)

    def set_metric(self, name: str, value: Any) -> None:
        self.store.fail_if("set_metric")
        self.metrics[name] = value

    def set_alias(self, alias: str) -> None:
        self.store.fail_if("set_alias")
        self.store.sql.append(f"ALTER MODEL {self.model} VERSION {self.version_name} SET ALIAS = {alias}")
        self.store.aliases[(self.model, alias.upper())] = self.version_name

    def unset_alias(self, version_or_alias: str) -> None:
        self.store.sql.append(f"ALTER MODEL {self.model} VERSION {version_or_alias} UNSET ALIAS")
        if self.store.aliases.pop((self.model, version_or_alias.upper()), None) is None:
            raise RuntimeError(f"alias {version_or_alias} does not exist")


class _Model:
    def __init__(self, store: _Store, name: str) -> None:
        self.store, self.name = store, name

    def version(self, name: str) -> _Version:
        name = self.store.aliases.get((self.name, name.upper()), name)
        for v in self.store.versions[self.name]:
            if v.version_name.upper() == name.upper():
                return v
        raise ValueError(f"Unable to find version or alias {name}")

    @property
    def default(self) -> _Version:
        return self.version(self.store.defaults[self.name])

    @default.setter
    def default(self, mv: _Version) -> None:
        self.store.fail_if("default")
        self.store.defaults[self.name] = mv.version_name

    def show_versions(self) -> pd.DataFrame:
        return pd.DataFrame([
            {"name": v.version_name, "created_on": i, "is_default_version": str(self.store.defaults.get(self.name) == v.version_name).lower()}
            for i, v in enumerate(self.store.versions[self.name])
        ])

    def delete_version(self, name: str) -> None:
        self.store.versions[self.name] = [v for v in self.store.versions[self.name] if v.version_name != name]


class _Store:
    """snowflake.ml.registry.Registry's shape over dicts; ``fail`` makes one call raise."""

    location = "DB.ML"

    def __init__(self) -> None:
        self.versions: dict[str, list[_Version]] = {}
        self.defaults: dict[str, str] = {}
        self.aliases: dict[tuple[str, str], str] = {}
        self.sql: list[str] = []
        self.fail: str | None = None

    def fail_if(self, what: str) -> None:
        if self.fail == what:
            self.fail = None  # once: the account answers again for the undo
            raise RuntimeError(f"injected failure at {what}")

    def get_model(self, name: str) -> _Model:
        if name not in self.versions:
            raise ValueError(f"Unable to find model {name}")
        return _Model(self, name)

    def log_model(self, model: Any, *, model_name: str, version_name: str, metrics: dict[str, Any], **opts: Any) -> _Version:
        self.fail_if("log_model")
        mv = _Version(self, model_name, version_name, metrics)
        self.versions.setdefault(model_name, []).append(mv)
        self.defaults.setdefault(model_name, version_name)  # a first version is the default
        return mv


def _ctx(registry: ModelRegistry, metrics: dict[str, Any], raw: list[int], version: str) -> ActionContext:
    spec = GateSpec("promote", None, "model", "metrics", "churn", version_name=version)
    stages = tuple(Stage(n, print, p, (), False, None, "here", "k") for n, p in
                   (("raw", ()), ("model", ("raw",)), ("metrics", ("model",))))
    gate = Gate("g", "t::g", print, ("metrics",), (), ("raw", "model", "metrics"), spec, "model", "metrics", "here", "gk")
    return ActionContext(
        gate=gate, verdict="PASS", message="", stages={"raw": raw, "model": "M", "metrics": metrics}, config={},
        graph=PipelineGraph(stages=stages, gates=(gate,)), registry=registry,
        run=RunInfo("R1", dt.datetime(2026, 5, 6, tzinfo=dt.UTC), "snowflake", {}),
    )


@pytest.fixture
def store() -> _Store:
    return _Store()


def test_it_is_a_model_registry(store: _Store) -> None:
    assert isinstance(SnowflakeRegistry(None, registry=store), ModelRegistry)


def test_promote_crowns_the_champion_alias_and_records_the_previous_champion(store: _Store) -> None:
    reg = SnowflakeRegistry(None, registry=store)
    assert reg.default("churn") is None
    promote(_ctx(reg, {"auc": 0.80}, [1], "V1"))
    assert store.aliases[("churn", CHAMPION)] == "V1" and store.sql == ["ALTER MODEL churn VERSION V1 SET ALIAS = CHAMPION"]
    promote(_ctx(reg, {"auc": 0.82}, [1, 2], "V2"))
    assert store.sql[1:] == ["ALTER MODEL churn VERSION CHAMPION UNSET ALIAS", "ALTER MODEL churn VERSION V2 SET ALIAS = CHAMPION"]
    champion = reg.default("churn")
    assert champion is not None and champion.version == "V2" and champion.metrics == {"auc": 0.82}
    assert champion.extra["previous_champion"] == "V1" and store.defaults["churn"] == "V2"


def test_an_unchanged_promote_writes_nothing_on_snowflake_either(store: _Store) -> None:
    reg = SnowflakeRegistry(None, registry=store)
    promote(_ctx(reg, {"auc": 0.80}, [1], "V1"))
    outcome = promote(_ctx(reg, {"auc": 0.80}, [1], "V2"))
    assert "unchanged" in outcome.detail and [v.version_name for v in store.versions["churn"]] == ["V1"]


def test_the_champion_is_read_by_alias_not_by_default(store: _Store) -> None:
    reg = SnowflakeRegistry(None, registry=store)
    promote(_ctx(reg, {"auc": 0.80}, [1], "V1"))
    promote(_ctx(reg, {"auc": 0.82}, [2], "V2"))
    store.defaults["churn"] = "V1"  # someone moved the default by hand: the alias still names the champion
    assert reg.default("churn").version == "V2"  # type: ignore[union-attr]
    del store.aliases[("churn", CHAMPION)]  # a model promoted before aliases: its default version
    assert reg.default("churn").version == "V1"  # type: ignore[union-attr]


@pytest.mark.parametrize("failing", ["set_metric", "default", "set_alias"])
def test_a_failed_promote_leaves_the_registry_as_it_was(store: _Store, failing: str) -> None:
    reg = SnowflakeRegistry(None, registry=store)
    promote(_ctx(reg, {"auc": 0.80}, [1], "V1"))
    store.fail = failing
    with pytest.raises(RegistryError, match=f"making V2 the champion failed .*injected failure at {failing}.*V1 is the champion again"):
        promote(_ctx(reg, {"auc": 0.82}, [2], "V2"))
    assert [v.version_name for v in store.versions["churn"]] == ["V1"]
    assert store.aliases == {("churn", CHAMPION): "V1"} and store.defaults["churn"] == "V1"


def test_a_failed_log_model_changes_nothing(store: _Store) -> None:
    reg = SnowflakeRegistry(None, registry=store)
    store.fail = "log_model"
    with pytest.raises(RegistryError, match="logging version V1 into snowflake://DB.ML failed .*nothing was changed"):
        promote(_ctx(reg, {"auc": 0.80}, [1], "V1"))
    assert store.versions == {} and store.aliases == {}


def test_rollback_moves_the_alias_back_and_records_who_when_why(store: _Store) -> None:
    reg = SnowflakeRegistry(None, registry=store)
    promote(_ctx(reg, {"auc": 0.80}, [1], "V1"))
    promote(_ctx(reg, {"auc": 0.82}, [2], "V2"))
    back = reg.rollback("churn", "misroutes loans", who="ana")
    assert back.version == "V1" and store.aliases == {("churn", CHAMPION): "V1"} and store.defaults["churn"] == "V1"
    record = store.versions["churn"][1].metrics["snowpipe_rolled_back"]
    assert record["by"] == "ana" and record["reason"] == "misroutes loans" and record["to"] == "V1" and record["at"]
    assert reg.default("churn").metrics == {"auc": 0.80}  # type: ignore[union-attr]  # our records are not metrics


def test_rollback_without_a_previous_champion_changes_nothing(store: _Store) -> None:
    reg = SnowflakeRegistry(None, registry=store)
    with pytest.raises(RegistryError, match="no champion yet"):
        reg.rollback("churn", "why")
    promote(_ctx(reg, {"auc": 0.80}, [1], "V1"))
    with pytest.raises(RegistryError, match="V1 is the first champion"):
        reg.rollback("churn", "why")
    with pytest.raises(RegistryError, match="say why"):
        reg.rollback("churn", "  ")
    promote(_ctx(reg, {"auc": 0.82}, [2], "V2"))
    store.versions["churn"] = store.versions["churn"][1:]  # V1 deleted since
    with pytest.raises(RegistryError, match="deleted since"):
        reg.rollback("churn", "why")
    assert store.aliases == {("churn", CHAMPION): "V2"}


def test_prune_never_deletes_the_champion(store: _Store) -> None:
    reg = SnowflakeRegistry(None, registry=store)
    for i in range(1, 5):
        promote(_ctx(reg, {"auc": 0.8 + i / 100}, [i], f"V{i}"))
    reg.rollback("churn", "bad")  # V3 is the champion again, V4 the newest
    store.defaults["churn"] = "V4"
    assert reg.prune("churn", keep=1) == ["V1", "V2"]
    assert [v.version_name for v in store.versions["churn"]] == ["V3", "V4"]
