"""The CI report: report.json + report.md in every case, champion deltas, JUnit properties, no secrets."""
from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

# imported here so pytester's inline runs reuse the module (its recording stack and classes)
# instead of re-importing it per run while pytest_snowpipe's lazy exports keep the first copy
import pytest_snowpipe.registry.champion  # noqa: F401
from pytest_snowpipe.registry.local import LocalRegistry

ROOT = Path(__file__).resolve().parents[2]

CHAMPION_GATE = '''
import pytest
import pytest_snowpipe as sp

@pytest.mark.snowpipe_gate(on_pass="promote", on_fail="alert")
def test_gate(metrics, snowpipe_config, snowpipe_champion):
    sp.assert_metric(metrics, "score", ge=snowpipe_config["threshold"], champion=snowpipe_champion, tolerance=0.05)
'''


@pytest.fixture(autouse=True)
def _no_real_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner runs must never append to the step summary of the CI job running these tests."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def load(folder: Path) -> tuple[dict[str, Any], str]:
    return json.loads((folder / "report.json").read_text()), (folder / "report.md").read_text()


def documented_fields() -> dict[str, set[str]]:
    """Field names per table of docs/report-schema.md (`| `field` | ...` rows under each ## heading)."""
    tables: dict[str, set[str]] = {}
    current = ""
    for line in (ROOT / "docs" / "report-schema.md").read_text().splitlines():
        if line.startswith("## "):
            current = line[3:].strip().split()[0].strip("`")
        match = re.match(r"^\| `([a-z_]+)` \|", line)
        if match and current:
            tables.setdefault(current, set()).add(match.group(1))
    return tables


# ------------------------------------------------------------------ both files, documented fields


def test_both_files_hold_every_documented_field(pipeline_suite):
    pytester = pipeline_suite()
    result = pytester.runpytest("--snowpipe-report", "out")
    assert result.ret == 0
    report, md = load(pytester.path / "out")
    fields = documented_fields()
    assert set(report) == fields["top-level"]
    assert report["schema"] == "pytest-snowpipe/report" and report["version"] == 1
    assert report["verdict"] == "PASS" and report["exit_status"] == 0
    assert [s["name"] for s in report["stages"]] == ["raw", "model", "metrics"]
    for stage in report["stages"]:
        assert set(stage) == fields["stages"] - {"workers", "computed_by"}  # pytest-xdist only
        assert stage["status"] == "ok" and stage["source"] == "computed" and stage["wall_s"] >= 0
        assert re.fullmatch(r"[0-9a-f]{16}", stage["fingerprint"])
    assert report["stages"][0]["kind"] == "list" and report["stages"][0]["shape"] == "len 4"
    gate = report["gates"][0]
    assert set(gate) == fields["gates"] - {"worker"}  # pytest-xdist only
    assert set(report["tests"]) == fields["tests"] and set(report["code"]) == fields["code"]
    assert gate["verdict"] == "PASS" and gate["metrics"] == {"score": 1.0}
    assert gate["action"]["name"] == "promote" and gate["action"]["version"] == "v0001"
    assert gate["data"] == {"raw": report["stages"][0]["fingerprint"]}
    assert report["config"] == {"threshold": 0.5, "label": "demo"}
    assert set(report["code"]["stages"]) == {"raw", "model", "metrics"}
    assert report["graph"]["mermaid"].startswith("flowchart LR")
    assert md.startswith("# ✅ PASS")
    for heading in ("## Gates", "## Stages", "## Pipeline graph", "## Config", "## Code"):
        assert heading in md
    assert "```mermaid\nflowchart LR" in md
    result.stdout.fnmatch_lines([f"snowpipe report: {pytester.path / 'out' / 'report.json'}"])


def test_no_option_writes_nothing(pipeline_suite):
    pytester = pipeline_suite()
    pytester.runpytest().assert_outcomes(passed=1)
    assert not list(pytester.path.rglob("report.json"))


