"""Noise-aware champion comparison: the seeded paired bootstrap and its gate (issue 22, item 3)."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from pytest_snowpipe.registry.bootstrap import BootstrapError, paired_bootstrap
from pytest_snowpipe.registry.champion import (
    Champion,
    ChampionError,
    Comparison,
    GateCheckFailed,
    assert_beats_champion,
    recording,
)
from pytest_snowpipe.registry.local import LocalRegistry


def _labels(n: int = 20000, cand_acc: float = 0.85, champ_acc: float = 0.80, seed: int = 1) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, np.where(rng.random(n) < cand_acc, y, 1 - y), np.where(rng.random(n) < champ_acc, y, 1 - y)


def test_label_metrics_match_scikit_learn_and_the_interval_covers_the_delta() -> None:
    y, c, h = _labels()
    for fn in (accuracy_score, f1_score):
        r = paired_bootstrap(y, c, h, fn)
        assert r.candidate == pytest.approx(fn(y, c)) and r.champion == pytest.approx(fn(y, h))
        assert r.low < r.delta < r.high and r.resamples == 1000 and r.rows == 20000
        assert r.passes() and r.check() == "better than the champion at 95%"


def test_the_same_seed_gives_the_same_interval_and_another_seed_another() -> None:
    y, c, h = _labels()
    one, again, other = (paired_bootstrap(y, c, h, "f1", seed=s) for s in (0, 0, 1))
    assert (one.low, one.high) == (again.low, again.high)
    assert (one.low, one.high) != (other.low, other.high)


def test_fast_label_path_agrees_with_calling_the_function_per_resample() -> None:
    """The counts path and the generic path (a lambda: called on every resample) give intervals
    a resampling error apart."""
    y, c, h = _labels(n=3000)
    fast = paired_bootstrap(y, c, h, accuracy_score, resamples=400)
    slow = paired_bootstrap(y, c, h, lambda t, p: float(np.mean(t == p)), resamples=400)
    assert slow.delta == pytest.approx(fast.delta)
    assert slow.low == pytest.approx(fast.low, abs=0.006) and slow.high == pytest.approx(fast.high, abs=0.006)


def test_a_wobble_is_not_better_but_is_no_worse_than_a_margin() -> None:
    """The issue's case: a 0.0003 point gain is noise, not "better"; "no worse by 0.01" holds."""
    y, c, _ = _labels(n=20000)
    h = c.copy()  # the models disagree on 200 rows: the candidate is right on 103, the champion on 97
    right, wrong = np.flatnonzero(c == y)[:103], np.flatnonzero(c != y)[:97]
    h[right], h[wrong] = 1 - y[right], y[wrong]
    r = paired_bootstrap(y, c, h, accuracy_score)
    assert r.delta == pytest.approx(0.0003) and not r.passes() and r.passes(0.01)
    with recording(seen := []):
        with pytest.raises(GateCheckFailed, match=r"better than the champion at 95%"):
            assert_beats_champion(y, c, c, accuracy_score)  # identical models: interval [0, 0], not better
        result = assert_beats_champion(y, c, h, accuracy_score, margin=0.01, confidence=0.9)
    assert result.check(0.01) == "no worse than the champion by more than 0.01 at 90%"
    assert [s.passed for s in seen] == [False, True] and all(isinstance(s, Comparison) for s in seen)
    assert seen[1].kind == "bootstrap" and seen[1].resamples == 1000 and seen[1].low is not None
    assert "interval" in seen[1].note and "1000 paired resamples" in seen[1].note


def test_lower_is_better_and_score_metrics() -> None:
    y, c, h = _labels(n=2000)
    rng = np.random.default_rng(3)
    sc, sh = c * 0.6 + rng.random(2000) * 0.4, h * 0.6 + rng.random(2000) * 0.4
    auc = paired_bootstrap(y, c, h, lambda t, _p, s: roc_auc_score(t, s), candidate_score=sc, champion_score=sh, resamples=200)
    assert auc.candidate == pytest.approx(roc_auc_score(y, sc)) and auc.passes()
    err = paired_bootstrap(y, c, h, lambda t, p: float(np.mean(t != p)), higher_is_better=False, resamples=200)
    assert err.delta < 0 and err.passes()


@pytest.mark.parametrize("confidence", [0, 1, 1.5, -0.1, True, "0.95"])
def test_confidence_outside_zero_one_is_an_error(confidence: Any) -> None:
    y, c, h = _labels(n=100)
    with pytest.raises(BootstrapError, match="confidence must be a number strictly between 0 and 1"):
        paired_bootstrap(y, c, h, "accuracy", confidence=confidence)


def test_bad_input_is_an_error_naming_the_fix() -> None:
    y, c, h = _labels(n=100)
    with pytest.raises(BootstrapError, match=r"differ in length \(y_true 100, candidate 100, champion 99\).*candidate's very test rows"):
        paired_bootstrap(y, c, h[:99], "accuracy")
    with pytest.raises(BootstrapError, match="zero test rows"):
        paired_bootstrap(y[:0], c[:0], h[:0], accuracy_score)

    def broken(t: Any, p: Any) -> float:
        raise ValueError("labels mismatch")

    with pytest.raises(BootstrapError, match=r"the metric broken raised ValueError: labels mismatch"):
        paired_bootstrap(y, c, h, broken)
    with pytest.raises(BootstrapError, match="unknown metric 'auc'"):
        paired_bootstrap(y, c, h, "auc")
    with pytest.raises(BootstrapError, match="both candidate_score= and champion_score="):
        paired_bootstrap(y, c, h, accuracy_score, candidate_score=c)
    with pytest.raises(BootstrapError, match="margin must be a number >= 0"):
        assert_beats_champion(y, c, h, "accuracy", margin=-0.1)
    with pytest.raises(BootstrapError, match="binary metric"):
        paired_bootstrap(np.array([0, 1, 2]), np.array([0, 1, 2]), np.array([0, 1, 1]), f1_score)
    assert not issubclass(BootstrapError, AssertionError)  # an ERROR, never a gate FAIL that alerts


