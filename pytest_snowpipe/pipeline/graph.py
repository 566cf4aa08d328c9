"""The pipeline graph: stages (fixtures), their edges and the gates, read from pytest's fixture closure.

Built once at collection from the gates that were collected: a stage is any fixture in a
gate's dependency closure, except the environment (fixtures this plugin provides, such as
``snowpipe_session`` and ``snowpipe_config``). The graph is frozen and topologically
ordered, and every node carries a content key (its code, its options, its predecessors'
keys: Hamilton's habit) so caches, reports and deploys can tell what changed.
"""
from __future__ import annotations

import hashlib
import inspect
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pytest_snowpipe.actions.table import builtins_of
from pytest_snowpipe.errors import GraphError
from pytest_snowpipe.pipeline.codedeps import stage_dependencies
from pytest_snowpipe.pipeline.gate import (
    GateSpec,
    GateSpecError,
    action_label,
    check_model_name,
    check_version_template,
    fill_template,
    parse_gate_marker,
)
from pytest_snowpipe.pipeline.remote import RemoteSpec, remote_error, remote_spec
from pytest_snowpipe.pipeline.sources import SourceSpec

PLUGIN_MODULE_PREFIX = "pytest_snowpipe"


@dataclass(frozen=True)
class Stage:
    """One fixture of the pipeline: a task of the Task Graph."""

    name: str
    func: Callable[..., Any]
    predecessors: tuple[str, ...]
    environment: tuple[str, ...]
    is_yield: bool
    remote: RemoteSpec | None
    location: str
    key: str
    # what the key covers beyond the stage's own source (see codedeps.py): project-local
    # functions/classes it reaches, the config keys it reads (None: the whole config, reads
    # not visible statically), the outside data it declares with sp.source
    calls: tuple[str, ...] = ()
    config_keys: tuple[str, ...] | None = ()
    sources: SourceSpec | None = None
    run_fields: tuple[str, ...] | None = ()  # snowpipe_run fields it reads (None: all): the cache keys on their values


@dataclass(frozen=True)
class Gate:
    """A test marked ``snowpipe_gate``: a branch of the Task Graph."""

    name: str
    nodeid: str
    func: Callable[..., Any]
    reads: tuple[str, ...]
    environment: tuple[str, ...]
    upstream: tuple[str, ...]
    spec: GateSpec
    model_stage: str | None
    metrics_stage: str | None
    location: str
    key: str

    @property
    def model_name(self) -> str | None:
        """The registry name a promote uses: the marker's ``model_name`` or the model stage's name."""
        return self.spec.model_name or self.model_stage


