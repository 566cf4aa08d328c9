"""sp.remote: the stage runs in a fresh process with pickled inputs, like an ML Job."""
from __future__ import annotations

import json
import os
import threading

import pytest

import pytest_snowpipe as sp
from pytest_snowpipe.errors import RemoteError


def _pid_and_env(x):
    return {"pid": os.getpid(), "jobs": os.environ.get("SNOWFLAKE_JOBS_COUNT"), "x": x}


def test_runs_in_another_process_with_job_env():
    stage = sp.remote(compute_pool="POOL", stage_name="@JOB_STAGE", target_instances=3)(_pid_and_env)
    out = stage([1, 2])
    assert out["pid"] != os.getpid()
    assert out["jobs"] == "3"
    assert out["x"] == [1, 2]
    assert sp.RemoteSpec is type(stage.__snowpipe_remote__)
    assert stage.__snowpipe_remote__.target_instances == 3


def _echo(x):
    return x


def test_unpicklable_argument_names_stage_and_argument():
    stage = sp.remote(compute_pool="POOL", stage_name="JOB_STAGE")(_echo)
    with pytest.raises(RemoteError, match=r"remote stage '_echo': argument 'x' cannot make the trip to a compute pool .*lock"):
        stage(threading.Lock())


def test_open_file_argument_is_refused(tmp_path):
    stage = sp.remote(compute_pool="POOL", stage_name="JOB_STAGE")(_echo)
    with open(tmp_path / "f.txt", "w") as handle, pytest.raises(RemoteError, match="argument 'x' cannot make the trip"):
        stage(handle)


def test_session_argument_is_refused(embedded_session):
    session = embedded_session
    stage = sp.remote(compute_pool="POOL", stage_name="JOB_STAGE")(_echo)
    with pytest.raises(RemoteError, match="argument 'x' is a Snowpark Session.*get_active_session"):
        stage(session)


def _boom(x):
    raise ValueError(f"bad input {x}")


