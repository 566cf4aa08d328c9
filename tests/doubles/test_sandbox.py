"""The rehearsal runs the shipped procedures in the shipped environment.

`ship` deploys through the real client code to the offline account and reads the definitions
back; `Sandbox` runs procedure code (here: hand-written, as Snowpark writes it) in an
interpreter holding only the standard library, the declared packages and the imports, under
the real emulator with the embedded engine.
"""
from __future__ import annotations

import zipfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from conftest import PURE_STAGES
from pytest_snowpipe.doubles.emulator import FAILED, SUCCEEDED, RunRecord, emulate
from pytest_snowpipe.doubles.environment import resolve
from pytest_snowpipe.doubles.sandbox import Sandbox
from pytest_snowpipe.doubles.shipped import ShipError, ShippedGraph, ShippedTask, parse_definition, ship
from pytest_snowpipe.doubles.sql.embedded import engine


def xgboost_version() -> str:
    """The installed xgboost module's version (its distribution is xgboost, or xgboost-cpu on Linux)."""
    import xgboost

    return str(xgboost.__version__)

CORE = ("snowflake.core", "xgboost")  # what most procedures below declare
NARROW = ("cloudpickle",)  # a procedure that declares little
ML_CORE = (*CORE, "snowflake-ml-python")  # tasks that may run ML Jobs
DYING = ("pyarrow",)  # its own interpreter: a procedure that kills it must not take the others along

# what a procedure may do with its streams in Snowflake (and does under pytest's capture)
STREAMS = (
    "def run(session):\n    import sys\n"
    "    sys.stdout.buffer.write('bytes \u00e9\\n'.encode()); sys.stdout.buffer.flush()\n"
    "    sys.stdout.buffer.write(b'\\xc3'); sys.stdout.buffer.write(b'\\xa9\\n')  # one character in two writes\n"
    "    print(sys.stdout.encoding.lower(), sys.stdout.isatty(), sys.stderr.errors, sys.stdout.writable(), file=sys.stderr)\n"
    "    session.call('system$set_return_value', 'streams ok')\n"
)

PROCEDURES = {
    "DECLARED": (CORE, "def run(session):\n    import xgboost\n"
                       "    session.call('system$set_return_value', xgboost.__version__)\n"),
    "CONTEXT": (CORE, "def run(session):\n    from snowflake.core.task.context import TaskContext\n"
                      "    ctx = TaskContext(session)\n"
                      "    ctx.set_return_value(ctx.get_task_graph_config_property('label') + ':' + ctx.get_current_task_name())\n"),
    "SQL": (CORE, "def run(session):\n    n = session.sql('SELECT 6 * 7').collect()[0][0]\n"
                  "    session.call('system$set_return_value', str(n))\n"),
    "PRINTS_AND_RAISES": (CORE, "def run(session):\n    print('about to fail')\n    raise ValueError('bad row 7')\n"),
    "PROJECT_MODULE": (CORE, "def run(session):\n    import conftest\n"),
    "UNDECLARED": (NARROW, "def run(session):\n    import json, cloudpickle\n    import xgboost\n"),
    "ZIPPED": (CORE, None),
    "DIES": (DYING, "def run(session):\n    import os\n    os._exit(3)\n"),
    "REFUSED": (CORE, "def run(session):\n    from snowflake.core.task.context import TaskContext\n"
                      "    TaskContext(session).get_predecessor_return_value('nope')\n"),
    "STREAMS": (CORE, STREAMS),
}


def _zip(tmp: Path) -> Path:
    path = tmp / "udf_py_123.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("udf_py_123.py", "def compute(session):\n    session.call('system$set_return_value', 'from the zip')\n")
    return path


IMPORTS_HYPOTHESIS = "def run(session):\n    import hypothesis\n"  # installed here, declared by no task below


