"""PipelineGraph -> ``snowflake.core.task.dagv1.DAG``: names, edges, branch, finalizer, config.

One DAG per suite: each stage is a ``DAGTask``, each gate a ``DAGTaskBranch``, each action a
``DAGTask`` named ``<GATE>_<ACTION>`` after its gate (dagv1 writes the branch condition), and
the teardown halves of yield stages plus the cleanup of the run's tables become ONE finalizer.
Every problem Snowflake would only report at deploy (or never: snowflake.core checks no
limits and finds a cycle after creating the root) is found here first and raised together as
one :class:`CompileError`, each line naming the node and the rule.
"""
from __future__ import annotations

import ast
import contextlib
import inspect
import re
import sys
import textwrap
import types
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pytest_snowpipe.actions.table import NAMES, any_gate, builtin
from pytest_snowpipe.errors import SnowpipeUsageError
from pytest_snowpipe.pipeline.graph import Gate, PipelineGraph, Stage
from pytest_snowpipe.redact import is_shipped_secret_name
from pytest_snowpipe.taskgraph.fingerprint import stamp as stamp_digests
from pytest_snowpipe.taskgraph.monitors_deploy import stamp_monitors
from pytest_snowpipe.taskgraph.schedule import MAX_INTERVAL, MIN_INTERVAL

MAX_TASKS = 1000
MAX_EDGES = 100
MAX_NAME = 255
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
FINALIZER_NAME = "SNOWPIPE_FINALIZER"
CONFIG_TYPES = (str, int, float, bool)

KIND_STAGE = "stage"
KIND_REMOTE = "remote ML Job"
KIND_BRANCH = "branch"
KIND_ACTION = "action"
KIND_FINALIZER = "finalizer"


class CompileError(SnowpipeUsageError):
    """The graph cannot ship as a Task Graph; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            f"the pipeline cannot be compiled into a Task Graph ({len(problems)} problem"
            f"{'s' if len(problems) != 1 else ''}):\n" + "\n".join(f"  - {p}" for p in problems)
        )


@dataclass(frozen=True)
class CompileOptions:
    """How the graph ships. Packages are inferred from the shipped code and pinned (taskgraph.packages)."""

    dag_name: str = "SNOWPIPE_PIPELINE"
    schedule: Any = None  # timedelta | Cron | None
    config: Mapping[str, Any] = field(default_factory=dict)
    warehouse: str | None = None
    stage_location: str = "@SNOWPIPE_STAGE"
    database: str | None = None
    schema: str | None = None
    packages: tuple[str, ...] | None = None  # snowpipe_packages: added to the inferred ones, overriding by name
    channel: Any = None  # taskgraph.channel.Channel: the account's, or a snapshot's (None: the bundled snapshot)
    notification_integration: str | None = None
    registry_path: str | None = None
    check_pickle: bool = True
    keep_outputs: bool = False  # ini snowpipe_keep_outputs: the finalizer leaves the run's tables and files
    # Extension points (the plugin wires them to its hooks; a library caller may pass plain functions):
    # where one stage's output files go (None: ``stage_location``), and a last look at each task.
    artifact_location: Callable[[Stage], str | None] | None = None
    adjust_task: Callable[[Any, str, Stage | Gate | None], None] | None = None


@dataclass(frozen=True)
class CompiledPipeline:
    """The DAG that ships, each task's kind, and the graph it came from."""

    dag: Any
    kinds: Mapping[str, str]  # task name -> kind
    graph: PipelineGraph
    options: CompileOptions
    bodies: Mapping[str, Any]  # task name -> runtime spec (for tests and the plan)
    packages: tuple[Any, ...] = ()  # taskgraph.packages.Package: name, pinned version, why
    warnings: tuple[str, ...] = ()
    channel: str = "the bundled snapshot"  # where the package versions were checked

    @property
    def tasks(self) -> dict[str, Any]:
        """Task name -> DAGTask."""
        return {t.name: t for t in self.dag.tasks}

    @property
    def finalizer(self) -> Any | None:
        """The finalizer DAGTask, if the graph has one."""
        return next((t for t in self.dag.tasks if t._is_finalizer), None)


