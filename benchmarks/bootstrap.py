"""The paired bootstrap of a champion comparison: 1,000 resamples of 200,000 rows.

Timed (best of 3): ``paired_bootstrap`` of accuracy and of binary F1 (scikit-learn's functions,
computed from resampled confusion counts), 1,000 resamples of 200,000 test rows. Baseline, in
the same run: the plain way, one scikit-learn call per model per resample on the resampled
rows; measured on 20 resamples and scaled to 1,000 (the whole loop takes minutes). Also the
generic path (a metric function the counts path does not know, called per resample), on 20
resamples. Target: the label metrics well under a second.

Run: python benchmarks/bootstrap.py
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from pytest_snowpipe.registry.bootstrap import paired_bootstrap

ROWS, RESAMPLES, SAMPLED = 200_000, 1_000, 20


def best(fn: object, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, ROWS)
    cand = np.where(rng.random(ROWS) < 0.82, y, 1 - y)
    champ = np.where(rng.random(ROWS) < 0.81, y, 1 - y)
    for metric in (accuracy_score, f1_score):
        measure(metric, y, cand, champ)


def measure(metric: Any, y: Any, cand: Any, champ: Any) -> None:
    """Time one metric's bootstrap, the plain loop and the generic path; print one line."""
    ours = best(lambda: paired_bootstrap(y, cand, champ, metric, resamples=RESAMPLES))

    def plain() -> None:
        r = np.random.default_rng(1)
        for _ in range(SAMPLED):
            idx = r.integers(0, ROWS, ROWS)
            metric(y[idx], cand[idx]) - metric(y[idx], champ[idx])

    baseline = best(plain, repeat=1) * RESAMPLES / SAMPLED
    generic = best(lambda: paired_bootstrap(y, cand, champ, lambda t, p: metric(t, p), resamples=SAMPLED), repeat=1)
    result = paired_bootstrap(y, cand, champ, metric, resamples=RESAMPLES)
    print(
        f"{metric.__name__:15s} {RESAMPLES} resamples x {ROWS} rows: {ours:.3f} s; plain per-resample "
        f"scikit-learn loop {baseline:.1f} s (from {SAMPLED}); ratio {baseline / ours:.0f}x faster; "
        f"generic path {generic * RESAMPLES / SAMPLED:.1f} s per 1000 (from {SAMPLED}); "
        f"{result.interval()}"
    )


if __name__ == "__main__":
    main()
