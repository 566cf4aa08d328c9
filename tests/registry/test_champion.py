"""Champion vs. challenger helpers, the champion readers, the redactor, and the compiled gate on the emulator."""
from __future__ import annotations

import math
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_snowpipe.pipeline.gate import GateSpec
from pytest_snowpipe.pipeline.graph import Gate, PipelineGraph, Stage
from pytest_snowpipe.redact import REDACTED, Redactor, is_secret_name
from pytest_snowpipe.registry.champion import (
    Champion,
    ChampionError,
    Comparison,
    GateCheckFailed,
    MetricMissing,
    assert_metric,
    assert_no_regression,
    read_local_champion,
    read_snowflake_champion,
    recording,
)
from pytest_snowpipe.registry.local import LocalRegistry
from pytest_snowpipe.taskgraph.compile import CompileError, CompileOptions, compile_graph

CHAMP = Champion(model_name="m", version="v0003", metrics={"f1": 0.80, "loss": 0.25, "rows": 10}, promoted_at="t", location="/r")


# ------------------------------------------------------------------ the helpers


def test_absolute_pass_returns_the_value_and_records_it() -> None:
    seen: list[Comparison] = []
    with recording(seen):
        assert assert_metric({"f1": 0.9}, "f1", ge=0.8) == 0.9
    assert seen == [Comparison(metric="f1", kind="absolute", check=">= 0.8", value=0.9, bound=0.8, passed=True)]


def test_absolute_failure_shows_value_and_threshold() -> None:
    with pytest.raises(GateCheckFailed, match=r"^f1 = 0\.7000 fails the absolute threshold >= 0\.8$"):
        assert_metric({"f1": 0.7}, "f1", ge=0.8)
    with pytest.raises(GateCheckFailed, match=r"loss = 0\.3000 fails the absolute threshold <= 0\.2"):
        assert_metric({"loss": 0.3}, "loss", le=0.2)


def test_absolute_and_relative_in_one_call_evaluates_and_records_both() -> None:
    seen: list[Comparison] = []
    with recording(seen), pytest.raises(GateCheckFailed) as info:
        assert_metric({"f1": 0.70}, "f1", ge=0.75, champion=CHAMP, tolerance=0.02)
    message = str(info.value)
    assert "f1 = 0.7000 fails the absolute threshold >= 0.75" in message
    assert "f1 regressed: candidate 0.7000 vs champion 0.8000 (m v0003), delta -0.1000 is worse than the tolerance 0.0200" in message
    assert [(c.kind, c.passed) for c in seen] == [("absolute", False), ("relative", False)]
    assert seen[1].bound == pytest.approx(0.78) and seen[1].delta == pytest.approx(-0.10)


def test_relative_within_tolerance_passes() -> None:
    assert assert_no_regression({"f1": 0.795}, CHAMP, "f1", tolerance=0.01) == 0.795
    with pytest.raises(GateCheckFailed, match="delta -0.0200"):
        assert_no_regression({"f1": 0.78}, CHAMP, "f1", tolerance=0.01)


def test_lower_is_better() -> None:
    assert_no_regression({"loss": 0.255}, CHAMP, "loss", tolerance=0.01, higher_is_better=False)
    seen: list[Comparison] = []
    with recording(seen), pytest.raises(GateCheckFailed, match=r"delta \+0\.0500"):
        assert_no_regression({"loss": 0.30}, CHAMP, "loss", tolerance=0.01, higher_is_better=False)
    assert seen[0].check == "<= champion + 0.01" and seen[0].bound == pytest.approx(0.26)


def test_no_champion_passes_and_says_so() -> None:
    seen: list[Comparison] = []
    with recording(seen):
        assert assert_no_regression({"f1": 0.1}, None, "f1") == 0.1
    assert seen[0].passed and seen[0].note == "no champion yet" and seen[0].champion is None and seen[0].bound is None


def test_champion_missing_the_metric_names_what_exists() -> None:
    with pytest.raises(MetricMissing) as info:
        assert_no_regression({"auc": 0.9}, CHAMP, "auc")
    assert isinstance(info.value, AssertionError) and not isinstance(info.value, KeyError)
    assert str(info.value) == (
        "the metrics of the champion m v0003 have no metric 'auc' (metrics present: f1, loss, rows); "
        "compare a metric both sides log"
    )


def test_candidate_missing_or_non_numeric_metric() -> None:
    with pytest.raises(MetricMissing, match=r"the candidate's metrics have no metric 'f1' \(metrics present: acc\)"):
        assert_metric({"acc": 1.0}, "f1", ge=0.5)
    with pytest.raises(MetricMissing, match="metric 'f1' is 'high', not a number"):
        assert_no_regression({"f1": "high"}, CHAMP, "f1")
    with pytest.raises(MetricMissing, match="are a list, not a mapping"):
        assert_metric([0.9], "f1", ge=0.5)  # type: ignore[arg-type]


def test_nan_never_passes() -> None:
    with pytest.raises(GateCheckFailed):
        assert_metric({"f1": math.nan}, "f1", le=1.0)
    with pytest.raises(GateCheckFailed):
        assert_no_regression({"f1": math.nan}, CHAMP, "f1")


