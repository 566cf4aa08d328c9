"""``snowpipe``: list, show, compare and plot the local registry's versions (a real registry from real runs)."""
from __future__ import annotations

import importlib.metadata

import pytest

from pytest_snowpipe.reports.cli import bars, main

STAGES = '''
import pytest

@pytest.fixture(scope="session")
def raw():
    return [1, 2, 3, 4]

@pytest.fixture(scope="session")
def model(raw):
    return {"weights": sum(raw)}

@pytest.fixture(scope="session")
def metrics(model, snowpipe_config):
    return {"score": model["weights"] / snowpipe_config["scale"], "rows": 4}
'''

GATE = '''
import pytest
import pytest_snowpipe as sp

@pytest.mark.snowpipe_gate(on_pass="promote", on_fail="alert")
def test_gate(metrics, snowpipe_config):
    sp.assert_metric(metrics, "score", ge=snowpipe_config["threshold"])
'''

INI = "[pytest]\nsnowpipe_config =\n    threshold = 0.1\n    scale = 10\n"


@pytest.fixture
def two_versions(pipeline_suite, monkeypatch):
    pytester = pipeline_suite(conftest=STAGES, gate=GATE, ini=INI)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    pytester.runpytest("-p", "no:cacheprovider", "--snowpipe-config", "scale=20").assert_outcomes(passed=1)
    (pytester.path / "sub").mkdir()
    monkeypatch.chdir(pytester.path / "sub")
    return pytester.path / ".snowpipe" / "registry"


def test_models_and_versions_found_from_a_subfolder(two_versions, capsys):
    assert main(["models"]) == 0  # found in a parent folder of the current one
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"registry {two_versions}"
    assert out[2].split() == ["model", "2", "v0002", "v0002"]
    assert main(["versions", "model"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[1].split()[0] == "v0001" and "score=1.0000" in rows[1]
    assert rows[2].split()[:2] == ["v0002", "*"] and "score=0.5000" in rows[2]  # the default is marked


def test_show_compare_and_plot(two_versions, capsys):
    assert main(["show", "model"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("model v0002 (default)\n")
    for part in ("  metrics:\n", "    score: 0.5000", "  config:\n", "    scale: 20", "  run:\n    run_id: local-", "  lineage:", "  fingerprints:\n    code: "):
        assert part in shown, part
    assert main(["compare", "model", "v0001", "v0002"]) == 0
    compared = capsys.readouterr().out.splitlines()
    assert compared[0] == "model: v0001 -> v0002"
    assert compared[2].split() == ["rows", "4", "4", "+0"]
    assert compared[3].split() == ["score", "1.0000", "0.5000", "-0.5000"]
    assert "config: changed: scale 10 -> 20" in compared
    assert main(["plot", "model", "score"]) == 0
    plotted = capsys.readouterr().out.splitlines()
    assert plotted == ["model: score over 2 version(s)", "  v0001      1.0000  " + "#" * 40, "  v0002      0.5000  #"]


def test_unknown_model_version_or_metric_names_what_exists(two_versions, capsys):
    assert main(["show", "nope"]) == 2
    assert "no model 'nope' in the registry" in capsys.readouterr().err
    assert main(["show", "model", "v0009"]) == 2
    assert "it has: v0001, v0002" in capsys.readouterr().err
    assert main(["plot", "model", "recall"]) == 2
    assert "metrics: rows, score" in capsys.readouterr().err


def test_no_registry_says_how_to_get_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["models"]) == 2
    assert "no model registry" in capsys.readouterr().err


def test_bars_span_lowest_to_highest():
    assert bars([("a", 1.0), ("b", 2.0), ("c", 1.5)], width=11) == ["  a      1.0000  #", "  b      2.0000  " + "#" * 11, "  c      1.5000  " + "#" * 6]


def test_console_script_is_declared():
    scripts = importlib.metadata.entry_points(group="console_scripts")
    assert any(s.name == "snowpipe" and s.value == "pytest_snowpipe.reports.cli:main" for s in scripts)
