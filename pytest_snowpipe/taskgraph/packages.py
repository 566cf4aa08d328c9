"""The packages a Task Graph ships with: inferred from the shipped code, pinned to what is installed.

A stored procedure has only its declared PACKAGES (with their dependencies) and its IMPORTS.
So the packages are read from what the shipped code imports: every stage, gate and action
function and the project-local helpers they reach (``pipeline.codedeps.reached_code``), through
``import`` statements in their bytecode (also inside the function body) and the library modules,
functions and classes they reference. Each top-level module is mapped to its distribution
(``importlib.metadata.packages_distributions``) and pinned against Snowflake's channel
(:mod:`.channel`: the account's ``information_schema.packages`` at deploy, a snapshot offline): to
the installed version when the channel has it, else to the channel's nearest lower version with a
warning naming both, else refused. A package the account lacks in every version is an error naming
it and the fixes; one a snapshot does not know is a warning (the account decides at deploy). The user's
``snowpipe_packages`` adds packages and overrides inferred ones of the same name. What the
task runtime itself needs (Snowpark, snowflake.core, cloudpickle, pandas, pyarrow; snowflake-ml-python
for remote stages and promote) is always declared; pytest only when the user's code imports it.

What the pickled outputs need to unpickle is covered by the same union (the DAG's packages are
every task's): the stage that made an xgboost model imports xgboost. The shipped-environment
sandbox (``doubles.sandbox``) proves it by running each task with only these packages.
"""
from __future__ import annotations

import dis
import functools
import importlib.metadata
import os
import re
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_snowpipe.errors import SnowpipeError

RUNTIME = ("snowflake-snowpark-python", "snowflake.core", "cloudpickle", "pandas", "pyarrow")
ML = "snowflake-ml-python"
# namespace packages: the distribution is named by the second component
NAMESPACES = {
    "snowflake.snowpark": "snowflake-snowpark-python",
    "snowflake.core": "snowflake.core",
    "snowflake.ml": "snowflake-ml-python",
    "snowflake.connector": "snowflake-connector-python",
}
# Builds sold under another distribution name that install the same module: Snowflake's channel
# knows them by the main name (``xgboost-cpu`` installs ``xgboost``, without the CUDA libraries).
SAME_MODULE_BUILDS = {"xgboost-cpu": "xgboost"}
NOT_SHIPPED = {"pytest_snowpipe", "__main__", "builtins"}  # the plugin ships as an IMPORT