@dataclass(frozen=True)
class PipelineGraph:
    """Stages in topological order and the gates that read them. Immutable."""

    stages: tuple[Stage, ...]
    gates: tuple[Gate, ...]
    _by_name: Mapping[str, Stage] = field(repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", MappingProxyType({s.name: s for s in self.stages}))

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Stage]:
        return iter(self.stages)

    def __len__(self) -> int:
        return len(self.stages)

    def stage(self, name: str) -> Stage:
        """The stage called ``name`` (KeyError names the known stages)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no stage {name!r}; stages: {', '.join(self._by_name)}") from None

    def successors(self, name: str) -> tuple[str, ...]:
        """Stages that take ``name``'s output as an input."""
        return tuple(s.name for s in self.stages if name in s.predecessors)

    def descendants(self, name: str) -> tuple[str, ...]:
        """Every stage downstream of ``name``, in topological order."""
        seen = {name}
        out = []
        for stage in self.stages:
            if any(p in seen for p in stage.predecessors):
                seen.add(stage.name)
                out.append(stage.name)
        return tuple(out)

    @property
    def key(self) -> str:
        """One hash of the whole graph: equal keys mean nothing the graph knows of changed."""
        h = hashlib.sha256()
        nodes: tuple[Stage | Gate, ...] = (*self.stages, *self.gates)
        for node in nodes:
            h.update(f"{node.name}:{node.key};".encode())
        return h.hexdigest()[:16]

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart (stages, gates, actions)."""
        lines = ["flowchart LR"]
        for stage in self.stages:
            label = stage.name + (" (remote)" if stage.remote else "")
            lines.append(f'    {stage.name}["{label}"]')
            lines.extend(f"    {p} --> {stage.name}" for p in stage.predecessors)
        for gate in self.gates:
            lines.append(f"    {gate.name}{{{{{gate.name}}}}}")
            lines.extend(f"    {r} --> {gate.name}" for r in gate.reads)
            for side in ("on_pass", "on_fail"):
                action = getattr(gate.spec, side)
                if action is not None:
                    node = f"{gate.name}__{action_label(action)}"
                    lines.append(f'    {gate.name} -- {side[3:]} --> {node}(["{action_label(action)}"])')
        return "\n".join(lines)


def _location(func: Callable[..., Any]) -> str:
    inner = inspect.unwrap(func)
    code = getattr(inner, "__code__", None)
    if code is None:
        return getattr(func, "__qualname__", repr(func))
    return f"{code.co_filename}:{code.co_firstlineno}"


def code_hash(func: Callable[..., Any]) -> str:
    """Hash of a function's source (or bytecode when the source is unavailable)."""
    inner = inspect.unwrap(func)
    try:
        text = inspect.getsource(inner).encode()
    except (OSError, TypeError):
        code = getattr(inner, "__code__", None)
        text = code.co_code if code is not None else repr(inner).encode()
    return hashlib.sha256(text).hexdigest()[:16]


def _is_pytest_builtin(fixturedef: Any) -> bool:
    module = getattr(fixturedef.func, "__module__", "") or ""
    return module.startswith("_pytest") or module == "pytest"


def _is_environment(fixturedef: Any) -> bool:
    module = getattr(fixturedef.func, "__module__", "") or ""
    return module.startswith(PLUGIN_MODULE_PREFIX + ".") or module == PLUGIN_MODULE_PREFIX


BUILTIN_FIX = (
    "a Task Graph task has no pytest fixtures: use tempfile inside the stage for scratch "
    "files, snowpipe_config for settings, and plain return values for data"
)


class _Collector:
    """Walks each gate's fixture closure and gathers stages, with every problem found."""

    def __init__(self) -> None:
        self.stage_defs: dict[str, Any] = {}  # name -> fixturedef
        self.order: list[str] = []
        self.errors: list[str] = []
        self._is_new = False

    def error(self, message: str) -> None:
        if message not in self.errors:
            self.errors.append(message)

    def visit(self, name: str, defs: Mapping[str, Sequence[Any]], requester: str) -> str | None:
        """Classify fixture ``name`` and, depth first, everything it requests; return it if it is a stage.

        Iterative (an explicit stack, not recursion): a chain of a thousand stages must get
        the depth error below, not a RecursionError.
        """
        result = self._enter(name, defs, requester)
        if result is None or name in self.order or not self._is_new:
            return result
        stack: list[tuple[str, Iterator[str]]] = [(name, iter(self.stage_defs[name].argnames))]
        while stack:
            current, args = stack[-1]
            arg = next(args, None)
            if arg is None:
                stack.pop()
                self.order.append(current)
                continue
            if arg == current:
                continue
            if self._enter(arg, defs, f"stage {current!r}") is not None and self._is_new:
                stack.append((arg, iter(self.stage_defs[arg].argnames)))
        return result

    def _enter(self, name: str, defs: Mapping[str, Sequence[Any]], requester: str) -> str | None:
        """Check one fixture on first sight; ``_is_new`` says whether its arguments are still to visit."""
        self._is_new = False
        fixturedefs = defs.get(name)
        if not fixturedefs:
            self.error(
                f"{requester} requests {name!r}, which has no meaning in a Task Graph; {BUILTIN_FIX}."
            )
            return None
        fixturedef = fixturedefs[-1]
        if _is_environment(fixturedef):
            return None
        if _is_pytest_builtin(fixturedef):
            self.error(
                f"{requester} requests pytest's built-in fixture {name!r}, which has no meaning "
                f"in a Task Graph; {BUILTIN_FIX}."
            )
            return None
        known = self.stage_defs.get(name)
        if known is not None:
            if known.func is not fixturedef.func:
                self.error(
                    f"stage name {name!r} is defined twice ({_location(known.func)} and "
                    f"{_location(fixturedef.func)}); Task Graph task names are unique: rename one."
                )
            return name
        self.stage_defs[name] = fixturedef
        self._is_new = True
        where = f"stage {name!r} ({_location(fixturedef.func)})"
        if fixturedef.scope != "session":
            self.error(
                f"{where} is {fixturedef.scope}-scoped; a pipeline stage runs once per graph run: "
                'declare it @pytest.fixture(scope="session").'
            )
        if fixturedef.params is not None:
            self.error(
                f"{where} is parametrized; a Task Graph task has one output: drop params= and "
                "make one stage per variant (or loop inside the stage)."
            )
        if name in fixturedef.argnames:
            self.error(f"{where} overrides a fixture of the same name; rename the stage.")
        bad_remote = remote_error(fixturedef.func)
        if bad_remote is not None:
            self.error(f"{where}: {bad_remote}")
        return name