def _inline_graph(name: str, codes: dict[str, str], packages: tuple[str, ...], tmp_path: Path) -> tuple[ShippedGraph, Any]:
    """A shipped graph of inline procedures (task name -> code) declaring ``packages``, and its DAG."""
    from snowflake.core.task.dagv1 import DAG, DAGTask

    tasks = {task: ShippedTask(name=task, handler="run", code=code, packages=packages, imports=(), runtime_version="3.11")
             for task, code in codes.items()}

    def unused(session: Any) -> None:  # the sandbox runs the shipped code, never this
        raise AssertionError("ran in the pytest process")

    with DAG(name, stage_location="@ST") as dag:
        for task in codes:
            DAGTask(task, unused)
    return ShippedGraph(tasks=tasks, import_dir=tmp_path, files={}), dag


@pytest.fixture(scope="module")
def rehearsed(embedded_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunRecord, Sandbox]]:
    """One emulated run of a DAG whose tasks' procedures are the ones above."""
    from snowflake.core.task.dagv1 import DAG, DAGTask

    tmp = tmp_path_factory.mktemp("sandbox")
    zipped = _zip(tmp)
    tasks = {
        name: ShippedTask(name=name, handler="udf_py_123.compute" if code is None else "run", code=code,
                          packages=packages, imports=("@ST/x/udf_py_123.zip",) if code is None else (), runtime_version="3.11")
        for name, (packages, code) in PROCEDURES.items()
    }
    shipped = ShippedGraph(tasks=tasks, import_dir=tmp, files={"@ST/x/udf_py_123.zip": zipped})

    def unused(session: Any) -> None:  # the sandbox runs the shipped code, never this
        raise AssertionError("ran in the pytest process")

    with DAG("SANDBOXED", config={"label": "demo"}, stage_location="@ST") as dag:
        for name in PROCEDURES:
            DAGTask(name, unused)
    with Sandbox(shipped, engine().connection_params(), tmp) as sandbox:
        record = emulate(dag, session=embedded_session, executor=sandbox.run, max_workers=8)
        yield record, sandbox
    for interp in sandbox.interpreters.values():
        assert interp.proc.poll() is not None  # no interpreter outlives the rehearsal


def test_a_declared_package_imports_and_the_value_returns(rehearsed: Any) -> None:
    run = rehearsed[0].tasks["DECLARED"]
    assert run.state == SUCCEEDED and run.return_value == xgboost_version()


def test_task_context_and_sql_work_as_in_a_task(rehearsed: Any) -> None:
    assert rehearsed[0].tasks["CONTEXT"].return_value == "demo:SANDBOXED$CONTEXT"
    assert rehearsed[0].tasks["SQL"].return_value == "42"


def test_an_undeclared_package_fails_naming_the_task_module_distribution_and_fix(rehearsed: Any) -> None:
    run = rehearsed[0].tasks["UNDECLARED"]
    assert run.state == FAILED
    assert run.error.startswith(
        "ModuleNotFoundError: task UNDECLARED imports module 'xgboost' (distribution xgboost), which is not in the "
        "task's environment"
    )
    assert "PACKAGES: cloudpickle" in run.error and "add 'xgboost' to ini snowpipe_packages" in run.error
    # the procedure's own frames, from its interpreter
    assert "<procedure of task UNDECLARED>" in (run.traceback or "")


def test_the_pytest_process_modules_are_not_there(rehearsed: Any) -> None:
    run = rehearsed[0].tasks["PROJECT_MODULE"]
    assert run.state == FAILED and run.error == "ModuleNotFoundError: No module named 'conftest'"


def test_output_and_errors_of_a_procedure_are_recorded(rehearsed: Any) -> None:
    run = rehearsed[0].tasks["PRINTS_AND_RAISES"]
    assert run.state == FAILED and run.error == "ValueError: bad row 7"
    assert run.output == "about to fail\n"


def test_a_refused_system_call_keeps_the_emulator_message(rehearsed: Any) -> None:
    run = rehearsed[0].tasks["REFUSED"]
    assert run.state == FAILED
    assert run.error.startswith("task REFUSED: 'SANDBOXED$NOPE' is not a predecessor of SANDBOXED$REFUSED")
    assert "TaskFailure" not in run.error


