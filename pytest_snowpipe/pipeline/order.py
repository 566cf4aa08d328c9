"""Decorator order: ``@pytest.fixture`` goes on top of the plugin's stage decorators.

Python applies decorators bottom-up. ``@sp.remote`` (or ``sp.expect``, ``sp.source``) above
``@pytest.fixture`` receives pytest's fixture object instead of the function: pytest then no
longer sees a fixture (``sp.remote``) or the marks land where no stage reads them (``sp.expect``,
``sp.source``: a contract that silently never runs). Each decorator refuses that at once,
naming the order and showing the right one.
"""
from __future__ import annotations

from typing import Any

from pytest_snowpipe.errors import SnowpipeError


class DecoratorOrderError(SnowpipeError, TypeError):
    """A stage decorator sits above ``@pytest.fixture``."""


def is_pytest_fixture(obj: Any) -> bool:
    """pytest's fixture object (``FixtureFunctionDefinition``, pytest 8.4+; the marked function before)."""
    return getattr(obj, "_fixture_function_marker", None) is not None or hasattr(obj, "_pytestfixturefunction")


def refuse_fixture(obj: Any, decorator: str) -> None:
    """Raise DecoratorOrderError when ``decorator`` (e.g. ``sp.remote(...)``) is applied to a fixture."""
    __tracebackhide__ = True  # the error points at the user's decorator line
    if not is_pytest_fixture(obj):
        return
    name = getattr(obj, "name", None) or getattr(obj, "__name__", "the stage")
    raise DecoratorOrderError(
        f"@{decorator} is above @pytest.fixture on {name!r}: Python applies decorators from the bottom up, "
        f"so @{decorator} received pytest's fixture instead of the stage function. Put @pytest.fixture on top:\n\n"
        f'    @pytest.fixture(scope="session")\n'
        f"    @{decorator}\n"
        f"    def {name}(...): ..."
    )