def test_misuse_is_an_error_not_a_gate_failure() -> None:
    with pytest.raises(ValueError, match="give ge= and/or le="):
        assert_metric({"f1": 1.0}, "f1")
    with pytest.raises(ValueError, match="tolerance for 'f1' must be a number >= 0"):
        assert_no_regression({"f1": 1.0}, CHAMP, "f1", tolerance=-0.1)
    with pytest.raises(TypeError, match="champion must be the snowpipe_champion fixture's value"):
        assert_no_regression({"f1": 1.0}, {"f1": 0.5}, "f1")  # type: ignore[arg-type]


def test_numpy_values_and_champion_dict() -> None:
    assert assert_metric({"f1": np.float32(0.9)}, "f1", ge=0.5) == pytest.approx(0.9)
    champ = Champion("m", "v0001", {"f1": np.float64(0.5)}, "t", "/r")
    assert champ.to_dict() == {"model_name": "m", "version": "v0001", "metrics": {"f1": 0.5}, "promoted_at": "t", "location": "/r"}
    assert type(champ.to_dict()["metrics"]["f1"]) is float


# ------------------------------------------------------------------ reading the champion


def test_local_champion_none_then_the_default(tmp_path: Path) -> None:
    assert read_local_champion(tmp_path / "registry", "m") is None
    registry = LocalRegistry(tmp_path / "registry")
    registry.promote("m", {"w": 1}, metrics={"f1": 0.8})
    registry.promote("m", {"w": 2}, metrics={"f1": 0.85})
    champ = read_local_champion(tmp_path / "registry", "m")
    assert champ is not None and champ.version == "v0002" and champ.metrics == {"f1": 0.85}
    assert champ.location == str(tmp_path / "registry") and champ.promoted_at


def test_local_champion_unreachable_registry(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ChampionError, match=r"the model registry path .*file is a file, not a folder.*snowpipe_registry"):
        read_local_champion(tmp_path / "file", "m")
    (tmp_path / "reg" / "m").mkdir(parents=True)
    (tmp_path / "reg" / "m" / "default.json").write_text("[1]")
    with pytest.raises(ChampionError, match=r"cannot be read from the model registry .*reg: registry metadata file .*default.json is corrupt"):
        read_local_champion(tmp_path / "reg", "m")


class _Version:
    version_name = "V_RUN_7"

    def show_metrics(self) -> dict[str, Any]:
        return {"f1": 0.83}


class _Model:
    default = _Version()

    def version(self, version_or_alias: str) -> Any:
        raise ValueError(f"Unable to find version or alias {version_or_alias}")  # promoted before aliases

    def show_versions(self) -> Any:
        import pandas as pd

        return pd.DataFrame([{"name": "V_RUN_6", "created_on": "2026-01-01"}, {"name": "V_RUN_7", "created_on": "2026-02-02"}])


def _fake_registry_module(monkeypatch: pytest.MonkeyPatch, models: dict[str, Any], fail: Exception | None = None) -> list[Any]:
    """A stand-in for snowflake.ml.registry (no account here): the real API's shape, checked against its source."""
    sessions: list[Any] = []

    class Registry:
        location = "ML.MODELS"

        def __init__(self, session: Any, database_name: Any = None, schema_name: Any = None) -> None:
            if fail is not None:
                raise fail
            sessions.append(session)

        def get_model(self, name: str) -> Any:
            if name not in models:
                raise ValueError(f"Unable to find model {name}")  # what ModelManager.get_model raises
            return models[name]

    module = types.ModuleType("snowflake.ml.registry")
    module.Registry = Registry  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snowflake.ml.registry", module)
    return sessions


def test_snowflake_champion_reads_default_version_and_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    sessions = _fake_registry_module(monkeypatch, {"churn": _Model()})
    champ = read_snowflake_champion("SESSION", "churn")
    assert champ == Champion("churn", "V_RUN_7", {"f1": 0.83}, "2026-02-02", "snowflake://ML.MODELS")
    assert sessions == ["SESSION"]
    assert read_snowflake_champion("SESSION", "never_logged") is None


def test_snowflake_registry_unreachable_is_a_champion_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_registry_module(monkeypatch, {}, fail=RuntimeError("Schema ML.MODELS does not exist"))
    with pytest.raises(ChampionError, match="Snowflake Model Registry .* unreachable .*Schema ML.MODELS does not exist"):
        read_snowflake_champion("SESSION", "churn")


# ------------------------------------------------------------------ the redactor


def test_secret_names() -> None:
    for name in ("api_token", "WEBHOOK_URL", "private_key_file", "db-password", "client_secret", "key", "AUTH"):
        assert is_secret_name(name), name
    for name in ("metric_threshold", "raw_table", "monkey", "author", "n_rows", "label"):
        assert not is_secret_name(name), name