def test_stdout_and_stderr_are_text_streams_with_a_buffer(rehearsed: Any) -> None:
    run = rehearsed[0].tasks["STREAMS"]
    assert run.state == SUCCEEDED, run.error
    assert run.return_value == "streams ok"
    assert run.output.splitlines() == ["bytes é", "é", "utf-8 False backslashreplace True"]  # stderr keeps its own error handler


def test_a_handler_in_an_imports_zip_runs(rehearsed: Any) -> None:
    assert rehearsed[0].tasks["ZIPPED"].return_value == "from the zip"


def test_an_interpreter_that_dies_fails_its_task_and_spares_the_others(rehearsed: Any) -> None:
    record, sandbox = rehearsed
    run = record.tasks["DIES"]
    assert run.state == FAILED
    assert run.error.startswith("task DIES: the sandbox interpreter died while running it (exit code 3")
    assert len(sandbox.interpreters) == 3 and record.tasks["DECLARED"].state == SUCCEEDED


# ------------------------------------------------------------------ the environment


def test_the_environment_is_the_declared_packages_and_their_dependencies() -> None:
    import numpy
    import pandas
    import xgboost

    env = resolve(("xgboost==" + xgboost_version(),))
    assert {"xgboost", "numpy", "scipy", "snowflake-snowpark-python", "cloudpickle"} <= set(env.distributions)
    assert str(Path(xgboost.__file__)) in env.files and str(Path(numpy.__file__)) in env.files
    assert str(Path(pandas.__file__)) not in env.files  # neither declared nor a dependency
    assert env.missing == ()
    assert resolve(("snowflake.core",)).distributions.get("snowflake-core") == version("snowflake-core")  # channel spelling
    assert resolve(("no-such-package==1.0",)).missing == ("no-such-package",)


# ------------------------------------------------------------------ what ships


INLINE = """
WITH task_handler_sp AS PROCEDURE ()
RETURNS STRING
LANGUAGE PYTHON
RUNTIME_VERSION=3.11
IMPORTS=('@DB.S.ST/abc/pytest_snowpipe.zip')
PACKAGES=('snowflake-snowpark-python==1.56.0','xgboost==3.2.0')
HANDLER='compute'
AS $$
def compute(session):
    return 'x $ y'
$$
CALL task_handler_sp()"""


def test_definitions_are_read_inline_zipped_or_not_python() -> None:
    task = parse_definition("MODEL", INLINE)
    assert task is not None and task.handler == "compute" and task.runtime_version == "3.11"
    assert task.packages == ("snowflake-snowpark-python==1.56.0", "xgboost==3.2.0")
    assert task.imports == ("@DB.S.ST/abc/pytest_snowpipe.zip",)
    assert task.code == "\ndef compute(session):\n    return 'x $ y'\n"
    zipped = INLINE.replace("HANDLER='compute'", "HANDLER='udf_py_1.compute'").split("AS $$")[0] + "CALL task_handler_sp()"
    assert parse_definition("MODEL", zipped) == ShippedTask(
        "MODEL", "udf_py_1.compute", None, task.packages, task.imports, "3.11")
    assert parse_definition("ROOT", "SELECT 'dummy'") is None
    with pytest.raises(ShipError, match="task BAD: cannot read its Python procedure definition"):
        parse_definition("BAD", INLINE.replace("HANDLER='compute'", ""))