def test_a_champion_that_cannot_be_loaded_names_the_version_and_the_fix(tmp_path: Path) -> None:
    reg = LocalRegistry(tmp_path)
    reg.promote("m", {"w": 1}, metrics={"acc": 0.8})
    version = reg.default("m")
    assert version is not None
    champion = Champion(model_name="m", version=version.version, metrics={}, promoted_at="", location=str(tmp_path))
    assert champion.load_model() == {"w": 1}
    (version.path / "model.pkl").write_bytes(b"not a pickle of this library version")
    with pytest.raises(ChampionError, match=r"champion m v0001 cannot be loaded.*install that version"):
        champion.load_model()


CONFTEST = '''
import numpy as np
import pytest

@pytest.fixture(scope="session")
def data():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 5000)
    return {"y": y, "noise": rng.random(5000)}

@pytest.fixture(scope="session")
def model(data, snowpipe_config):
    return {"accuracy": snowpipe_config["accuracy"], "seed": snowpipe_config["seed"]}

@pytest.fixture(scope="session")
def metrics(model, data):
    return {"acc": model["accuracy"]}
'''

GATE = '''
import numpy as np
import pytest
import pytest_snowpipe as sp
from sklearn.metrics import accuracy_score

def predict(model, data):  # a model right on a random `accuracy` share of the rows
    y = data["y"]
    return np.where(np.random.default_rng(model["seed"]).random(len(y)) < model["accuracy"], y, 1 - y)

@pytest.mark.snowpipe_gate(on_pass="promote", on_fail="alert", model_name="m")
def test_gate(model, data, snowpipe_champion, snowpipe_config):
    if snowpipe_champion is None:
        return
    champion_pred = predict(snowpipe_champion.load_model(), data)
    sp.assert_beats_champion(data["y"], predict(model, data), champion_pred, accuracy_score,
                             margin=snowpipe_config["margin"], champion=snowpipe_champion)
'''


def test_gate_with_bootstrap_gives_the_same_verdict_on_reruns_and_reports_the_interval(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nsnowpipe_config =\n    accuracy = 0.8\n    seed = 1\n    margin = 0.0\n")
    pytester.makeconftest(textwrap.dedent(CONFTEST))
    pytester.makepyfile(test_gate=textwrap.dedent(GATE))
    assert pytester.runpytest_subprocess("--snowpipe-no-cache").ret == 0  # first run: v0001
    args = ["--snowpipe-no-cache", "--snowpipe-config", "accuracy=0.801", "--snowpipe-config", "seed=2", "--snowpipe-report=rep", "--junitxml=rep/junit.xml"]
    first, second = pytester.runpytest_subprocess(*args), pytester.runpytest_subprocess(*args)
    for result in (first, second):  # another model of about the same accuracy: not better, on every rerun
        assert result.ret == 1
        result.stdout.fnmatch_lines([
            "gate test_gate: FAIL*-> alert*",
            "  bootstrap accuracy_score: candidate 0.7* vs champion 0.80*, delta -0.0*, 95% interval [[]-0.0*, +0.0*[]] "
            "over 1000 paired resamples of 5000 rows (seed 0): better than the champion at 95% NOT shown",
        ])
    lines = [[ln for ln in r.outlines if ln.startswith("  bootstrap")] for r in (first, second)]
    assert lines[0] == lines[1]
    report = json.loads((pytester.path / "rep" / "report.json").read_text())
    (comparison,) = report["gates"][0]["comparisons"]
    assert comparison["kind"] == "bootstrap" and comparison["resamples"] == 1000 and comparison["confidence"] == 0.95
    assert comparison["low"] < 0 < comparison["high"] and not comparison["passed"]
    md = (pytester.path / "rep" / "report.md").read_text()
    assert "95% interval [" in md and "1000 paired resamples" in md
    junit = (pytester.path / "rep" / "junit.xml").read_text()
    assert 'name="snowpipe.check.accuracy_score.bootstrap"' in junit and "1000 resamples" in junit
    margin = pytester.runpytest_subprocess("--snowpipe-no-cache", "--snowpipe-config", "accuracy=0.801",
                                           "--snowpipe-config", "seed=2", "--snowpipe-config", "margin=0.03")
    assert margin.ret == 0
    margin.stdout.fnmatch_lines(["*no worse than the champion by more than 0.03 at 95% holds"])


def test_gate_whose_comparison_cannot_be_computed_errors_and_takes_no_action(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nsnowpipe_config =\n    accuracy = 0.8\n    seed = 1\n    margin = 0.0\n")
    pytester.makeconftest(textwrap.dedent(CONFTEST))
    pytester.makepyfile(test_gate=textwrap.dedent(GATE.replace("accuracy_score,\n", "lambda t, p: 1 / 0,\n")))
    assert pytester.runpytest_subprocess("--snowpipe-no-cache").ret == 0
    result = pytester.runpytest_subprocess("--snowpipe-no-cache", "--snowpipe-config", "accuracy=0.9",
                                           "--snowpipe-config", "seed=2")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*BootstrapError: the metric <lambda> raised ZeroDivisionError*", "gate test_gate: ERROR*-> no action*"])
    assert LocalRegistry(pytester.path / ".snowpipe" / "registry").versions("m") == ["v0001"]
