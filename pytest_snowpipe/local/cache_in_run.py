"""The stage cache in a pytest run: cache keys at run start, loads and stores at stage setup.

The split of keys:

* ``Stage.key`` (graph, built at collection): the stage's code and the project-local code it
  calls, its remote options and contracts, the config values it reads, its source
  declaration, and its predecessors' keys. Cheap and deterministic: the compiler and the
  reports use it too.
* the cache key (here, at run start): ``Stage.key`` + the fingerprint of the data its
  ``sp.source`` declares, taken now (files hashed, a table's metadata queried) + the cache
  keys of its predecessors, so new source data recomputes the stage and its descendants.

At run start every stage whose entry is in the cache is a *hit*: it will be loaded, never
run, and nothing it depends on is needed, so its fixture dependencies are cut from every
test's fixture closure (the whole upstream chain of a cached stage, ``snowpipe_session``
included, is not set up unless something else needs it). A stage's setup then takes its
key's file lock, loads a hit (checksums verified; a damaged entry is warned about,
discarded and recomputed) or computes and, once its contract checks passed, stores the
output and releases the lock: two processes (or xdist workers) compute each stage once,
the other one waits and loads.

Stage outputs of hits that no test set up are loaded on first use by a gate's action
(``ActionContext.stages``), through pytest's own fixture machinery. The data fingerprint a
promote records for a source stage is stored in the entry's manifest when the output is
stored (``frames.fingerprint``, the same function a computed output is hashed with), so an
unchanged re-run's promote check loads neither that output nor the session it needs.
"""
from __future__ import annotations

import hashlib
import json
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_snowpipe.actions.table import needs
from pytest_snowpipe.errors import SnowpipeUsageError
from pytest_snowpipe.local.cache_store import (
    MANIFEST,
    CorruptEntry,
    Entry,
    SnowpipeCacheWarning,
    StageCache,
    Uncacheable,
)
from pytest_snowpipe.pipeline.frames import fingerprint

if TYPE_CHECKING:
    from pytest_snowpipe.local.run import PipelineRun
    from pytest_snowpipe.pipeline.graph import PipelineGraph
    from pytest_snowpipe.settings import Settings

CACHE_NAME = "snowpipe"  # the folder under pytest's cache dir: .pytest_cache/d/snowpipe
RUN_STORE_KEY = "snowpipe_run_store"  # xdist workerinput key: the run-only store under --snowpipe-no-cache
SOURCES_MEMO = "sources.json"


def cache_root(cache: Any, settings: Settings) -> tuple[Path | None, Callable[[], Path] | None]:
    """Where the cache lives (None: nowhere), and how to create it on first store.

    ``snowpipe_cache_dir`` if set; else ``<pytest cache dir>/d/snowpipe``, created through
    ``config.cache.mkdir`` (which also writes the cache dir's README and .gitignore) only
    when the first output is stored; None when pytest's cacheprovider is disabled.
    """
    if settings.cache_dir is not None:
        return settings.cache_dir, None
    if cache is None:
        return None, None
    return _pytest_cache_dir(cache) / "d" / CACHE_NAME, lambda: Path(cache.mkdir(CACHE_NAME))


def clear_at_start(cache: Any, settings: Settings, is_worker: bool) -> None:
    """``--snowpipe-cache-clear``: remove the cache before anything runs (never in an xdist worker:
    the controller cleared it before the workers started)."""
    if not settings.cache_clear or is_worker:
        return
    root, _ = cache_root(cache, settings)
    if root is not None:
        StageCache(root, settings.cache_max_bytes).clear()


def run_store_for_workers(settings: Settings) -> Path | None:
    """Under xdist with ``--snowpipe-no-cache``: a fresh folder the workers share for this run only."""
    if not settings.no_cache:
        return None
    import tempfile
    import uuid

    from pytest_snowpipe.engines.tempdirs import owned_prefix

    return Path(tempfile.gettempdir()) / f"{owned_prefix('pytest-snowpipe-run-')}{uuid.uuid4().hex}"  # swept once we die