def test_ship_deploys_through_the_real_client_and_reads_back_every_python_task(tmp_path: Path) -> None:
    from pytest_snowpipe.taskgraph.compile import compile_graph, pickle_by_value
    from tests.taskgraph.test_compile import opts, pipeline

    graph = pipeline()
    compiled = compile_graph(graph, opts(tmp_path, stage_location="@DB.SCH.ST"))
    with pickle_by_value(compiled.graph):
        shipped = ship(compiled.dag, "@DB.SCH.ST", tmp_path / "imports")
    assert set(shipped.tasks) == {t.name for t in compiled.dag.tasks}
    model = shipped.tasks["MODEL"]
    assert "pickle.loads" in (model.code or "") and model.handler == "compute"
    assert f"xgboost=={xgboost_version()}" not in model.packages  # only what the code needs
    plugin_zip = shipped.files[model.imports[0]]
    assert plugin_zip.parent == tmp_path / "imports" and "pytest_snowpipe/taskgraph/runtime.py" in zipfile.ZipFile(
        plugin_zip).namelist()
    assert "SQL PUT" in shipped.deploy_calls  # the plugin's zip, uploaded as a real deploy uploads it
    assert shipped.deploy_calls.count("POST tasks?createMode=orReplace") >= len(compiled.dag.tasks)


# ------------------------------------------------------------------ end to end

UNDECLARED_STAGE = PURE_STAGES.replace(
    '    return {"weights": sum(raw)}',
    '    import importlib\n    importlib.import_module("hypothesis")  # dynamic: no inference can see it\n'
    '    return {"weights": sum(raw)}',
)


def test_a_rehearsal_fails_a_stage_importing_an_undeclared_module_that_runs_locally(pipeline_suite: Any) -> None:
    pytester = pipeline_suite(conftest=UNDECLARED_STAGE)
    assert pytester.runpytest_subprocess().ret == 0  # the same suite passes in the full local environment
    result = pytester.runpytest_subprocess("--snowpipe-deploy", "--snowpipe-target", "local", "-v")
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "task graph SNOWPIPE_PIPELINE: FAILED*first error: MODEL*",
        "MODEL * FAILED * ModuleNotFoundError: task MODEL imports module 'hypothesis' (distribution hypothesis)*"
        "add 'hypothesis' to ini snowpipe_packages*",
        "*ran in the shipped environment*",
    ])


def test_an_interpreter_started_before_the_deploy_is_adopted_or_ended(embedded_session: Any, tmp_path: Path) -> None:
    """The rehearsal starts the graph's interpreter while it ships: a shipped package list equal to
    the expected one adopts it (and gives it its IMPORTS late); one no task declares is ended."""
    from snowflake.core.task.dagv1 import DAG, DAGTask

    zipped = _zip(tmp_path)
    shipped = ShippedGraph(
        tasks={"ZIPPED": ShippedTask(name="ZIPPED", handler="udf_py_123.compute", code=None, packages=CORE,
                                     imports=("@ST/x/udf_py_123.zip",), runtime_version="3.11")},
        import_dir=tmp_path, files={"@ST/x/udf_py_123.zip": zipped},
    )

    def unused(session: Any) -> None:
        raise AssertionError("ran in the pytest process")

    with DAG("EARLY", stage_location="@ST") as dag:
        DAGTask("ZIPPED", unused)
    with Sandbox(None, engine().connection_params(), tmp_path, import_dir=tmp_path) as sandbox:
        sandbox.expect(CORE)
        sandbox.expect(NARROW)  # nothing ships with these packages
        early, unused_early = sandbox.early[CORE], sandbox.early[NARROW]
        sandbox.attach(shipped)
        assert sandbox.interpreters == {CORE: early} and not sandbox.early
        assert unused_early.proc.wait(timeout=30) is not None  # ended, not left behind
        record = emulate(dag, session=embedded_session, executor=sandbox.run)
    run = record.tasks["ZIPPED"]
    assert run.state == SUCCEEDED and run.return_value == "from the zip"  # the IMPORTS it was given late
    assert early.proc.poll() is not None


