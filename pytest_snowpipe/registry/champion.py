"""Champion vs. challenger: the model in production, and one-line gates against it.

A gate's question in CI is "is this model better than the one in production?". The
*champion* is the registry's current default version of the gate's model (read before the
gate's promote runs); ``assert_no_regression`` states a relative gate in one line and
``assert_metric`` an absolute one (or both at once). Every comparison is recorded while a gate
runs, so the report can show threshold, champion value, delta and result of each; outside a
recording (a compiled Task Graph task) the helpers only assert.

Failures are ``AssertionError``s (a gate FAIL, so ``on_fail`` runs) whose message shows both
values and the delta; a metric missing on either side is a :class:`MetricMissing` (also an
``AssertionError``) naming the metric and the keys that exist, never a ``KeyError``.
"""
from __future__ import annotations

import enum
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pytest_snowpipe.errors import RegistryError, SnowpipeError, hide_deliberate

__tracebackhide__ = hide_deliberate  # a failed check shows the gate's line, not this module (errors.py)

if TYPE_CHECKING:
    from pytest_snowpipe.registry.bootstrap import BootstrapResult


class ChampionError(SnowpipeError):
    """The champion cannot be read (registry unreachable, not a gate, no model name)."""


class MetricMissing(SnowpipeError, AssertionError):
    """A metric the gate compares is absent from the candidate's or the champion's metrics."""


class GateCheckFailed(SnowpipeError, AssertionError):
    """One or more comparisons of a gate failed; the message lists each with both values."""


