"""The environment a task's procedure gets in Snowflake, as a set of locally installed files.

A stored procedure sees the standard library, its declared ``PACKAGES`` with their
dependencies (Snowflake's channel resolves them as conda does), and its ``IMPORTS``. Here the
packages are the locally installed distributions of those names, closed over their
``Requires-Dist`` (markers evaluated for this interpreter, extras followed), and a distribution
is the files its ``RECORD`` lists. The sandbox allows a module whose file is one of those and
refuses any other module from site-packages, so an undeclared import fails as it would there.
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pytest_snowpipe.taskgraph.packages import SAME_MODULE_BUILDS

# Snowflake's Python runtime adds these to every procedure (Snowpark adds itself to PACKAGES).
ALWAYS = ("snowflake-snowpark-python",)


@dataclass(frozen=True)
class Environment:
    """What one set of declared packages lets a task import."""

    declared: tuple[str, ...]  # the PACKAGES specs, as written
    distributions: dict[str, str]  # canonical name -> installed version, dependencies included
    files: frozenset[str]  # absolute paths of every file those distributions installed
    missing: tuple[str, ...]  # declared (or required) names with no local installation

    @property
    def site_dirs(self) -> tuple[str, ...]:
        return site_dirs()


def site_dirs() -> tuple[str, ...]:
    """This interpreter's site-packages folders: where installed distributions live. Not the folders an
    editable install or a ``.pth`` file adds (a project checkout), which Snowflake does not have either."""
    import site
    import sysconfig

    found = [*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    if site.ENABLE_USER_SITE:
        found.append(site.getusersitepackages())
    return tuple(dict.fromkeys(os.path.normpath(p) for p in found if os.path.isdir(p)))


_INSTALLED: dict[str, metadata.Distribution] | None = None


def _installed() -> dict[str, metadata.Distribution]:
    global _INSTALLED
    if _INSTALLED is None:
        found: dict[str, metadata.Distribution] = {}
        for dist in metadata.distributions():
            name = dist.metadata["Name"]
            if name:
                found.setdefault(canonicalize_name(name), dist)
        _INSTALLED = found
    return _INSTALLED


def _requirement(spec: str) -> Requirement | None:
    """``xgboost==2.1.4`` or Snowflake's channel spelling (``snowflake.core``) as a requirement."""
    text = spec.strip()
    m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(.*)$", text)
    if not m:
        return None
    try:
        return Requirement(m.group(1).replace(".", "-") + m.group(2))
    except InvalidRequirement:
        return None


def _closure(roots: list[Requirement]) -> tuple[dict[str, metadata.Distribution], list[str]]:
    installed = _installed()
    seen: dict[str, metadata.Distribution] = {}
    missing: list[str] = []
    todo: list[tuple[Requirement, frozenset[str], bool]] = [(r, frozenset(r.extras), True) for r in roots]
    done_extras: dict[str, set[str]] = {}
    while todo:
        req, extras, declared = todo.pop()
        name = canonicalize_name(req.name)
        dist = installed.get(name) or next(
            (installed[b] for b, main in SAME_MODULE_BUILDS.items() if main == name and b in installed), None
        )
        if dist is None:
            if declared:  # a dependency not installed here is one the installed code does without
                missing.append(req.name)
            continue
        known = done_extras.setdefault(name, set())
        if name in seen and extras <= known:
            continue
        seen[name] = dist
        known.update(extras)
        for text in dist.requires or []:
            sub = Requirement(text)
            if sub.marker is not None and not any(
                sub.marker.evaluate({"extra": e}) for e in (sorted(known) or [""])
            ):
                continue
            todo.append((sub, frozenset(sub.extras), False))
    return seen, missing


def _files_of(dist: metadata.Distribution) -> list[str]:
    """The absolute paths of ``dist``'s installed files: its RECORD's first column read directly
    (``Distribution.files`` makes a path object per file, 0.3 s for Snowpark's closure, on the
    rehearsal's way to its first task); other metadata formats through ``files``."""
    record = dist.read_text("RECORD")
    if record is None:
        return [os.path.normpath(str(dist.locate_file(f))) for f in dist.files or []]
    base = str(dist.locate_file(""))
    return [os.path.normpath(os.path.join(base, row[0])) for row in csv.reader(record.splitlines()) if row]


def resolve(packages: tuple[str, ...] | list[str]) -> Environment:
    """The local files a procedure declaring ``packages`` may import."""
    roots = [r for r in (_requirement(p) for p in (*packages, *ALWAYS)) if r is not None]
    dists, missing = _closure(roots)
    files: set[str] = set()
    for dist in dists.values():
        files.update(_files_of(dist))
    return Environment(
        declared=tuple(packages),
        distributions={n: d.version for n, d in dists.items()},
        files=frozenset(files),
        missing=tuple(sorted(set(missing))),
    )


def package_names(specs: tuple[str, ...] | list[str]) -> set[str]:
    """The canonical distribution names of ``specs`` (pins and Snowflake's channel spelling alike)."""
    return {canonicalize_name(r.name) for r in map(_requirement, specs) if r is not None}


def owners() -> dict[str, str]:
    """Top-level import name -> the distributions providing it (for naming a refused module)."""
    from pytest_snowpipe.taskgraph.packages import installed_distributions

    found = installed_distributions().items()
    return {k: ", ".join(dict.fromkeys(SAME_MODULE_BUILDS.get(canonicalize_name(d), d) for d in v)) for k, v in found}


__all__ = ["ALWAYS", "Environment", "owners", "package_names", "resolve", "site_dirs"]