def test_remote_exception_is_reraised_with_its_type():
    stage = sp.remote(compute_pool="POOL", stage_name="JOB_STAGE")(_boom)
    with pytest.raises(ValueError, match="bad input 7") as info:
        stage(7)
    assert any("raised in remote stage '_boom'" in n for n in info.value.__notes__)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_instances": 0}, "target_instances=0 is invalid; it must be an integer >= 1"),
        ({"target_instances": 2, "min_instances": 3}, "min_instances=3 is invalid"),
        ({"compute_pool": "bad pool"}, "compute_pool='bad pool' is not a Snowflake identifier"),
        ({"stage_name": "my-stage"}, "stage_name='my-stage' is not a Snowflake identifier"),
    ],
)
def test_bad_options_are_refused_at_decoration(kwargs, message):
    options = {"compute_pool": "POOL", "stage_name": "JOB_STAGE", **kwargs}
    with pytest.raises(ValueError, match=f"sp.remote on stage '_echo': {message}".replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        sp.remote(**options)(_echo)


def test_snowpark_frames_are_materialised_to_pandas(embedded_session):
    from snowflake.snowpark.functions import col

    df = embedded_session.create_dataframe([(float(i), i % 2) for i in range(10)], schema=["A", "T"])
    stage = sp.remote(compute_pool="POOL", stage_name="JOB_STAGE")(_types)
    out = stage({"train": df.filter(col("A") > 5)})
    assert out == {"train": ("DataFrame", ["int8"], [0, 1, 0, 1])}  # Snowflake's narrowest integer type


def _types(split):
    frame = split["train"]
    return {"train": (type(frame).__name__, [str(frame["T"].dtype)], frame["T"].tolist())}


def _frames_as_lists(split, pair):
    return {
        "train": split["train"].to_dict("list"), "test": split["test"].to_dict("list"),
        "pair": [frame.to_dict("list") for frame in pair], "dtypes": [str(t) for t in split["train"].dtypes],
    }


def test_frames_are_read_one_at_a_time_and_arrive_as_the_same_pandas_frames(embedded_session, monkeypatch):
    """Each Snowpark input is read into pandas, spilled to the trip's folder and freed before the
    next is read (the parent's peak holds one input, not all); the stage gets what to_pandas gives."""
    import weakref

    from snowflake.snowpark.functions import col

    from pytest_snowpipe.pipeline import trip_inputs

    df = embedded_session.create_dataframe([(i, float(i) / 3, f"r{i}") for i in range(40)], schema=["N", "X", "S"])
    frames = {"train": df.filter(col("N") < 30), "test": df.filter(col("N") >= 30)}
    pair = (df.filter(col("N") < 2), df.filter(col("N") > 37))
    expected = {
        "train": frames["train"].to_pandas().to_dict("list"), "test": frames["test"].to_pandas().to_dict("list"),
        "pair": [f.to_pandas().to_dict("list") for f in pair],
        "dtypes": [str(t) for t in frames["train"].to_pandas().dtypes],
    }
    read: list[weakref.ref] = []
    alive_when_read: list[int] = []
    real = trip_inputs.to_pandas

    def to_pandas(frame):
        alive_when_read.append(sum(ref() is not None for ref in read))
        out = real(frame)
        read.append(weakref.ref(out))
        return out

    trims: list[int] = []  # how many frames were read when memory was given back
    monkeypatch.setattr(trip_inputs, "to_pandas", to_pandas)
    monkeypatch.setattr(trip_inputs, "trim", lambda: trims.append(len(read)))
    stage = sp.remote(compute_pool="POOL", stage_name="JOB_STAGE")(_frames_as_lists)
    assert stage(frames, pair) == expected
    assert alive_when_read == [0, 0, 0, 0]  # four frames read, none of the earlier ones still held
    # given back once, after the last: a trim between reads made the next read fault its pages in again
    assert trims == [4]


def test_a_trip_without_frames_gives_no_memory_back(monkeypatch, tmp_path):
    from pytest_snowpipe.pipeline import trip_inputs

    trims: list[int] = []
    monkeypatch.setattr(trip_inputs, "trim", lambda: trims.append(1))
    arguments = {"data": [1, 2], "options": {"depth": 3}}
    assert trip_inputs.spill_inputs(arguments, tmp_path) == arguments
    assert trims == [] and list(tmp_path.iterdir()) == []


def test_remote_stage_in_a_pipeline_suite(pytester: pytest.Pytester):
    pytester.makeconftest(
        '''
import os
import pytest
import pytest_snowpipe as sp

@pytest.fixture(scope="session")
def data():
    return [3, 4]

@pytest.fixture(scope="session")
@sp.remote(compute_pool="POOL", stage_name="JOB_STAGE", target_instances=2)
def model(data):
    return {"pid": os.getpid(), "sum": sum(data)}
'''
    )
    pytester.makepyfile(
        '''
import os
import pytest

@pytest.mark.snowpipe_gate(on_pass="promote")
def test_gate(model):
    assert model["pid"] != os.getpid()
    assert model["sum"] == 7
'''
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["model (remote) *ok*", "gate test_gate: PASS * -> promote: model v0001*"])


def test_remote_stage_with_unpicklable_input_fails_clearly(pytester: pytest.Pytester):
    pytester.makeconftest(
        '''
import threading
import pytest
import pytest_snowpipe as sp

@pytest.fixture(scope="session")
def data():
    return {"lock": threading.Lock()}

@pytest.fixture(scope="session")
@sp.remote(compute_pool="POOL", stage_name="JOB_STAGE")
def model(data):
    return 1
'''
    )
    pytester.makepyfile(
        '''
import pytest

@pytest.mark.snowpipe_gate(on_fail="alert")
def test_gate(model):
    assert model == 1
'''
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*RemoteError: remote stage 'model': argument 'data' cannot make the trip to a compute pool*"])


# --- issue 13, item 1: every option of the installed snowflake.ml.jobs.remote --------------------------


def test_the_seeds_options_are_accepted_and_carried_to_the_job():
    spec = sp.remote(
        "DEMO_POOL", stage_name="@SNOWBANK.DEV.JOB_STAGE", database="SNOWBANK", schema="DEV", target_instances=2,
        min_instances=1, pip_requirements=["xgboost"], external_access_integrations=["PYPI_EAI"],
        env_vars={"MODE": "train"}, runtime_environment="1.7.1", comment="seed",
    )(_echo).__snowpipe_remote__
    opts = spec.job_options()
    assert opts == {
        "stage_name": "@SNOWBANK.DEV.JOB_STAGE", "target_instances": 2, "pip_requirements": ["xgboost"],
        "external_access_integrations": ["PYPI_EAI"], "database": "SNOWBANK", "schema": "DEV",
        "min_instances": 1, "env_vars": {"MODE": "train"}, "runtime_environment": "1.7.1", "comment": "seed",
    }
    assert "database='SNOWBANK'" in spec.describe() and "on compute pool DEMO_POOL," in spec.describe()


def test_our_native_options_are_those_of_the_installed_remote():
    from pytest_snowpipe.pipeline.remote import NATIVE_OPTIONS, installed_options

    assert set(NATIVE_OPTIONS) <= set(installed_options())


def test_an_option_of_a_newer_snowflake_ml_is_passed_through(monkeypatch):
    from pytest_snowpipe.pipeline import remote as remote_mod

    monkeypatch.setattr(remote_mod, "installed_options", lambda: (*remote_mod.NATIVE_OPTIONS, "spec_overrides"))
    spec = sp.remote("POOL", "JOB_STAGE", spec_overrides={"x": 1})(_echo).__snowpipe_remote__
    assert spec.job_options()["spec_overrides"] == {"x": 1}


def test_an_unknown_option_is_a_type_error_listing_the_valid_ones():
    from pytest_snowpipe.pipeline.remote import RemoteOptionError, remote_error

    wrapped = sp.remote("POOL", "JOB_STAGE", databse="X")(_echo)
    err = remote_error(wrapped)
    assert isinstance(err, RemoteOptionError) and isinstance(err, TypeError)
    assert "unknown option(s) 'databse'" in str(err) and "database" in str(err) and "min_instances" in str(err)
    with pytest.raises(TypeError, match="databse"):
        wrapped(1)


def test_database_without_schema_is_refused():
    with pytest.raises(ValueError, match="database='DB' needs schema="):
        sp.remote("POOL", "JOB_STAGE", database="DB")(_echo)


def test_an_unknown_option_is_a_usage_error_not_a_conftest_traceback(pytester: pytest.Pytester):
    pytester.makeconftest(
        '''
import pytest
import pytest_snowpipe as sp

@pytest.fixture(scope="session")
@sp.remote(compute_pool="POOL", stage_name="JOB_STAGE", databse="SNOWBANK")
def model():
    return 1
'''
    )
    pytester.makepyfile(
        '''
import pytest

@pytest.mark.snowpipe_gate()
def test_gate(model):
    assert model
'''
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*stage 'model'*sp.remote got unknown option(s) 'databse'. Valid options*database*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_remote_job_submission_passes_every_option():
    from pytest_snowpipe.engines.ml_job import submit_job

    seen: dict = {}

    class Job:
        id = "J1"

        def wait(self):
            return "DONE"

        def result(self):
            return seen["func"](**seen["args"])

    def fake_remote(pool, **kw):
        seen["pool"], seen["kw"] = pool, kw

        def deco(func):
            seen["func"] = func

            def submit(**args):
                seen["args"] = args
                return Job()

            return submit

        return deco

    spec = sp.remote("POOL", "JOB_STAGE", database="DB", schema="S", target_instances=2)(_echo).__snowpipe_remote__
    out = submit_job(_echo, "model", spec.compute_pool, spec.job_options(), {"x": 5}, "SESSION", remote_factory=fake_remote)
    assert out == 5
    assert seen["pool"] == "POOL"
    assert seen["kw"] == {"session": "SESSION", "stage_name": "JOB_STAGE", "target_instances": 2, "database": "DB", "schema": "S"}


def test_a_failed_job_raises_with_its_logs():
    from pytest_snowpipe.engines.ml_job import submit_job
    from pytest_snowpipe.errors import RemoteError

    class Job:
        id = "J2"

        def wait(self):
            return "FAILED"

        def get_logs(self):
            return "boom in the pool"

    fake = lambda pool, **kw: (lambda func: (lambda **a: Job()))  # noqa: E731
    with pytest.raises(RemoteError, match="ML Job J2 ended FAILED:\nboom in the pool"):
        submit_job(_echo, "model", "POOL", {}, {}, None, remote_factory=fake)


def test_a_remote_stage_can_use_the_active_session_on_the_embedded_engine(pipeline_suite):
    """The seed's job reads its data with the session: get_active_session() in the fresh process
    is a session on the same engine as pytest's, so the table a stage wrote is there."""
    conftest = '''
import pytest
import pytest_snowpipe as sp

@pytest.fixture(scope="session")
def raw(snowpipe_session):
    snowpipe_session.create_dataframe([(1,), (2,), (3,)], schema=["A"]).write.save_as_table("RAW_T", mode="overwrite")
    return "RAW_T"

@pytest.fixture(scope="session")
@sp.remote(compute_pool="POOL", stage_name="JOB_STAGE")
def model(raw):
    import os
    from snowflake.snowpark.context import get_active_session
    rows = get_active_session().table(raw).count()
    return {"weights": rows, "pid": os.getpid()}

@pytest.fixture(scope="session")
def metrics(model):
    return {"score": model["weights"] / 10, "pid": model["pid"]}
'''
    gate = '''
import os
import pytest

@pytest.mark.snowpipe_gate(on_fail="alert")
def test_gate(metrics):
    assert metrics["pid"] != os.getpid()  # it ran in another process
    assert metrics["score"] == 0.3
'''
    pipeline_suite(conftest=conftest, gate=gate).runpytest_subprocess("--snowpipe-no-cache").assert_outcomes(passed=1)


TRIP_GATE = '''
import pathlib, json
import pytest

@pytest.mark.snowpipe_gate(on_fail="alert")
def test_gate(metrics):
    from pytest_snowpipe.engines import job_process
    pathlib.Path("trip.json").write_text(json.dumps({**metrics, "waiting": [p.pid for p in job_process._WARM]}))
    assert metrics["score"] == 0.6
'''


def _run_trip(pipeline_suite, conftest: str) -> dict:
    """Run the suite with TRIP_GATE; what its metrics and the warm workers still waiting were."""
    suite = pipeline_suite(conftest=conftest, gate=TRIP_GATE)
    suite.runpytest_subprocess("--snowpipe-no-cache").assert_outcomes(passed=1)
    return json.loads((suite.path / "trip.json").read_text())


def test_a_warm_worker_takes_the_trip_with_its_libraries_imported_and_none_is_left(pipeline_suite):
    """The run starts an interpreter that imports the remote stage's libraries while earlier
    stages run; the stage runs in it (its libraries were already imported) and nothing outlives
    the run."""
    conftest = '''
import pytest
import pytest_snowpipe as sp
import json  # a library the remote stage's module imports: the warm worker preloads it

@pytest.fixture(scope="session")
def raw():
    return [1, 2, 3]

@pytest.fixture(scope="session")
@sp.remote(compute_pool="POOL", stage_name="JOB_STAGE")
def model(raw):
    import os
    return {"weights": sum(raw), "pid": os.getpid(), "warm": os.environ.get("SNOWPIPE_PRELOAD", "")}

@pytest.fixture(scope="session")
def metrics(model):
    return dict(model, score=model["weights"] / 10)
'''
    trip = _run_trip(pipeline_suite, conftest)
    assert "json" in trip["warm"].split(",")  # only a warm worker has this: the trip went to it
    assert trip["waiting"] == []  # the run's only remote stage has run: no next worker is waiting


def test_each_of_two_remote_stages_gets_a_warm_worker_and_none_is_left(pipeline_suite):
    """A next warm worker is started after a trip only while remote stages are left, so it never
    competes with the trip for the CPU; the last trip leaves none behind."""
    conftest = '''
import os
import pytest
import pytest_snowpipe as sp
import json  # preloaded by each warm worker

@pytest.fixture(scope="session")
def raw():
    return [1, 2, 3]

@pytest.fixture(scope="session")
@sp.remote(compute_pool="POOL", stage_name="JOB_STAGE")
def features(raw):
    return {"rows": raw, "pid": os.getpid(), "warm": os.environ.get("SNOWPIPE_PRELOAD", "")}

@pytest.fixture(scope="session")
def between(features):
    from pytest_snowpipe.engines import job_process
    return [p.pid for p in job_process._WARM]

@pytest.fixture(scope="session")
@sp.remote(compute_pool="POOL", stage_name="JOB_STAGE")
def model(features, between):
    return {"weights": sum(features["rows"]), "pid": os.getpid(), "warm": os.environ.get("SNOWPIPE_PRELOAD", "")}

@pytest.fixture(scope="session")
def metrics(model, features, between):
    return {"score": model["weights"] / 10, "pids": [features["pid"], model["pid"]],
            "warm": [features["warm"], model["warm"]], "between": between}
'''
    trip = _run_trip(pipeline_suite, conftest)
    assert all("json" in warm.split(",") for warm in trip["warm"])  # both trips went to warm workers
    assert len(set(trip["pids"])) == 2 and trip["between"] == [trip["pids"][1]]  # the second, started after the first
    assert trip["waiting"] == []  # no stage left: none waiting


def _prints_and_returns(x):
    import sys

    print(f"job says {x}")
    print(f"job warns {x}", file=sys.stderr)
    return x * 2


def test_the_worker_leaves_at_once_and_its_output_is_not_lost(capfd, monkeypatch):
    """The worker exits with os._exit right after writing the result (no interpreter teardown):
    what the stage printed still reaches the parent's terminal."""
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)  # block-buffered output, as in CI logs
    stage = sp.remote(compute_pool="POOL", stage_name="JOB_STAGE")(_prints_and_returns)
    assert stage(21) == 42
    out, err = capfd.readouterr()
    assert "job says 21" in out and "job warns 21" in err


def test_remote_without_parentheses_is_a_usage_error_naming_the_fix(pytester: pytest.Pytester):
    pytester.makeconftest(
        '''
import pytest
import pytest_snowpipe as sp

@pytest.fixture(scope="session")
def split():
    return [1, 2]

@pytest.fixture(scope="session")
@sp.remote
def model(split):
    return 1
'''
    )
    pytester.makepyfile(
        '''
import pytest

@pytest.mark.snowpipe_gate()
def test_gate(model):
    assert model
'''
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*stage 'model'*sp.remote on stage 'model' is written without parentheses*"
         '@sp.remote(compute_pool="POOL", stage_name="JOB_STAGE"*']
    )
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert "missing 1 required positional argument" not in result.stderr.str() + result.stdout.str()


def _returns_seven():
    return 7


def test_the_remote_stages_libraries_are_imported_here_while_the_worker_works(tmp_path, monkeypatch):
    """The result's library (the model's) is imported in this process during the trip, off the
    critical path after it; a library that fails to import is left for its user to report."""
    import sys

    from pytest_snowpipe.engines import job_process

    (tmp_path / "snowpipe_prefetched_lib.py").write_text("LOADED = True\n")
    (tmp_path / "snowpipe_broken_lib.py").write_text("raise ImportError('broken on purpose')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("snowpipe_prefetched_lib", "snowpipe_broken_lib"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(job_process, "_PRELOAD", ["snowpipe_broken_lib", "snowpipe_prefetched_lib"])
    threads = []
    real_start = job_process.prefetch.start
    monkeypatch.setattr(job_process.prefetch, "start", lambda modules: threads.append(real_start(modules)))
    stage = sp.remote(compute_pool="POOL", stage_name="JOB_STAGE")(_returns_seven)
    assert stage() == 7
    assert len(threads) == 1 and threads[0] is not None
    threads[0].join(timeout=60)
    assert sys.modules["snowpipe_prefetched_lib"].LOADED is True
    assert "snowpipe_broken_lib" not in sys.modules
