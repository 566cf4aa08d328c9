"""A remote stage as the seed ships it: a Task Graph task whose definition is an ML Job.

dagv1 turns a definition that has ``to_sql()`` into the task's SQL when the graph is deployed
(``DAGTask._to_low_level_task``). :class:`MLJobTask` is that definition. Compile needs no session;
a deploy binds the deploying one (:func:`bound`), and ``to_sql`` then registers the job through
snowflake-ml-python's own ``snowflake.ml.jobs.remote`` (a stable job name, ``<DAG>_<TASK>``; the
payload goes to ``<job stage>/<content digest>/<DAG>_<TASK>``, so an unchanged job is overwritten
with the same bytes, a changed one goes beside the deployed one, which a failed redeploy keeps
intact for the graph it restores, and a good one removes) and returns its
``CALL SYSTEM$EXECUTE_ML_JOB(...)`` with ``ASYNC`` false: the task ends when the job does, and no
procedure keeps a warehouse waiting on it.

The job's function takes no arguments, as Snowflake calls it: it reads its inputs through
``TaskContext`` (the predecessors' return values are pointers to stored outputs), runs the stage,
stores its output and sets the pointer as the task's return value (:func:`runtime.run_job_stage`).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pytest_snowpipe.errors import SnowpipeError, first_line

EXECUTE_ML_JOB = "SYSTEM$EXECUTE_ML_JOB"


class MLJobTaskError(SnowpipeError):
    """An ML Job task could not be registered (no session bound, an unusable pool, ...)."""


def job_function(spec: Any) -> Callable[..., None]:
    """The function the ML Job runs: no required argument (Snowflake passes none).

    ``session`` is for the rehearsal, which hands it the emulated task's session; in Snowflake the
    job opens its own (``Session.builder.getOrCreate()`` inside :func:`runtime.run_job_stage`).
    """
    from pytest_snowpipe.taskgraph.runtime import run_job_stage

    def snowpipe_job(session: Any = None) -> None:
        run_job_stage(spec, session)

    snowpipe_job.__name__ = snowpipe_job.__qualname__ = f"snowpipe_job_{spec.task.lower()}"
    snowpipe_job.__doc__ = f"pytest-snowpipe ML Job of task {spec.task} (stage {spec.name})"
    return snowpipe_job


@dataclass
class MLJobTask:
    """The definition of one remote stage's task: ``to_sql()`` once a session is bound.

    ``packages`` are the distributions the job's code needs (the graph's plus what only the remote
    stage imports): the rehearsal runs the job with them; in Snowflake the runtime image and the
    job's ``pip_requirements`` provide them.
    """

    spec: Any  # runtime.StageSpec with .remote set
    dag_name: str
    packages: tuple[str, ...] = ()
    imports: tuple[tuple[str, str], ...] = ()  # (directory, import path): this plugin, as every task has it
    session: Any = field(default=None, repr=False, compare=False)
    database: str | None = field(default=None, compare=False)  # the deploy's, for what the stage leaves unqualified
    schema: str | None = field(default=None, compare=False)
    digest: str | None = field(default=None, compare=False)  # of the pickled job function: its payload folder

    def content_digest(self) -> str:
        """A digest of what the job runs (its function as pickled, by value where a deploy pickles so, and this
        plugin's version): the payload folder, so that a changed job never overwrites the deployed one."""
        if self.digest is None:
            import hashlib

            import cloudpickle

            from pytest_snowpipe import __version__

            data = cloudpickle.dumps(job_function(self.spec)) + __version__.encode()
            self.digest = hashlib.sha256(data).hexdigest()[:16]
        return self.digest

    @property
    def job_name(self) -> str:
        """Stable across deploys: the payload folder on the job stage is overwritten, not piled up."""
        return f"{self.dag_name}_{self.spec.task}".upper()

    @property
    def remote(self) -> Any:
        return self.spec.remote

    def describe(self) -> str:
        """One line for the plan."""
        return f"ML Job {self.job_name} {self.remote.describe()}"

    def job_stage(self, database: str | None = None, schema: str | None = None) -> str:
        """The job stage, qualified with the stage's own database/schema, else the deploy's."""
        from pytest_snowpipe.taskgraph.compile import qualify_stage

        db = self.remote.database or database or self.database
        sch = self.remote.schema or schema or self.schema
        return qualify_stage("@" + self.remote.stage_name.lstrip("@"), db, sch)

    def payload_folder(self, database: str | None = None, schema: str | None = None) -> str:
        """Where registration uploads the job's payload (``snowflake.ml.jobs``: ``<stage_name>/<job name>``)."""
        return f"{self.job_stage(database, schema).rstrip('/')}/{self.content_digest()}/{self.job_name}"

    def job_options(self) -> dict[str, Any]:
        """``snowflake.ml.jobs.remote`` keyword arguments: the stage's options, the stable name, overwrite,
        and qualified names (the job is registered in the session's schema, the task runs in the graph's)."""
        options: dict[str, Any] = self.remote.job_options()
        options.pop("name", None)  # the task's job keeps one name (a user name would break the overwrite)
        options["imports"] = [*options.get("imports", []), *self.imports]
        options["name"] = self.job_name
        options["overwrite"] = True
        options["stage_name"] = f"{self.job_stage().rstrip('/')}/{self.content_digest()}"
        if not self.remote.database and self.database and self.schema:
            options["database"], options["schema"] = self.database, self.schema
        return options

    def to_sql(self) -> str:
        """Register the job with the bound session and return the task's ``CALL SYSTEM$EXECUTE_ML_JOB``."""
        if self.session is None:
            raise MLJobTaskError(
                f"task {self.spec.task}: an ML Job task becomes SQL only when deployed with a session "
                "(taskgraph.ml_job_task.bound); the plan and the rehearsal read its options instead"
            )
        from snowflake.ml.jobs import remote as ml_remote

        options = self.job_options()
        try:
            definition = ml_remote(self.remote.compute_pool, session=self.session, **options)(job_function(self.spec))
            sql: str = definition.to_sql()
        except Exception as exc:
            raise MLJobTaskError(
                f"remote stage {self.spec.name!r}: registering its ML Job on compute pool {self.remote.compute_pool} "
                f"with job stage {self.remote.stage_name} failed ({first_line(exc)}); "
                "check that the pool exists and the role may USE it (SHOW COMPUTE POOLS), and that the job stage "
                "can be written"
            ) from exc
        if '"ASYNC": false' not in sql.replace("\\", ""):
            raise MLJobTaskError(
                f"task {self.spec.task}: the ML Job was registered to run asynchronously; a Task Graph task must "
                "wait for its job (ASYNC false) so that its successors read the job's result"
            )
        return sql


def job_tasks(dag: Any) -> list[Any]:
    """The DAGTasks of ``dag`` whose definition is an :class:`MLJobTask`."""
    return [t for t in dag.tasks if isinstance(t.definition, MLJobTask)]


@contextlib.contextmanager
def bound(dag: Any, session: Any, database: str | None = None, schema: str | None = None) -> Iterator[None]:
    """While active, the ML Job tasks of ``dag`` register their jobs with ``session`` (a deploy's), in
    ``database``.``schema`` where the stage names none."""
    tasks = job_tasks(dag)
    for t in tasks:
        t.definition.session, t.definition.database, t.definition.schema = session, database, schema
        t.definition.content_digest()  # here, where the deploy pickles the project's modules by value
    try:
        yield
    finally:
        for t in tasks:
            t.definition.session = t.definition.database = t.definition.schema = None


__all__ = ["EXECUTE_ML_JOB", "MLJobTask", "MLJobTaskError", "bound", "job_function", "job_tasks"]