def test_an_early_interpreter_told_another_imports_folder_is_not_adopted(tmp_path: Path) -> None:
    """It was started with ``snowflake_import_directory`` pointing elsewhere: a fresh one replaces it."""
    shipped = ShippedGraph(
        tasks={"SQL": ShippedTask(name="SQL", handler="run", code=PROCEDURES["SQL"][1], packages=CORE, imports=(),
                                  runtime_version="3.11")},
        import_dir=tmp_path / "imports", files={},
    )
    with Sandbox(None, engine().connection_params(), tmp_path, import_dir=tmp_path / "elsewhere") as sandbox:
        sandbox.expect(CORE)
        early = sandbox.early[CORE]
        sandbox.attach(shipped)
        assert sandbox.interpreters[CORE] is not early and sandbox.import_dir == tmp_path / "imports"
        assert early.proc.wait(timeout=30) is not None


def test_the_rehearsal_starts_the_graphs_interpreter_before_the_compile_and_adopts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its imports (3-5 s) overlap the engine's start, the compile (``import snowflake.core``) and the
    offline deploy: the interpreter expected for the graph's inferred packages, started before the
    engine and told its parameters after, is the one its tasks run in."""
    from pytest_snowpipe import release
    from tests.taskgraph.test_compile import opts, pipeline

    order: list[str] = []
    started: dict[tuple[str, ...], Any] = {}
    expect, compile_graph = Sandbox.expect, release.compile_graph

    def spy_expect(self: Sandbox, packages: tuple[str, ...]) -> None:
        order.append("expect")
        expect(self, packages)
        started[packages] = self.early[packages]

    def spy_compile(*args: Any, **kwargs: Any) -> Any:
        order.append("compile")
        return compile_graph(*args, **kwargs)

    monkeypatch.setattr(Sandbox, "expect", spy_expect)
    monkeypatch.setattr(release, "compile_graph", spy_compile)
    def engine_params() -> dict[str, Any]:
        order.append("engine")
        return engine().connection_params()

    with release._sandbox(pipeline(), opts(tmp_path, stage_location="@DB.SCH.ST"), engine_params,
                          tmp_path) as (compiled, sandbox):
        assert order == ["expect", "engine", "compile"]
        assert not sandbox.early
        specs = tuple(p.spec for p in compiled.packages)
        assert list(started) == [specs] and sandbox.interpreters[specs] is started[specs]  # adopted, not replaced


def test_an_interpreter_started_before_the_engine_preloads_then_connects(embedded_session: Any, tmp_path: Path) -> None:
    """It imports what the stages' modules import while it waits (a refused one stays the error of
    the task that imports it), opens its session when told the engine's parameters, maps the loaded
    modules to their files (Snowpark's source positions: the first task no longer pays it), and runs.
    With the ML Job client declared, what its launcher imports first is loaded too."""

    code = ("def run(session):\n    import inspect, sys\n"
            "    mapped = inspect.modulesbyfile.get(inspect.getabsfile(sys.modules['colorsys'])) == 'colorsys'\n"
            "    launcher = 'snowflake.ml.jobs._utils.constants' in sys.modules\n"
            "    ran = mapped and launcher and session.sql('SELECT 1').collect()[0][0] == 1\n"
            "    session.call('system$set_return_value', str(ran))\n")
    shipped, dag = _inline_graph("LATE_ENGINE", {"PRELOADED": code, "REFUSED_LATER": IMPORTS_HYPOTHESIS}, ML_CORE, tmp_path)
    with Sandbox(None, None, tmp_path, import_dir=tmp_path, preload=("colorsys", "hypothesis")) as sandbox:
        sandbox.expect(ML_CORE)
        early = sandbox.early[ML_CORE]
        with pytest.raises(Exception, match="before it was told the engine"):
            sandbox.attach(shipped)
        sandbox.connect(engine().connection_params())
        sandbox.attach(shipped)
        assert sandbox.interpreters[ML_CORE] is early
        record = emulate(dag, session=embedded_session, executor=sandbox.run)
    assert record.tasks["PRELOADED"].state == SUCCEEDED and record.tasks["PRELOADED"].return_value == "True"
    assert record.tasks["REFUSED_LATER"].state == FAILED
    assert "task REFUSED_LATER imports module 'hypothesis'" in (record.tasks["REFUSED_LATER"].error or "")


def test_tasks_running_at_once_have_sessions_of_their_own() -> None:
    """As in Snowflake, where each task run has its session: a task's USE SCHEMA (what provisioning
    a stage does: CREATE SCHEMA makes it current) never moves a task running beside it. A session
    is kept for the next task once its task ends."""
    from pytest_snowpipe.doubles.sandbox_worker import Worker

    worker = Worker(None)  # type: ignore[arg-type]  (no parent: only its sessions are used)
    worker.connect(engine().connection_params())
    try:
        first = worker.take_session()
        beside = worker.take_session()  # a second task while the first runs
        assert beside is not first and len(worker.sessions) == 2
        beside.sql("CREATE SCHEMA IF NOT EXISTS SNOWPIPE.BESIDE").collect()  # current for that session only
        assert first.sql("SELECT CURRENT_SCHEMA()").collect()[0][0] == "PUBLIC"
        worker.give_back(beside)
        assert worker.take_session() is beside and len(worker.sessions) == 2  # kept, not remade
    finally:
        for session in worker.sessions:
            session.close()


def test_an_interpreter_started_before_the_packages_are_known_serves_them(embedded_session: Any, tmp_path: Path) -> None:
    """`prestart` (the session's start) imports what every task needs under a guard holding only the task
    runtime's packages; `expect` tells it the graph's packages, and it serves them: a declared one loads,
    an undeclared one is refused, and no plugin module of the source tree is loaded for the tasks."""

    from pytest_snowpipe.taskgraph.packages import RUNTIME

    declared = (*RUNTIME, "xgboost")  # what a compiled graph declares: the runtime's own and the stages'
    code = ("def run(session):\n    import sys, xgboost\n"
            "    ours = [m for m in sys.modules if m.split('.')[0] == 'pytest_snowpipe']\n"
            "    session.call('system$set_return_value', f'{xgboost.__version__} {ours}')\n")
    shipped, dag = _inline_graph("PRESTARTED", {"DECLARED_LATER": code, "UNDECLARED": IMPORTS_HYPOTHESIS}, declared, tmp_path)
    with Sandbox(None, None, tmp_path, import_dir=tmp_path) as sandbox:
        sandbox.prestart()
        base = sandbox.base
        assert base is not None and base.packages is None
        sandbox.preload = ("colorsys",)
        sandbox.expect(declared)
        assert sandbox.early[declared] is base and base.packages == declared and sandbox.base is None
        sandbox.connect(engine().connection_params())
        sandbox.attach(shipped)
        assert sandbox.interpreters[declared] is base  # one interpreter in all
        record = emulate(dag, session=embedded_session, executor=sandbox.run)
    assert record.tasks["DECLARED_LATER"].state == SUCCEEDED
    assert record.tasks["DECLARED_LATER"].return_value == f"{xgboost_version()} []"
    assert record.tasks["UNDECLARED"].state == FAILED
    assert "task UNDECLARED imports module 'hypothesis'" in (record.tasks["UNDECLARED"].error or "")
    assert base.proc.poll() is not None


def test_an_interpreter_started_early_and_never_told_its_packages_ends_with_the_sandbox(tmp_path: Path) -> None:
    with Sandbox(None, None, tmp_path, import_dir=tmp_path) as sandbox:
        sandbox.prestart()
        base = sandbox.base
        assert base is not None
    assert base.proc.poll() is not None and sandbox.base is None


def test_packages_without_the_runtimes_own_get_a_fresh_interpreter(tmp_path: Path) -> None:
    """What the early interpreter loaded (pandas, Snowpark) would not be theirs: it ends, another starts."""
    with Sandbox(None, None, tmp_path, import_dir=tmp_path) as sandbox:
        sandbox.prestart()
        base = sandbox.base
        sandbox.expect(CORE)
        assert sandbox.early[CORE] is not base and sandbox.base is None
        assert base is not None and base.proc.poll() is not None
