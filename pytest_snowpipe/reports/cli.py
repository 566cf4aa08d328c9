"""``snowpipe``: the local model registry at hand (models, versions, one version, a comparison, a metric).

::

    snowpipe models                           # every model: versions, default, latest
    snowpipe versions mortgage_model          # each version: when, default, its metrics
    snowpipe show mortgage_model [v0002]      # metrics, config, lineage, run, fingerprints (default: the default)
    snowpipe compare mortgage_model v0001 v0002
    snowpipe plot mortgage_model test_accuracy
    snowpipe runs [RUN]                       # the deployed graph's recent runs (or the emulated ones): see runs_cli

The registry is ``--registry DIR``, else the first ``.snowpipe/registry`` found in the current
folder or a parent (where ``pytest`` puts it, under the rootdir). It only reads. Works on the
local registry; the Snowflake Model Registry is read with ``snowflake.ml.registry`` itself.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeGuard

from pytest_snowpipe.errors import RegistryError, SnowpipeError
from pytest_snowpipe.registry.local import LocalRegistry, ModelVersion

DEFAULT_FOLDER = Path(".snowpipe") / "registry"
BAR = 40  # characters of the longest bar in ``plot``


class CliError(SnowpipeError):
    """A usage problem: printed as one line, exit code 2."""


def find_registry(start: Path) -> Path | None:
    """The first ``.snowpipe/registry`` in ``start`` or a parent."""
    for folder in (start, *start.parents):
        if (folder / DEFAULT_FOLDER).is_dir():
            return folder / DEFAULT_FOLDER
    return None


def _models(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if (p / "versions").is_dir()) if root.is_dir() else []


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else str(value)
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return lines


def _version(reg: LocalRegistry, model: str, version: str | None) -> ModelVersion:
    if version is None:
        found = reg.default(model)
        if found is None:
            raise CliError(f"model {model!r} has no default version in {reg.root}; name one: {', '.join(reg.versions(model)) or 'none'}")
        return found
    if version not in reg.versions(model):
        raise CliError(f"model {model!r} has no version {version!r} in {reg.root}; it has: {', '.join(reg.versions(model)) or 'none'}")
    return reg.get(model, version)


def _known_model(reg: LocalRegistry, model: str) -> None:
    if model not in _models(reg.root):
        raise CliError(f"no model {model!r} in the registry {reg.root}; it has: {', '.join(_models(reg.root)) or 'none'}")


def cmd_models(reg: LocalRegistry, args: argparse.Namespace) -> list[str]:
    rows = []
    for model in _models(reg.root):
        versions = reg.versions(model)
        default = reg.default(model)
        rows.append([model, str(len(versions)), default.version if default else "-", versions[-1] if versions else "-"])
    if not rows:
        return [f"no model in the registry {reg.root}"]
    return [f"registry {reg.root}", *_table(["model", "versions", "default", "latest"], rows)]


def cmd_versions(reg: LocalRegistry, args: argparse.Namespace) -> list[str]:
    _known_model(reg, args.model)
    default = reg.default(args.model)
    rows = []
    for name in reg.versions(args.model):
        v = reg.get(args.model, name)
        metrics = ", ".join(f"{k}={_fmt(x)}" for k, x in v.metrics.items())
        rows.append([name, "*" if default and default.version == name else "", v.created_at[:19], metrics])
    return _table(["version", "default", "created", "metrics"], rows)


def cmd_show(reg: LocalRegistry, args: argparse.Namespace) -> list[str]:
    _known_model(reg, args.model)
    v = _version(reg, args.model, args.version)
    default = reg.default(args.model)
    lines = [f"{v.model_name} {v.version}{' (default)' if default and default.version == v.version else ''}",
             f"  created:  {v.created_at}", f"  folder:   {v.path}"]
    sections: list[tuple[str, Mapping[str, Any]]] = [("metrics", v.metrics), ("config", v.config)]
    extra = dict(v.extra)
    for key in ("run", "gate", "lineage"):
        if isinstance(extra.get(key), Mapping):
            sections.append((key, extra.pop(key)))
    sections += [("fingerprints", v.fingerprints), ("other", extra)]
    for title, values in sections:
        if not values:
            continue
        lines.append(f"  {title}:")
        lines += [f"    {k}: {_fmt(x)}" for k, x in values.items()]
    return lines


def cmd_compare(reg: LocalRegistry, args: argparse.Namespace) -> list[str]:
    _known_model(reg, args.model)
    a, b = _version(reg, args.model, args.a), _version(reg, args.model, args.b)
    rows = []
    for key in dict.fromkeys([*a.metrics, *b.metrics]):
        x, y = a.metrics.get(key), b.metrics.get(key)
        delta = ""
        if _is_number(x) and _is_number(y):
            delta = f"{y - x:+d}" if isinstance(x, int) and isinstance(y, int) else f"{y - x:+.4f}"
        rows.append([key, _fmt(x) if key in a.metrics else "-", _fmt(y) if key in b.metrics else "-", delta])
    lines = [f"{args.model}: {a.version} -> {b.version}", *_table(["metric", a.version, b.version, "delta"], rows)]
    for title, left, right in (("config", a.config, b.config), ("code", a.fingerprints.get("code", {}), b.fingerprints.get("code", {})),
                               ("data", a.fingerprints.get("data", {}), b.fingerprints.get("data", {}))):
        changed = [k for k in dict.fromkeys([*left, *right]) if left.get(k) != right.get(k)]
        lines.append(f"{title}: " + ("same" if not changed else "changed: " + ", ".join(
            f"{k} {_fmt(left.get(k, '-'))} -> {_fmt(right.get(k, '-'))}" if title == "config" else k for k in changed)))
    return lines


def cmd_plot(reg: LocalRegistry, args: argparse.Namespace) -> list[str]:
    _known_model(reg, args.model)
    points = []
    for name in reg.versions(args.model):
        value = reg.get(args.model, name).metrics.get(args.metric)
        if _is_number(value):
            points.append((name, float(value)))
    if not points:
        have = sorted({k for n in reg.versions(args.model) for k in reg.get(args.model, n).metrics})
        raise CliError(f"no version of {args.model!r} has a number for metric {args.metric!r}; metrics: {', '.join(have) or 'none'}")
    return [f"{args.model}: {args.metric} over {len(points)} version(s)", *bars(points)]


def bars(points: Sequence[tuple[str, float]], width: int = BAR) -> list[str]:
    """One line per point: label, value, and a bar from the lowest value (a sliver) to the highest (full)."""
    low, high = min(v for _, v in points), max(v for _, v in points)
    span = high - low
    label_w = max(len(label) for label, _ in points)
    out = []
    for label, value in points:
        size = width if span == 0 else 1 + round((value - low) / span * (width - 1))
        out.append(f"  {label:<{label_w}}  {value:>10.4f}  {'#' * size}")
    return out


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


COMMANDS: dict[str, Callable[[LocalRegistry, argparse.Namespace], list[str]]] = {
    "models": cmd_models, "versions": cmd_versions, "show": cmd_show, "compare": cmd_compare, "plot": cmd_plot,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="snowpipe", description="Read the local model registry of pytest-snowpipe.")
    p.add_argument("--registry", metavar="DIR", help="the registry folder (default: the first .snowpipe/registry "
                   "in this folder or a parent; ini snowpipe_registry if you moved it)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("models", help="every model: how many versions, the default, the latest")
    s = sub.add_parser("versions", help="each version of MODEL with its metrics")
    s.add_argument("model")
    s = sub.add_parser("show", help="one version: metrics, config, lineage, run, fingerprints")
    s.add_argument("model")
    s.add_argument("version", nargs="?", help="default: the model's default version")
    s = sub.add_parser("compare", help="two versions: metrics with deltas, what changed in config, code, data")
    s.add_argument("model")
    s.add_argument("a")
    s.add_argument("b")
    s = sub.add_parser("plot", help="a metric over the versions, as bars in the terminal")
    s.add_argument("model")
    s.add_argument("metric")
    from pytest_snowpipe.reports.runs_cli import add_parser

    add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "runs":  # Task Graph runs, not the registry
        from pytest_snowpipe.reports.runs_cli import run_command

        try:
            print("\n".join(run_command(args)))
        except SnowpipeError as exc:  # a run not found, a bad connection, an unreadable history
            print(f"snowpipe: {exc}", file=sys.stderr)
            return 2
        return 0
    root = Path(args.registry) if args.registry else find_registry(Path.cwd())
    if root is None or not root.is_dir():
        where = args.registry or f"{Path.cwd()} or its parents ({DEFAULT_FOLDER})"
        print(f"snowpipe: no model registry at {where}; run pytest first, or pass --registry DIR", file=sys.stderr)
        return 2
    try:
        lines = COMMANDS[args.command](LocalRegistry(root), args)
    except (CliError, RegistryError) as exc:
        print(f"snowpipe: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
