"""Noise-aware champion comparison: a seeded, paired bootstrap of a metric's delta.

A point comparison with a fixed tolerance lets a 0.0003 wobble promote or block. Here the
champion's and the candidate's predictions on the SAME test rows are resampled together
(paired: a resample draws rows, each with both models' predictions), the metric delta is
computed on every resample, and the gate passes only if the delta's confidence interval
clears the margin. The resamples come from a seeded generator, so a rerun gives the same
interval and the same verdict.

Speed: the label metrics (accuracy, precision, recall, F1, given as their scikit-learn
functions or by name) are computed from confusion counts. The rows fall into few cells
(true label x candidate label x champion label), a resample is one multinomial draw of the
cell counts (numpy draws all resamples at once) and every metric is a few array operations
over the (resamples x cells) matrix: 1,000 resamples of 200,000 rows in milliseconds
(``benchmarks/bootstrap.py``). Any other function of ``(y_true, y_pred[, y_score])`` works too,
called once per resample on the resampled rows (as fast as the function is).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_snowpipe.errors import SnowpipeError

Metric = Callable[..., Any]


class BootstrapError(SnowpipeError):
    """The comparison cannot be computed (bad input, a failing metric, an unloadable champion).

    Not an AssertionError: a gate whose comparison could not be computed errors, takes no
    action, and never passes.
    """


@dataclass(frozen=True)
class BootstrapResult:
    """The paired bootstrap of ``metric(candidate) - metric(champion)`` on the same rows."""

    metric: str
    candidate: float
    champion: float
    delta: float
    low: float  # the delta's confidence interval (percentile)
    high: float
    confidence: float
    resamples: int
    seed: int
    rows: int
    higher_is_better: bool = True

    def passes(self, margin: float = 0.0) -> bool:
        """Better (``margin=0``), or no worse than the champion by more than ``margin``, at the confidence."""
        return self.low > -margin if self.higher_is_better else self.high < margin

    def check(self, margin: float = 0.0) -> str:
        """The claim the gate makes, e.g. "better than the champion at 95%"."""
        level = f"{self.confidence * 100:g}%"
        if margin == 0:
            return f"better than the champion at {level}"
        return f"no worse than the champion by more than {margin:g} at {level}"

    def interval(self) -> str:
        """``95% interval [-0.0003, +0.0027] over 1000 paired resamples (seed 0)``."""
        return (
            f"{self.confidence * 100:g}% interval [{self.low:+.4f}, {self.high:+.4f}] over "
            f"{self.resamples} paired resamples of {self.rows} rows (seed {self.seed})"
        )

    def describe(self, margin: float = 0.0) -> str:
        """One line: the delta, its interval, and the verdict."""
        verdict = "holds" if self.passes(margin) else "NOT shown"
        return (
            f"{self.metric}: candidate {self.candidate:.4f} vs champion {self.champion:.4f}, delta "
            f"{self.delta:+.4f}, {self.interval()}: {self.check(margin)} {verdict}"
        )


def paired_bootstrap(
    y_true: Any,
    candidate_pred: Any,
    champion_pred: Any,
    metric: Metric | str,
    *,
    candidate_score: Any = None,
    champion_score: Any = None,
    higher_is_better: bool = True,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Bootstrap the delta of ``metric`` between candidate and champion on the same test rows.

    ``metric`` is a function of ``(y_true, y_pred)`` or, with scores given, of ``(y_true,
    y_pred, y_score)``; or one of "accuracy", "precision", "recall", "f1". Raises
    BootstrapError naming the problem and the fix for input it cannot compare.
    """
    name = metric if isinstance(metric, str) else getattr(metric, "__name__", type(metric).__name__)
    _check_settings(resamples, confidence, seed)
    y, cand, champ = (_column(v, what) for v, what in (
        (y_true, "y_true"), (candidate_pred, "the candidate's predictions"), (champion_pred, "the champion's predictions")))
    scores = [None if s is None else _column(s, what) for s, what in (
        (candidate_score, "the candidate's scores"), (champion_score, "the champion's scores"))]
    if (scores[0] is None) != (scores[1] is None):
        raise BootstrapError("give both candidate_score= and champion_score= (the same rows scored by each model), or neither")
    lengths = {"y_true": len(y), "candidate": len(cand), "champion": len(champ)}
    lengths.update({k: len(s) for k, s in zip(("candidate_score", "champion_score"), scores, strict=True) if s is not None})
    if len(set(lengths.values())) != 1:
        raise BootstrapError(
            f"paired bootstrap of {name}: the test sets differ in length ({', '.join(f'{k} {v}' for k, v in lengths.items())}); "
            "score the champion on the candidate's very test rows (champion_model.predict(X_test))"
        )
    if len(y) == 0:
        raise BootstrapError(f"paired bootstrap of {name}: zero test rows; the split's test side is empty, nothing to compare")
    rng = np.random.default_rng(seed)
    fast = _LABEL_METRICS.get(metric if isinstance(metric, str) else _sklearn_name(metric))
    if isinstance(metric, str) and fast is None:
        raise BootstrapError(f"unknown metric {metric!r}: give one of {', '.join(sorted(str(k) for k in _LABEL_METRICS))}, or a function")
    if fast is not None and scores[0] is None:
        deltas, point_c, point_h = _by_cells(y, cand, champ, fast, resamples, rng, name)
    else:
        assert callable(metric)
        deltas, point_c, point_h = _by_rows(y, cand, champ, scores, metric, resamples, rng, name)
    tail = (1 - confidence) / 2
    low, high = np.quantile(deltas, [tail, 1 - tail]) if len(deltas) else (math.nan, math.nan)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise BootstrapError(f"paired bootstrap of {name}: the metric gave NaN or infinity; check it on a small sample of the rows")
    return BootstrapResult(
        metric=name, candidate=point_c, champion=point_h, delta=point_c - point_h, low=float(low), high=float(high),
        confidence=confidence, resamples=resamples, seed=seed, rows=len(y), higher_is_better=higher_is_better,
    )