def _warn(message: str) -> None:
    warnings.warn(SnowpipeCacheWarning(f"pytest-snowpipe stage cache: {message}"), stacklevel=3)


class StageOutputs(dict):  # type: ignore[type-arg]
    """``PipelineRun.outputs``: a dict that loads a cached stage nobody set up on first access."""

    def __init__(self, memo: Memo, initial: dict[str, Any]) -> None:
        super().__init__(initial)
        self._memo = memo

    def __missing__(self, name: str) -> Any:
        return self._memo.resolve(name)

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or self._memo.can_resolve(name)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default


class Memo:
    """The cache's state for one run (see the module docstring)."""

    def __init__(
        self,
        graph: PipelineGraph,
        run: PipelineRun,
        store: StageCache,
        keys: dict[str, str],
        persistent: bool,
    ) -> None:
        self.graph = graph
        self.run = run
        self.store = store
        self.keys = keys
        self.persistent = persistent
        self.hits: dict[str, Entry] = {}
        self.pruned: dict[str, tuple[Any, tuple[str, ...]]] = {}  # name -> (fixturedef, argnames)
        self.held: dict[str, Any] = {}  # name -> acquired lock, while the stage computes
        self.item: Any = None  # the gate being decided, for lazy loads
        self.size = 0
        # content fingerprints (frames.fingerprint) of the outputs a promote records: taken when
        # the output is stored, kept in its manifest, read back for a hit without loading it
        self.fingerprints: dict[str, str] = {}
        self.fingerprinted = promoted_sources(graph)
        # warnings found at run start, where pytest does not record warnings: given at the first setup
        self.pending: list[str] = []

    def _flush(self) -> None:
        while self.pending:
            _warn(self.pending.pop(0))

    # -- run start -------------------------------------------------------------------------
    def find_hits(self, items: Sequence[pytest.Item]) -> None:
        """Mark stored stages as hits and cut their dependencies out of every fixture closure."""
        defs = _stage_fixturedefs(items, self.keys)
        for stage in self.graph.stages:
            entry = self.store.lookup(stage.name, self.keys[stage.name])
            if entry is None and self.store.exists(stage.name, self.keys[stage.name]):
                path = self.store.entry_path(stage.name, self.keys[stage.name])
                self.store.discard(stage.name, self.keys[stage.name])
                self.pending.append(
                    f"stage {stage.name!r}: entry {path / MANIFEST} is damaged (missing or unreadable manifest); "
                    "discarded, recomputing it when needed"
                )
            if entry is None or stage.name not in defs:
                continue
            self.hits[stage.name] = entry
            rec = self.run.stages[stage.name]
            rec.status, rec.source = "ok", "cached"
            rec.kind, rec.shape = entry.description
            rec.compute_s = entry.compute_s
            self.run.checks.extend((stage.name, t, f"{v} [cached]") for t, v in entry.checks)
        for name, entry in self.hits.items():
            _touch(entry.path)  # used by this run: the last the LRU evicts while the run stores
            fixturedef = defs[name]
            self.pruned[name] = (fixturedef, tuple(fixturedef.argnames))
            fixturedef.argnames = ()
        if self.pruned:
            _prune_closures(items)
        self.size = self.store.size()
        self._note()

    # -- stage setup -----------------------------------------------------------------------
    def setup(self, fixturedef: Any, request: Any) -> Any:
        """Return the stored output (a hit), or None after taking the key's lock (compute it)."""
        self._flush()
        name = fixturedef.argname
        key = self.keys.get(name)
        if key is None:
            return None
        rec = self.run.stages[name]
        try:
            lock = self.store.lock(name, key)
            lock.acquire()
        except OSError as exc:
            _warn(f"cannot lock {self.store.root} ({exc}); stage {name!r} is computed without the cache")
            return self._compute(name, None)
        try:
            loaded = self._load(name, key, request)
        except BaseException:  # e.g. the warning turned into an error (-W error)
            lock.release()
            raise
        if loaded is None or loaded[1] is None:  # None cannot be a hook's result: run it
            return self._compute(name, lock)
        lock.release()
        entry, value = loaded
        if name not in self.hits:  # stored meanwhile by another process or worker
            self.hits[name] = entry
            self.run.checks.extend((name, t, f"{v} [cached]") for t, v in entry.checks)
        rec.source = "cached"
        rec.compute_s = entry.compute_s
        _set_fixture_result(fixturedef, request, value)
        return value

    def _load(self, name: str, key: str, request: Any) -> tuple[Entry, Any] | None:
        """The stored entry and value; None (after a warning, for a damaged entry) when there is none."""
        try:
            return self.store.load(name, key, lambda: request.getfixturevalue("snowpipe_session"))
        except CorruptEntry as exc:
            self.store.discard(name, key)
            _warn(f"stage {name!r}: entry {exc.path} is damaged ({exc.reason}); recomputing it")
        except OSError as exc:
            _warn(f"stage {name!r}: cannot read its entry ({exc}); recomputing it")
        return None

    def _compute(self, name: str, lock: Any) -> None:
        self.run.stages[name].source = "computed"
        self.run.stages[name].compute_s = None
        if self.hits.pop(name, None) is not None:  # a hit that could not be loaded: its checks run again
            self.run.checks[:] = [c for c in self.run.checks if not (c[0] == name and c[2].endswith(" [cached]"))]
        if name in self.pruned:  # its inputs are needed after all: pytest requests them now
            fixturedef, argnames = self.pruned.pop(name)
            fixturedef.argnames = argnames
        if lock is not None:
            self.held[name] = lock
        return None

    def stored(self, name: str, value: Any) -> None:
        """The stage computed and passed its checks: store its output, release its lock."""
        lock = self.held.pop(name, None)
        if lock is None:
            return
        if value is None:  # a stage run for its side effects: it runs every time
            lock.release()
            return
        try:
            checks = [[t, v] for s, t, v in self.run.checks if s == name]
            rec = self.run.stages[name]
            extra: dict[str, Any] = {"checks": checks, "compute_s": round(rec.wall_s, 3)}
            found = self._fingerprint_output(name, value) if name in self.fingerprinted else None
            if found is not None:
                extra["fingerprint"] = found
            self.store.put(name, self.keys[name], value, extra)
            self.size = self.store.size()
            self._note()
        except Uncacheable as exc:
            if not exc.quiet:
                _warn(f"stage {name!r}: its output is not cached: {exc}; it is recomputed on every run")
        except OSError as exc:
            _warn(f"stage {name!r}: cannot write {self.store.root} ({exc}); its output is not cached")
        finally:
            lock.release()

    def abandon(self, name: str) -> None:
        """The stage failed (or its checks did): store nothing, release its lock."""
        lock = self.held.pop(name, None)
        if lock is not None:
            lock.release()

    def _fingerprint_output(self, name: str, value: Any) -> str | None:
        try:
            found = fingerprint(value)
        except Exception:  # never stops a store: a promote hashes the output again (and says why not)
            return None
        self.fingerprints[name] = found
        return found

    def fingerprint(self, name: str) -> str:
        """The content fingerprint of a stage's output, the same whether it was computed or cached.

        A hit's comes from its manifest (stored with the output, by the same function), so
        neither the output nor the session it would need is loaded; a computed output, or an
        entry stored before fingerprints were kept, is hashed (``frames.fingerprint``).
        """
        found = self.fingerprints.get(name)
        if found is None:
            entry = self.hits.get(name)
            stored = entry.manifest.get("fingerprint") if entry is not None else None
            found = stored if isinstance(stored, str) else fingerprint(self.run.outputs[name])
            self.fingerprints[name] = found
        return found

    # -- lazy outputs for actions --------------------------------------------------------------
    def bind(self, item: Any) -> None:
        self._flush()
        self.item = item

    def can_resolve(self, name: object) -> bool:
        return self.item is not None and (name in self.hits or name in self.graph)

    def resolve(self, name: str) -> Any:
        """Set up a stage nobody requested (an action reads it): pytest loads it through
        :meth:`setup` when it is a hit, and computes it (its own inputs loaded or computed the
        same way) when it is not: e.g. ``model`` evicted by the size bound while ``metrics``,
        computed from it, stayed cached. The plugin records it in the run."""
        if not self.can_resolve(name):
            raise KeyError(name)
        if name not in self.hits:
            _warn(
                f"stage {name!r} is needed by the action of gate {getattr(self.item, 'name', '?')!r}, but its "
                f"entry is not in {self.store.root} (evicted by the size bound, or unreadable); computing it"
            )
        return _item_request(self.item).getfixturevalue(name)

    # -- summary ---------------------------------------------------------------------------
    def _note(self) -> None:
        where = self.store.root
        try:
            where = where.relative_to(Path.cwd())
        except ValueError:
            pass
        if self.persistent:
            self.run.cache_note = f"stage cache: {where} ({human_size(self.size)} of {human_size(self.store.max_bytes)})"
        else:
            self.run.cache_note = "stage cache: off (--snowpipe-no-cache); xdist workers share outputs within this run"