def test_ini_key_sets_the_folder_relative_to_the_rootdir(pipeline_suite, monkeypatch):
    pytester = pipeline_suite(ini="[pytest]\nsnowpipe_report_dir = reports/ci\nsnowpipe_config =\n    threshold = 0.5\n")
    sub = pytester.mkdir("elsewhere")
    monkeypatch.chdir(sub)
    result = pytester.runpytest(str(pytester.path))
    result.assert_outcomes(passed=1)
    assert (pytester.path / "reports" / "ci" / "report.json").is_file()
    assert not (sub / "reports").exists()


# ------------------------------------------------------------------ champion vs challenger


def test_second_run_names_the_champion_and_shows_deltas(pipeline_suite):
    pytester = pipeline_suite(gate=CHAMPION_GATE)
    assert pytester.runpytest("--snowpipe-report", "run1").ret == 0
    first, first_md = load(pytester.path / "run1")
    gate = first["gates"][0]
    assert gate["champion"] is None and gate["champion_note"] == "no champion yet"
    relative = [c for c in gate["comparisons"] if c["kind"] == "relative"]
    assert relative[0]["passed"] and relative[0]["note"] == "no champion yet"
    assert "no champion yet" in first_md

    conftest = pytester.path / "conftest.py"  # new code, same metrics: a new version, not a no-op promote
    conftest.write_text(conftest.read_text().replace("return [1, 2, 3, 4]", "return [1, 2, 3, 4, 0]"))
    assert pytester.runpytest("--snowpipe-report", "run2").ret == 0
    second, md = load(pytester.path / "run2")
    gate = second["gates"][0]
    fields = documented_fields()
    assert set(gate["champion"]) == fields["champion"]
    assert all(set(c) == fields["comparisons"] for c in gate["comparisons"])
    assert gate["champion"]["model_name"] == "model" and gate["champion"]["version"] == "v0001"  # not itself (v0002)
    assert gate["action"]["version"] == "v0002"
    assert gate["deltas"]["score"] == {"value": 1.0, "champion": 1.0, "delta": 0.0}
    relative = next(c for c in gate["comparisons"] if c["kind"] == "relative")
    assert relative["champion"] == 1.0 and relative["delta"] == 0.0 and relative["bound"] == pytest.approx(0.95)
    assert relative["champion_version"] == "model v0001"
    assert "model v0001" in md
    assert "| `test_gate` | score | 1.0000 | 1.0000 | +0.0000 |" in md
    assert re.search(r"\| `test_gate` \| score \| relative \| `>= champion - 0.05` \| 1.0000 \| 0.9500 \| 1.0000 \| \+0.0000 \| ✅ pass \|", md)


def test_worse_challenger_fails_with_both_values_and_delta(pipeline_suite):
    pytester = pipeline_suite(gate=CHAMPION_GATE)
    LocalRegistry(pytester.path / ".snowpipe" / "registry").promote("model", {"weights": 99}, metrics={"score": 1.2})
    result = pytester.runpytest("--snowpipe-report", "out")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["*GateCheckFailed: score regressed: candidate 1.0000 vs champion 1.2000 (model v0001), delta -0.2000 is worse than the tolerance 0.0500*"]
    )
    report, md = load(pytester.path / "out")
    assert report["verdict"] == "FAIL"
    gate = report["gates"][0]
    assert gate["action"]["name"] == "alert"
    assert [c["passed"] for c in gate["comparisons"]] == [True, False]  # the absolute bar held, the relative one did not
    assert "❌ FAIL" in md and "-0.2000" in md
    assert LocalRegistry(pytester.path / ".snowpipe" / "registry").default("model").version == "v0001"