# ---------------------------------------------------------------- naming


def task_name(name: str) -> str:
    """The task name of a stage or gate: the fixture name, upper-cased (kept unquoted)."""
    return name.upper()


def action_names(gate: Gate) -> dict[str, str]:
    """``{"on_pass": TASK, "on_fail": TASK}`` for the sides that have an action."""
    from pytest_snowpipe.pipeline.gate import action_label

    sides = {s: getattr(gate.spec, s) for s in ("on_pass", "on_fail") if getattr(gate.spec, s) is not None}
    labels = {s: action_label(a).upper() for s, a in sides.items()}
    same = len(set(labels.values())) < len(labels)
    return {
        s: f"{task_name(gate.name)}_{s.upper() + '_' if same else ''}{label}" for s, label in labels.items()
    }


def plugin_import() -> tuple[str, str]:
    """This package as a stored-procedure import of every task (``(directory, import path)``).

    The task bodies are this plugin's runtime, and user stages hold its objects (contracts,
    remote specs): shipping the package lets them import it in Snowflake as they do here.
    """
    return (str(Path(__file__).resolve().parents[1]), "pytest_snowpipe")


def needs_ml(graph: PipelineGraph) -> bool:
    """snowflake-ml-python is shipped when a stage is remote or a gate promotes."""
    return any(s.remote is not None for s in graph.stages) or any_gate(
        (g.spec for g in graph.gates), "ships_ml"
    )


def _needed(graph: PipelineGraph, opts: CompileOptions) -> tuple[dict[str, str], dict[str, str]]:
    """(distribution -> why) the procedures need, and what only remote stages' jobs need."""
    from pytest_snowpipe.taskgraph.packages import needed_by

    local: dict[str, Any] = {}
    remote: dict[str, Any] = {}
    for s in graph.stages:
        (remote if s.remote is not None else local)[task_name(s.name)] = s.func
    for g in graph.gates:
        local[task_name(g.name)] = g.func
        for side, name in action_names(g).items():
            action = getattr(g.spec, side)
            if callable(action):
                local[name] = action
    ml = needs_ml(graph)
    needed = needed_by(local, ml=ml)
    remote_only = {d: why for d, why in needed_by(remote, ml=ml).items() if d not in needed}
    return needed, remote_only


def package_names(graph: PipelineGraph, opts: CompileOptions) -> set[str]:
    """Every distribution the shipped code may declare (inferred and ``snowpipe_packages``): what a deploy
    asks the account's channel about."""
    from pytest_snowpipe.taskgraph.packages import requirement_name

    needed, remote_only = _needed(graph, opts)
    return {*needed, *remote_only, *(requirement_name(r) for r in opts.packages or () if r.strip())}


def infer_packages(graph: PipelineGraph, opts: CompileOptions) -> Any:
    """The packages the shipped code needs, pinned (a taskgraph.packages.Resolution); raises PackageError."""
    from pytest_snowpipe.taskgraph.packages import resolve

    needed, remote_only = _needed(graph, opts)
    return resolve({**needed, **remote_only}, channel=opts.channel, user=opts.packages or (), soft=remote_only)


def qualify_stage(location: str, database: str | None, schema: str | None) -> str:
    """``@ST/path`` -> ``@DB.SCH.ST/path`` when the graph's database and schema are set (else as given).

    Tasks are created in DB.SCH; an unqualified stage would resolve against the session's schema.
    A name qualified with a schema only (``@SCH.ST``) gets the database.
    """
    if not database or not location.startswith("@") or location.startswith("@~") or location.startswith("@%"):
        return location
    name, sep, path = location[1:].partition("/")
    parts = re.findall(r'"(?:[^"]|"")+"|[^.]+', name)
    if len(parts) == 1 and schema:
        name = f"{database}.{schema}.{name}"
    elif len(parts) == 2:
        name = f"{database}.{name}"
    return f"@{name}{sep}{path}"


