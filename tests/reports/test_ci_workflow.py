"""examples/ci: the GitHub Actions workflow runs the README's command and keeps what CI needs."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pytest_snowpipe.settings import DEFAULT_REGISTRY

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
CI = ROOT / "examples" / "ci"


@pytest.fixture(scope="module")
def steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load((CI / "github-workflow.yml").read_text())
    assert set(workflow["jobs"]) == {"gate"}
    return list(workflow["jobs"]["gate"]["steps"])


def uses(steps: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [s for s in steps if str(s.get("uses", "")).split("@")[0] == action]


def readme_command() -> str:
    blocks = re.findall(r"```bash\n(.*?)```", (CI / "README.md").read_text(), flags=re.S)
    return blocks[0].strip()


def test_runs_the_readme_command_after_installing(steps: list[dict[str, Any]]) -> None:
    runs = [s.get("run", "").strip() for s in steps]
    assert readme_command() in runs
    assert readme_command().startswith("pytest examples/ --snowpipe-report=report/ --junitxml report/")
    install = next(i for i, r in enumerate(runs) if "pip install" in r)
    assert '".[examples]"' in runs[install] and install < runs.index(readme_command())
    assert [s["uses"].split("@")[0] for s in steps[:2]] == ["actions/checkout", "actions/setup-python"]


def test_uploads_the_report_folder_always(steps: list[dict[str, Any]]) -> None:
    (upload,) = uses(steps, "actions/upload-artifact")
    assert upload["if"].startswith("always()")
    assert upload["with"]["path"].rstrip("/") == "report"
    assert steps.index(upload) > [s.get("run", "").strip() for s in steps].index(readme_command())


def test_the_registry_persists_between_runs(steps: list[dict[str, Any]]) -> None:
    registry = f"examples/{DEFAULT_REGISTRY}"  # examples/pytest.ini makes examples/ the rootdir
    (restore,) = uses(steps, "actions/cache/restore")
    (save,) = uses(steps, "actions/cache/save")
    assert restore["with"]["path"] == save["with"]["path"] == registry
    assert save["with"]["key"] == restore["with"]["key"]
    assert save["with"]["key"].startswith(restore["with"]["restore-keys"].strip())
    assert "always()" in save["if"] and "refs/heads/main" in save["if"]  # failures too; main only
    assert steps.index(restore) < steps.index(save)


def test_webhook_comes_from_a_secret(steps: list[dict[str, Any]]) -> None:
    gate = next(s for s in steps if s.get("run", "").strip() == readme_command())
    assert gate["env"]["SNOWPIPE_ALERT_WEBHOOK"] == "${{ secrets.SNOWPIPE_ALERT_WEBHOOK }}"