def test_champion_missing_the_metric_is_a_clear_failure(pipeline_suite):
    pytester = pipeline_suite(gate=CHAMPION_GATE)
    LocalRegistry(pytester.path / ".snowpipe" / "registry").promote("model", {"w": 1}, metrics={"accuracy": 0.9, "rows": 10})
    result = pytester.runpytest("--snowpipe-report", "out")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["*MetricMissing: the metrics of the champion model v0001 have no metric 'score' (metrics present: accuracy, rows)*"]
    )
    assert "KeyError" not in result.stdout.str()
    report, _ = load(pytester.path / "out")
    assert report["verdict"] == "FAIL" and report["gates"][0]["verdict"] == "FAIL"


def test_registry_unreachable_when_the_champion_is_asked_for(pipeline_suite):
    ini = "[pytest]\nsnowpipe_registry = registry.txt\nsnowpipe_config =\n    threshold = 0.5\n"
    pytester = pipeline_suite(gate=CHAMPION_GATE, ini=ini)
    (pytester.path / "registry.txt").write_text("not a folder")
    result = pytester.runpytest("--snowpipe-report", "out")
    assert result.ret == 1
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [f"*the champion of 'model' cannot be read: the model registry path {pytester.path / 'registry.txt'} is a file*snowpipe_registry*"]
    )
    report, md = load(pytester.path / "out")
    gate = report["gates"][0]
    assert report["verdict"] == "ERROR" and gate["verdict"] == "ERROR" and gate["action"] is None
    assert "registry.txt is a file" in gate["failure"] and "registry.txt is a file" in md


def test_corrupt_registry_pointer_names_the_file(pipeline_suite):
    pytester = pipeline_suite(gate=CHAMPION_GATE)
    pointer = pytester.path / ".snowpipe" / "registry" / "model" / "default.json"
    pointer.parent.mkdir(parents=True)
    pointer.write_text("{not json")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*cannot be read from the model registry*{pointer} is corrupt*"])
    assert pointer.read_text() == "{not json"  # nothing promoted over it


def test_champion_outside_a_gate_names_the_fix(pipeline_suite):
    pytester = pipeline_suite()
    pytester.makepyfile(test_other="def test_other(snowpipe_champion):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*snowpipe_champion is requested by test_other.py::test_other, which is not a pipeline gate*snowpipe_gate*"])


# ------------------------------------------------------------------ every ending writes a report


def test_stage_error_goes_in_the_report(pipeline_suite):
    conftest = '''
import pytest

@pytest.fixture(scope="session")
def model():
    raise RuntimeError("training diverged at epoch 3")

@pytest.fixture(scope="session")
def metrics(model):
    return {"score": 1.0}
'''
    pytester = pipeline_suite(conftest=conftest)
    result = pytester.runpytest("--snowpipe-report", "out")
    assert result.ret == 1
    report, md = load(pytester.path / "out")
    assert report["verdict"] == "ERROR" and report["exit_status"] == 1
    assert "training diverged at epoch 3" in report["verdict_reason"]
    model = next(s for s in report["stages"] if s["name"] == "model")
    assert model["status"] == "error" and model["error"] == "RuntimeError: training diverged at epoch 3"
    assert next(s for s in report["stages"] if s["name"] == "metrics")["status"] == "not run"
    assert report["gates"][0]["verdict"] == "ERROR" and report["gates"][0]["action"] is None
    assert md.startswith("# 💥 ERROR") and "training diverged at epoch 3" in md


def test_failed_gate_exits_1_with_verdict_fail(pipeline_suite):
    pytester = pipeline_suite()
    result = pytester.runpytest("--snowpipe-report", "out", "--snowpipe-config", "threshold=2.5")
    assert result.ret == 1
    report, md = load(pytester.path / "out")
    assert report["verdict"] == "FAIL" and report["exit_status"] == 1
    assert report["verdict_reason"].startswith("gate test_gate failed: score below threshold")
    gate = report["gates"][0]
    assert gate["verdict"] == "FAIL" and gate["action"]["name"] == "alert"
    assert "score below threshold" in gate["message"]
    assert md.startswith("# ❌ FAIL")