def promoted_sources(graph: PipelineGraph) -> frozenset[str]:
    """Source stages (no predecessors) upstream of a gate that may promote: their data fingerprints
    go into the registry, so the cache keeps them."""
    names: set[str] = set()
    for gate in graph.gates:
        if needs(gate.spec, "records_sources"):
            names.update(s.name for s in graph.stages if not s.predecessors and s.name in gate.upstream)
    return frozenset(names)


def human_size(n: int) -> str:
    """1234567 -> '1.2 MB'."""
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _touch(path: Path) -> None:
    try:
        path.touch(exist_ok=True)
    except OSError:
        pass


def cache_keys(
    graph: PipelineGraph, fingerprints: dict[str, str], run_info: Any = None
) -> dict[str, str]:
    """Each stage's cache key: its graph key, its sources' fingerprint, the ``snowpipe_run`` values it
    reads (``Stage.run_fields``; its config reads are in its graph key), its predecessors' cache keys."""
    keys: dict[str, str] = {}
    for stage in graph.stages:
        h = hashlib.sha256()
        h.update(f"snowpipe-cache-1;py{sys.version_info[0]}.{sys.version_info[1]};{stage.name};{stage.key};".encode())
        h.update(f"sources={fingerprints.get(stage.name, '')};".encode())
        if stage.run_fields != () and run_info is not None:
            fields = ("run_id", "scheduled", "target") if stage.run_fields is None else stage.run_fields
            h.update(repr([(f, str(getattr(run_info, f))) for f in fields if f != "config"]).encode())
        for pred in stage.predecessors:
            h.update(f"{pred}={keys[pred]};".encode())
        keys[stage.name] = h.hexdigest()[:24]
    return keys


