"""The bytes a deploy ships, obtained by deploying to an offline account.

A rehearsal must run what Snowflake would run, not the Python objects it was made from. So the
compiled DAG is deployed, through snowflake.core's real ``DAGOperation`` and Snowpark's real
procedure registration, to an :class:`~pytest_snowpipe.doubles.offline_account.OfflineAccount`
(the same double the deploy tests use); what the account then holds is read back: each task's
stored-procedure definition (handler code with its pickled function, ``HANDLER``,
``PACKAGES``, ``IMPORTS``, ``RUNTIME_VERSION``) and every stage file those definitions import.

A remote stage's task is ``CALL SYSTEM$EXECUTE_ML_JOB('<id>', '<pool>', '<spec>', '<job>')``, as
snowflake-ml-python registered it: its four literals are parsed, and the job's folder on the job stage
(``app/``: the entry script with the cloudpickled function, its zips, ``requirements.txt``; ``system/``:
the launcher) is copied to a local mount, so the rehearsal runs snowflake-ml-python's own launcher on
the payload that Snowflake's job would mount.
"""
from __future__ import annotations

import json
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_snowpipe.errors import SnowpipeError

_DEFAULT_DATABASE = "SNOWPIPE"
_DEFAULT_SCHEMA = "PUBLIC"


class ShipError(SnowpipeError):
    """The graph could not be deployed to the offline account, or a definition not read back."""


@dataclass(frozen=True)
class ShippedTask:
    """One Python task as deployed: its procedure's code and environment."""

    name: str  # the task's name in the DAG (MODEL), not its full name (DAG$MODEL)
    handler: str  # a function of ``code``, or ``module.function`` of an IMPORTS file when code is None
    code: str | None  # the inline ``AS $$...$$`` body (Snowpark uploads a large closure as a zip instead)
    packages: tuple[str, ...]
    imports: tuple[str, ...]  # stage paths, as written in IMPORTS=(...)
    runtime_version: str
    job: dict[str, Any] | None = None  # an ML Job task: its pool, spec and options (SYSTEM$EXECUTE_ML_JOB's arguments)


@dataclass
class ShippedGraph:
    """Every Python task of one deploy, and where the stage files they import were copied."""

    tasks: dict[str, ShippedTask]
    import_dir: Path
    files: dict[str, Path] = field(default_factory=dict)  # stage path -> copy in import_dir
    deploy_calls: list[str] = field(default_factory=list)  # the account's call log, one line each
    ship_s: float = 0.0  # seconds the offline deploy took


def _clause(definition: str, key: str) -> str | None:
    m = re.search(rf"^\s*{key}\s*=\s*(.*?)\s*$", definition, re.IGNORECASE | re.MULTILINE)
    return m.group(1) if m else None


def _quoted(text: str | None) -> tuple[str, ...]:
    return tuple(re.findall(r"'((?:[^']|'')*)'", text or ""))


def parse_definition(name: str, definition: str) -> ShippedTask | None:
    """A task's ``WITH ... AS PROCEDURE ... LANGUAGE PYTHON ... AS $$code$$ CALL ...`` definition,
    as Snowpark writes it for a Python-function task; None for any other definition (SQL)."""
    if not re.search(r"\bLANGUAGE\s+PYTHON\b", definition, re.IGNORECASE):
        return None
    start = definition.find("$$")
    end = definition.rfind("$$")
    handler = _quoted(_clause(definition, "HANDLER"))
    inline = 0 <= start < end
    if not handler or (not inline and "." not in handler[0]):
        raise ShipError(f"task {name}: cannot read its Python procedure definition (no HANDLER, or no body)")
    return ShippedTask(
        name=name,
        handler=handler[0],
        code=definition[start + 2 : end] if inline else None,
        packages=_quoted(_clause(definition, "PACKAGES")),
        imports=_quoted(_clause(definition, "IMPORTS")),
        runtime_version=(_clause(definition, "RUNTIME_VERSION") or "").strip("'"),
    )


_SQL_LITERAL = re.compile(r"'((?:[^'\\]|''|\\.)*)'", re.S)


def _unquote(literal: str) -> str:
    """A SQL string literal's text: ``''`` and backslash escapes resolved, as Snowflake reads them."""
    escapes = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}
    return re.sub(r"\\(.)|''", lambda m: escapes.get(m[1], m[1]) if m[1] else "'", literal, flags=re.S)


def parse_ml_job(name: str, definition: str) -> dict[str, Any] | None:
    """``CALL SYSTEM$EXECUTE_ML_JOB(id, pool, spec, job)`` -> its arguments (spec and job parsed); None for
    any other definition. A job that would run asynchronously is refused: its task would end before it."""
    if not re.match(r"\s*CALL\s+SYSTEM\$EXECUTE_ML_JOB\s*\(", definition, re.IGNORECASE):
        return None
    literals = [_unquote(x) for x in _SQL_LITERAL.findall(definition)]
    if len(literals) != 4:
        raise ShipError(f"task {name}: cannot read its SYSTEM$EXECUTE_ML_JOB call ({len(literals)} arguments, not 4)")
    try:
        spec, options = json.loads(literals[2]), json.loads(literals[3])
    except ValueError as exc:
        raise ShipError(f"task {name}: its SYSTEM$EXECUTE_ML_JOB spec or options are not JSON ({exc})") from None
    if options.get("ASYNC") is not False:
        raise ShipError(
            f"task {name}: its ML Job runs asynchronously (ASYNC {options.get('ASYNC')!r}): the task would end before "
            "the job and its successors would read no result; a Task Graph's ML Job must run with ASYNC false"
        )
    args = [str(a) for a in spec.get("ARGS") or []]
    entry = next((a for a in args if a.endswith(".py") and "/app/" in a), None)
    main = args[args.index("--script_main_func") + 1] if "--script_main_func" in args[:-1] else None
    if entry is None or main is None:
        raise ShipError(f"task {name}: its ML Job has no Python entry point with a main function (ARGS {args})")
    return {"id": literals[0], "pool": literals[1], "spec": spec, "options": options,
            "entry": entry.split("/app/", 1)[1], "main": main}