def test_ordinary_test_failing_beside_passing_gate(pipeline_suite):
    pytester = pipeline_suite()
    pytester.makepyfile(test_more="def test_rows():\n    assert 1 == 2, 'rows lost'\n")
    result = pytester.runpytest("--snowpipe-report", "out")
    assert result.ret == 1
    report, _ = load(pytester.path / "out")
    assert report["verdict"] == "FAIL" and report["gates"][0]["verdict"] == "PASS"
    assert "test_more.py::test_rows" in report["verdict_reason"]
    assert report["tests"]["failures"][0]["nodeid"] == "test_more.py::test_rows"


def test_keyboard_interrupt_in_a_stage(pipeline_suite):
    conftest = '''
import pytest

@pytest.fixture(scope="session")
def raw():
    return [1]

@pytest.fixture(scope="session")
def model(raw):
    raise KeyboardInterrupt

@pytest.fixture(scope="session")
def metrics(model):
    return {"score": 1.0}
'''
    pytester = pipeline_suite(conftest=conftest)
    result = pytester.runpytest_subprocess("--snowpipe-report", "out")
    assert result.ret == 2
    report, md = load(pytester.path / "out")
    assert report["verdict"] == "INTERRUPTED" and report["exit_status"] == 2
    assert report["interrupted_by"] == "KeyboardInterrupt"
    assert next(s for s in report["stages"] if s["name"] == "model")["error"].startswith("KeyboardInterrupt")
    assert next(s for s in report["stages"] if s["name"] == "raw")["status"] == "ok"
    assert md.startswith("# ⏹️ INTERRUPTED")


def test_pytest_exit_in_a_stage_keeps_its_code(pipeline_suite):
    conftest = '''
import pytest

@pytest.fixture(scope="session")
def model():
    pytest.exit("quota exhausted", returncode=3)

@pytest.fixture(scope="session")
def metrics(model):
    return {"score": 1.0}
'''
    pytester = pipeline_suite(conftest=conftest)
    result = pytester.runpytest_subprocess("--snowpipe-report", "out")
    assert result.ret == 3
    report, _ = load(pytester.path / "out")
    assert report["exit_status"] == 3 and report["verdict"] == "ERROR"
    assert report["interrupted_by"] == "Exit: quota exhausted"


def test_collection_error_still_writes_the_report(pipeline_suite):
    pytester = pipeline_suite()
    pytester.makepyfile(test_broken="def test_x(:\n    pass\n")
    result = pytester.runpytest("--snowpipe-report", "out")
    assert result.ret == 2
    report, _ = load(pytester.path / "out")
    assert report["verdict"] == "INTERRUPTED"
    assert "1 error during collection" in report["interrupted_by"]
    assert report["tests"]["failures"] == [{"nodeid": "test_broken.py", "error": "collect: SyntaxError: invalid syntax"}]


# ------------------------------------------------------------------ GitHub step summary, JUnit


def test_step_summary_is_appended(pipeline_suite, monkeypatch, tmp_path):
    summary = tmp_path / "step_summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester = pipeline_suite()
    assert pytester.runpytest("--snowpipe-report", "out").ret == 0
    text = summary.read_text()
    _, md = load(pytester.path / "out")
    assert text.startswith("# earlier step\n") and md.strip() in text
    assert text.count("# ✅ PASS") == 1


def test_junitxml_has_the_gate_metrics_as_properties(pipeline_suite):
    pytester = pipeline_suite(gate=CHAMPION_GATE)
    assert pytester.runpytest("--junitxml", "junit.xml").ret == 0
    pytester.runpytest("--junitxml", "junit.xml")  # a second run: a champion to compare with
    case = ET.parse(pytester.path / "junit.xml").getroot().find(".//testcase[@name='test_gate']")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["snowpipe.metric.score"] == "1.0"
    assert props["snowpipe.verdict"] == "PASS"
    assert props["snowpipe.champion"] == "model v0001"
    assert props["snowpipe.champion.metric.score"] == "1.0"
    assert props["snowpipe.check.score.absolute"] == "1 >= 0.5: pass"
    assert props["snowpipe.check.score.relative"] == "1 >= champion - 0.05: pass (champion 1, delta +0)"
    assert props["snowpipe.action"] == "promote: model v0001 is already the default (unchanged: same code, data and metrics)"


