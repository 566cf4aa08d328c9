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

from collections.abc import Iterator, MutableMapping
from typing import Any

__all__ = ["RESULT_BYTES", "BoundedResults"]

RESULT_BYTES = 64 << 20  # thousands of small results (DESCRIBE, SHOW, counts) fit; a large read is kept until the next


def _nbytes(entry: Any) -> int:
    table = entry[0] if isinstance(entry, tuple) and entry else None
    return int(getattr(table, "nbytes", 0) or 0)


class BoundedResults(MutableMapping[str, Any]):
    """fakesnow's ``results_cache`` (sfqid -> (arrow table, rowcount, sql, params, expr); fakesnow
    only sets and gets) that forgets the oldest results beyond ``budget`` bytes of Arrow data.

    Every statement stores its result here: a store costs O(1) plus what it evicts."""

    def __init__(self, budget: int = RESULT_BYTES) -> None:
        self.budget = budget
        self._entries: dict[str, tuple[Any, int]] = {}  # oldest first: (result, its Arrow bytes)
        self.nbytes = 0

    def __getitem__(self, key: str) -> Any:
        return self._entries[key][0]

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self._entries:
            del self[key]  # a result stored again is the newest
        size = _nbytes(value)
        self._entries[key] = (value, size)
        self.nbytes += size
        while self.nbytes > self.budget:
            oldest = next(iter(self._entries))
            if oldest == key:
                break
            del self[oldest]

    def __delitem__(self, key: str) -> None:
        _, size = self._entries.pop(key)
        self.nbytes -= size

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
