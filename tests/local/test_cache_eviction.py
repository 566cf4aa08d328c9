"""``StageCache.load`` when another process evicts the entry while this one reads it: a plain miss,
not a damaged entry (issue 27). The race is made certain by patching the lookup, not by timing."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pytest_snowpipe.local.cache_store import CorruptEntry, StageCache


def _no_session() -> None:
    raise AssertionError("a pandas entry needs no session")


@pytest.fixture
def store(tmp_path: Path) -> StageCache:
    store = StageCache(tmp_path / "cache", max_bytes=10**9)
    store.put("raw", "k1", pd.DataFrame({"x": [1, 2, 3]}))
    return store


def test_evicted_before_the_manifest_is_read_is_a_miss(store: StageCache, monkeypatch: pytest.MonkeyPatch) -> None:
    lookup = store.lookup

    def evicted_first(stage: str, key: str):  # another process's eviction lands between exists() and the read
        store.discard(stage, key)
        return lookup(stage, key)

    monkeypatch.setattr(store, "lookup", evicted_first)
    assert store.load("raw", "k1", _no_session) is None


def test_evicted_after_the_manifest_while_reading_the_files_is_a_miss(store: StageCache, monkeypatch: pytest.MonkeyPatch) -> None:
    lookup = store.lookup

    def evicted_after(stage: str, key: str):  # the manifest was read, then the folder went
        entry = lookup(stage, key)
        store.discard(stage, key)
        return entry

    monkeypatch.setattr(store, "lookup", evicted_after)
    assert store.load("raw", "k1", _no_session) is None


def test_a_damaged_entry_that_is_still_there_is_not_a_miss(store: StageCache) -> None:
    (store.entry_path("raw", "k1") / "manifest.json").write_text("{not json")
    with pytest.raises(CorruptEntry, match="missing or unreadable manifest"):
        store.load("raw", "k1", _no_session)