# ------------------------------------------------------------------ no secret in any report


def test_planted_secrets_appear_in_no_report(pipeline_suite, monkeypatch, tmp_path):
    token = "s3cr3t-T0KEN-4f9a2c"  # a config value under a secret-looking key
    hook = "hooks-9d8e7f6a5b4c"  # the secret part of the webhook URL
    db_password = "pa55w0rd-77e1"  # a config value, leaked bare (no key= beside it)
    url_password = "hunter2-0b1c"  # nobody declared it: only the URL pattern can catch it
    monkeypatch.setenv("SNOWPIPE_ALERT_WEBHOOK", f"http://127.0.0.1:9/services/{hook}")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    ini = f"[pytest]\nsnowpipe_config =\n    threshold = 0.5\n    api_token = {token}\n    db_password = {db_password}\n"
    gate = '''
import os
import pytest

@pytest.mark.snowpipe_gate(on_pass="promote", on_fail="alert")
def test_gate(metrics, snowpipe_config):
    leak = (snowpipe_config["api_token"], os.environ["SNOWPIPE_ALERT_WEBHOOK"], "https://ci:PASSWORD@db.example.com/x")
    assert metrics["score"] > 5, "leaking %s %s %s" % leak
'''.replace("PASSWORD", url_password)
    pytester = pipeline_suite(gate=gate, ini=ini)
    pytester.makepyfile(test_more=f"def test_more():\n    raise ValueError('could not log in with {db_password} ({token})')\n")
    result = pytester.runpytest("--snowpipe-report", "out")
    assert result.ret == 1
    report_text = (pytester.path / "out" / "report.json").read_text()
    md = (pytester.path / "out" / "report.md").read_text()
    assert token not in result.stdout.str() and "could not log in with <redacted>" in result.stdout.str()  # pytest's own output too
    for text in (report_text, md, summary.read_text()):
        for secret in (token, hook, db_password, url_password):
            assert secret not in text
    report = json.loads(report_text)
    assert report["config"] == {"threshold": 0.5, "api_token": "<redacted>", "db_password": "<redacted>"}
    failures = {f["nodeid"]: f["error"] for f in report["tests"]["failures"]}
    assert failures["test_more.py::test_more"] == "call: ValueError: could not log in with <redacted> (<redacted>)"
    assert "leaking <redacted>" in report["gates"][0]["message"]
    assert "ci:" not in report["gates"][0]["message"]  # URL credentials cut whole
    assert report["verdict"] == "FAIL"


def test_planted_secret_is_not_written_into_the_model_registry(pipeline_suite):
    token = "s3cr3t-REG-77a1"
    ini = f"[pytest]\nsnowpipe_config =\n    threshold = 0.5\n    api_token = {token}\n"
    pytester = pipeline_suite(ini=ini)
    pytester.runpytest("--snowpipe-report=out").assert_outcomes(passed=1)
    registry = pytester.path / ".snowpipe" / "registry"
    written = [p for p in registry.rglob("*") if p.is_file()]
    assert any(p.name == "meta.json" for p in written)
    for path in written + [p for p in (pytester.path / "out").iterdir()]:
        assert token.encode() not in path.read_bytes(), path
    meta = json.loads(next(p for p in written if p.name == "meta.json").read_text())
    assert meta["config"]["api_token"] == "<redacted>" and meta["config"]["threshold"] == 0.5


# ------------------------------------------------------------------ bad input


def test_report_folder_is_a_file(pipeline_suite):
    pytester = pipeline_suite()
    (pytester.path / "out").write_text("a file")
    result = pytester.runpytest("--snowpipe-report", "out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--snowpipe-report out: {pytester.path / 'out'} is a file, not a folder*Pass a folder path*"])
    assert not (pytester.path / ".snowpipe").exists()  # checked before any stage ran


