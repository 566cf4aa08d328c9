"""Run a compiled ``snowflake.core.task.dagv1.DAG`` locally with Task Graph semantics.

The emulator runs the very DAG object that would be deployed, so what is tested is what ships:
Python tasks run the function their low-level task carries (``DAGTask._to_low_level_task()``
wraps it with dagv1's ``_use_func_return_value`` when ``use_func_return_value=True``), and a
branch's successors run or skip by evaluating the ``condition`` string dagv1 wrote on them.

Semantics (decisions marked *decided* are ours where Snowflake's docs leave it open):

* Order: topological over ``dag.tasks`` / ``DAGTask.predecessors``; a task without predecessors
  hangs off the (dummy, always SUCCEEDED) root, as dagv1 does at deploy. Independent tasks run
  concurrently in a thread pool, all on ONE session of the embedded engine (as Snowflake tasks share an account).
* Task bodies get a session proxy: ``call("system$set_return_value" | "system$get_predecessor_
  return_value" | "SYSTEM$GET_TASK_GRAPH_CONFIG" | "system$current_user_task_name")`` and the
  ``select to_char|to_timestamp(system$task_runtime_info('P'))`` query are answered here for the
  current task; everything else goes to the real session. So the real ``TaskContext(session)``
  works unchanged inside a task.
* Predecessor values: only direct predecessors (the root counts for source tasks); an unknown
  name fails the task. Without a name the task must have exactly one predecessor (*decided*,
  following the TaskContext docstring), otherwise it fails. NULL comes back as ``None`` (and
  ``TaskContext`` turns it into ``'None'``).
* Branches: a condition must be exactly dagv1's form
  ``SYSTEM$GET_PREDECESSOR_RETURN_VALUE('<DAG>$<BRANCH>') = '<name>'``, possibly several joined
  by ``and`` (dagv1 joins them so when a task follows two branches); anything else fails the
  task with an error naming it and the condition. A false condition makes the task SKIPPED.
* Readiness of a task once all its predecessors are final (*decided*): a FAILED or NOT_EXECUTED
  predecessor -> NOT_EXECUTED (``SYSTEM$TASK_COMPLETION_STATE`` wording); all predecessors
  SKIPPED -> SKIPPED; otherwise (at least one SUCCEEDED, none failed) the task's condition is
  evaluated and it runs. So a join after a branch runs on the taken side.
* A failed task makes the graph run FAILED; independent tasks keep running;
  ``first_error_task_name`` is the first task to fail. The finalizer runs after every other
  task, on success and on failure, and its own failure fails the graph run. SKIPPED tasks do
  not fail a run.
* Graph config: ``dag.config`` merged key by key with ``config_overrides`` (EXECUTE TASK ...
  USING CONFIG); values must be str/int/float/bool; tasks read it as JSON text.
* Return values: text of at most 10 kB (10,000 bytes) UTF-8; a larger one fails the task.
* Not emulated: retries (``attempt`` is 1 for a task that ran, 0 otherwise), timeouts, a root
  ``condition`` (rejected), SQL / ML-Job task bodies (give ``runners={name: fn}`` for those).
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import re
import sys
import threading
import time
import traceback as traceback_module
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pytest_snowpipe.doubles.sandbox_worker import TaskTextStream
from pytest_snowpipe.errors import SnowpipeError
from pytest_snowpipe.pipeline.states import TaskState
from pytest_snowpipe.taskgraph.artifacts import RETURN_VALUE_LIMIT_BYTES

if TYPE_CHECKING:  # pragma: no cover
    from snowflake.core.task.context import TaskContext
    from snowflake.core.task.dagv1 import DAG, DAGTask
    from snowflake.snowpark import Session

Runner = Callable[["Session", "TaskContext"], str | None]

# plain strings on the records (they travel as JSON and through execnet), defined once in TaskState
SUCCEEDED, FAILED = str(TaskState.SUCCEEDED), str(TaskState.FAILED)
SKIPPED, NOT_EXECUTED = str(TaskState.SKIPPED), str(TaskState.NOT_EXECUTED)

_CONFIG_TYPES = (str, int, float, bool)

_LITERAL = r"'((?:[^'\\]|''|\\.)*)'"
_CLAUSE_RE = re.compile(
    r"\s*SYSTEM\$GET_PREDECESSOR_RETURN_VALUE\(\s*" + _LITERAL + r"\s*\)\s*=\s*" + _LITERAL + r"\s*",
    re.IGNORECASE | re.DOTALL,
)
_AND_RE = re.compile(r"and\b", re.IGNORECASE)
_RUNTIME_INFO_RE = re.compile(
    r"^\s*select\s+to_(char|timestamp)\(\s*system\$task_runtime_info\(\s*" + _LITERAL + r"\s*\)\s*\)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)


class EmulatorError(SnowpipeError):
    """The graph cannot be emulated at all (cycle, bad config, unknown runner name...)."""


class _TaskFailure(SnowpipeError):
    """A task failed for a reason the emulator itself detected; the message is recorded as is."""


class TaskFailed(_TaskFailure):
    """Raised by an ``executor`` for a task body that failed where it ran: ``message`` is recorded
    as the task's error and ``traceback`` (the body's own, from its interpreter) as its traceback."""

    def __init__(self, message: str, traceback: str | None = None) -> None:
        super().__init__(message)
        self.traceback = traceback


Executor = Callable[["DAGTask", Any], None]


@dataclass
class TaskRun:
    """One task's outcome in an emulated graph run (a TASK_HISTORY row, roughly)."""

    name: str
    state: str
    started: datetime | None = None
    duration_s: float = 0.0
    return_value: str | None = None
    error: str | None = None
    attempt: int = 0
    traceback: str | None = None
    full_name: str = ""
    reason: str | None = None  # why a task was SKIPPED / NOT_EXECUTED
    output: str = ""  # what the task printed (stdout and stderr), at most OUTPUT_LIMIT characters
    output_cut: int = 0  # characters printed beyond OUTPUT_LIMIT, not kept