# ---------------------------------------------------------------- teardown (yield stages)


def _function_node(func: Any) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, str, int]:
    raw = inspect.unwrap(func)
    source = textwrap.dedent(inspect.getsource(raw))
    tree = ast.parse(source)
    node = next(n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return node, raw.__code__.co_filename, raw.__code__.co_firstlineno


def _is_yield_stmt(stmt: ast.stmt) -> bool:
    value = getattr(stmt, "value", None)
    return isinstance(stmt, (ast.Expr, ast.Assign, ast.AnnAssign)) and isinstance(value, ast.Yield)


def _yields(node: ast.AST) -> list[ast.AST]:
    out: list[ast.AST] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(child, (ast.Yield, ast.YieldFrom)):
            out.append(child)
        out.extend(_yields(child))
    return out


def teardown_of(stage: Stage) -> Any:
    """The teardown of a yield stage as a function of the fixture's locals (a runtime.Teardown).

    Raises ValueError naming the stage when the yield is not one top-level statement: only then
    can the setup half run alone in one task and the teardown half in the finalizer.
    """
    from pytest_snowpipe.taskgraph.runtime import Teardown

    rule = (
        f"stage {stage.name!r} ({stage.location}): a yield fixture compiles into a Task Graph only "
        "when its single `yield` is a top-level statement of the function body (not inside "
        "try/with/if/for); move the yield out, or put the cleanup in a separate fixture"
    )
    try:
        node, filename, first = _function_node(stage.func)
    except (OSError, TypeError, SyntaxError, StopIteration) as exc:
        raise ValueError(f"stage {stage.name!r}: its source is unavailable ({exc}); {rule}") from None
    yields = _yields(node)
    index = next((i for i, s in enumerate(node.body) if _is_yield_stmt(s)), None)
    if index is None or len(yields) != 1:
        raise ValueError(rule)
    before, after = node.body[:index + 1], node.body[index + 1:]
    args = node.args
    params = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    for stmt in before:
        for sub in ast.walk(stmt):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store) and sub.id not in params:
                params.append(sub.id)
    body = after or [ast.Pass()]
    since_312: dict[str, Any] = {"type_params": []} if sys.version_info >= (3, 12) else {}  # required from 3.12
    fn = ast.FunctionDef(
        name=f"teardown_{stage.name}",
        args=ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[ast.arg(arg=p) for p in params],
                           kw_defaults=[None] * len(params), kwarg=None, defaults=[]),
        body=body, decorator_list=[], returns=None, **since_312,
    )
    module = ast.Module(body=[fn], type_ignores=[])
    ast.fix_missing_locations(module)
    ast.increment_lineno(module, first - 1)
    code = compile(module, filename, "exec")
    fcode = next(c for c in code.co_consts if isinstance(c, types.CodeType))
    raw = inspect.unwrap(stage.func)
    func = types.FunctionType(fcode, raw.__globals__, fn.name)
    func.__module__ = raw.__module__
    func.__qualname__ = f"{raw.__qualname__}.<teardown>"
    return Teardown(stage=stage.name, func=func, params=tuple(params))


# ---------------------------------------------------------------- validation


def _cycle(graph: PipelineGraph) -> list[str]:
    names = [s.name for s in graph.stages]
    indeg = {s.name: len([p for p in s.predecessors if p in names]) for s in graph.stages}
    children: dict[str, list[str]] = {n: [] for n in names}
    for s in graph.stages:
        for p in s.predecessors:
            if p in children:
                children[p].append(s.name)
    ready = [n for n in names if indeg[n] == 0]
    seen = 0
    while ready:
        n = ready.pop()
        seen += 1
        for c in children[n]:
            indeg[c] -= 1
            if indeg[c] == 0:
                ready.append(c)
    if seen == len(names):
        return []
    from pytest_snowpipe.pipeline.graph import cycle_members  # only the stages on a cycle, not those after it

    preds = {s.name: s.predecessors for s in graph.stages}
    return cycle_members(names, lambda n: preds[n])


