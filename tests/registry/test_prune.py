"""Registry housekeeping: keep the last N versions, never the default (issue 13, item 6)."""
from __future__ import annotations

import textwrap

import pandas as pd
import pytest

from pytest_snowpipe.errors import RegistryError
from pytest_snowpipe.registry.local import LocalRegistry
from pytest_snowpipe.registry.snowflake import SnowflakeRegistry


def test_local_prune_keeps_the_newest_and_never_the_default(tmp_path):
    reg = LocalRegistry(tmp_path)
    for i in range(5):
        reg.promote("m", {"i": i})
    # make v0002 the default again (a rollback): it must survive any prune
    (tmp_path / "m" / "default.json").write_text('{"version": "v0002"}')
    assert reg.prune("m", keep=2) == ["v0001", "v0003"]
    assert reg.versions("m") == ["v0002", "v0004", "v0005"]
    assert reg.default("m").version == "v0002"
    assert reg.prune("m", keep=0) == ["v0004", "v0005"]
    assert reg.versions("m") == ["v0002"]
    with pytest.raises(RegistryError, match="keep takes an integer >= 0"):
        reg.prune("m", keep=-1)


def test_local_prune_orders_named_versions_by_creation(tmp_path):
    reg = LocalRegistry(tmp_path)
    for name in ("v20260103_000000", "v20260101_000000", "v20260102_000000"):
        reg.promote("m", {}, version=name)
    assert reg.versions("m") == ["v20260103_000000", "v20260101_000000", "v20260102_000000"]  # promote order
    assert reg.prune("m", keep=1) == ["v20260103_000000", "v20260101_000000"]
    with pytest.raises(RegistryError, match="already has a version 'v20260102_000000'"):
        reg.promote("m", {}, version="v20260102_000000")


def test_prune_from_a_teardown_in_a_suite(pipeline_suite):
    conftest = textwrap.dedent('''
        import pytest

        @pytest.fixture(scope="session")
        def raw(snowpipe_registry):
            yield [1, 2, 3, 4]
            snowpipe_registry.prune("model", keep=2)

        @pytest.fixture(scope="session")
        def model(raw, snowpipe_config):
            return {"weights": sum(raw), "label": snowpipe_config["label"]}

        @pytest.fixture(scope="session")
        def metrics(model, snowpipe_config):
            return {"score": model["weights"] / 10}
    ''')
    pytester = pipeline_suite(conftest=conftest)
    for i in range(4):  # another config value the model reads: another model, a new version each run
        pytester.runpytest("--snowpipe-no-cache", "--snowpipe-config", f"label=run{i}").assert_outcomes(passed=1)
    reg = LocalRegistry(pytester.path / ".snowpipe" / "registry")
    assert reg.versions("model") == ["v0003", "v0004"] and reg.default("model").version == "v0004"


class _FakeModel:
    def __init__(self, rows):
        self.rows, self.deleted = rows, []

    def show_versions(self):
        return pd.DataFrame(self.rows)

    def delete_version(self, name):
        self.deleted.append(name)

    def version(self, alias):  # snowflake.ml: no CHAMPION alias on this model (promoted before aliases)
        raise ValueError(f"Unable to find version or alias {alias}")

    @property
    def default(self):
        return next(_V(r["name"]) for r in self.rows if r["is_default_version"] == "true")


class _V:
    def __init__(self, name):
        self.version_name = name


class _FakeRegistry:
    def __init__(self, model):
        self.model = model

    def get_model(self, name):
        assert name == "MORTGAGE_MODEL"
        return self.model


def test_snowflake_prune_uses_show_versions_and_delete_version():
    ts = pd.Timestamp
    model = _FakeModel([
        {"name": "V3", "created_on": ts("2026-01-03"), "is_default_version": "false"},
        {"name": "V1", "created_on": ts("2026-01-01"), "is_default_version": "true"},
        {"name": "V2", "created_on": ts("2026-01-02"), "is_default_version": "false"},
        {"name": "V4", "created_on": ts("2026-01-04"), "is_default_version": "false"},
    ])
    reg = SnowflakeRegistry(None, registry=_FakeRegistry(model))
    assert reg.versions("MORTGAGE_MODEL") == ["V1", "V2", "V3", "V4"]
    assert reg.prune("MORTGAGE_MODEL", keep=2) == ["V2"]
    assert model.deleted == ["V2"]


def test_snowpipe_registry_in_a_task_is_the_snowflake_registry_on_an_account(monkeypatch):
    from pytest_snowpipe.registry import snowflake as sf_mod
    from pytest_snowpipe.taskgraph import runtime

    monkeypatch.setattr(runtime, "is_embedded_session", lambda s: False)
    made = {}
    monkeypatch.setattr(sf_mod.SnowflakeRegistry, "__init__", lambda self, session: made.update(s=session))
    assert isinstance(runtime.registry_for("SESSION", None), SnowflakeRegistry) and made["s"] == "SESSION"
    monkeypatch.setattr(runtime, "is_embedded_session", lambda s: True)
    assert isinstance(runtime.registry_for("S", "/tmp/x"), LocalRegistry)


@pytest.mark.parametrize("extra", [0, 1, 2])
def test_local_prune_with_keep_at_or_above_the_count_deletes_nothing(tmp_path, extra):
    reg = LocalRegistry(tmp_path)
    for i in range(3):
        reg.promote("m", {"i": i})
    assert reg.prune("m", keep=3 + extra) == []
    assert reg.versions("m") == ["v0001", "v0002", "v0003"]
    assert reg.prune("m", keep=2) == ["v0001"]  # one under the count: the oldest goes