@dataclass
class RunRecord:
    """The outcome of one emulated graph run (a COMPLETE_TASK_GRAPHS row plus its tasks)."""

    dag_name: str
    state: str
    tasks: dict[str, TaskRun]
    first_error_task_name: str | None
    first_error_message: str | None
    config: dict[str, Any]
    run_group_id: str
    started: datetime
    duration_s: float

    def format(self, width: int | None = 40) -> str:
        """A plain-text table for terminals and failure messages; ``width=None`` keeps values whole (``-v``)."""
        rows = [("task", "state", "duration", "return value", "error")]
        for run in self.tasks.values():
            duration = f"{run.duration_s:.3f}s" if run.attempt else "-"
            value = "" if run.return_value is None else _truncate(run.return_value, width)
            problem = run.error or (f"({run.reason})" if run.reason else "")
            rows.append((run.name, run.state, duration, value, _truncate(problem, None if width is None else 2 * width)))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [
            f"task graph {self.dag_name}: {self.state} in {self.duration_s:.3f}s"
            + (f" (first error: {self.first_error_task_name})" if self.first_error_task_name else "")
        ]
        for i, row in enumerate(rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=False)) + "  " + row[4])
            if i == 0:
                lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 5)
        for run in self.tasks.values():
            if run.output or run.output_cut:
                total = len(run.output) + run.output_cut
                cut = f"; {run.output_cut:,} more characters were cut" if run.output_cut else ""
                lines.append(f"output of task {run.name} ({total:,} characters printed{cut}):")
                lines.extend("  " + line for line in run.output.splitlines())
        for run in self.tasks.values():
            if run.state == "FAILED" and run.traceback:
                tb = run.traceback.rstrip().splitlines()
                shown = tb if width is None else tb[-TRACEBACK_LINES:]
                more = f", its first {len(tb) - len(shown)} lines cut" if len(shown) < len(tb) else ""
                lines.append(f"traceback of task {run.name}{more}:")
                lines.extend("  " + line for line in shown)
        return "\n".join(line.rstrip() for line in lines)

    def to_json(self, failed_gates: list[str] | None = None) -> dict[str, Any]:
        """The run for ``report.json``: every task with its whole return value; ``failed_gates`` are
        the gates whose branch took on_fail (the verdict is theirs, whatever the run's state)."""
        return {
            "dag": self.dag_name,
            "state": self.state,
            "failed_gates": list(failed_gates or []),
            "run_group_id": self.run_group_id,
            "started_at": self.started.isoformat(),
            "duration_s": round(self.duration_s, 3),
            "first_error_task_name": self.first_error_task_name,
            "first_error_message": self.first_error_message,
            "tasks": [
                {"name": r.name, "state": r.state, "duration_s": round(r.duration_s, 3), "return_value": r.return_value,
                 "error": r.error, "reason": r.reason,
                 **({"traceback": r.traceback} if r.state == "FAILED" and r.traceback else {})}
                for r in self.tasks.values()
            ],
        }