STAGE_ENVIRONMENT = frozenset({"snowpipe_session", "snowpipe_config", "snowpipe_run", "snowpipe_registry"})
GATE_ENVIRONMENT = frozenset({"snowpipe_session", "snowpipe_config", "snowpipe_champion", "snowpipe_run"})


def validate(graph: PipelineGraph, opts: CompileOptions) -> list[str]:
    """Every reason the graph cannot ship, before anything is created: one check per rule."""
    return [
        *_check_graph_options(opts),
        *_check_task_names(graph, opts.dag_name),
        *_check_edges(graph),
        *_check_environment(graph),
        *_check_actions(graph),
        *_check_acyclic(graph),
        *_check_teardowns(graph),
    ]


def _check_graph_options(opts: CompileOptions) -> list[str]:
    """The graph's name, its config (no secrets, only the value types a Task Graph config holds), its schedule."""
    problems: list[str] = []
    if not IDENTIFIER.match(opts.dag_name or ""):
        problems.append(f"task graph name {opts.dag_name!r} is not an unquoted Snowflake identifier ({IDENTIFIER.pattern})")
    for key, value in dict(opts.config).items():
        if isinstance(key, str) and is_shipped_secret_name(key):  # one rule with the settings' (model_key passes)
            problems.append(
                f"config key {key!r} looks like a secret; a Task Graph config is shown to anyone who can "
                "DESCRIBE the task and is written into the plan: keep secrets out of snowpipe_config (read "
                "them inside the stage from a Snowflake SECRET or the environment), or rename the key"
            )
        if not isinstance(key, str) or not isinstance(value, CONFIG_TYPES):
            problems.append(
                f"config key {key!r}: a Task Graph config value must be str, int, float or bool, "
                f"not {type(value).__name__}"
            )
    if isinstance(opts.schedule, timedelta) and not MIN_INTERVAL <= opts.schedule <= MAX_INTERVAL:
        problems.append(f"schedule {opts.schedule}: a Task Graph interval must be between 10 seconds and 8 days")
    return problems


def _named_tasks(graph: PipelineGraph) -> list[tuple[str, str]]:
    """(task name, what it is) of every task but the root."""
    named = [(task_name(s.name), f"stage {s.name!r}") for s in graph.stages]
    for g in graph.gates:
        named.append((task_name(g.name), f"gate {g.name!r}"))
        named.extend((name, f"gate {g.name!r} {side} action") for side, name in action_names(g).items())
    if graph.stages:
        named.append((FINALIZER_NAME, "the finalizer"))
    return named


def _check_task_names(graph: PipelineGraph, dag: str) -> list[str]:
    """Each task name a valid identifier, short enough, unique ignoring case; at most MAX_TASKS tasks."""
    problems: list[str] = []
    named = _named_tasks(graph)
    seen: dict[str, str] = {}
    for name, what in named:
        if not IDENTIFIER.match(name):
            problems.append(
                f"{what}: task name {name!r} is not an unquoted Snowflake identifier "
                f"(letters, digits, _ and $, not starting with a digit); rename it"
            )
        elif len(f"{dag}${name}") > MAX_NAME:
            problems.append(f"{what}: task name {dag}${name} is longer than {MAX_NAME} characters; shorten it")
        if name.upper() in seen:
            problems.append(
                f"{what} and {seen[name.upper()]} both become task {name.upper()} (Snowflake identifiers are "
                "case-insensitive); rename one"
            )
        else:
            seen[name.upper()] = what
    total = 1 + len(named)
    if total > MAX_TASKS:
        problems.append(
            f"the Task Graph would have {total} tasks (root, {len(graph.stages)} stages, gates, actions and "
            f"finalizer); Snowflake allows at most {MAX_TASKS}: merge stages or split the suite"
        )
    return problems