def test_report_folder_not_creatable(pipeline_suite):
    pytester = pipeline_suite()
    (pytester.path / "blocker").write_text("a file")
    result = pytester.runpytest("--snowpipe-report", "blocker/out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*the report folder *blocker/out is not writable (Not a directory)*"])
    assert not (pytester.path / ".snowpipe").exists()


def test_report_folder_without_write_permission(pipeline_suite):
    pytester = pipeline_suite()
    locked = pytester.mkdir("locked")
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores modes: use a read-only file system if there is one
            candidates = [Path("/proc/sys/snowpipe-report"), Path("/sys/snowpipe-report")]
            target = next((p for p in candidates if _unwritable(p)), None)
            if target is None:
                pytest.skip("running as root with no read-only location to test against")
        else:
            target = locked / "out"
        result = pytester.runpytest("--snowpipe-report", str(target))
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"*the report folder {target} is not writable*"])
    finally:
        locked.chmod(0o700)


def _unwritable(path: Path) -> bool:
    try:
        path.mkdir()
    except OSError:
        return True
    path.rmdir()
    return False


# ------------------------------------------------------------------ other plugins' sections, pytest-xdist


def test_other_plugins_add_sections(pipeline_suite):
    pytester = pipeline_suite()
    pytester.makeconftest(
        (pytester.path / "conftest.py").read_text()
        + '''

def pytest_snowpipe_report_sections(report, config):
    return [("Drift", f"{len(report['stages'])} stages checked, token=abcdef123456")]
'''
    )
    assert pytester.runpytest("--snowpipe-report", "out").ret == 0
    report, md = load(pytester.path / "out")
    assert report["sections"] == [{"title": "Drift", "markdown": "3 stages checked, token=<redacted>"}]
    assert "## Drift\n\n3 stages checked, token=<redacted>" in md


def test_xdist_workers_send_their_part_to_the_controller(pipeline_suite):
    pytester = pipeline_suite()
    pytester.makepyfile(test_more="def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    result = pytester.runpytest_subprocess("-n", "2", "--snowpipe-report", "out", "-p", "no:randomly")
    assert result.ret == 0
    report, md = load(pytester.path / "out")
    assert report["verdict"] == "PASS"
    assert report["workers"] and set(report["workers"]) <= {"gw0", "gw1"}
    gate = report["gates"][0]
    assert gate["verdict"] == "PASS" and gate["action"]["name"] == "promote" and gate["worker"] in report["workers"]
    assert {s["name"]: s["status"] for s in report["stages"]} == {"raw": "ok", "model": "ok", "metrics": "ok"}
    assert report["graph"]["mermaid"].startswith("flowchart LR") and "## Pipeline graph" in md
    assert report["tests"]["passed"] == 3


def test_report_folder_given_with_a_space_that_would_move_the_rootdir_is_a_usage_error(pipeline_suite):
    """pytest picks rootdir/ini before plugins' options exist: an existing folder after
    --snowpipe-report (the second run) would be taken for a test path; say so, suggest '='."""
    pytester = pipeline_suite()
    suite = pytester.path / "suite"
    suite.mkdir()
    for name in ("tox.ini", "conftest.py", "test_gate.py"):
        (pytester.path / name).rename(suite / name)
    first = pytester.runpytest("suite", "--snowpipe-report", "out")  # out/ does not exist yet: fine
    first.assert_outcomes(passed=1)
    assert (pytester.path / "out" / "report.json").is_file()
    second = pytester.runpytest("suite", "--snowpipe-report", "out")
    assert second.ret == pytest.ExitCode.USAGE_ERROR
    second.stderr.fnmatch_lines(["*--snowpipe-report out:*Write it with '=': --snowpipe-report=out"])
    pytester.runpytest("suite", "--snowpipe-report=out").assert_outcomes(passed=1)
