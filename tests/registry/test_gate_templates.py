"""Gate marker options that read the config and the run; log_model options; lineage (issue 13, item 2)."""
from __future__ import annotations

import json
import re
import textwrap

import pytest

CONFTEST = '''
import pandas as pd
import pytest
import pytest_snowpipe as sp

@pytest.fixture(scope="session")
@sp.source(fingerprint=lambda: "v1")
def raw():
    return pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 1]})

@pytest.fixture(scope="session")
def model(raw):
    return {"w": float(raw["x"].sum())}

@pytest.fixture(scope="session")
def metrics(model):
    return {"score": 0.9}
'''

GATE = '''
import pytest

@pytest.mark.snowpipe_gate(
    on_pass="promote", model_name="{model_name}", version_name="v{run_scheduled:%Y%m%d_%H%M%S}",
    log_model={"comment": "seed model", "target_platforms": ["WAREHOUSE"], "conda_dependencies": ["xgboost"],
               "options": {"enable_explainability": False}, "sample_input_data": "raw"},
)
def test_quality(metrics):
    assert metrics["score"] > 0.5
'''

INI = "[pytest]\nsnowpipe_config =\n    model_name = mortgage_model\n"


def test_model_and_version_names_from_config_and_run_with_log_model_options_and_lineage(pytester: pytest.Pytester):
    pytester.makeini(INI)
    pytester.makeconftest(textwrap.dedent(CONFTEST))
    pytester.makepyfile(test_gate=textwrap.dedent(GATE))
    result = pytester.runpytest_subprocess("--snowpipe-config", "model_name=seed_model")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*promote: seed_model v20*_* is now the default*"])
    versions = pytester.path / ".snowpipe" / "registry" / "seed_model" / "versions"
    (folder,) = list(versions.iterdir())
    assert re.fullmatch(r"v\d{8}_\d{6}", folder.name)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["extra"]["run"]["run_id"].startswith("local-")
    log_model = meta["extra"]["log_model"]
    assert log_model["comment"] == "seed model" and log_model["target_platforms"] == ["WAREHOUSE"]
    assert log_model["sample_input_data"]["columns"] == ["x", "y"]
    lineage = meta["extra"]["lineage"]
    assert list(lineage) == ["raw"] and lineage["raw"]["declared"] and len(lineage["raw"]["fingerprint"]) > 8
    assert not (pytester.path / ".snowpipe" / "registry" / "mortgage_model").exists()


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ('model_name="{nope}"', "model_name='{nope}' names 'nope', which is neither a snowpipe_config key"),
        ('version_name="v{run_sched}"', "version_name='v{run_sched}' names 'run_sched'"),
        ('log_model={"sample_input": 1}', "log_model option(s) 'sample_input' unknown. Valid options: comment"),
    ],
)
def test_bad_templates_and_options_are_usage_errors(pytester: pytest.Pytester, marker, message):
    pytester.makeini(INI)
    pytester.makeconftest(textwrap.dedent(CONFTEST))
    pytester.makepyfile(test_gate=f'''
import pytest

@pytest.mark.snowpipe_gate(on_pass="promote", {marker})
def test_quality(metrics):
    assert metrics
''')
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_log_model_options_are_those_of_the_installed_registry():
    import inspect

    from snowflake.ml.registry import Registry

    from pytest_snowpipe.pipeline.gate import LOG_MODEL_OPTIONS

    assert set(LOG_MODEL_OPTIONS) <= set(inspect.signature(Registry.log_model).parameters)


def test_snowflake_promote_passes_version_log_model_options_and_lineage():
    import datetime as dt

    from pytest_snowpipe.actions.context import ActionContext
    from pytest_snowpipe.actions.promote import promote
    from pytest_snowpipe.pipeline.gate import GateSpec
    from pytest_snowpipe.pipeline.graph import Gate, PipelineGraph, Stage
    from pytest_snowpipe.pipeline.run_info import RunInfo
    from pytest_snowpipe.registry.snowflake import SnowflakeRegistry

    calls: dict = {}

    class MV:
        version_name = "v20260506"

        def __init__(self):
            self.metrics = {"a": 1}

        def set_metric(self, name, value):
            calls.setdefault("metric", []).append((name, value))
            self.metrics[name] = value

        def show_metrics(self):
            return dict(self.metrics)

        def set_alias(self, alias):
            calls["alias"] = alias

    class Model:
        default = None

    class Registry:
        location = "DB.S"

        def log_model(self, model, **kw):
            calls["log_model"] = (model, kw)
            return MV()

        def get_model(self, name):
            if "log_model" not in calls:
                raise ValueError("no such model")
            calls["model"] = Model()
            return calls["model"]

    spec = GateSpec("promote", None, "model", "metrics", "seed_model", version_name="v{run_scheduled:%Y%m%d}",
                    log_model={"comment": "c", "sample_input_data": "raw"})
    stages = tuple(Stage(n, print, p, (), False, None, "here", "k") for n, p in
                   (("raw", ()), ("model", ("raw",)), ("metrics", ("model",))))
    gate = Gate("g", "t::g", print, ("metrics",), (), ("raw", "model", "metrics"), spec, "model", "metrics", "here", "gk")
    graph = PipelineGraph(stages=stages, gates=(gate,))
    run = RunInfo("RG1", dt.datetime(2026, 5, 6, tzinfo=dt.UTC), "snowflake", {})
    actx = ActionContext(gate=gate, verdict="PASS", message="", stages={"raw": [1, 2], "model": "M", "metrics": {"a": 1}},
                         config={}, graph=graph, registry=SnowflakeRegistry(None, registry=Registry()), run=run)
    out = promote(actx)
    assert out.detail == "seed_model v20260506 is now the default (snowflake://DB.S)"
    model, kw = calls["log_model"]
    assert model == "M" and kw == {"model_name": "seed_model", "version_name": "v20260506", "metrics": {"a": 1},
                                   "comment": "c", "sample_input_data": [1, 2]}
    (name, value), = calls["metric"]
    assert name == "snowpipe" and list(value["extra"]["lineage"]) == ["raw"]
    assert calls["alias"] == "CHAMPION" and calls["model"].default is not None