def _check_edges(graph: PipelineGraph) -> list[str]:
    """Predecessors that exist; at most MAX_EDGES predecessors and children per task and under the root."""
    problems: list[str] = []
    stage_names = {s.name for s in graph.stages}
    for s in graph.stages:
        missing = [p for p in s.predecessors if p not in stage_names]
        if missing:
            problems.append(f"stage {s.name!r}: predecessor(s) {', '.join(missing)} are not stages of the graph")
        if len(s.predecessors) > MAX_EDGES:
            problems.append(
                f"stage {s.name!r} has {len(s.predecessors)} predecessors; a task may have at most {MAX_EDGES}: "
                "combine inputs into an intermediate stage"
            )
    for g in graph.gates:
        missing = [r for r in g.reads if r not in stage_names]
        if missing:
            problems.append(f"gate {g.name!r} reads {', '.join(missing)}, which are not stages of the graph")
        if len(g.reads) > MAX_EDGES:
            problems.append(f"gate {g.name!r} has {len(g.reads)} predecessors; a task may have at most {MAX_EDGES}")
    inputs = [s.predecessors for s in graph.stages] + [g.reads for g in graph.gates]
    children = Counter(r for reads in inputs for r in reads if r in stage_names)
    for name, count in children.items():
        if count > MAX_EDGES:
            problems.append(
                f"stage {name!r} has {count} children; a task may have at most {MAX_EDGES}: "
                "fan out through intermediate stages"
            )
    sources = sum(1 for reads in inputs if not reads)
    if sources > MAX_EDGES:
        problems.append(
            f"{sources} stages have no predecessor; dagv1 hangs each off the root, which may have at most "
            f"{MAX_EDGES} children: join source stages under fewer roots"
        )
    return problems


def _check_environment(graph: PipelineGraph) -> list[str]:
    """Only the fixtures a task can be given (session, config, run, registry; a gate's champion)."""
    problems: list[str] = []
    for s in graph.stages:
        extra = set(s.environment) - STAGE_ENVIRONMENT
        if extra:
            problems.append(f"stage {s.name!r} requests {', '.join(sorted(extra))}, unavailable in a Task Graph task")
        if s.remote is not None and s.is_yield:
            problems.append(f"stage {s.name!r}: a remote stage cannot be a yield fixture")
    for g in graph.gates:
        unknown = set(g.environment) - GATE_ENVIRONMENT
        if unknown:
            problems.append(f"gate {g.name!r} requests {', '.join(sorted(unknown))}, unavailable in a Task Graph task")
        if "snowpipe_champion" in g.environment and not g.model_name:
            problems.append(f"gate {g.name!r} requests snowpipe_champion but names no model: add model_name=... to its marker")
    return problems


def _check_actions(graph: PipelineGraph) -> list[str]:
    """Each gate side names a built-in action (with what it needs) or a function."""
    problems: list[str] = []
    stage_names = {s.name for s in graph.stages}
    for g in graph.gates:
        for side in ("on_pass", "on_fail"):
            action = getattr(g.spec, side)
            if isinstance(action, str) and builtin(action) is None:
                problems.append(
                    f"gate {g.name!r}: {side}={action!r} names no action task (built-ins: "
                    f"{', '.join(NAMES)}; or pass a function taking an ActionContext)"
                )
            elif action is not None and not isinstance(action, str) and not callable(action):
                problems.append(f"gate {g.name!r}: {side}={action!r} is neither an action name nor callable")
            needs_model = (b := builtin(action)) is not None and b.needs_model
            if needs_model and (g.model_stage is None or g.model_stage not in stage_names):
                problems.append(
                    f"gate {g.name!r}: {side}={action!r} needs a model stage (snowpipe_gate(model=...)); "
                    f"{g.model_stage!r} is not a stage"
                )
    return problems