def _job_task(
    name: str, job: dict[str, Any], account: Any, packages: tuple[str, ...], db: str, sch: str, into: Path
) -> ShippedTask:
    """The job's payload as the rehearsal runs it: its folder on the job stage copied to a local mount
    (``app/``: the entry script, its zips and requirements; ``system/``: snowflake-ml-python's launcher)."""
    folder = str(job["spec"]["STAGE_PATH"]).rstrip("/")
    stage_part, _, prefix = folder.lstrip("@").partition("/")
    stage = "@" + _stage_fqn(stage_part, db, sch)
    mount = into / "job_mounts" / name
    files = [f.name for f in account.list_stage(stage) if f.name.startswith(f"{prefix}/")]
    for rel in files:
        target = mount / rel[len(prefix) + 1:]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(account.get_file(stage, rel))
    entry, launcher = mount / "app" / job["entry"], mount / "system" / "mljob_launcher.py"
    if not entry.is_file() or not launcher.is_file():
        raise ShipError(f"task {name}: its ML Job's payload in {folder} lacks {'app/' + job['entry'] if not entry.is_file() else 'system/mljob_launcher.py'}")
    requirements: tuple[str, ...] = ()
    if (mount / "app" / "requirements.txt").is_file():
        text = (mount / "app" / "requirements.txt").read_text()
        requirements = tuple(line.strip() for line in text.splitlines() if line.strip())
    return ShippedTask(name=name, handler=job["main"], code=entry.read_text(), packages=(*packages, *requirements),
                       imports=(), runtime_version="", job={**job, "mount": str(mount)})


def _stage_fqn(location: str, database: str, schema: str) -> str:
    parts = location.lstrip("@").split("/", 1)[0].split(".")
    return ".".join([database, schema][: 3 - len(parts)] + parts) if len(parts) < 3 else ".".join(parts)


def ship(dag: Any, stage_location: str, into: Path, database: str | None = None, schema: str | None = None) -> ShippedGraph:
    """Deploy ``dag`` to a fresh offline account; return its Python tasks and their import files.

    ``stage_location`` is the graph's stage (as compiled); its database and schema, or the given
    ones, exist in the account, as a real deploy requires.
    """
    from snowflake.core import CreateMode, Root
    from snowflake.core.task.dagv1 import DAGOperation

    from pytest_snowpipe.doubles.offline_account import OfflineAccount
    from pytest_snowpipe.taskgraph.ml_job_task import bound, job_tasks

    t0 = time.perf_counter()
    parts = stage_location.lstrip("@").split("/", 1)[0].split(".")
    db = parts[0] if len(parts) == 3 else (database or _DEFAULT_DATABASE)
    sch = parts[-2] if len(parts) >= 2 else (schema or _DEFAULT_SCHEMA)
    stage = _stage_fqn(stage_location, db, sch)
    jobs = {t.name: t.definition for t in job_tasks(dag)}
    job_stages = [_stage_fqn(d.job_stage(db, sch).lstrip("@"), db, sch) for d in jobs.values()]
    stages = sorted({stage, *job_stages})
    into.mkdir(parents=True, exist_ok=True)
    with OfflineAccount(schemas=sorted({f"{db}.{sch}", *(".".join(s.split(".")[:2]) for s in stages)}), stages=stages,
                        compute_pools=[d.remote.compute_pool for d in jobs.values()]) as account:
        session = account.session(db, sch)
        try:
            try:
                with warnings.catch_warnings(), bound(dag, session, db, sch):  # dagv1's notices are not the user's business
                    warnings.simplefilter("ignore", DeprecationWarning)
                    DAGOperation(Root(session).databases[db].schemas[sch]).deploy(dag, mode=CreateMode.or_replace)
            except Exception as exc:
                raise ShipError(
                    f"the graph could not be deployed to the offline account the rehearsal reads the shipped code "
                    f"from: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                ) from exc
            prefix = f"{dag.name}$".upper()
            tasks: dict[str, ShippedTask] = {}
            for full in account.task_names(db, sch):
                if not full.upper().startswith(prefix):
                    continue
                name = full[len(prefix):]
                definition = account.task(full, db, sch).get("definition") or ""
                job = parse_ml_job(name, definition)
                shipped = parse_definition(name, definition) if job is None else _job_task(
                    name, job, account, tuple(jobs[name].packages) if name in jobs else (), db, sch, into
                )
                if shipped is not None:
                    tasks[shipped.name] = shipped
            files: dict[str, Path] = {}
            for path in sorted({p for t in tasks.values() for p in t.imports}):
                stage_part, _, rel = path.lstrip("@").partition("/")
                target = into / Path(rel).name
                target.write_bytes(account.get_file("@" + _stage_fqn(stage_part, db, sch), rel))
                files[path] = target
            calls = [c.summary for c in account.calls]
        finally:
            session.close()
    return ShippedGraph(tasks=tasks, import_dir=into, files=files, deploy_calls=calls, ship_s=time.perf_counter() - t0)


__all__ = ["ShipError", "ShippedGraph", "ShippedTask", "parse_definition", "parse_ml_job", "ship"]