TRACEBACK_LINES = 30  # the end of a failed task's traceback shown in the table (all of it with -v / in the report)
OUTPUT_LIMIT = 2000  # characters of a task's printed output kept for the record (a task may print megabytes)


class _Bounded:
    """The first ``OUTPUT_LIMIT`` characters written, and how many more there were."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.kept = 0
        self.cut = 0

    def add(self, text: str) -> None:
        room = OUTPUT_LIMIT - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        self.cut += max(0, len(text) - max(room, 0))


class _TaskStream(TaskTextStream):
    """``sys.stdout``/``sys.stderr`` while a graph is emulated: what a task thread prints goes to
    that task's bounded buffer (its record), what other threads print to the real stream."""

    def __init__(self, real: Any, local: threading.local) -> None:
        super().__init__(real)
        self.local = local

    def write(self, text: str) -> int:
        buffer: _Bounded | None = getattr(self.local, "buffer", None)
        if buffer is None:
            return int(self.real.write(text))
        buffer.add(text)
        return len(text)

    def flush(self) -> None:
        if getattr(self.local, "buffer", None) is None:
            self.real.flush()


_OUTPUT = threading.local()  # .buffer: the running task's _Bounded, in its worker thread


def record_output(text: str, cut: int = 0) -> None:
    """Add what a task printed elsewhere (an executor's interpreter) to the running task's record;
    ``cut``: characters it printed beyond what was sent."""
    buffer: _Bounded | None = getattr(_OUTPUT, "buffer", None)
    if buffer is not None:
        buffer.add(text)
        buffer.cut += cut


@contextlib.contextmanager
def _captured_task_output() -> Any:
    """Route task threads' prints into their records for the duration of one emulated run."""
    real_out, real_err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _TaskStream(real_out, _OUTPUT), _TaskStream(real_err, _OUTPUT)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = real_out, real_err


def _truncate(text: str, width: int | None) -> str:
    text = text.replace("\n", "\\n")
    return text if width is None or len(text) <= width else text[: width - 3] + "..."


def _unquote(literal: str) -> str:
    """Undo dagv1's ``_sql_str`` (backslash escapes, doubled quotes)."""
    return re.sub(r"\\(.)|''", lambda m: m.group(1) if m.group(1) is not None else "'", literal, flags=re.DOTALL)


def parse_branch_condition(condition: str) -> list[tuple[str, str]]:
    """Parse dagv1's branch condition into ``[(predecessor full name, expected value)]``.

    Only the exact form dagv1 writes (``dagv1._add_condition``) is understood, so a condition a
    user wrote by hand is refused rather than guessed at. Raises ValueError.
    """
    clauses: list[tuple[str, str]] = []
    pos = 0
    while True:
        m = _CLAUSE_RE.match(condition, pos)
        if not m:
            raise ValueError(
                "only dagv1 branch conditions of the form "
                "SYSTEM$GET_PREDECESSOR_RETURN_VALUE('<DAG>$<BRANCH>') = '<task>' (joined by AND) can be emulated"
            )
        clauses.append((_unquote(m.group(1)), _unquote(m.group(2))))
        pos = m.end()
        if pos == len(condition):
            return clauses
        a = _AND_RE.match(condition, pos)
        if not a:
            raise ValueError("unexpected text after a predecessor-return-value comparison")
        pos = a.end()


class _Rows:
    """The one-row result a runtime-info query returns (``.collect()[0][0]``)."""

    def __init__(self, value: Any) -> None:
        self._value = value

    def collect(self, *args: Any, **kwargs: Any) -> list[tuple[Any]]:
        return [(self._value,)]