def _check_acyclic(graph: PipelineGraph) -> list[str]:
    cyclic = _cycle(graph)
    return [f"stages {', '.join(cyclic)} form a cycle; a Task Graph is acyclic: break it"] if cyclic else []


def _check_teardowns(graph: PipelineGraph) -> list[str]:
    """A yield stage's teardown can run in the finalizer (see :func:`teardown_of`)."""
    problems: list[str] = []
    for s in graph.stages:
        if s.is_yield:
            try:
                teardown_of(s)
            except ValueError as exc:
                problems.append(str(exc))
    return problems


# ---------------------------------------------------------------- pickling


@contextlib.contextmanager
def pickle_by_value(graph: PipelineGraph) -> Iterator[None]:
    """Register the user's project modules for pickling by value.

    dagv1 cloudpickles each task function into an anonymous stored procedure; the user's
    test modules are not importable in Snowflake (this plugin is: see :func:`plugin_import`).
    Used by the compile check and around the real deploy.
    """
    from pytest_snowpipe.engines.job_process import modules_pickled_by_value, project_modules

    funcs = [inspect.unwrap(s.func) for s in graph.stages] + [g.func for g in graph.gates]
    funcs += [a for g in graph.gates for a in (g.spec.on_pass, g.spec.on_fail) if callable(a)]
    modules: dict[str, Any] = {}
    if funcs:
        for mod in project_modules(funcs[0]):
            modules.setdefault(mod.__name__, mod)
    for f in funcs:
        mod = sys.modules.get(getattr(f, "__module__", "") or "")
        if mod is not None and not mod.__name__.startswith(("pytest_snowpipe", "_pytest", "pytest")):
            modules.setdefault(mod.__name__, mod)
    with modules_pickled_by_value(modules.values()):
        yield


def _pickle_problems(graph: PipelineGraph, bodies: Mapping[str, Any], functions: Mapping[str, Any]) -> list[str]:
    """One dumps of all bodies (fast path); on failure, per task to name each culprit."""
    import cloudpickle

    with pickle_by_value(graph):
        try:
            cloudpickle.dumps(list(functions.values()))
            return []
        except Exception:
            pass
        problems = []
        for name, fn in functions.items():
            try:
                cloudpickle.dumps(fn)
            except Exception as exc:
                problems.append(
                    f"task {name}: its body cannot be pickled into a stored procedure "
                    f"({type(exc).__name__}: {exc}); the stage/gate function must not capture locks, "
                    "open files, sessions or other live objects (module globals included)"
                )
        return problems


def _from_pytest(value: Any) -> bool:
    items = value if isinstance(value, list | tuple) else [value]
    return any(type(v).__module__.split(".")[0] in ("_pytest", "pytest") for v in items)


def _rewritten(code: types.CodeType) -> bool:
    """pytest's assertion rewriting calls ``_pytest.assertion.rewrite`` through the module global ``@pytest_ar``."""
    return "@pytest_ar" in code.co_names or any(_rewritten(c) for c in code.co_consts if isinstance(c, types.CodeType))


def _plain_code(func: types.FunctionType) -> types.CodeType:
    """``func``'s code compiled from its source as Python compiles it, without pytest's assertion rewriting."""
    node, filename, first = _function_node(func)
    node.decorator_list = []  # already applied; only the body's code is wanted
    module = ast.Module(body=[node], type_ignores=[])
    ast.increment_lineno(module, first - 1)
    code = compile(module, filename, "exec")
    return next(c for c in code.co_consts if isinstance(c, types.CodeType) and c.co_name == func.__name__)