def source_fingerprints(
    graph: PipelineGraph, settings: Settings, get_session: Callable[[], Any], memo_file: Path | None
) -> dict[str, str]:
    """Fingerprint every stage's declared sources now (SourceError on a bad declaration)."""
    from pytest_snowpipe.pipeline.sources import compute_fingerprint

    declared = [s for s in graph.stages if s.sources is not None]
    if not declared:
        return {}
    digests: dict[str, Any] = {}
    if memo_file is not None:
        try:
            loaded = json.loads(memo_file.read_text(encoding="utf-8"))
            digests = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            digests = {}
    before = dict(digests)
    out = {}
    for stage in declared:
        assert stage.sources is not None
        base = Path(stage.location.rsplit(":", 1)[0]).parent
        out[stage.name] = compute_fingerprint(stage.sources, stage.name, base, settings.config, get_session, digests)
    if memo_file is not None and digests != before:
        try:
            memo_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo_file.with_name(f".{memo_file.name}.{id(digests)}.tmp")
            tmp.write_text(json.dumps(digests), encoding="utf-8")
            tmp.replace(memo_file)
        except OSError:
            pass  # only a speed-up
    return out


@dataclass(frozen=True)
class CacheLocation:
    """Where this run's stage cache lives: a persistent store, or the xdist run-only one."""

    root: Path
    make_root: Callable[[], Path] | None  # creates the root on first store (pytest's cache dir)
    persistent: bool  # False: --snowpipe-no-cache's run-only store shared by xdist workers


