"""What a stage's output depends on, read from its code: project-local callees and config keys.

A stage's content key must change when anything that can change its output changes. Its
own source is not enough: the mortgage ``model`` stage is one line, ``pipeline.train(split)``,
and the training code lives in ``mortgage_pipeline.py``. So we walk the function's AST and
resolve every global name (and attribute chains on modules, ``pipeline.train``) through the
function's ``__globals__`` and closure; functions and classes defined in the project (under
the rootdir, outside site-packages, the standard library and this plugin) are hashed by
source and walked in turn; plain-data constants they read (``LOAN_TYPES = [...]``) are hashed
by value. Library code is not followed: upgrading a library does not invalidate the cache
(``--snowpipe-cache-clear`` does).

Config reads are found statically on the stage's ``snowpipe_config`` parameter:
``cfg["key"]``, ``cfg.get("key", ...)`` and ``"key" in cfg``, also inside project-local
helpers that receive the config as an argument. Any other use (iterating it, ``**cfg``,
passing it to library code, a computed key) makes the reads unknowable, and the stage then
depends on the whole config (``config_keys`` is ``None``).
"""
from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import inspect
import sysconfig
import textwrap
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PLUGIN_DIR = Path(__file__).resolve().parents[1]  # the whole pytest_snowpipe package
_LIBRARY_DIRS = tuple(
    Path(p).resolve()
    for p in {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    if p
)
_MAX_PLAIN_NODES = 20_000  # constants larger than this are hashed by type name only
_MAX_FUNCTIONS = 500  # a bound on the walk (a huge project-local call graph)


@dataclass(frozen=True)
class CodeDeps:
    """What the analysis found for one function."""

    calls: tuple[str, ...]  # project-local functions/classes the stage reaches, "module.qualname"
    digest: str  # hash of their sources and of the constants they read
    config_keys: tuple[str, ...] | None  # None: the whole config (reads could not be seen)
    run_fields: tuple[str, ...] | None = ()  # snowpipe_run fields read; None: all of them


def is_project_file(path: str | None, root: Path) -> bool:
    """True for a source file of the user's project (under ``root``, not a library or this plugin)."""
    if not path or path.startswith("<"):
        return False
    try:
        resolved = Path(path).resolve()
    except OSError:
        return False
    if "site-packages" in resolved.parts or "dist-packages" in resolved.parts:
        return False
    if resolved.is_relative_to(_PLUGIN_DIR):
        return False
    if any(resolved.is_relative_to(lib) for lib in _LIBRARY_DIRS):
        return False
    return resolved.is_relative_to(root)


def _source_file(obj: Any) -> str | None:
    try:
        return inspect.getsourcefile(obj)
    except TypeError:
        return None


@functools.lru_cache(maxsize=4096)
def _parents(node: ast.AST) -> dict[int, ast.AST]:
    """Each node's parent (by id): how a read such as ``config["k"]`` is seen from its name."""
    parents: dict[int, ast.AST] = {}
    for parent in ast.walk(node):
        for child in ast.iter_child_nodes(parent):
            parents[id(child)] = parent
    return parents


def _parse(func: Callable[..., Any]) -> ast.AST | None:
    """The function's own AST node (decorators included), or None without source."""
    try:
        text = textwrap.dedent(inspect.getsource(func))
        tree = ast.parse(text)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return node
    return tree


def _source_text(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        return repr(code.co_code) if code is not None else f"<{type(obj).__name__}>"


def _plain(value: Any, budget: list[int]) -> bool:
    """True for plain data (what a module-level constant usually is), within a size budget."""
    budget[0] -= 1
    if budget[0] < 0:
        return False
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(_plain(v, budget) for v in value)
    if isinstance(value, dict):
        return all(_plain(k, budget) and _plain(v, budget) for k, v in value.items())
    return False


def _constant_text(value: Any) -> str:
    if _plain(value, [_MAX_PLAIN_NODES]):
        if isinstance(value, (set, frozenset)):
            return f"{type(value).__name__}({sorted(map(repr, value))})"
        return repr(value)
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def _attribute_chain(node: ast.AST) -> list[str] | None:
    """``a.b.c`` -> ["a", "b", "c"]; None when the chain does not start at a name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return None


def _namespace(func: Any) -> dict[str, Any]:
    """The names a function's body can see: its globals, overlaid with its closure."""
    ns = dict(getattr(func, "__globals__", {}) or {})
    code = getattr(func, "__code__", None)
    closure = getattr(func, "__closure__", None) or ()
    if code is not None:
        for name, cell in zip(code.co_freevars, closure, strict=False):
            try:
                ns[name] = cell.cell_contents
            except ValueError:  # an empty cell
                continue
    return ns


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _outside_names(func: Any) -> set[str]:
    """Names the function's code reads from outside itself (globals, closure), not its locals."""
    code = getattr(func, "__code__", None)
    if code is None:
        return set()
    loaded: set[str] = set()
    local: set[str] = set()
    for co in _code_objects(code):
        loaded.update(co.co_names, co.co_freevars)
        local.update(co.co_varnames, co.co_cellvars)
    return loaded - local


def _body(node: ast.AST) -> list[ast.AST]:
    """What runs when the function runs: its body and default values, not its decorators."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return [*node.body, node.args]
    return [node]


class _Walker:
    """Walks the project-local call graph from one stage function."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seen: dict[int, str] = {}  # id(obj) -> label, in discovery order
        self.objects: list[Any] = []  # the functions and classes reached, in discovery order
        self.parts: list[str] = []
        self.consts: dict[str, str] = {}

    def _label(self, obj: Any) -> str:
        module = getattr(obj, "__module__", None) or "?"
        return f"{module}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"

    def local(self, obj: Any) -> bool:
        target = inspect.unwrap(obj) if callable(obj) else obj
        return is_project_file(_source_file(target), self.root)

    def visit_function(self, func: Any, include_source: bool = True) -> None:
        func = inspect.unwrap(func)
        if id(func) in self.seen or len(self.seen) >= _MAX_FUNCTIONS:
            return
        self.seen[id(func)] = self._label(func)
        self.objects.append(func)
        if include_source:
            self.parts.append(f"{self._label(func)}\n{_source_text(func)}")
        node = _parse(func)
        if node is None:
            return
        ns = _namespace(func)
        outside = _outside_names(func)
        for part in _body(node):
            for chain in self._chains(part):
                if chain[0] in outside:
                    self.resolve(chain, ns)

    def visit_class(self, cls: type) -> None:
        if id(cls) in self.seen or len(self.seen) >= _MAX_FUNCTIONS:
            return
        self.seen[id(cls)] = self._label(cls)
        self.objects.append(cls)
        self.parts.append(f"{self._label(cls)}\n{_source_text(cls)}")
        for member in vars(cls).values():
            inner = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
            if isinstance(inner, types.FunctionType):
                self.visit_function(inner, include_source=False)  # already in the class source

    @staticmethod
    def _chains(node: ast.AST) -> Iterator[list[str]]:
        """Every maximal ``name.attr.attr`` chain read in the node."""
        inner: set[int] = set()
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute):
                inner.add(id(sub.value))
        for sub in ast.walk(node):
            if id(sub) in inner:
                continue
            if isinstance(sub, (ast.Attribute, ast.Name)):
                chain = _attribute_chain(sub)
                if chain:
                    yield chain

    def resolve(self, chain: list[str], ns: dict[str, Any]) -> None:
        head = chain[0]
        if head not in ns:
            return  # a local variable, a parameter or a builtin
        obj = ns[head]
        path = head
        for attr in chain[1:]:
            if not isinstance(obj, types.ModuleType):
                break
            if not is_project_file(getattr(obj, "__file__", None), self.root):
                return  # library module: attributes of it are library code
            if not hasattr(obj, attr):
                return
            obj = getattr(obj, attr)
            path = f"{path}.{attr}"
        self.visit_object(path, obj)

    def visit_object(self, path: str, obj: Any) -> None:
        if isinstance(obj, types.ModuleType) or obj is getattr(builtins, path, object()):
            return
        if isinstance(obj, type):
            if self.local(obj):
                self.visit_class(obj)
            return
        if isinstance(obj, functools.partial):
            self.visit_object(path, obj.func)
            self.consts[path] = _constant_text((obj.args, obj.keywords))
            return
        if isinstance(obj, types.FunctionType) or (callable(obj) and hasattr(obj, "__wrapped__")):
            if self.local(obj):
                self.visit_function(obj)
            return
        if isinstance(obj, (types.BuiltinFunctionType, types.MethodType, types.MethodWrapperType)):
            return
        if self.local(type(obj)):  # an instance of a project class: its class is code
            self.visit_class(type(obj))
        if not callable(obj):
            self.consts[path] = _constant_text(obj)

    def digest(self) -> str:
        h = hashlib.sha256()
        for part in self.parts:
            h.update(part.encode())
            h.update(b"\0")
        for name in sorted(self.consts):
            h.update(f"{name}={self.consts[name]}\0".encode())
        return h.hexdigest()[:16]


class _ConfigReads:
    """Static reads of a config parameter: subscripts, .get, membership, hand-offs to helpers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.keys: set[str] = set()
        self.opaque = False
        self.seen: set[tuple[int, str]] = set()

    def visit(self, func: Any, param: str) -> None:
        func = inspect.unwrap(func)
        if (id(func), param) in self.seen or self.opaque:
            return
        self.seen.add((id(func), param))
        node = _parse(func)
        if node is None:
            self.opaque = True
            return
        parents = _parents(node)
        ns = _namespace(func)
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and sub.id == param and isinstance(sub.ctx, ast.Load):
                self._use(sub, parents, ns)
            if self.opaque:
                return

    def _use(self, name: ast.expr, parents: dict[int, ast.AST], ns: dict[str, Any]) -> None:
        parent = parents.get(id(name))
        if isinstance(parent, ast.Subscript) and parent.value is name:
            key = parent.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                self.keys.add(key.value)
                return
        if isinstance(parent, ast.Attribute) and parent.value is name and parent.attr == "get":
            call = parents.get(id(parent))
            if isinstance(call, ast.Call) and call.func is parent and call.args:
                first = call.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    self.keys.add(first.value)
                    return
        if (
            isinstance(parent, ast.Compare)
            and name in parent.comparators
            and isinstance(parent.left, ast.Constant)
            and isinstance(parent.left.value, str)
            and all(isinstance(op, (ast.In, ast.NotIn)) for op in parent.ops)
        ):
            self.keys.add(parent.left.value)
            return
        if isinstance(parent, (ast.Call, ast.keyword)):
            call = parents.get(id(parent)) if isinstance(parent, ast.keyword) else parent
            if isinstance(call, ast.Call) and self._hand_off(call, name, ns):
                return
        self.opaque = True

    def _hand_off(self, call: ast.Call, name: ast.expr, ns: dict[str, Any]) -> bool:
        """The config is passed to a project-local function: follow it into that parameter."""
        chain = _attribute_chain(call.func)
        if chain is None or chain[0] not in ns:
            return False
        target: Any = ns[chain[0]]
        for attr in chain[1:]:
            if not isinstance(target, types.ModuleType) or not hasattr(target, attr):
                return False
            target = getattr(target, attr)
        target = inspect.unwrap(target) if callable(target) else target
        if not isinstance(target, types.FunctionType) or not is_project_file(_source_file(target), self.root):
            return False
        try:
            params = list(inspect.signature(target).parameters.values())
        except (TypeError, ValueError):
            return False
        for index, arg in enumerate(call.args):
            if arg is name:
                if index >= len(params) or params[index].kind not in (
                    inspect.Parameter.POSITIONAL_ONLY,
                    inspect.Parameter.POSITIONAL_OR_KEYWORD,
                ):
                    return False
                self.visit(target, params[index].name)
                return True
        for kw in call.keywords:
            if kw.value is name and kw.arg is not None and kw.arg in {p.name for p in params}:
                self.visit(target, kw.arg)
                return True
        return False


class _RunReads:
    """Static reads of a ``snowpipe_run`` parameter: ``run.target``, ``run.run_id``, ``run.config["k"]``.

    ``run.config`` is followed like a config parameter (its keys join the stage's config keys);
    any other use of the parameter (passing it on, ``vars(run)``) means every field is read.
    """

    FIELDS = ("run_id", "scheduled", "target", "config")

    def __init__(self, config: _ConfigReads) -> None:
        self.fields: set[str] = set()
        self.opaque = False
        self.config = config

    def visit(self, func: Any, param: str) -> None:
        node = _parse(inspect.unwrap(func))
        if node is None:
            self.opaque = True
            return
        parents = _parents(node)
        ns = _namespace(inspect.unwrap(func))
        for sub in ast.walk(node):
            if not (isinstance(sub, ast.Name) and sub.id == param and isinstance(sub.ctx, ast.Load)):
                continue
            up = parents.get(id(sub))
            if isinstance(up, ast.Attribute) and up.value is sub and up.attr in self.FIELDS:
                self.fields.add(up.attr)
                if up.attr == "config":
                    self.config._use(up, parents, ns)
                continue
            self.opaque = True


def analyze(
    func: Callable[..., Any], root: Path, config_param: str | None = None, run_param: str | None = None
) -> CodeDeps:
    """The project-local code ``func`` reaches and the config keys it reads (see module doc)."""
    walker = _Walker(root.resolve())
    walker.visit_function(func, include_source=False)  # its own source is hashed by the graph
    inner = inspect.unwrap(func)
    calls = tuple(label for key, label in walker.seen.items() if key != id(inner))
    keys: tuple[str, ...] | None = ()
    reads = _ConfigReads(root.resolve())
    if config_param is not None:
        reads.visit(func, config_param)
    fields: tuple[str, ...] | None = ()
    if run_param is not None:
        run_reads = _RunReads(reads)
        run_reads.visit(func, run_param)
        fields = None if run_reads.opaque else tuple(sorted(run_reads.fields))
        if run_reads.opaque:
            reads.opaque = True  # every field: the config too
    if config_param is not None or run_param is not None:
        keys = None if reads.opaque else tuple(sorted(reads.keys))
    return CodeDeps(calls=calls, digest=walker.digest(), config_keys=keys, run_fields=fields)



def reached_code(func: Callable[..., Any], root: Path) -> list[Any]:
    """``func`` (unwrapped) and every project-local function and class it reaches (see module doc)."""
    walker = _Walker(root.resolve())
    walker.visit_function(func, include_source=False)
    return walker.objects


@dataclass(frozen=True)
class StageDeps:
    """Everything beyond a stage's own source that its graph key covers."""

    calls: tuple[str, ...]
    config_keys: tuple[str, ...] | None
    sources: Any  # SourceSpec | None
    digest: str
    run_fields: tuple[str, ...] | None = ()  # snowpipe_run fields read (None: all); their values key the cache


_MISSING = "<missing>"


def _contract_text(contract: Any) -> str:
    """A contract as code (its rules), plus the source of any custom check callables."""
    to_code = getattr(contract, "to_code", None)
    text = to_code() if callable(to_code) else repr(contract)
    for spec in getattr(contract, "columns", {}).values():
        for check in (*getattr(spec, "checks", ()), getattr(spec, "sql_check", None)):
            if check is not None:
                text += "\n" + _source_text(check)
    return text


def stage_dependencies(
    func: Callable[..., Any], argnames: Iterable[str], config: Mapping[str, Any] | None, root: Path
) -> StageDeps:
    """What a stage's key covers besides its own source: project-local code it calls, the
    config values it reads, its contracts (``sp.expect``) and its ``sp.source`` declaration."""
    from pytest_snowpipe.pipeline.checks import expectations_of
    from pytest_snowpipe.pipeline.sources import source_spec

    argnames = tuple(argnames)
    deps = analyze(
        func, root, "snowpipe_config" if "snowpipe_config" in argnames else None,
        "snowpipe_run" if "snowpipe_run" in argnames else None,
    )
    h = hashlib.sha256(deps.digest.encode())
    if deps.run_fields != ():
        h.update(f"run fields={deps.run_fields!r}".encode())
    if config is not None and deps.config_keys != ():
        names = sorted(config) if deps.config_keys is None else deps.config_keys
        h.update(repr([(k, config.get(k, _MISSING)) for k in names]).encode())
    for exp in expectations_of(func):
        h.update(f"expect {exp.label}: {_contract_text(exp.contract)}".encode())
    sources = source_spec(func)
    if sources is not None:
        h.update(sources.describe().encode())
    return StageDeps(deps.calls, deps.config_keys, sources, h.hexdigest()[:16], deps.run_fields)