def max_chain_depth() -> int:
    """The deepest stage chain a local run can set up.

    pytest sets fixtures up recursively (a few Python frames per level), so a chain much
    deeper than a quarter of the recursion limit ends in a RecursionError inside pytest.
    """
    return max(50, sys.getrecursionlimit() // 4)


def longest_chain(names: Iterable[str], preds: Callable[[str], Sequence[str]]) -> list[str]:
    """The longest predecessor chain ending at one of ``names`` (oldest first), computed iteratively.

    ``preds(name)`` gives a node's predecessors; nodes on a cycle are cut where the walk meets
    itself (cycles have their own error).
    """
    depth: dict[str, int] = {}
    best_pred: dict[str, str | None] = {}
    on_path: set[str] = set()
    for root in names:
        if root in depth:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(preds(root)))]
        on_path.add(root)
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                on_path.discard(node)
                options = [(depth[p], p) for p in preds(node) if p in depth]
                top = max(options, default=(0, None))
                depth[node] = top[0] + 1
                best_pred[node] = top[1]
                continue
            if nxt in depth or nxt in on_path:
                continue
            on_path.add(nxt)
            stack.append((nxt, iter(preds(nxt))))
    if not depth:
        return []
    end: str | None = max(depth, key=depth.__getitem__)
    chain: list[str] = []
    while end is not None:
        chain.append(end)
        end = best_pred[end]
    return chain[::-1]


def chain_too_deep(chain: Sequence[str], limit: int) -> str:
    """The message for a stage chain deeper than ``limit``."""
    shown = " -> ".join([*chain[:3], "...", *chain[-2:]]) if len(chain) > 6 else " -> ".join(chain)
    return (
        f"the stage chain {shown} is {len(chain)} stages deep; pytest sets fixtures up recursively and "
        f"cannot go deeper than {limit} stages (and a Task Graph holds at most 1000 tasks): merge "
        "consecutive stages into fewer, larger ones."
    )


def deep_fixture_chain(collector: Any, func: Callable[..., Any]) -> str | None:
    """After pytest's own closure walk hit the recursion limit collecting ``func``: the GraphError
    message naming the too-deep chain of fixtures it requests (None if that is not the cause)."""
    manager = collector.session._fixturemanager
    root = "<test>"
    try:
        argnames = [p.name for p in inspect.signature(func).parameters.values() if p.default is p.empty]
    except (TypeError, ValueError):
        return None

    def preds(name: str) -> Sequence[str]:
        if name == root:
            return argnames
        defs = manager.getfixturedefs(name, collector)
        return [a for a in defs[-1].argnames if a != name] if defs else []

    chain = [n for n in longest_chain([root], preds) if n != root]
    if len(chain) <= max_chain_depth():
        return None
    return _format_errors([chain_too_deep(chain, max_chain_depth())])