def shippable(func: Any) -> Any:
    """``func`` as a task can unpickle it without pytest (which a procedure neither has nor needs).

    A task pickles its function by value, with its ``__dict__`` and the globals its code reads.
    Two things pytest did to a test or conftest function would then need ``_pytest`` in
    Snowflake (``No module named '_pytest'``): the attributes it hung on it (``pytestmark``),
    dropped here, and its assertion rewriting (the code reads the global ``@pytest_ar``), undone
    here by compiling the function's source again. A nested function that was rewritten keeps
    its code (its closure cannot be rebuilt from source); the rehearsal names the import then.
    """
    if not isinstance(func, types.FunctionType):
        return func
    foreign = {k for k, v in vars(func).items() if _from_pytest(v)}
    code = func.__code__
    if _rewritten(code) and not code.co_freevars:
        with contextlib.suppress(OSError, TypeError, SyntaxError, StopIteration):
            code = _plain_code(func)
    if not foreign and code is func.__code__:
        return func
    copy = types.FunctionType(code, func.__globals__, func.__name__, func.__defaults__, func.__closure__)
    copy.__kwdefaults__ = func.__kwdefaults__
    copy.__qualname__, copy.__module__, copy.__doc__ = func.__qualname__, func.__module__, func.__doc__
    copy.__annotations__ = dict(func.__annotations__)
    copy.__dict__.update({k: v for k, v in vars(func).items() if k not in foreign})
    return copy


def shippable_graph(graph: PipelineGraph) -> PipelineGraph:
    """``graph`` with :func:`shippable` functions: action tasks carry the graph (the promote's lineage)."""
    import dataclasses

    gates = tuple(
        dataclasses.replace(
            g, func=shippable(g.func),
            spec=dataclasses.replace(g.spec, on_pass=shippable(g.spec.on_pass), on_fail=shippable(g.spec.on_fail)),
        )
        for g in graph.gates
    )
    return PipelineGraph(stages=tuple(dataclasses.replace(s, func=shippable(s.func)) for s in graph.stages), gates=gates)


# ---------------------------------------------------------------- compile


def _output_location(stage: Stage, opts: CompileOptions) -> str | None:
    """The stage path for ``stage``'s files from ``opts.artifact_location``, checked."""
    if opts.artifact_location is None:
        return None
    where = opts.artifact_location(stage)
    if where is None:
        return None
    if not isinstance(where, str) or not where.startswith("@") or len(where) < 2:
        raise CompileError(
            [f"stage {stage.name!r}: the artifact location {where!r} is not a stage path; "
             "return one such as '@DB.SCHEMA.STAGE/path' (or None for the default)"]
        )
    return where