def cache_location(
    cache: Any, worker_input: Mapping[str, Any], settings: Settings, setup_only: bool
) -> tuple[CacheLocation | None, str | None]:
    """Where the cache is for this run, or (None, why it is off); ``cache`` is pytest's ``config.cache``."""
    if setup_only:  # --setup-plan / --setup-only: nothing runs, nothing is cached
        return None, None
    if settings.no_cache:
        shared = worker_input.get(RUN_STORE_KEY)
        if not shared:
            return None, "stage cache: off (--snowpipe-no-cache)"
        return CacheLocation(Path(shared), None, persistent=False), None
    root, make_root = cache_root(cache, settings)
    if root is None:
        return None, ("stage cache: off (pytest's cacheprovider is disabled: -p no:cacheprovider); "
                      "set the snowpipe_cache_dir ini key to keep it on")
    return CacheLocation(root, make_root, persistent=True), None


def prepare(
    items: Sequence[Any], graph: PipelineGraph, run: PipelineRun, settings: Settings, where: CacheLocation,
    get_session: Callable[[], Any],
) -> Memo:
    """Set up the cache for this run; find hits and prune their upstream.

    A source declaration that cannot be fingerprinted is a usage error naming the stage.
    """
    from pytest_snowpipe.pipeline.sources import SourceError

    store = StageCache(where.root, settings.cache_max_bytes, where.make_root)
    try:
        fingerprints = source_fingerprints(
            graph, settings, get_session, store.root / SOURCES_MEMO if where.persistent else None,
        )
    except SourceError as exc:
        raise SnowpipeUsageError(str(exc)) from None
    store.sweep_stale()  # staging folders of stores that were killed
    memo = Memo(graph, run, store, cache_keys(graph, fingerprints, run.info), where.persistent)
    run.outputs = StageOutputs(memo, dict(run.outputs))
    run.fingerprint_of = memo.fingerprint
    memo.find_hits(items)
    return memo


def _pytest_cache_dir(cache: Any) -> Path:
    """pytest's cache folder without creating it (``Cache.mkdir`` would)."""
    return Path(cache._cachedir)


def _stage_fixturedefs(items: Sequence[pytest.Item], names: dict[str, str]) -> dict[str, Any]:
    """The FixtureDef of each stage, as the collected items resolve it."""
    out: dict[str, Any] = {}
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        for name, fixturedefs in info.name2fixturedefs.items():
            if name in names and fixturedefs and name not in out:
                out[name] = fixturedefs[-1]
    return out


def _prune_closures(items: Sequence[pytest.Item]) -> None:
    """Recompute every item's fixture closure after hits lost their argnames (pytest's own
    pruning, used for direct parametrization): the dropped fixtures are not set up."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is not None:
            info.prune_dependency_tree()


def _set_fixture_result(fixturedef: Any, request: Any, value: Any) -> None:
    """What pytest's own ``pytest_fixture_setup`` does after calling the fixture function."""
    fixturedef.cached_result = (value, fixturedef.cache_key(request), None)


def _item_request(item: Any) -> Any:
    """The test item's fixture request (``request`` as a test would see it)."""
    return item._request
