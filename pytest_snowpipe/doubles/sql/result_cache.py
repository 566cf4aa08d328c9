"""Statement results kept for RESULT_SCAN and later fetches, within a memory budget.

fakesnow keeps every statement's whole Arrow result, in one dict, for as long as the process
lives: ``RESULT_SCAN``, the connector's ``get_results_from_sfqid`` (Snowpark's async jobs) and the
query-status route read it. Snowflake keeps results for 24 hours on its own side; the embedded
engine keeps them in the pytest process, beside the pipeline's frames: each 800k-row read of a
remote stage's input stayed there until the run ended (124 MB each, before they were narrowed).

`BoundedResults` keeps them newest first within `RESULT_BYTES`: the newest result is always kept,
older ones go when the newer ones need the room, and a statement whose result is gone is
"Statement <id> not found" (errno 709), as one whose result expired is on Snowflake.
"""
from __future__ import annotations

from typing import Any

__all__ = ["RESULT_BYTES", "BoundedResults"]

RESULT_BYTES = 64 << 20  # thousands of small results (DESCRIBE, SHOW, counts) fit; a large read is kept until the next


def _nbytes(entry: Any) -> int:
    table = entry[0] if isinstance(entry, tuple) and entry else None
    return int(getattr(table, "nbytes", 0) or 0)


class BoundedResults(dict[str, Any]):
    """fakesnow's ``results_cache`` (a dict of sfqid -> (arrow table, rowcount, sql, params, expr))
    that forgets the oldest results beyond ``budget`` bytes of Arrow data."""

    def __init__(self, budget: int = RESULT_BYTES) -> None:
        super().__init__()
        self.budget = budget
        self._sizes: dict[str, int] = {}  # in insertion order: oldest first
        self.nbytes = 0

    def __setitem__(self, key: str, value: Any) -> None:
        self._forget(key)
        super().__setitem__(key, value)
        size = _nbytes(value)
        self._sizes[key] = size
        self.nbytes += size
        for oldest in list(self._sizes):
            if self.nbytes <= self.budget or oldest == key:
                break
            self._forget(oldest)
            super().pop(oldest, None)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._forget(key)

    def pop(self, key: str, *default: Any) -> Any:
        self._forget(key)
        return super().pop(key, *default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def popitem(self) -> tuple[str, Any]:
        key, value = super().popitem()
        self._forget(key)
        return key, value

    def clear(self) -> None:
        super().clear()
        self._sizes.clear()
        self.nbytes = 0

    def _forget(self, key: str) -> None:
        self.nbytes -= self._sizes.pop(key, 0)