def test_redactor_cuts_known_values_and_patterns() -> None:
    r = Redactor.for_run(
        {"api_token": "tok-123456", "label": "demo"},
        "HOOK",
        environ={"HOOK": "https://hooks.example/abc", "GITHUB_TOKEN": "ghp_abcdef123", "PWD": "/work", "X_KEY": "1"},
    )
    text = (
        "tok-123456 https://hooks.example/abc ghp_abcdef123 /work/x https://u:p4ss@h/x ?token=zzz&a=1 "
        "password: hunter2 Authorization: Bearer abcdefghijk https://hooks.slack.com/services/T0/B0/XX 1"
    )
    assert r.text(text) == (
        f"{REDACTED} {REDACTED} {REDACTED} /work/x https://{REDACTED}@h/x ?token={REDACTED}&a=1 "
        f"password: {REDACTED} Authorization: Bearer {REDACTED} https://hooks.slack.com/services/{REDACTED} 1"
    )
    assert r.config({"api_token": "x", "label": "see token=abc"}) == {"api_token": REDACTED, "label": f"see token={REDACTED}"}
    assert r.deep({"a": ["tok-123456", 1.5, None]}) == {"a": [REDACTED, 1.5, None]}


# ------------------------------------------------------------------ the compiled gate (emulator)


def metrics() -> dict[str, float]:
    return {"score": 0.45}


def model() -> dict[str, int]:
    return {"w": 1}


def champion_gate(metrics, snowpipe_champion):  # type: ignore[no-untyped-def]
    from pytest_snowpipe.registry.champion import assert_no_regression as no_regression

    no_regression(metrics, snowpipe_champion, "score", tolerance=0.01)


def _stage(func: Any) -> Stage:
    return Stage(name=func.__name__, func=func, predecessors=(), environment=(), is_yield=False, remote=None,
                 location="here", key="k")


def _graph(model_name: str | None = "demo_model", env: tuple[str, ...] = ("snowpipe_champion",)) -> PipelineGraph:
    spec = GateSpec("promote", "alert", "model", "metrics", model_name)
    gate = Gate(name="champion_gate", nodeid="t.py::champion_gate", func=champion_gate, reads=("metrics",),
                environment=env, upstream=("model", "metrics"), spec=spec, model_stage="model",
                metrics_stage="metrics", location="here", key="g")
    return PipelineGraph(stages=(_stage(model), _stage(metrics)), gates=(gate,))


@pytest.fixture(scope="module")
def session(embedded_session: Any) -> Any:
    return embedded_session


def _emulate(registry: Path, session: Any) -> Any:
    from pytest_snowpipe.doubles.emulator import emulate

    compiled = compile_graph(_graph(), CompileOptions(dag_name="CHAMP", registry_path=str(registry)))
    return emulate(compiled.dag, session=session)


def test_compiled_gate_takes_the_alert_branch_when_the_champion_is_better(tmp_path: Path, session: Any) -> None:
    registry = LocalRegistry(tmp_path / "registry")
    registry.promote("demo_model", {"w": 0}, metrics={"score": 0.9})
    record = _emulate(tmp_path / "registry", session)
    assert record.state == "SUCCEEDED", record.format()
    assert record.tasks["CHAMPION_GATE"].return_value == "CHAMPION_GATE_ALERT"
    assert record.tasks["CHAMPION_GATE_PROMOTE"].state == "SKIPPED"
    assert "score regressed: candidate 0.4500 vs champion 0.9000 (demo_model v0001)" in record.tasks["CHAMPION_GATE_ALERT"].return_value
    assert registry.default("demo_model").version == "v0001"


def test_compiled_gate_promotes_on_the_first_run_and_then_compares(tmp_path: Path, session: Any) -> None:
    record = _emulate(tmp_path / "registry", session)
    assert record.tasks["CHAMPION_GATE"].return_value == "CHAMPION_GATE_PROMOTE", record.format()
    assert LocalRegistry(tmp_path / "registry").default("demo_model").metrics == {"score": 0.45}
    again = _emulate(tmp_path / "registry", session)  # same model: no regression against v0001
    assert again.tasks["CHAMPION_GATE"].return_value == "CHAMPION_GATE_PROMOTE", again.format()
    assert "demo_model v0001 is already the default (unchanged" in again.tasks["CHAMPION_GATE_PROMOTE"].return_value
    assert LocalRegistry(tmp_path / "registry").versions("demo_model") == ["v0001"]  # nothing new to promote


def test_compiled_gate_with_unreachable_registry_fails_its_task(tmp_path: Path, session: Any) -> None:
    (tmp_path / "registry").write_text("a file")
    record = _emulate(tmp_path / "registry", session)
    assert record.state == "FAILED" and record.first_error_task_name == "CHAMPION_GATE"
    assert "is a file, not a folder" in record.tasks["CHAMPION_GATE"].error
    assert record.tasks["CHAMPION_GATE_PROMOTE"].state == "NOT_EXECUTED"


def test_compile_checks_the_gate_environment() -> None:
    with pytest.raises(CompileError) as info:
        compile_graph(_graph(model_name=None, env=("snowpipe_champion", "snowpipe_registry")), CompileOptions(check_pickle=False))
    problems = "\n".join(info.value.problems)
    assert "gate 'champion_gate' requests snowpipe_registry, unavailable in a Task Graph task" in problems