class PackageError(SnowpipeError):
    """A package the shipped code needs cannot be declared; ``problems`` names each and the fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def canonical(name: str) -> str:
    """PEP 503 normalisation (``scikit_learn`` == ``Scikit-Learn`` == ``scikit-learn``; ``snowflake.core``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(req: str) -> str:
    """``xgboost==3.2.0`` -> ``xgboost``."""
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    return m.group(1) if m else req.strip()


# ---------------------------------------------------------------- what the code imports


def _code_objects(code: types.CodeType) -> Iterable[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _imports_in(code: types.CodeType) -> set[str]:
    out: set[str] = set()
    for co in _code_objects(code):
        level = 0
        for ins in dis.get_instructions(co):
            if ins.opname == "LOAD_CONST" and isinstance(ins.argval, int):
                level = ins.argval
            elif ins.opname == "IMPORT_NAME" and isinstance(ins.argval, str) and level == 0:
                out.add(ins.argval)
    return out


def _namespace_modules(func: Any) -> set[str]:
    """Library modules the function reads from outside itself: modules, and the modules of objects."""
    code = getattr(func, "__code__", None)
    if code is None:
        return set()
    ns = dict(getattr(func, "__globals__", {}) or {})
    for name, cell in zip(code.co_freevars, getattr(func, "__closure__", None) or (), strict=False):
        try:
            ns[name] = cell.cell_contents
        except ValueError:
            continue
    names: set[str] = set()
    for co in _code_objects(code):
        names.update(co.co_names, co.co_freevars)
    out: set[str] = set()
    for name in names & set(ns):
        obj = ns[name]
        if isinstance(obj, types.ModuleType):
            out.add(obj.__name__)
        elif isinstance(obj, type) or callable(obj):
            module = getattr(obj, "__module__", None)
            if isinstance(module, str):
                out.add(module)
    return out


def modules_of(func: Callable[..., Any]) -> set[str]:
    """Dotted module names ``func`` and the project code it reaches import or reference."""
    import inspect

    from pytest_snowpipe.pipeline.codedeps import reached_code

    out: set[str] = set()
    for obj in reached_code(inspect.unwrap(func), Path("/")):
        members = [obj] if not isinstance(obj, type) else [
            (m.__func__ if isinstance(m, (staticmethod, classmethod)) else m) for m in vars(obj).values()
        ]
        for member in members:
            code = getattr(member, "__code__", None)
            if code is not None:
                out |= _imports_in(code) | _namespace_modules(member)
    return out


def _is_library(module: str) -> bool:
    top = module.split(".")[0]
    if top in NOT_SHIPPED or top in sys.stdlib_module_names or top.startswith("_"):
        return False
    mod = sys.modules.get(module) or sys.modules.get(top)
    path = getattr(mod, "__file__", None) if mod is not None else None
    if path is None:
        return mod is None  # not imported here: judge by name (the distribution lookup decides)
    parts = Path(path).resolve().parts
    return "site-packages" in parts or "dist-packages" in parts


def distribution_of(module: str) -> str | None:
    """The distribution that provides ``module`` (namespace packages by their second component)."""
    parts = module.split(".")
    if len(parts) > 1 and ".".join(parts[:2]) in NAMESPACES:
        return NAMESPACES[".".join(parts[:2])]

    dists = installed_distributions().get(parts[0]) or []
    return SAME_MODULE_BUILDS.get(canonical(dists[0]), dists[0]) if dists else None


def installed_distributions() -> Mapping[str, list[str]]:
    """Top-level import name -> the installed distributions providing it (read once per environment state)."""
    return _packages_distributions(_environment_state())


def _environment_state() -> tuple[tuple[str, int], ...]:
    """What the installed distributions depend on: the import path and each folder's last change
    (installing or removing a distribution changes its folder)."""
    state = []
    for entry in sys.path:
        try:
            state.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            continue
    return tuple(state)


@functools.lru_cache(maxsize=1)
def _packages_distributions(state: tuple[tuple[str, int], ...]) -> Mapping[str, list[str]]:
    """``importlib.metadata.packages_distributions()`` once per environment state: it reads every
    installed distribution's file list (0.1-0.3 s), and a compile asks once per module reached."""
    return importlib.metadata.packages_distributions()


# ---------------------------------------------------------------- pinning


@dataclass(frozen=True)
class Package:
    """One declared package: its channel name, pinned version and why it is there."""

    name: str
    version: str | None
    reason: str
    note: str = ""

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}" if self.version else self.name


@dataclass
class Resolution:
    """The pinned packages, the warnings to show, and what only remote stages' jobs need (not in the channel)."""

    packages: list[Package] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    job_only: list[str] = field(default_factory=list)  # requirements the ML Jobs install, not the procedures
    channel: str = ""  # where the versions were checked

    @property
    def specs(self) -> list[str]:
        return [p.spec for p in self.packages]


def installed_version(name: str) -> str | None:
    """The version of a channel package installed here (``xgboost`` is found as ``xgboost-cpu`` too), or None."""

    builds = [b for b, main in SAME_MODULE_BUILDS.items() if main == canonical(name)]  # xgboost-cpu for xgboost
    for candidate in (name, name.replace(".", "-"), *builds):
        try:
            return importlib.metadata.version(candidate)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _version_key(v: str) -> Any:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(v)
    except InvalidVersion:
        return Version("0")


def _nearest(installed: str, offered: Iterable[str]) -> str | None:
    """The newest offered version not newer than ``installed``; None when every offered one is newer."""
    have = _version_key(installed)
    below = [v for v in offered if _version_key(v) <= have]
    return max(below, key=_version_key) if below else None


def _as_channel(channel: Any) -> Any:
    from pytest_snowpipe.taskgraph.channel import Channel, from_snapshot

    if channel is None:
        return from_snapshot()
    if isinstance(channel, Channel):
        return channel
    return Channel({k: tuple(v) for k, v in channel.items()}, "the given channel", authoritative=True)


def _pin(name: str, offered: tuple[str, ...], why: str, out: Resolution, problems: list[str]) -> None:
    """Pin ``name`` to the installed version the channel has, else its nearest lower one, else refuse."""
    installed = installed_version(name)
    if installed is None or not offered:
        out.packages.append(Package(name, None, why, "not installed here: the channel's latest"))
        return
    if installed in offered:
        out.packages.append(Package(name, installed, why))
        return
    near = _nearest(installed, offered)
    if near is None:
        oldest = min(offered, key=_version_key)
        problems.append(
            f"package {name!r} ({why}): the installed {installed} is older than every version {out.channel} offers "
            f"(oldest {oldest}); install {name}=={oldest} here and run again (so that the rehearsal runs what ships), "
            f"or pin another version in ini snowpipe_packages"
        )
        return
    note = f"installed {installed} is not in the channel; pinned to its nearest lower version, {near}"
    out.packages.append(Package(name, near, why, note))
    out.warnings.append(
        f"package {name}: the rehearsal runs {installed}, Snowflake gets {near} ({out.channel} has no {installed}); "
        f"install {name}=={near} here to rehearse exactly what ships, or pin another in ini snowpipe_packages"
    )


def resolve(
    needed: Mapping[str, str],
    *,
    channel: Any = None,
    user: Iterable[str] = (),
    soft: Iterable[str] = (),
) -> Resolution:
    """Pin ``needed`` (distribution -> why) and the user's ``snowpipe_packages`` against ``channel``.

    ``channel`` is a :class:`~pytest_snowpipe.taskgraph.channel.Channel` (None: the bundled snapshot;
    a plain mapping counts as the account's word). A package the account lacks is a PackageError
    naming it and the fixes; a snapshot's gap is a warning (the account decides at deploy). A ``soft``
    one (needed only by remote stages, whose ML Job installs ``pip_requirements``) is left to the job.
    A user requirement with a specifier wins as written; a bare name is pinned like an inferred one.
    """
    chan = _as_channel(channel)
    soft_keys = {canonical(s) for s in soft}
    offered = {canonical(k): (k, tuple(v)) for k, v in chan.versions.items()}
    overrides = {canonical(requirement_name(r)): r.strip() for r in user if r.strip()}
    out = Resolution(channel=chan.describe())
    problems: list[str] = []

    def missing(dist: str, why: str, hint: str) -> None:
        if canonical(dist) in soft_keys:
            out.job_only.append(f"{dist}=={installed_version(dist)}" if installed_version(dist) else dist)
            out.warnings.append(f"package {dist!r} ({why}) is not in {chan.describe()}: left to the ML Job's runtime and pip_requirements")
        elif not chan.authoritative:
            installed = installed_version(dist)
            out.packages.append(Package(dist, installed, why, "not in the snapshot: checked against the account at deploy"))
            out.warnings.append(f"package {dist!r} ({why}) is not in {chan.describe()}: checked against the account at deploy")
        else:
            problems.append(f"package {dist!r} ({why}) is not in {chan.describe()} in any version: {hint}")

    for dist, why in needed.items():
        key = canonical(dist)
        if key in overrides:
            continue
        if key not in offered:
            missing(dist, why, "add an available substitute to ini snowpipe_packages, or, for a remote stage, list it "
                               "in sp.remote(pip_requirements=[...]); or stop importing it in the shipped code")
            continue
        name, versions = offered[key]
        _pin(name, versions, why, out, problems)
    for key, req in overrides.items():
        bare = requirement_name(req) == req
        if not bare:  # the user's own specifier wins
            name = offered[key][0] if key in offered else requirement_name(req)
            out.packages.append(Package(name, req.split("==", 1)[1] if "==" in req else None, "snowpipe_packages",
                                        "" if "==" in req else req))
            continue
        if key not in offered:
            missing(req, "snowpipe_packages", "remove it from ini snowpipe_packages or name one the account has")
            continue
        name, versions = offered[key]
        _pin(name, versions, "snowpipe_packages", out, problems)
    if problems:
        raise PackageError(problems)
    return out


def needed_by(functions: Mapping[str, Callable[..., Any]], *, ml: bool) -> dict[str, str]:
    """Distribution -> the first task (and module) that needs it, for the runtime and ``functions``."""
    needed: dict[str, str] = {d: "the task runtime" for d in RUNTIME}
    if ml:
        needed[ML] = "remote stages / promote"
    for task, func in functions.items():
        for module in sorted(modules_of(func)):
            if not _is_library(module):
                continue
            dist = distribution_of(module)
            if dist is None:
                dist = module.split(".")[0]
            if canonical(dist) not in {canonical(d) for d in needed}:
                needed[dist] = f"task {task} imports {module}"
    return needed


__all__ = [
    "Package", "PackageError", "Resolution", "canonical", "installed_distributions", "installed_version", "modules_of",
    "needed_by", "resolve",
]