@dataclass(frozen=True)
class Champion:
    """The model version currently in production (the registry's default)."""

    model_name: str
    version: str
    metrics: Mapping[str, Any] = field(hash=False)
    promoted_at: str
    location: str  # the registry folder, or snowflake://DB.SCHEMA

    def __str__(self) -> str:
        return f"{self.model_name} {self.version}"

    def metric(self, name: str) -> float:
        """The champion's value of ``name``; MetricMissing names the metrics it does have."""
        return _number(self.metrics, name, f"the metrics of the champion {self}")

    def load_model(self) -> Any:
        """The champion's model object, to score it on the candidate's test rows.

        A model that cannot be loaded (pickled with another library version, a damaged file) is
        a ChampionError naming the version and the fix: the comparison cannot be made.
        """
        if self.location.startswith("snowflake://"):
            raise ChampionError(
                f"the champion {self} lives in the Snowflake Model Registry; load it there with "
                f"Registry(session).get_model({self.model_name!r}).version({self.version!r}).load()"
            )
        from pytest_snowpipe.registry.local import LocalRegistry

        try:
            return LocalRegistry(self.location).get(self.model_name, self.version).load()
        except RegistryError as exc:
            raise ChampionError(
                f"the champion {self} cannot be loaded to score it on the test rows: {exc}. If it was "
                "pickled with another version of its library, install that version or promote a "
                "candidate once without the champion comparison"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view for the report."""
        return {
            "model_name": self.model_name,
            "version": self.version,
            "metrics": {str(k): _plain(v) for k, v in self.metrics.items()},
            "promoted_at": self.promoted_at,
            "location": self.location,
        }


@dataclass(frozen=True)
class Comparison:
    """One check of one metric: what was compared, against what, and whether it held."""

    metric: str
    kind: str  # "absolute" | "relative"
    check: str  # human form, e.g. ">= 0.7" or ">= champion - 0.01"
    value: float | None
    bound: float | None  # the number the value had to reach (None: nothing to compare against)
    passed: bool
    champion: float | None = None
    champion_version: str | None = None
    delta: float | None = None  # value - champion
    tolerance: float | None = None
    note: str = ""
    low: float | None = None  # kind "bootstrap": the delta's confidence interval, its level and size
    high: float | None = None
    confidence: float | None = None
    resamples: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view for the report and for pytest-xdist's worker output."""
        return asdict(self)

    def describe(self) -> str:
        """One line for a failure message: both values and the delta."""
        value = _fmt(self.value)
        if self.kind == "bootstrap":
            return self.note
        if self.kind == "absolute":
            return f"{self.metric} = {value} fails the absolute threshold {self.check}"
        return (
            f"{self.metric} regressed: candidate {value} vs champion {_fmt(self.champion)} "
            f"({self.champion_version}), delta {_fmt(self.delta, signed=True)} is worse than the "
            f"tolerance {_fmt(self.tolerance)}"
        )


# ------------------------------------------------------------------ recording

_active: list[list[Comparison]] = []  # a stack: the innermost recording gets the comparisons


@contextmanager
def recording(into: list[Comparison]) -> Iterator[list[Comparison]]:
    """Record every comparison the helpers make inside the block into ``into``.

    A plain module-level stack rather than a ContextVar: pytest runs one test at a time per
    process, and a helper called from a thread the test started must still be recorded.
    """
    _active.append(into)
    try:
        yield into
    finally:
        _active.remove(into)


def _record(comparison: Comparison) -> None:
    if _active:
        _active[-1].append(comparison)


# ------------------------------------------------------------------ the helpers


class _Unset(enum.Enum):
    TOKEN = 0


_UNSET: Literal[_Unset.TOKEN] = _Unset.TOKEN


def assert_metric(
    metrics: Mapping[str, Any],
    metric: str,
    ge: float | None = None,
    le: float | None = None,
    *,
    champion: Champion | Literal[_Unset.TOKEN] | None = _UNSET,
    tolerance: float = 0.01,
    higher_is_better: bool = True,
) -> float:
    """Assert ``metrics[metric]`` against absolute bounds and, if ``champion=`` is given, the champion.

    ``ge``/``le`` are absolute thresholds; ``champion=snowpipe_champion`` adds the relative check
    of :func:`assert_no_regression` in the same call. Every comparison is evaluated and
    recorded before any failure is raised, so the report shows all of them. Returns the value.
    """
    relative = champion is not _UNSET
    if ge is None and le is None and not relative:
        raise ValueError(f"assert_metric({metric!r}): give ge= and/or le=, or champion= for a relative check")
    value = _number(metrics, metric, "the candidate's metrics")
    results = []
    for op, bound in ((">=", ge), ("<=", le)):
        if bound is None:
            continue
        ok = (value >= bound) if op == ">=" else (value <= bound)
        results.append(
            Comparison(metric=metric, kind="absolute", check=f"{op} {bound:g}", value=value, bound=float(bound),
                       passed=ok and not math.isnan(value), note="value is NaN" if math.isnan(value) else "")
        )
    if relative:
        results.append(_relative(value, champion, metric, tolerance, higher_is_better))  # type: ignore[arg-type]
    for comparison in results:
        _record(comparison)
    failed = [c for c in results if not c.passed]
    if failed:
        raise GateCheckFailed("; ".join(c.describe() for c in failed))
    return value


def assert_no_regression(
    metrics: Mapping[str, Any],
    champion: Champion | None,
    metric: str,
    tolerance: float = 0.01,
    higher_is_better: bool = True,
) -> float:
    """Assert the candidate is not worse than the champion by more than ``tolerance`` (absolute units).

    With ``higher_is_better`` the candidate must reach ``champion - tolerance``, otherwise stay
    under ``champion + tolerance``. ``champion=None`` (the first run: nothing in production yet)
    passes and is recorded as "no champion yet". Returns the candidate's value.
    """
    value = _number(metrics, metric, "the candidate's metrics")
    comparison = _relative(value, champion, metric, tolerance, higher_is_better)
    _record(comparison)
    if not comparison.passed:
        raise GateCheckFailed(comparison.describe())
    return value


def assert_beats_champion(
    y_true: Any,
    candidate_pred: Any,
    champion_pred: Any,
    metric: Any,
    *,
    margin: float = 0.0,
    champion: Champion | None = None,
    candidate_score: Any = None,
    champion_score: Any = None,
    higher_is_better: bool = True,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Assert, by a seeded paired bootstrap on the same test rows, that the candidate is better than
    the champion (``margin=0``) or no worse by more than ``margin``, at ``confidence``.

    ``metric`` is any function of ``(y_true, y_pred[, y_score])`` (or "accuracy", "precision",
    "recall", "f1"); ``champion_pred`` is the champion model's prediction on the candidate's
    test rows (``snowpipe_champion.load_model().predict(X_test)``). The verdict, the delta's
    interval and the number of resamples are recorded for the terminal and the reports. Input
    the comparison cannot use raises BootstrapError: the gate errors and takes no action.
    """
    from pytest_snowpipe.registry.bootstrap import BootstrapError, paired_bootstrap

    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin >= 0:
        raise BootstrapError(f"margin must be a number >= 0 (0: better than the champion), got {margin!r}")
    result = paired_bootstrap(
        y_true, candidate_pred, champion_pred, metric, candidate_score=candidate_score, champion_score=champion_score,
        higher_is_better=higher_is_better, resamples=resamples, confidence=confidence, seed=seed,
    )
    comparison = Comparison(
        metric=result.metric, kind="bootstrap", check=result.check(margin), value=result.candidate,
        bound=-float(margin) if higher_is_better else float(margin), passed=result.passes(margin),
        champion=result.champion, champion_version=str(champion) if champion is not None else None,
        delta=result.delta, tolerance=float(margin), note=result.describe(margin),
        low=result.low, high=result.high, confidence=result.confidence, resamples=result.resamples,
    )
    _record(comparison)
    if not comparison.passed:
        raise GateCheckFailed(comparison.describe())
    return result


def _relative(
    value: float, champion: Champion | None, metric: str, tolerance: float, higher_is_better: bool
) -> Comparison:
    if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or tolerance < 0 or math.isnan(tolerance):
        raise ValueError(f"tolerance for {metric!r} must be a number >= 0, got {tolerance!r}")
    check = f"{'>=' if higher_is_better else '<='} champion {'-' if higher_is_better else '+'} {tolerance:g}"
    if champion is None:
        return Comparison(metric=metric, kind="relative", check=check, value=value, bound=None, passed=True,
                          tolerance=float(tolerance), note="no champion yet")
    if not callable(getattr(champion, "metric", None)):  # duck-typed: a re-imported module makes a new class
        raise TypeError(
            f"assert_no_regression({metric!r}): champion must be the snowpipe_champion fixture's value "
            f"(a Champion or None), got {type(champion).__name__}"
        )
    best = champion.metric(metric)
    delta = value - best
    bound = best - tolerance if higher_is_better else best + tolerance
    ok = (value >= bound) if higher_is_better else (value <= bound)
    return Comparison(
        metric=metric, kind="relative", check=check, value=value, bound=bound, passed=ok and not math.isnan(value),
        champion=best, champion_version=str(champion), delta=delta, tolerance=float(tolerance),
        note="value is NaN" if math.isnan(value) else "",
    )


def _number(metrics: Any, metric: str, whose: str) -> float:
    if not isinstance(metrics, Mapping):
        raise MetricMissing(
            f"{whose} are a {type(metrics).__name__}, not a mapping of metric names to numbers; "
            f"cannot read {metric!r}"
        )
    if metric not in metrics:
        have = ", ".join(sorted(str(k) for k in metrics)) or "none"
        raise MetricMissing(f"{whose} have no metric {metric!r} (metrics present: {have}); compare a metric both sides log")
    raw = metrics[metric]
    try:
        if isinstance(raw, (str, bytes, bool)):
            raise TypeError
        return float(raw)
    except (TypeError, ValueError):
        raise MetricMissing(f"{whose}: metric {metric!r} is {raw!r}, not a number") from None


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _plain(value: Any) -> Any:
    """numpy scalars and other number-likes as plain Python values."""
    if type(value) in (str, int, float, bool) or value is None:  # numpy.float64 is a float subclass: unwrap it
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    return str(value)


# ------------------------------------------------------------------ reading the champion


def read_local_champion(registry_root: str | Path, model_name: str) -> Champion | None:
    """The default version of ``model_name`` in the folder registry, or None if none was promoted.

    An unreachable registry (the path is a file, a metadata file unreadable or corrupt) is a
    ChampionError naming the path: guessing "no champion" there would let a worse model through.
    """
    from pytest_snowpipe.registry.local import LocalRegistry

    root = Path(registry_root)
    for path in (root, root / model_name):
        if path.exists() and not path.is_dir():
            raise ChampionError(
                f"the champion of {model_name!r} cannot be read: the model registry path {path} is a "
                "file, not a folder. Point the snowpipe_registry ini option at a registry folder "
                "(or move the file away)."
            )
    try:
        version = LocalRegistry(root).default(model_name)
    except RegistryError as exc:
        raise ChampionError(f"the champion of {model_name!r} cannot be read from the model registry {root}: {exc}") from None
    except OSError as exc:
        raise ChampionError(
            f"the champion of {model_name!r} cannot be read: the model registry {root} is unreachable "
            f"({exc.strerror or exc}); check the snowpipe_registry ini option and its permissions."
        ) from None
    if version is None:
        return None
    return Champion(
        model_name=model_name,
        version=version.version,
        metrics=dict(version.metrics),
        promoted_at=version.created_at,
        location=str(root),
    )


def read_snowflake_champion(session: Any, model_name: str) -> Champion | None:
    """The CHAMPION of ``model_name`` in the Snowflake Model Registry of the session's schema.

    Read through the one registry interface (:class:`~pytest_snowpipe.registry.snowflake.SnowflakeRegistry`):
    the version the CHAMPION alias names, else the default version; None before the first promote.
    Any other failure is a ChampionError naming the registry.
    """
    from pytest_snowpipe.registry.snowflake import SnowflakeRegistry

    try:
        registry = SnowflakeRegistry(session)
        location = registry.location
    except Exception as exc:
        raise ChampionError(
            f"the champion of {model_name!r} cannot be read: the Snowflake Model Registry of the "
            f"session's database and schema is unreachable ({type(exc).__name__}: {exc})"
        ) from None
    try:
        version = registry.default(model_name)
    except Exception as exc:
        raise ChampionError(
            f"the champion of {model_name!r} cannot be read from {location}: its champion version or "
            f"metrics are unavailable ({type(exc).__name__}: {exc})"
        ) from None
    if version is None:
        return None
    promoted_at = version.created_at or _created_on(registry.registry.get_model(model_name), version.version)
    return Champion(model_name=model_name, version=version.version, metrics=dict(version.metrics),
                    promoted_at=promoted_at, location=location)


def _created_on(model: Any, version: str) -> str:
    """When the version was logged (Snowflake keeps no "made default at"); "" if unknown."""
    try:
        rows = model.show_versions()
        match = rows[rows["name"].astype(str).str.upper() == version.upper()]
        return str(match["created_on"].iloc[0]) if len(match) else ""
    except Exception:
        return ""


def champion_in_task(session: Any, model_name: str | None, registry_path: str | None) -> Champion | None:
    """The champion for a compiled gate task: the folder registry on the embedded engine, else Snowflake's."""
    if not model_name:
        raise ChampionError(
            "snowpipe_champion: this gate names no model; add model_name=... to its snowpipe_gate marker"
        )
    from pytest_snowpipe.doubles.sql.embedded import is_embedded_session

    if is_embedded_session(session):
        return read_local_champion(registry_path or ".snowpipe/registry", model_name)
    return read_snowflake_champion(session, model_name)
