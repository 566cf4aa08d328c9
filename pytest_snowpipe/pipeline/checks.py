"""Blocking data checks: contracts attached to a stage's output.

``@sp.expect(contract)`` (or ``@sp.expect(contract, key="train")`` for one entry of a dict
output) declares what a stage must produce; ``monitor="1h"`` also deploys the contract as Snowflake
Data Metric Functions that keep watching the output between runs (``contracts/monitors.py``).
The check runs right after the stage, in a
local run and in the compiled graph alike; a violation fails the stage, so the stages that
consume its output never run on bad data (a blocking check, as Dagster's asset checks).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pytest_snowpipe.errors import SnowpipeError, hide_deliberate
from pytest_snowpipe.pipeline.frames import is_pandas_frame, is_snowpark_frame
from pytest_snowpipe.pipeline.order import refuse_fixture

F = TypeVar("F", bound=Callable[..., Any])
__tracebackhide__ = hide_deliberate  # a violation shows its table, not this module (errors.py)
CONTRACTS_ATTR = "__snowpipe_contracts__"


class ContractTargetError(SnowpipeError, TypeError):
    """A stage under ``sp.expect`` returned something a contract cannot check (not a DataFrame)."""


def _contract_name(contract: Any) -> str:
    columns = getattr(contract, "columns", None)
    if isinstance(columns, dict):
        return f"Contract({', '.join(columns)})" if columns else "Contract()"
    return type(contract).__name__


@dataclass(frozen=True)
class Expectation:
    """One contract on a stage's output (or on ``output[key]``)."""

    contract: Any
    key: str | None = None
    monitor: str | None = None  # a DATA_METRIC_SCHEDULE value (contracts.monitors.parse_monitor_schedule)

    @property
    def label(self) -> str:
        """How the check is named in summaries."""
        return f"[{self.key!r}]" if self.key is not None else "output"


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one expectation: the contract's verdict and queries used."""

    stage: str
    expectation: Expectation
    result: Any  # ContractResult


def expect(contract: Any, *, key: str | None = None, monitor: str | None = None) -> Callable[[F], F]:
    """Attach ``contract`` to a stage; put it under ``@pytest.fixture``.

    ``monitor`` ('5m' ... '1d', 'TRIGGER_ON_CHANGES' or 'USING CRON ...'): at deploy the contract also becomes
    Data Metric Functions on the stage's watched table, evaluated on that schedule.
    """
    if not (callable(getattr(contract, "validate", None)) and callable(getattr(contract, "strategy", None))):
        raise TypeError(f"sp.expect takes a sp.Contract, got {type(contract).__name__}; build one with sp.Contract(...)")
    if monitor is not None:
        from pytest_snowpipe.contracts.monitors import parse_monitor_schedule

        monitor = parse_monitor_schedule(monitor)

    def decorate(func: F) -> F:
        refuse_fixture(func, "sp.expect(...)")
        found = list(getattr(func, CONTRACTS_ATTR, ()))
        found.append(Expectation(contract, key, monitor))
        setattr(func, CONTRACTS_ATTR, tuple(found))
        return func

    return decorate


def expectations_of(func: Callable[..., Any]) -> tuple[Expectation, ...]:
    """Every expectation on a stage function (also through ``functools.wraps`` layers)."""
    out: list[Expectation] = []
    seen: set[int] = set()
    current: Any = func
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for exp in getattr(current, CONTRACTS_ATTR, ()):
            if exp not in out:
                out.append(exp)
        current = getattr(current, "__wrapped__", None)
    return tuple(out)


def check_output(stage: str, func: Callable[..., Any], value: Any) -> list[CheckOutcome]:
    """Validate a stage's output against its contracts; raise ContractViolation on the first broken one.

    Every rule of that contract is reported (not just the first); the message names the stage.
    """
    from pytest_snowpipe.contracts import ContractViolation

    outcomes = []
    for exp in expectations_of(func):
        target = value
        if exp.key is not None:
            if not isinstance(value, dict) or exp.key not in value:
                keys = ", ".join(map(repr, value)) if isinstance(value, dict) else "no keys"
                raise KeyError(
                    f"stage {stage!r}: sp.expect(..., key={exp.key!r}) but the stage returned "
                    f"{type(value).__name__} ({keys}); fix the key or the stage"
                )
            target = value[exp.key]
        if not (is_pandas_frame(target) or is_snowpark_frame(target)):
            raise ContractTargetError(
                f"stage {stage!r} {exp.label}: sp.expect({_contract_name(exp.contract)}) checks a DataFrame, but the "
                f"stage returned {type(target).__module__}.{type(target).__qualname__}; return a pandas or "
                "Snowpark DataFrame" + ("" if exp.key is not None else ", or check one entry of a dict with key=...")
            )
        if exp.monitor is not None and not is_snowpark_frame(target):
            raise ContractTargetError(
                f"stage {stage!r} {exp.label}: sp.expect(..., monitor={exp.monitor!r}) watches a Snowflake table, but "
                "the stage returned a pandas DataFrame; return a Snowpark DataFrame (session.create_dataframe(df)) "
                "or drop monitor="
            )
        result = exp.contract.validate(target, report_only=True)
        outcomes.append(CheckOutcome(stage, exp, result))
        if not result.ok:
            exc = ContractViolation(result)
            exc.args = (f"stage {stage!r} {exp.label} violates its contract; its consumers do not run:\n{result}",)
            raise exc
    return outcomes