def test_a_promote_hashes_each_source_once_for_fingerprints_and_lineage():
    """promote_fingerprints and lineage both name the source stages' fingerprints: a table on an
    account costs a query each time, so the context asks once per stage."""
    from pytest_snowpipe.actions.context import ActionContext
    from pytest_snowpipe.actions.promote import lineage, promote_fingerprints
    from pytest_snowpipe.pipeline.gate import GateSpec
    from pytest_snowpipe.pipeline.graph import Gate, PipelineGraph, Stage
    from pytest_snowpipe.registry.local import LocalRegistry

    asked: list[str] = []

    def fingerprint_of(stage: str) -> str:
        asked.append(stage)
        return f"fp-{stage}"

    spec = GateSpec("promote", None, "model", "metrics", "m")
    stages = tuple(Stage(n, print, p, (), False, None, "here", "k") for n, p in
                   (("raw", ()), ("model", ("raw",)), ("metrics", ("model",))))
    gate = Gate("g", "t::g", print, ("metrics",), (), ("raw", "model", "metrics"), spec, "model", "metrics", "here", "gk")
    actx = ActionContext(gate=gate, verdict="PASS", message="", stages={"raw": [1], "model": "M", "metrics": {}},
                         config={}, graph=PipelineGraph(stages=stages, gates=(gate,)), registry=LocalRegistry("unused"),
                         fingerprint_of=fingerprint_of)
    assert promote_fingerprints(actx)["data"] == {"raw": "fp-raw"}
    assert lineage(actx)["raw"]["fingerprint"] == "fp-raw"
    assert asked == ["raw"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("v{model_name[99]}", "is not a valid template (string index out of range)"),
        ("v{run_scheduled.nope}", "is not a valid template ("),
        ("v{threshold[0]}", "is not a valid template ("),
        ("v{0}", "is not a valid template ("),
        ("v{", "is not a valid template ("),
    ],
)
def test_every_template_error_is_a_gate_spec_error(template, message):
    import datetime as dt

    from pytest_snowpipe.pipeline.gate import GateSpecError, fill_template

    values = {"model_name": "m", "threshold": 0.5, "run_scheduled": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}
    with pytest.raises(GateSpecError, match=re.escape(message)):
        fill_template(template, values, "test_quality", "version_name")


VERSION_INI = "[pytest]\nsnowpipe_config =\n    model_name = mortgage_model\n    label = seed\n    threshold = 0.8\n"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("v{run_scheduled:%Q}", "version_name='v{run_scheduled:%Q}' gives 'v%Q'"),
        ("{label}-{threshold}", "version_name='{label}-{threshold}' gives 'seed-0.8'"),
        ("v{run_scheduled.nope}", "version_name='v{run_scheduled.nope}' is not a valid template"),
        ("v{model_name[99]}", "version_name='v{model_name[99]}' is not a valid template"),
        ("{threshold}", "gives '0.8'"),
    ],
)
@pytest.mark.parametrize("dry_run", [False, True])
def test_a_version_template_that_cannot_name_a_version_stops_collection(pytester: pytest.Pytester, template, message, dry_run):
    pytester.makeini(VERSION_INI)
    pytester.makeconftest(textwrap.dedent(CONFTEST).replace("def raw():", "def raw():\n    print('RAW RAN')"))
    pytester.makepyfile(test_gate=f'''
import pytest

@pytest.mark.snowpipe_gate(on_pass="promote", version_name={template!r})
def test_quality(metrics):
    assert metrics
''')
    args = ["--snowpipe-deploy", "--snowpipe-dry-run"] if dry_run else []
    result = pytester.runpytest(*args, "-s")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert "RAW RAN" not in result.stdout.str()


@pytest.mark.parametrize("template", ["{run_id}", "v{run_scheduled:%Y%m%d_%H%M%S}", "{label}_{run_target}"])
def test_templates_that_give_valid_names_for_every_target_pass(template):
    from pytest_snowpipe.pipeline.gate import check_version_template

    check_version_template(template, {"label": "seed"}, "test_quality")


def test_the_emulator_run_id_is_a_valid_version_name():
    """Its run id was a bare uuid4: 10 in 16 start with a digit, an invalid version name."""
    from snowflake.core.task.dagv1 import DAG

    from pytest_snowpipe.doubles.emulator import _GraphRun
    from pytest_snowpipe.pipeline.gate import MODEL_NAME

    ids = [_GraphRun(DAG("G"), {}).run_group_id for _ in range(64)]
    assert len(set(ids)) == 64
    assert all(MODEL_NAME.match(i) for i in ids), [i for i in ids if not MODEL_NAME.match(i)]
