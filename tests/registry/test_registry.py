"""The local model registry never loses data: atomic default, concurrent promotes, corrupt files."""
from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from pytest_snowpipe.errors import RegistryError
from pytest_snowpipe.registry.local import LocalRegistry


def test_promote_versions_and_default(tmp_path):
    reg = LocalRegistry(tmp_path / "reg")
    assert reg.default("m") is None
    v1 = reg.promote("m", {"w": 1}, metrics={"acc": 0.8})
    v2 = reg.promote("m", {"w": 2}, metrics={"acc": 0.9})
    assert (v1.version, v2.version) == ("v0001", "v0002")
    current = reg.default("m")
    assert current is not None and current.version == "v0002"
    assert current.load() == {"w": 2} and current.metrics == {"acc": 0.9}
    assert reg.versions("m") == ["v0001", "v0002"]


def test_crash_mid_promote_keeps_previous_default(tmp_path, monkeypatch):
    reg = LocalRegistry(tmp_path / "reg")
    reg.promote("m", {"w": 1})
    pointer = tmp_path / "reg" / "m" / "default.json"
    before = pointer.read_bytes()
    real_replace = os.replace

    def crash(src, dst):
        if str(dst).endswith("default.json"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(RegistryError, match=r"could not write a new version under .*\(disk full\)"):
        reg.promote("m", {"w": 2})
    monkeypatch.undo()
    assert pointer.read_bytes() == before
    assert reg.default("m").load() == {"w": 1}
    assert not [p for p in pointer.parent.iterdir() if p.name.endswith(".tmp")]


def test_corrupt_metadata_is_an_error_and_nothing_is_overwritten(tmp_path):
    reg = LocalRegistry(tmp_path / "reg")
    reg.promote("m", {"w": 1})
    pointer = tmp_path / "reg" / "m" / "default.json"
    pointer.write_text("{not json")
    with pytest.raises(RegistryError, match=r"registry metadata file .*default.json is corrupt.*Nothing was overwritten"):
        reg.promote("m", {"w": 2})
    assert pointer.read_text() == "{not json"
    assert reg.versions("m") == ["v0001"]


def test_registry_folder_not_writable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    reg = LocalRegistry(blocker / "reg")
    with pytest.raises(RegistryError, match=r"model registry folder .* is not writable.*snowpipe_registry"):
        reg.promote("m", {"w": 1})


def _promote_many(root: str, start: int) -> None:
    reg = LocalRegistry(root)
    for i in range(start, start + 10):
        reg.promote("m", {"w": i}, metrics={"i": i})


def test_concurrent_promotes_never_corrupt(tmp_path):
    root = str(tmp_path / "reg")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_promote_many, args=(root, s)) for s in (0, 100)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    reg = LocalRegistry(root)
    versions = reg.versions("m")
    assert len(versions) == 20 and len(set(versions)) == 20
    seen = sorted(reg.get("m", v).metrics["i"] for v in versions)
    assert seen == list(range(10)) + list(range(100, 110))
    json.loads((tmp_path / "reg" / "m" / "default.json").read_text())
    assert reg.default("m") is not None


def test_registry_error_in_a_run_fails_the_gate(pipeline_suite):
    pytester = pipeline_suite()
    (pytester.path / "blocked").write_text("a file, not a folder")
    ini = "[pytest]\nsnowpipe_registry = blocked/registry\nsnowpipe_config =\n    threshold = 0.5\n"
    pytester.makeini(ini)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*RegistryError: model registry folder *blocked/registry is not writable*"])


@pytest.mark.parametrize("named", [False, True])
def test_a_full_disk_is_a_registry_error_naming_the_folder_and_keeps_the_default(tmp_path, monkeypatch, named):
    import errno

    reg = LocalRegistry(tmp_path / "reg")
    reg.promote("m", {"w": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)  # the kernel's answer when the disk fills up
    with pytest.raises(RegistryError) as info:
        reg.promote("m", {"w": 2}, version="v_named" if named else None)
    message = str(info.value)
    assert str(tmp_path / "reg" / "m") in message and "the disk is full" in message
    assert "the previous default is unchanged" in message and "snowpipe_registry" in message
    monkeypatch.undo()
    assert reg.versions("m") == ["v0001"] and reg.default("m").version == "v0001"
    assert [p.name for p in (tmp_path / "reg" / "m" / "versions").iterdir()] == ["v0001"]  # no staging left


def test_promote_keeps_the_champion_alias_and_rollback_moves_it_back_with_who_when_why(tmp_path):
    """Issue 22, item 4: the CHAMPION alias and a rollback recorded in the demoted version."""
    reg = LocalRegistry(tmp_path)
    for w in (1, 2, 3):
        reg.promote("m", {"w": w}, metrics={"acc": w / 10})
    pointer = json.loads((tmp_path / "m" / "default.json").read_text())
    assert pointer["alias"] == "CHAMPION" and pointer["version"] == "v0003" and pointer["history"] == ["v0001", "v0002"]
    back = reg.rollback("m", "v0003 misroutes loans", who="alice")
    assert back.version == "v0002" and reg.default("m").version == "v0002" and reg.default("m").load() == {"w": 2}
    record = reg.get("m", "v0003").extra["rolled_back"]
    assert record["by"] == "alice" and record["reason"] == "v0003 misroutes loans" and record["to"] == "v0002"
    assert record["at"].startswith("20")
    reg.get("m", "v0003").verify()  # the record does not break the version's checksums
    assert reg.rollback("m", "again").version == "v0001"
    with pytest.raises(RegistryError, match="v0001 is the first champion there is"):
        reg.rollback("m", "once more")
    assert reg.default("m").version == "v0001"  # nothing changed
    with pytest.raises(RegistryError, match="say why"):
        reg.rollback("m", " ")
    with pytest.raises(RegistryError, match="no champion yet"):
        reg.rollback("other", "why")
    assert reg.promote("m", {"w": 4}).version == "v0004"
    assert json.loads((tmp_path / "m" / "default.json").read_text())["history"] == ["v0001"]


def test_rollback_skips_a_pruned_previous_champion(tmp_path):
    reg = LocalRegistry(tmp_path)
    for w in (1, 2, 3):
        reg.promote("m", {"w": w})
    assert reg.prune("m", keep=2) == ["v0001"]
    assert reg.rollback("m", "bad").version == "v0002"
    with pytest.raises(RegistryError, match="no previous champion"):
        reg.rollback("m", "bad again")