def cycle_members(names: Sequence[str], preds: Callable[[str], Sequence[str]]) -> list[str]:
    """The nodes that lie on a cycle (Tarjan's strongly connected components, iteratively), in ``names`` order.

    Nodes downstream or upstream of a cycle are not on it and are not named.
    """
    known = set(names)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    members: set[str] = set()
    counter = 0
    for root in names:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = []
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work.append((root, iter([p for p in preds(root) if p in known])))
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter([p for p in preds(nxt) if p in known])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1 or node in preds(node):
                    members.update(component)
    return [n for n in names if n in members]


def _closure(name: str, preds: Mapping[str, tuple[str, ...]]) -> list[str]:
    seen: list[str] = []
    stack = [name]
    while stack:
        cur = stack.pop()
        if cur in seen:
            continue
        seen.append(cur)
        stack.extend(preds.get(cur, ()))
    return seen


def _toposort(order: list[str], preds: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Kahn's algorithm, ties broken by discovery order so output is stable."""
    rank = {n: i for i, n in enumerate(order)}
    indeg = {n: len(preds[n]) for n in order}
    children: dict[str, list[str]] = {n: [] for n in order}
    for n in order:
        for p in preds[n]:
            children[p].append(n)
    ready = sorted((n for n in order if indeg[n] == 0), key=rank.__getitem__)
    out = []
    while ready:
        n = ready.pop(0)
        out.append(n)
        for c in children[n]:
            indeg[c] -= 1
            if indeg[c] == 0:
                ready.append(c)
                ready.sort(key=rank.__getitem__)
    if len(out) != len(order):
        cyclic = cycle_members(order, lambda n: preds[n])
        raise GraphError(f"stages {', '.join(cyclic)} form a cycle; break it.")
    return out


def _env_names(func_args: Iterable[str], defs: Mapping[str, Sequence[Any]]) -> tuple[str, ...]:
    return tuple(a for a in func_args if defs.get(a) and _is_environment(defs[a][-1]))


GateParts = tuple[Any, "GateSpec | None", tuple[str, ...], Mapping[str, Sequence[Any]]]


def build_graph(
    gate_items: Sequence[Any],
    marker_name: str = "snowpipe_gate",
    *,
    config: Mapping[str, Any] | None = None,
    root: Path | None = None,
) -> PipelineGraph:
    """Build the PipelineGraph from collected gate items (pytest ``Function`` items).

    ``config`` (the run's snowpipe_config) and ``root`` (the project folder: code under it is
    the project's) feed the stage keys: the config values a stage reads and the
    project-local code it calls are part of its key.

    Every problem is gathered and raised together as one GraphError, each line naming the
    fixture or gate and the fix. One job per step: read the gates' markers and fixture closures,
    derive the stages' edges, make the gates, check the depth, key the stages, key the gates.
    """
    collector = _Collector()
    parts = [_read_gate(item, marker_name, config, collector) for item in gate_items]
    preds, envs = _stage_edges(collector)
    gates = _make_gates(parts, preds, collector)
    chain = longest_chain(collector.order, lambda n: preds[n])
    if len(chain) > max_chain_depth():
        collector.error(chain_too_deep(chain, max_chain_depth()))
    if collector.errors:
        raise GraphError(_format_errors(collector.errors))
    stages = _keyed_stages(collector, preds, envs, config, root or Path.cwd())
    keys = {s.name: s.key for s in stages}
    return PipelineGraph(stages=tuple(stages), gates=tuple(_keyed_gate(g, keys) for g in gates))


def _read_gate(item: Any, marker_name: str, config: Mapping[str, Any] | None, collector: _Collector) -> GateParts:
    """A gate's spec (its marker, templates filled) and the stages it reads (visiting their closures)."""
    name = item.originalname if hasattr(item, "originalname") else item.name
    defs = item._fixtureinfo.name2fixturedefs
    spec: GateSpec | None
    try:
        spec = _resolve_templates(name, parse_gate_marker(name, list(item.iter_markers(marker_name))), config)
    except GateSpecError as exc:
        collector.error(str(exc))
        spec = None
    if getattr(item, "callspec", None) is not None:
        collector.error(
            f"gate {item.nodeid!r} is parametrized; a gate is one branch of the Task Graph: "
            "write one gate per variant."
        )
    argnames = tuple(item._fixtureinfo.argnames)
    reads = tuple(s for s in (collector.visit(a, defs, f"gate {name!r}") for a in argnames) if s is not None)
    return item, spec, reads, defs


def _stage_edges(collector: _Collector) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """Each stage's predecessors (the stages among its arguments) and environment (the other fixtures)."""
    preds: dict[str, tuple[str, ...]] = {}
    envs: dict[str, tuple[str, ...]] = {}
    for name, fixturedef in collector.stage_defs.items():
        preds[name] = tuple(a for a in fixturedef.argnames if a in collector.stage_defs and a != name)
        envs[name] = tuple(a for a in fixturedef.argnames if a not in preds[name] and a != name)
    return preds, envs


def _make_gates(parts: Sequence[GateParts], preds: Mapping[str, tuple[str, ...]], collector: _Collector) -> list[Gate]:
    """The gates (unkeyed): unique names apart from the stages', at least one stage read, roles resolved."""
    gates: list[Gate] = []
    seen_gate: dict[str, str] = {}
    for item, spec, reads, defs in parts:
        name = getattr(item, "originalname", item.name)
        if name in seen_gate and seen_gate[name] != item.nodeid:
            collector.error(
                f"gate name {name!r} is used by {seen_gate[name]} and {item.nodeid}; Task Graph "
                "task names are unique: rename one."
            )
        seen_gate[name] = item.nodeid
        if name in collector.stage_defs:
            collector.error(f"gate {name!r} has the name of a stage; rename the test.")
        if not reads:
            collector.error(
                f"gate {item.nodeid!r} reads no pipeline stage, so its fixtures form no pipeline: "
                "request the stage fixtures it checks (e.g. def test_quality(metrics): ...)."
            )
        if spec is None:
            continue
        upstream = sorted({u for r in reads for u in _closure(r, preds)}, key=collector.order.index)
        model_stage, metrics_stage = _resolve_roles(name, spec, upstream, collector)
        gates.append(
            Gate(
                name=name, nodeid=item.nodeid, func=item.obj, reads=reads,
                environment=_env_names(item._fixtureinfo.argnames, defs), upstream=tuple(upstream), spec=spec,
                model_stage=model_stage, metrics_stage=metrics_stage, location=_location(item.obj), key="",
            )
        )
    return gates


def _keyed_stages(
    collector: _Collector, preds: Mapping[str, tuple[str, ...]], envs: Mapping[str, tuple[str, ...]],
    config: Mapping[str, Any] | None, root: Path,
) -> list[Stage]:
    """The stages in topological order, each keyed on its code, remote options, what it reads and its inputs' keys."""
    keys: dict[str, str] = {}
    stages: list[Stage] = []
    for name in _toposort(collector.order, preds):
        fixturedef = collector.stage_defs[name]
        spec_r = remote_spec(fixturedef.func)
        h = hashlib.sha256()
        h.update(code_hash(fixturedef.func).encode())
        h.update(repr(spec_r).encode())
        deps = stage_dependencies(fixturedef.func, fixturedef.argnames, config, root)
        h.update(deps.digest.encode())
        for p in preds[name]:
            h.update(f"{p}={keys[p]}".encode())
        keys[name] = h.hexdigest()[:16]
        stages.append(
            Stage(
                name=name, func=fixturedef.func, predecessors=preds[name], environment=envs[name],
                is_yield=inspect.isgeneratorfunction(inspect.unwrap(fixturedef.func)), remote=spec_r,
                location=_location(fixturedef.func), key=keys[name], calls=deps.calls,
                config_keys=deps.config_keys, sources=deps.sources, run_fields=deps.run_fields,
            )
        )
    return stages


def _keyed_gate(gate: Gate, keys: Mapping[str, str]) -> Gate:
    """The gate keyed on its code, its actions (and their options) and the keys of the stages it reads."""
    h = hashlib.sha256()
    h.update(code_hash(gate.func).encode())
    h.update(repr((action_label(gate.spec.on_pass), action_label(gate.spec.on_fail))).encode())
    if gate.spec.version_name or gate.spec.log_model:
        h.update(repr((gate.spec.version_name, sorted(gate.spec.log_model))).encode())
    for r in gate.reads:
        h.update(f"{r}={keys[r]}".encode())
    return _replace_key(gate, h.hexdigest()[:16])


def _resolve_templates(gate: str, spec: GateSpec, config: Mapping[str, Any] | None) -> GateSpec:
    """``model_name="{model_name}"`` is filled from the config now (a model's name is the same for every
    run); ``version_name`` is checked now against the config and the run fields, and filled at promote."""
    from dataclasses import replace

    values = dict(config or {})
    if spec.model_name and "{" in spec.model_name:
        spec = replace(
            spec, model_name=fill_template(spec.model_name, values, gate, "model_name"),
            model_name_template=spec.model_name,
        )
        check_model_name(gate, spec.model_name or "")
    if spec.version_name:
        check_version_template(spec.version_name, values, gate)
    return spec


def _replace_key(gate: Gate, key: str) -> Gate:
    from dataclasses import replace

    return replace(gate, key=key)


def _resolve_roles(
    gate: str, spec: GateSpec, upstream: list[str], collector: _Collector
) -> tuple[str | None, str | None]:
    """Which upstream stage holds the model (for promote) and which the metrics."""
    model: str | None = None
    if spec.model is not None:
        if spec.model not in upstream:
            collector.error(
                f"gate {gate!r}: model={spec.model!r} is not a stage upstream of the gate "
                f"(upstream: {', '.join(upstream) or 'none'})."
            )
        else:
            model = spec.model
    else:
        remote = [s for s in upstream if remote_spec(collector.stage_defs[s].func) is not None]
        named = [s for s in upstream if s == "model" or s.endswith("_model")]
        if len(remote) == 1:
            model = remote[0]
        elif len(named) == 1:
            model = named[0]
    needing = [a.name for a in builtins_of(spec.on_pass, spec.on_fail) if a.needs_model]
    if needing and model is None:
        collector.error(
            f"gate {gate!r} {needing[0]}s, but no upstream stage is known to hold the model: name it "
            "with @pytest.mark.snowpipe_gate(..., model='<fixture name>')."
        )
    metrics: str | None = None
    if spec.metrics is not None:
        if spec.metrics not in upstream:
            collector.error(
                f"gate {gate!r}: metrics={spec.metrics!r} is not a stage upstream of the gate "
                f"(upstream: {', '.join(upstream) or 'none'})."
            )
        else:
            metrics = spec.metrics
    else:
        named = [s for s in upstream if s == "metrics" or s.endswith("_metrics")]
        metrics = named[0] if len(named) == 1 else None
    return model, metrics


def _format_errors(errors: list[str]) -> str:
    head = "pytest-snowpipe: the pipeline is invalid"
    if len(errors) == 1:
        return f"{head}: {errors[0]}"
    return head + ":\n" + "\n".join(f"  - {e}" for e in errors)