def compile_graph(graph: PipelineGraph, opts: CompileOptions | None = None) -> CompiledPipeline:
    """Build the dagv1 DAG of ``graph``; raise CompileError listing every problem."""
    opts = opts or CompileOptions()
    problems = validate(graph, opts)
    if problems:
        raise CompileError(problems)
    graph = shippable_graph(graph)

    from snowflake.core.task.dagv1 import DAG, DAGTask, DAGTaskBranch

    from pytest_snowpipe.taskgraph import runtime as rt
    from pytest_snowpipe.taskgraph.ml_job_task import MLJobTask, job_function

    env = rt.RunEnv(
        dag=opts.dag_name,
        stage_location=opts.stage_location,
        registry_path=opts.registry_path,
        notification_integration=opts.notification_integration,
        keep_outputs=opts.keep_outputs,
    )
    from pytest_snowpipe.taskgraph.packages import PackageError

    try:
        resolution = infer_packages(graph, opts)
    except PackageError as exc:
        raise CompileError(exc.problems) from None
    packages: list[Any] = resolution.specs
    job_packages = (*packages, *sorted(resolution.job_only))
    dag = DAG(
        opts.dag_name,
        imports=[plugin_import()],
        schedule=opts.schedule,
        warehouse=opts.warehouse,
        stage_location=opts.stage_location,
        packages=packages,
        config=dict(opts.config) or None,
        use_func_return_value=True,
    )
    kinds: dict[str, str] = {}
    bodies: dict[str, Any] = {}
    functions: dict[str, Any] = {}
    tasks: dict[str, Any] = {}

    nodes: dict[str, Stage | Gate | None] = {}

    def add(spec: Any, kind: str, node: Stage | Gate | None, cls: Any = DAGTask, **kw: Any) -> Any:
        fn: Callable[..., Any]
        if kind == KIND_REMOTE:  # the seed's shape: the task's definition is the ML Job itself
            fn = job_function(spec)
            definition: Any = MLJobTask(spec, opts.dag_name, job_packages, (plugin_import(),))
        else:
            fn = definition = rt.task_function(spec)
        task = cls(spec.task, definition, dag=dag, **kw)
        kinds[spec.task], bodies[spec.task], functions[spec.task] = kind, spec, fn
        nodes[spec.task] = node
        return task

    def inputs(reads: tuple[str, ...]) -> tuple[Any, ...]:
        return tuple(rt.Input(param=r, stage=r, task=task_name(r)) for r in reads)

    for s in graph.stages:
        spec = rt.StageSpec(
            env=env, name=s.name, task=task_name(s.name), func=s.func,
            inputs=inputs(s.predecessors), environment=s.environment, is_yield=s.is_yield, remote=s.remote,
            output_location=_output_location(s, opts),
        )
        tasks[s.name] = add(spec, KIND_REMOTE if s.remote is not None else KIND_STAGE, s)
        for p in s.predecessors:
            tasks[s.name].add_predecessors(tasks[p])
    for g in graph.gates:
        names = action_names(g)
        gspec = rt.GateSpec(
            env=env, name=g.name, task=task_name(g.name), func=g.func, inputs=inputs(g.reads),
            environment=g.environment, on_pass=names.get("on_pass", rt.NO_ACTION),
            on_fail=names.get("on_fail", rt.NO_ACTION), model_name=g.model_name,
        )
        branch = add(gspec, KIND_BRANCH, g, DAGTaskBranch)
        for r in g.reads:
            branch.add_predecessors(tasks[r])
        for side, name in names.items():
            aspec = rt.ActionSpec(
                env=env, task=name, gate=g, graph=graph, verdict="PASS" if side == "on_pass" else "FAIL",
                action=getattr(g.spec, side),
            )
            add(aspec, KIND_ACTION, g).add_predecessors(branch)
    if graph.stages:
        fspec = rt.FinalizerSpec(
            env=env, task=FINALIZER_NAME,
            teardowns=tuple(teardown_of(s) for s in reversed(graph.stages) if s.is_yield),
            stages=tuple(s.name for s in graph.stages),
        )
        add(fspec, KIND_FINALIZER, None, is_finalizer=True)
    if opts.adjust_task is not None:
        for task in dag.tasks:
            opts.adjust_task(task, kinds[task.name], nodes[task.name])
    stamp_digests(dag, bodies)  # each task's COMMENT: a digest of what it ships, for the next deploy's diff
    stamp_monitors(dag, graph, opts.database, opts.schema)  # and of the monitors its output deploys

    compiled = CompiledPipeline(
        dag=dag, kinds=kinds, graph=graph, options=opts, bodies=bodies,
        packages=tuple(resolution.packages), warnings=tuple(resolution.warnings), channel=resolution.channel,
    )
    late = _pickle_problems(graph, bodies, functions) if opts.check_pickle else []
    try:
        from pytest_snowpipe.taskgraph.plan import format_plan

        format_plan(compiled)
    except Exception as exc:
        late.append(f"the dry-run plan cannot be produced: {type(exc).__name__}: {exc}")
    if late:
        raise CompileError(late)
    return compiled


__all__ = [
    "FINALIZER_NAME",
    "CompileError",
    "CompileOptions",
    "CompiledPipeline",
    "action_names",
    "compile_graph",
    "infer_packages",
    "package_names",
    "pickle_by_value",
    "plugin_import",
    "qualify_stage",
    "shippable",
    "task_name",
    "teardown_of",
    "validate",
]
