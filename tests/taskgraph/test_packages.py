"""Packages: inferred from the shipped code (bodies and project helpers), pinned against Snowflake's channel."""
from __future__ import annotations

from importlib.metadata import version
from typing import Any

import pytest

from pytest_snowpipe.pipeline.graph import PipelineGraph
from pytest_snowpipe.taskgraph.compile import CompileError, compile_graph
from pytest_snowpipe.taskgraph.packages import PackageError, modules_of, needed_by, resolve
from tests.taskgraph.test_compile import gate, opts, pipeline, stage


def xgboost_version() -> str:
    """The installed xgboost module's version (its distribution is xgboost, or xgboost-cpu on Linux)."""
    import xgboost

    return str(xgboost.__version__)


def _helper_fits(frame: Any) -> Any:
    from sklearn.linear_model import LogisticRegression  # a project helper the stage calls

    return LogisticRegression


def model_with_helper(features: Any) -> Any:
    import xgboost  # inside the body: only the bytecode shows it

    return {"helper": _helper_fits(features).__name__, "xgb": xgboost.__version__}


def uses_hypothesis(features: Any) -> Any:
    import hypothesis  # not in Snowflake's channel

    return hypothesis.__version__


def test_modules_of_sees_body_imports_and_project_helpers() -> None:
    mods = modules_of(model_with_helper)
    assert "xgboost" in mods and "sklearn.linear_model" in mods


def test_needed_by_maps_modules_to_distributions_and_keeps_the_runtime() -> None:
    needed = needed_by({"MODEL": model_with_helper}, ml=False)
    assert needed["xgboost"] == "task MODEL imports xgboost"
    assert needed["scikit-learn"] == "task MODEL imports sklearn.linear_model"
    assert "snowflake-snowpark-python" in needed and "pytest" not in needed and "snowflake-ml-python" not in needed


def test_resolve_pins_installed_nearest_with_a_warning_user_overrides_and_missing_is_named() -> None:
    channel = {"xgboost": ["1.7.6", "2.1.4"], "scikit-learn": [version("scikit-learn")], "pandas": ["2.2.2"]}
    res = resolve({"xgboost": "a", "scikit-learn": "b", "pandas": "c"}, channel=channel, user=["pandas==2.2.2"])
    assert res.specs == ["xgboost==2.1.4", f"scikit-learn=={version('scikit-learn')}", "pandas==2.2.2"]
    assert res.warnings == [f"package xgboost: the rehearsal runs {xgboost_version()}, Snowflake gets 2.1.4 (the given "
                            f"channel has no {xgboost_version()}); install xgboost==2.1.4 here to rehearse exactly what "
                            "ships, or pin another in ini snowpipe_packages"]
    with pytest.raises(PackageError, match=r"package 'hypothesis' \(x\) is not in the given channel in any version: "
                                           r".*snowpipe_packages.*pip_requirements"):
        resolve({"hypothesis": "x"}, channel=channel)


def test_compile_declares_what_a_stage_imports_pinned(tmp_path: Any) -> None:
    g = pipeline()
    stages = tuple(stage(model_with_helper, ("features",), name="model") if s.name == "model" else s for s in g.stages)
    compiled = compile_graph(PipelineGraph(stages=stages, gates=g.gates), opts(tmp_path))
    assert f"xgboost=={xgboost_version()}" in compiled.dag.packages
    assert f"scikit-learn=={version('scikit-learn')}" in compiled.dag.packages


def test_a_package_missing_from_the_channel_is_a_compile_error(tmp_path: Any) -> None:
    from pytest_snowpipe.taskgraph.channel import Channel, from_snapshot

    g = pipeline()
    stages = (*g.stages, stage(uses_hypothesis, ("features",), name="extra"))
    account = Channel(dict(from_snapshot().versions), "the account's information_schema.packages", authoritative=True)
    with pytest.raises(CompileError, match="package 'hypothesis' \\(task EXTRA imports hypothesis\\) is not in the "
                                           "account's information_schema.packages"):
        compile_graph(PipelineGraph(stages=stages, gates=g.gates), opts(tmp_path, channel=account))
    # against a snapshot (no account at hand) the same gap is a warning: the account decides at deploy
    soft = compile_graph(PipelineGraph(stages=stages, gates=(gate(g.gates[0].func, ("metrics",), g.gates[0].upstream),)),
                         opts(tmp_path))
    assert any("'hypothesis'" in w and "checked against the account at deploy" in w for w in soft.warnings)
    # snowpipe_packages overrides the inference (Snowpark checks it against the live channel at deploy)
    graph = PipelineGraph(stages=stages, gates=(gate(g.gates[0].func, ("metrics",), g.gates[0].upstream),))
    assert f"hypothesis=={version('hypothesis')}" in compile_graph(graph, opts(tmp_path, packages=("hypothesis",))).dag.packages


def test_the_installed_distributions_are_read_once_per_environment_state(tmp_path, monkeypatch) -> None:
    """Reading every distribution's file list costs 0.1-0.3 s and a compile asks per module reached:
    read once, and again when a folder on the import path changes (a distribution installed)."""
    import importlib.metadata

    from pytest_snowpipe.taskgraph import packages

    real = importlib.metadata.packages_distributions
    reads: list[int] = []
    monkeypatch.setattr(importlib.metadata, "packages_distributions", lambda: reads.append(1) or real())
    packages._packages_distributions.cache_clear()
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert packages.distribution_of("numpy") == "numpy"
        assert packages.distribution_of("yaml") == "PyYAML"
        assert packages.distribution_of("snowpipe_fresh_pkg") is None
        assert len(reads) == 1
        info = tmp_path / "snowpipe_fresh_pkg-1.0.dist-info"  # pip installs one into a folder on the path
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: snowpipe-fresh-pkg\nVersion: 1.0\n")
        (info / "top_level.txt").write_text("snowpipe_fresh_pkg\n")
        assert packages.distribution_of("snowpipe_fresh_pkg") == "snowpipe-fresh-pkg"
        assert len(reads) == 2
    finally:
        packages._packages_distributions.cache_clear()