@dataclass(eq=False)
class _Node:
    """Per-task state of one run; written only by the task's own thread until it is final."""

    task: DAGTask
    full: str  # normalized full name, what Snowflake calls the task: MY_DAG$TASK
    preds: dict[str, _Node | None] = field(default_factory=dict)  # normalized name -> node (None: root)
    run: TaskRun | None = None
    value: str | None = None


class _TaskSession:
    """What a task body gets as ``session``: system functions for this task, the rest forwarded."""

    def __init__(self, session: Session, graph: _GraphRun, node: _Node) -> None:
        self._session = session
        self._graph = graph
        self._node = node

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def __repr__(self) -> str:
        return f"<emulated task session for {self._node.full} over {self._session!r}>"

    def call(self, sproc_name: str, *args: Any, **kwargs: Any) -> Any:
        key = sproc_name.upper() if isinstance(sproc_name, str) else ""
        if key == "SYSTEM$SET_RETURN_VALUE":
            return self._set_return_value(*args)
        if key == "SYSTEM$GET_PREDECESSOR_RETURN_VALUE":
            return self._predecessor_value(*args)
        if key == "SYSTEM$GET_TASK_GRAPH_CONFIG":
            return self._graph.config_json
        if key == "SYSTEM$CURRENT_USER_TASK_NAME":
            return self._node.full
        return self._session.call(sproc_name, *args, **kwargs)

    def sql(self, query: str, *args: Any, **kwargs: Any) -> Any:
        m = _RUNTIME_INFO_RE.match(query) if isinstance(query, str) else None
        if m:
            return _Rows(self._graph.runtime_info(_unquote(m.group(2)), m.group(1).lower() == "timestamp"))
        return self._session.sql(query, *args, **kwargs)

    def _set_return_value(self, value: Any = None, *rest: Any) -> None:
        text = None if value is None else str(value)
        if text is not None:
            size = len(text.encode("utf-8"))
            if size > RETURN_VALUE_LIMIT_BYTES:
                raise _TaskFailure(
                    f"task {self._node.task.name}: return value is {size} bytes of UTF-8, over Snowflake's "
                    f"limit of 10 kB ({RETURN_VALUE_LIMIT_BYTES} bytes); write large outputs to a table or a "
                    "stage file and return a pointer to it"
                )
        self._node.value = text

    def _predecessor_value(self, name: str | None = None, *rest: Any) -> str | None:
        node = self._node
        if name is None:
            if len(node.preds) != 1:
                raise _TaskFailure(
                    f"task {node.task.name}: get_predecessor_return_value() without a task name needs exactly one "
                    f"predecessor; this task has {len(node.preds)} ({', '.join(sorted(node.preds)) or 'none'})"
                )
            (pred,) = node.preds.values()
            return None if pred is None else pred.value
        from snowflake.core._internal.utils import normalize_name

        key = normalize_name(str(name))
        if key not in node.preds:
            raise _TaskFailure(
                f"task {node.task.name}: {name!r} is not a predecessor of {node.full}; its predecessors are "
                f"{', '.join(sorted(node.preds)) or 'none'}"
            )
        pred = node.preds[key]
        return None if pred is None else pred.value


class _GraphRun:
    """Shared, read-only-while-running facts about one graph run."""

    def __init__(self, dag: DAG, config: dict[str, Any]) -> None:
        from snowflake.core._internal.utils import normalize_name

        self.root = normalize_name(dag.name)
        self.config = config
        self.config_json: str | None = json.dumps(config) if config else None
        self.run_group_id = f"emulator-{uuid.uuid4()}"  # a uuid4 may start with a digit: {run_id} must be a valid version name
        self.root_uuid = str(uuid.uuid4())
        self.started = datetime.now(UTC)

    def runtime_info(self, prop: str, as_timestamp: bool) -> Any:
        info: dict[str, Any] = {
            "CURRENT_ROOT_TASK_NAME": self.root,
            "CURRENT_ROOT_TASK_UUID": self.root_uuid,
            "CURRENT_TASK_GRAPH_RUN_GROUP_ID": self.run_group_id,
            "CURRENT_TASK_GRAPH_ORIGINAL_SCHEDULED_TIMESTAMP": self.started,
            "LAST_SUCCESSFUL_TASK_GRAPH_RUN_GROUP_ID": None,
            "LAST_SUCCESSFUL_TASK_GRAPH_ORIGINAL_SCHEDULED_TIMESTAMP": None,
        }
        key = prop.upper()
        if key not in info:
            raise _TaskFailure(f"SYSTEM$TASK_RUNTIME_INFO: unknown property {prop!r}; known: {', '.join(info)}")
        value = info[key]
        return value if (as_timestamp or value is None) else str(value)