def _check_settings(resamples: Any, confidence: Any, seed: Any) -> None:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise BootstrapError(f"confidence must be a number strictly between 0 and 1 (e.g. 0.95), got {confidence!r}")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise BootstrapError(f"resamples must be a positive integer (e.g. 1000), got {resamples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise BootstrapError(f"seed must be an integer (the same seed gives the same verdict), got {seed!r}")


def _column(values: Any, what: str) -> np.ndarray[Any, Any]:
    try:
        arr = np.asarray(values)
    except Exception as exc:
        raise BootstrapError(f"{what} cannot be read as an array ({type(exc).__name__}: {exc})") from None
    if arr.ndim != 1:
        arr = arr.reshape(len(arr), -1)
        if arr.shape[1] != 1:
            raise BootstrapError(f"{what} must be one value per row, got shape {np.shape(values)}")
        arr = arr[:, 0]
    return arr


def _call(metric: Metric, name: str, *args: Any) -> float:
    try:
        value = metric(*args)
        return float(value)
    except Exception as exc:
        raise BootstrapError(
            f"the metric {name} raised {type(exc).__name__}: {exc}; check it on the test rows "
            f"(it is called as {name}(y_true, y_pred{', y_score' if len(args) == 3 else ''}))"
        ) from None


def _by_rows(
    y: np.ndarray[Any, Any], cand: np.ndarray[Any, Any], champ: np.ndarray[Any, Any],
    scores: Sequence[np.ndarray[Any, Any] | None], metric: Metric, resamples: int, rng: np.random.Generator, name: str,
) -> tuple[np.ndarray[Any, Any], float, float]:
    """Any metric: called on each resample's rows (the resamples drawn all at once)."""
    sc, sh = scores
    def both(idx: Any) -> tuple[float, float]:
        if sc is None or sh is None:
            return _call(metric, name, y[idx], cand[idx]), _call(metric, name, y[idx], champ[idx])
        return _call(metric, name, y[idx], cand[idx], sc[idx]), _call(metric, name, y[idx], champ[idx], sh[idx])

    point_c, point_h = both(slice(None))
    n = len(y)
    deltas = np.empty(resamples)
    chunk = max(1, min(resamples, 2_000_000 // n))
    for start in range(0, resamples, chunk):
        rows = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        for i, idx in enumerate(rows):
            c, h = both(idx)
            deltas[start + i] = c - h
    return deltas, point_c, point_h


# -- label metrics from confusion counts ---------------------------------------------------------

Counts = Callable[[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any], Any], np.ndarray[Any, Any]]


def _ratio(num: np.ndarray[Any, Any], den: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """num / den with 0 where den is 0 (scikit-learn's zero_division default, without its warning)."""
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _accuracy(w: np.ndarray[Any, Any], t: np.ndarray[Any, Any], p: np.ndarray[Any, Any], pos: Any) -> np.ndarray[Any, Any]:
    return _ratio(w @ (t == p).astype(float), w.sum(axis=1).astype(float))


def _confusion(w: np.ndarray[Any, Any], t: np.ndarray[Any, Any], p: np.ndarray[Any, Any], pos: Any) -> tuple[Any, Any, Any]:
    tp = w @ ((t == pos) & (p == pos)).astype(float)
    fp = w @ ((t != pos) & (p == pos)).astype(float)
    fn = w @ ((t == pos) & (p != pos)).astype(float)
    return tp, fp, fn


def _precision(w: Any, t: Any, p: Any, pos: Any) -> np.ndarray[Any, Any]:
    tp, fp, _ = _confusion(w, t, p, pos)
    return _ratio(tp, tp + fp)


def _recall(w: Any, t: Any, p: Any, pos: Any) -> np.ndarray[Any, Any]:
    tp, _, fn = _confusion(w, t, p, pos)
    return _ratio(tp, tp + fn)


def _f1(w: Any, t: Any, p: Any, pos: Any) -> np.ndarray[Any, Any]:
    tp, fp, fn = _confusion(w, t, p, pos)
    return _ratio(2 * tp, 2 * tp + fp + fn)


_LABEL_METRICS: dict[str | None, tuple[Counts, bool]] = {  # name -> (counts metric, binary only)
    "accuracy": (_accuracy, False),
    "precision": (_precision, True),
    "recall": (_recall, True),
    "f1": (_f1, True),
}
_SKLEARN = {"accuracy_score": "accuracy", "precision_score": "precision", "recall_score": "recall", "f1_score": "f1"}


def _sklearn_name(metric: Metric) -> str | None:
    """The counts metric a scikit-learn function is, if it is one with its defaults (binary, pos_label=1)."""
    module = getattr(metric, "__module__", "") or ""
    if not module.startswith("sklearn.metrics"):
        return None
    return _SKLEARN.get(getattr(metric, "__name__", ""))


def _by_cells(
    y: np.ndarray[Any, Any], cand: np.ndarray[Any, Any], champ: np.ndarray[Any, Any], fast: tuple[Counts, bool],
    resamples: int, rng: np.random.Generator, name: str,
) -> tuple[np.ndarray[Any, Any], float, float]:
    """Label metrics: resample the counts of the (true, candidate, champion) cells, all resamples at once."""
    counts_metric, binary = fast
    try:
        labels, codes = np.unique(np.concatenate([y, cand, champ]), return_inverse=True)
    except TypeError as exc:
        raise BootstrapError(f"{name}: the labels cannot be compared ({exc}); give labels of one type") from None
    if binary and len(labels) > 2:
        raise BootstrapError(
            f"{name} here is the binary metric (positive label 1) and the rows hold {len(labels)} labels; "
            "pass your own function (e.g. functools.partial(f1_score, average='macro'))"
        )
    pos = 1 if 1 in labels.tolist() or len(labels) < 2 else labels[-1]
    n = len(y)
    t, c, h = codes[:n], codes[n : 2 * n], codes[2 * n :]
    k = len(labels)
    cell_ids, cell_counts = np.unique((t * k + c) * k + h, return_counts=True)
    ct, cc, ch = cell_ids // (k * k), (cell_ids // k) % k, cell_ids % k
    pos_code = int(np.searchsorted(labels, pos)) if len(labels) else 0
    draws = rng.multinomial(n, cell_counts / n, size=resamples).astype(float)
    whole = cell_counts[np.newaxis, :].astype(float)
    deltas = counts_metric(draws, ct, cc, pos_code) - counts_metric(draws, ct, ch, pos_code)
    point_c = float(counts_metric(whole, ct, cc, pos_code)[0])
    point_h = float(counts_metric(whole, ct, ch, pos_code)[0])
    return deltas, point_c, point_h

