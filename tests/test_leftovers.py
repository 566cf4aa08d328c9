"""Nothing of a run outlives it: temp folders carry their owner's pid and are swept once it is dead,
a passing run or rehearsal leaves no empty folder, and what a remote stage starts dies with pytest
(issue 27, item 6)."""
from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import GATE
from pytest_snowpipe.engines.tempdirs import PREFIXES, sweep_orphans


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_every_prefix_is_swept_when_its_owner_is_dead_and_kept_while_it_lives(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead, parent = _dead_pid(), os.getppid()
    gone = [tmp_path / f"{prefix}{dead}-x1" for prefix in PREFIXES]
    kept = [tmp_path / f"{prefix}{parent}-x2" for prefix in PREFIXES] + [tmp_path / f"{PREFIXES[0]}{os.getpid()}-x3"]
    foreign = [tmp_path / "snowpipe-remote-abc-x4", tmp_path / f"tmp{dead}-x5", tmp_path / f"fakesnow_bucket_{dead}-x"]
    for folder in gone + kept + foreign:
        folder.mkdir()
        (folder / "f").write_text("x")
    assert sorted(sweep_orphans()) == sorted(gone)
    assert all(f.exists() for f in kept + foreign)


def test_the_engine_stage_folder_and_the_offline_account_carry_the_pid(embedded_session):
    from pytest_snowpipe.doubles.offline_account import OfflineAccount
    from pytest_snowpipe.doubles.sql.embedded import engine

    assert Path(engine()._bucket or "").name.startswith(f"snowpipe_stages_{os.getpid()}-")
    account = OfflineAccount()
    try:
        assert account._dir.name.startswith(f"offline-account-{os.getpid()}-")
    finally:
        account.close()


@pytest.mark.parametrize("args", [(), ("--snowpipe-deploy", "--snowpipe-target", "local")])
def test_a_passing_run_or_rehearsal_leaves_nothing_in_the_temp_folder(pipeline_suite, tmp_path, monkeypatch, args):
    conftest = '''
import pytest

@pytest.fixture(scope="session")
def raw(snowpipe_session):
    snowpipe_session.sql("create or replace table RAW as select 1 as A").collect()
    return snowpipe_session.table("RAW").to_pandas()

@pytest.fixture(scope="session")
def model(raw):
    return {"weights": int(raw["A"].sum())}

@pytest.fixture(scope="session")
def metrics(model, snowpipe_config):
    return {"score": model["weights"] / 1}
'''
    pytester = pipeline_suite(conftest=conftest)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert sorted(p.name for p in scratch.iterdir()) == []


ORPHAN_STAGES = '''
import os
import subprocess
import sys
import pytest
import pytest_snowpipe as sp

@pytest.fixture(scope="session")
@sp.remote(compute_pool="POOL", stage_name="JOB_STAGE")
def model():
    child = subprocess.Popen([sys.executable, "-c", "import threading; threading.Event().wait()"])
    with open(os.environ["FIFO"], "w") as fh:  # tell the test who the stage started, then train forever
        fh.write(f"{child.pid}\\n")
    import threading
    threading.Event().wait()

@pytest.fixture(scope="session")
def metrics(model):
    return {"score": 1.0}
'''


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="waits for the process's exit with a pidfd (Linux)")
def test_kill_9_of_pytest_takes_what_the_remote_stage_started_along(pipeline_suite, tmp_path):
    pytester = pipeline_suite(conftest=ORPHAN_STAGES, gate=GATE.replace('on_pass="promote", ', ""))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    import pytest_snowpipe

    package_root = str(Path(pytest_snowpipe.__file__).resolve().parents[1])  # the copy under test, first
    env = {**os.environ, "FIFO": str(fifo), "PYTHONPATH": os.pathsep.join([package_root, *sys.path])}
    child = 0
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"], cwd=pytester.path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with open(fifo) as fh:  # blocks until the stage wrote it: no sleep
            child = int(fh.readline())
        watch = os.pidfd_open(child)
        proc.kill()
        proc.wait()
        ready, _, _ = select.select([watch], [], [], 30)  # readable when the stage's own child has exited
        os.close(watch)
        assert ready, f"process {child}, started by the remote stage, outlived pytest"
    finally:
        proc.kill()
        proc.wait()
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)  # only if the fix failed: leave no orphan behind
