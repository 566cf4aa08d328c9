"""Stage files of the emulated graph travel through a folder of their own, never a shared temp path."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from pytest_snowpipe.taskgraph import artifacts


def test_a_stage_file_is_fetched_into_a_private_folder(embedded_session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Snowpark's get_stream downloads to ``<tempdir>/<file name>``, which every process shares:
    another run's download of the same name there (here: a folder in the way of its ``.part``
    file) broke the fetch. The artifact store's GET does not touch that path."""
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    (shared / "blob.bin.part").mkdir()  # what a concurrent download of blob.bin looks like to this one
    (shared / "blob.bin").mkdir()
    embedded_session.sql("CREATE STAGE IF NOT EXISTS ARTIFACT_TRANSFER").collect()
    artifacts._put(embedded_session, "@ARTIFACT_TRANSFER/run1/index/blob.bin", b"payload \x00\x01")

    assert artifacts._get(embedded_session, "@ARTIFACT_TRANSFER/run1/index/blob.bin") == b"payload \x00\x01"
    assert not list(shared.glob("snowpipe-get-*"))  # its own folder is gone
    assert not (shared / "blob.bin").is_file() and not any((shared / "blob.bin").iterdir())  # the shared path untouched
    from snowflake.snowpark.exceptions import SnowparkSQLException

    with pytest.raises((AttributeError, OSError, SnowparkSQLException)):  # the shared path is what broke: Snowpark's get_stream fails on it
        embedded_session.file.get_stream("@ARTIFACT_TRANSFER/run1/index/blob.bin").read()


def test_a_pickled_output_copied_as_bytes_loads_as_the_object(embedded_session, monkeypatch: pytest.MonkeyPatch):
    """``snowpipe runs`` keeps outputs without unpickling them (a model's library stays unimported);
    the copy then loads as the object itself, with cloudpickle as with the standard unpickler."""
    import pickle
    from fractions import Fraction

    import cloudpickle


    embedded_session.sql("CREATE STAGE IF NOT EXISTS ARTIFACT_PICKLES").collect()
    value = {"model": Fraction(3, 7), "weights": [Fraction(1, 3)]}  # not JSON, no frame: one pickle
    pointer = artifacts.store(embedded_session, value, dag="D", stage="model", run_id="r1",
                              stage_location="@ARTIFACT_PICKLES")
    assert pointer["kind"] == "pickle"
    assert artifacts.load(embedded_session, pointer) == value
    nested = {"kind": "dict", "items": {"m": pointer, "n": {"kind": "json", "value": 2}}}
    monkeypatch.setattr(cloudpickle, "loads", lambda data: pytest.fail("unpickled while copying"))
    copied = artifacts.load(embedded_session, nested, unpickle=False)
    assert isinstance(copied["m"], artifacts.Pickled) and copied["n"] == 2
    monkeypatch.undo()
    assert pickle.loads(cloudpickle.dumps(copied["m"])) == value
    assert cloudpickle.loads(pickle.dumps(copied)) == {"m": value, "n": 2}