def _merge_config(dag: DAG, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """``dag.config`` merged key by key with the overrides, like EXECUTE TASK ... USING CONFIG."""
    merged: dict[str, Any] = dict(dag.config or {})
    merged.update(overrides or {})
    for key, value in merged.items():
        if not isinstance(key, str):
            raise EmulatorError(f"task graph config key {key!r} of {dag.name}: keys must be strings")
        if not isinstance(value, _CONFIG_TYPES):
            raise EmulatorError(
                f"task graph config key {key!r} of {dag.name} has a {type(value).__name__} value; "
                "Snowflake accepts only str, int, float or bool values"
            )
    return merged


def _topological(dag: DAG, tasks: list[DAGTask]) -> list[DAGTask]:
    """Kahn's algorithm in the DAG's insertion order; a cycle or a foreign predecessor is an error."""
    known = {id(t) for t in dag.tasks}
    for t in tasks:
        for p in t.predecessors:
            if id(p) not in known:
                raise EmulatorError(
                    f"task {t.name} of {dag.name} has predecessor {p.name}, which is not in the graph "
                    "(was a task added twice under one name?)"
                )
    remaining = {id(t): len(t.predecessors) for t in tasks}
    successors: dict[int, list[DAGTask]] = {id(t): [] for t in tasks}
    for t in tasks:
        for p in t.predecessors:
            successors[id(p)].append(t)
    ready = [t for t in tasks if remaining[id(t)] == 0]
    ordered: list[DAGTask] = []
    while ready:
        t = ready.pop(0)
        ordered.append(t)
        for s in successors[id(t)]:
            remaining[id(s)] -= 1
            if remaining[id(s)] == 0:
                ready.append(s)
    if len(ordered) != len(tasks):
        from pytest_snowpipe.pipeline.graph import cycle_members

        by_name = {t.name: t for t in tasks}
        stuck = sorted(cycle_members([t.name for t in tasks], lambda n: [p.name for p in by_name[n].predecessors]))
        raise EmulatorError(f"task graph {dag.name} has a cycle through: {', '.join(stuck)}")
    return ordered


def _non_python(task: DAGTask, definition: Any) -> _TaskFailure:
    kind = f"{type(definition).__name__} (SQL)" if isinstance(definition, str) else type(definition).__name__
    return _TaskFailure(
        f"task {task.name}: the emulator runs Python-function tasks only; got {kind}. "
        f"Pass runners={{{task.name!r}: fn(session, ctx)}} to emulate it"
    )


def _body(task: DAGTask) -> Callable[[Any], Any]:
    """The callable that would ship for a Python task: the low-level task's (wrapped) function."""
    from snowflake.core.task import StoredProcedureCall
    from snowflake.core.task.dagv1 import SQLConvertible

    from pytest_snowpipe.taskgraph.ml_job_task import MLJobTask, job_function

    definition = task.definition
    if isinstance(definition, MLJobTask):  # SYSTEM$EXECUTE_ML_JOB runs the job's function, which sets the value
        job = job_function(definition.spec)
        return lambda session: job(session)
    if isinstance(definition, SQLConvertible):  # dagv1 checks this first too (e.g. an ML Job definition)
        raise _non_python(task, definition)
    if isinstance(definition, StoredProcedureCall):
        from snowflake.snowpark.stored_procedure import StoredProcedure

        if isinstance(definition.func, StoredProcedure) or not callable(definition.func):
            raise _non_python(task, definition.func)
    elif not callable(definition):
        raise _non_python(task, definition)
    try:
        low = task._to_low_level_task()
    except Exception as exc:  # dagv1 may raise anything here
        raise _TaskFailure(
            f"task {task.name}: could not build the task that would be deployed: {type(exc).__name__}: {exc}"
        ) from exc
    func = getattr(low.definition, "func", None)
    if not callable(func):  # pragma: no cover - dagv1 always gives a StoredProcedureCall here
        raise _non_python(task, low.definition)
    body: Callable[[Any], Any] = func
    return body


def _execute(
    node: _Node, session: Session, graph: _GraphRun, runner: Runner | None, executor: Executor | None = None
) -> TaskRun:
    """Run one task body in a worker thread and record its outcome."""
    proxy = _TaskSession(session, graph, node)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    error = tb = None
    output = _OUTPUT.buffer = _Bounded()
    try:
        if runner is not None:
            from snowflake.core.task.context import TaskContext

            value = runner(proxy, TaskContext(proxy))  # type: ignore[arg-type]
            if value is not None:
                proxy.call("system$set_return_value", str(value))
        elif executor is not None:
            _body(node.task)  # the same checks (a Python task, buildable as deployed) wherever it runs
            executor(node.task, proxy)
        else:
            _body(node.task)(proxy)
    except _TaskFailure as exc:
        error, tb = str(exc), getattr(exc, "traceback", None) or traceback_module.format_exc()
    except Exception as exc:
        error, tb = f"{type(exc).__name__}: {exc}", traceback_module.format_exc()
    finally:
        _OUTPUT.buffer = None
    return TaskRun(
        name=node.task.name,
        state=FAILED if error else SUCCEEDED,
        started=started,
        duration_s=time.perf_counter() - t0,
        return_value=None if error else node.value,
        error=error,
        attempt=1,
        traceback=tb,
        output="".join(output.parts),
        output_cut=output.cut,
        full_name=node.full,
    )


def _readiness(node: _Node) -> tuple[str | None, str | None, str | None]:
    """Decide a ready task's fate: (state or None to run it, reason, error)."""
    states = [p.run.state for p in node.preds.values() if p is not None and p.run is not None]
    real_preds = [p for p in node.preds.values() if p is not None]
    blocked = [p.task.name for p in real_preds if p.run and p.run.state in (FAILED, NOT_EXECUTED)]
    if blocked:
        return NOT_EXECUTED, f"predecessor {', '.join(sorted(blocked))} did not succeed", None
    if real_preds and all(s == SKIPPED for s in states):
        return SKIPPED, "all predecessors skipped", None
    condition = node.task.condition  # what _to_low_level_task copies into Task(condition=...)
    if not condition:
        return None, None, None
    try:
        clauses = parse_branch_condition(condition)
    except ValueError as exc:
        return FAILED, None, f"task {node.task.name}: cannot evaluate its condition {condition!r}: {exc}"
    for pred_name, expected in clauses:
        if pred_name not in node.preds:
            return FAILED, None, (
                f"task {node.task.name}: its condition {condition!r} reads {pred_name!r}, which is not one of "
                f"its predecessors ({', '.join(sorted(node.preds)) or 'none'})"
            )
        pred = node.preds[pred_name]
        actual = None if pred is None else pred.value
        if actual != expected:
            return SKIPPED, f"condition false: {pred_name} returned {actual!r}, not {expected!r}", None
    return None, None, None


# Live progress (reports/progress.py sets it around a rehearsal): told ``(task name, None)`` when a
# task starts and ``(task name, TaskRun)`` when it settles; called from the thread running emulate().
task_events: contextvars.ContextVar[Callable[[str, TaskRun | None], None] | None] = contextvars.ContextVar(
    "snowpipe_task_events", default=None
)


def _tell(name: str, run: TaskRun | None = None) -> None:
    listener = task_events.get()
    if listener is not None:
        try:
            listener(name, run)
        except Exception:  # progress lines must never change a run's outcome
            pass


def emulate(
    dag: DAG,
    *,
    session: Session,
    config_overrides: dict[str, Any] | None = None,
    runners: dict[str, Runner] | None = None,
    max_workers: int = 4,
    executor: Executor | None = None,
) -> RunRecord:
    """Run ``dag`` once, locally, as Snowflake would run the deployed graph; return the record.

    ``runners`` maps a task name (as written in the DAG) to ``fn(session, ctx) -> str | None``
    used instead of the task's definition, for tasks the emulator cannot run itself (SQL, ML Jobs).
    ``executor(task, session)`` runs a Python task's body somewhere else (the rehearsal's sandbox,
    :mod:`pytest_snowpipe.doubles.sandbox`); ``session`` answers the task's system functions.
    Raises EmulatorError only for problems with the graph as a whole; task failures are recorded.
    """
    from snowflake.core._internal.utils import normalize_name

    if max_workers < 1:
        raise EmulatorError(f"max_workers must be at least 1, got {max_workers}")
    if dag.condition:
        raise EmulatorError(
            f"task graph {dag.name} has a root condition {dag.condition!r}; the emulator cannot evaluate it offline"
        )
    config = _merge_config(dag, config_overrides)
    runners = dict(runners or {})
    unknown = sorted(set(runners) - {t.name for t in dag.tasks})
    if unknown:
        raise EmulatorError(
            f"runners name tasks not in task graph {dag.name}: {', '.join(unknown)} "
            f"(tasks: {', '.join(t.name for t in dag.tasks)})"
        )
    finalizers = [t for t in dag.tasks if t._is_finalizer]
    children = [t for t in dag.tasks if not t._is_finalizer]
    ordered = _topological(dag, children)
    graph = _GraphRun(dag, config)

    nodes = {id(t): _Node(t, normalize_name(t.full_name)) for t in ordered + finalizers}
    for t in ordered:
        node = nodes[id(t)]
        if t.predecessors:
            node.preds = {nodes[id(p)].full: nodes[id(p)] for p in t.predecessors}
        else:
            node.preds = {graph.root: None}  # dagv1 makes the root the predecessor of source tasks
    failures: list[TaskRun] = []
    lock = threading.Lock()

    def settle(node: _Node, run: TaskRun) -> None:
        with lock:
            node.run = run
            if run.state == FAILED:
                failures.append(run)
        _tell(run.name, run)

    t0 = time.perf_counter()
    with _captured_task_output(), ThreadPoolExecutor(
        max_workers=max_workers, thread_name_prefix=f"emulate-{dag.name}"
    ) as pool:
        running: dict[Future[TaskRun], _Node] = {}
        waiting = [nodes[id(t)] for t in ordered]
        while waiting or running:
            progressed = True
            while progressed:
                progressed = False
                for node in list(waiting):
                    if any(p is not None and p.run is None for p in node.preds.values()):
                        continue
                    waiting.remove(node)
                    progressed = True
                    state, reason, error = _readiness(node)
                    if state is None:
                        _tell(node.task.name)
                        running[pool.submit(_execute, node, session, graph, runners.get(node.task.name), executor)] = node
                    else:
                        settle(node, TaskRun(node.task.name, state, error=error, reason=reason, full_name=node.full))
            if running:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    settle(running.pop(future), future.result())
        for task in finalizers:  # after every other task, whatever their outcome
            node = nodes[id(task)]
            state, reason, error = _readiness(node)
            if state is None:
                _tell(task.name)
                settle(node, pool.submit(_execute, node, session, graph, runners.get(task.name), executor).result())
            else:
                settle(node, TaskRun(task.name, state, error=error, reason=reason, full_name=node.full))

    tasks = {t.name: nodes[id(t)].run for t in ordered + finalizers}
    first = failures[0] if failures else None
    return RunRecord(
        dag_name=dag.name,
        state=FAILED if failures else SUCCEEDED,
        tasks=tasks,  # type: ignore[arg-type]
        first_error_task_name=first.name if first else None,
        first_error_message=first.error if first else None,
        config=config,
        run_group_id=graph.run_group_id,
        started=graph.started,
        duration_s=time.perf_counter() - t0,
    )


__all__ = [
    "FAILED",
    "NOT_EXECUTED",
    "RETURN_VALUE_LIMIT_BYTES",
    "SKIPPED",
    "SUCCEEDED",
    "EmulatorError",
    "Executor",
    "RunRecord",
    "TaskFailed",
    "TaskRun",
    "emulate",
    "parse_branch_condition",
    "record_output",
]
