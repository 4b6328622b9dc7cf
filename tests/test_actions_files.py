"""The Action and workflow files: valid for GitHub, clean for zizmor, inputs only through env."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

ACTIONS = [REPO / "action.yml", *sorted((REPO / "actions").glob("*/action.yml"))]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
#: The caller workflows a user copies into their .github/workflows/.
STARTERS = sorted((REPO / "workflows").glob("*.yml"))


def tool(name: str) -> str:
    """The checker from the separate venv scripts/test makes (its click differs from deepeval's)."""
    folder = os.environ.get("LLMCI_ACTIONS_TOOLS")
    assert folder, "LLMCI_ACTIONS_TOOLS is unset: run the tests with scripts/test"
    path = Path(folder) / name
    assert path.exists(), f"{path} is missing: run the tests with scripts/test"
    return str(path)


def test_there_are_files_to_check() -> None:
    assert len(ACTIONS) >= 2 and WORKFLOWS


@pytest.mark.parametrize(
    ("schema", "files"),
    [("vendor.github-actions", ACTIONS), ("vendor.github-workflows", WORKFLOWS), ("vendor.github-workflows", STARTERS)],
)
def test_files_match_githubs_schemas(schema: str, files: list[Path]) -> None:
    proc = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", schema, *map(str, files)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_finds_nothing() -> None:
    proc = subprocess.run(
        [tool("zizmor"), "--offline", "--persona", "pedantic", "--no-progress", str(REPO), *map(str, STARTERS)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_there_are_starter_workflows_for_each_trigger() -> None:
    triggers = {path.name: yaml.safe_load(path.read_text())[True] for path in STARTERS}  # YAML 1.1 reads `on` as True
    assert set(triggers) == {"pr.yml", "deploy.yml", "release.yml", "monitor.yml"}
    assert "pull_request" in triggers["pr.yml"] and "workflow_dispatch" in triggers["deploy.yml"]
    assert triggers["release.yml"]["push"]["tags"] == ["v*"]
    assert (
        triggers["monitor.yml"]["schedule"] == [{"cron": "*/15 * * * *"}]
        and "workflow_dispatch" in triggers["monitor.yml"]
    )
    for path in STARTERS:
        data = yaml.safe_load(path.read_text())
        assert data.get("permissions") == {}, f"{path}: top-level permissions must be empty"
        for job in data["jobs"].values():
            assert re.fullmatch(r"OWNER/llmci/\.github/workflows/[\w-]+\.yml@[0-9a-f]{40}", job["uses"]), job["uses"]
            assert (REPO / job["uses"].split("@")[0].removeprefix("OWNER/llmci/")).is_file()


def steps(path: Path) -> list[dict]:
    data = yaml.safe_load(path.read_text())
    if "runs" in data:
        return data["runs"]["steps"]
    return [step for job in data["jobs"].values() for step in job.get("steps", [])]


@pytest.mark.parametrize("path", ACTIONS + WORKFLOWS + STARTERS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_expressions_in_run_and_every_action_pinned(path: Path) -> None:
    for step in steps(path):
        assert "${{" not in step.get("run", ""), f"{path}: step {step.get('name')} expands an expression in run:"
        uses = step.get("uses")
        if uses and not uses.startswith(("./", "$/")):
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), f"{path}: {uses} is not pinned to a commit"


def test_workflow_jobs_declare_least_privilege() -> None:
    for path in WORKFLOWS:
        data = yaml.safe_load(path.read_text())
        assert data.get("permissions") == {}, f"{path}: top-level permissions must be empty"
        for name, job in data["jobs"].items():
            assert "permissions" in job, f"{path}: job {name} must declare its permissions"
            assert "write-all" not in str(job["permissions"])


def test_only_the_alert_job_may_write_issues() -> None:
    jobs = yaml.safe_load((REPO / ".github" / "workflows" / "monitor.yml").read_text())["jobs"]
    writers = {name for name, job in jobs.items() if job["permissions"].get("issues") == "write"}
    assert writers == {"alert"}
    assert "issues" not in jobs["check"]["permissions"]


def pip_install_lines() -> list[tuple[Path, str]]:
    return [
        (path, line.strip())
        for path in ACTIONS
        for step in steps(path)
        for line in step.get("run", "").splitlines()
        if re.search(r"\bpip install\b", line)
    ]


def test_every_action_installs_llmci() -> None:
    assert {path for path, _ in pip_install_lines()} == set(ACTIONS)


@pytest.mark.parametrize(
    ("path", "line"), pip_install_lines(), ids=lambda v: str(v.relative_to(REPO)) if isinstance(v, Path) else ""
)
def test_installing_never_runs_code_planted_in_the_checkout(path: Path, line: str, tmp_path: Path) -> None:
    """The install step runs in the pull request's checkout, with the job's token in its environment.

    A PR that commits `pip/__main__.py` must not get it run: the line is run as
    the action writes it, by bash as the runner does, in a checkout holding that module.
    """
    checkout, ran = tmp_path / "checkout", tmp_path / "planted-code-ran"
    (checkout / "pip").mkdir(parents=True)
    (checkout / "pip" / "__init__.py").write_text("")
    (checkout / "pip" / "__main__.py").write_text(f"open({str(ran)!r}, 'w').close()\n")
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # `python` has pip, as on a runner
        "HOME": str(tmp_path),
        "LLMCI_SOURCE": str(tmp_path / "no-such-source"),  # the real pip must run, and fail fast, offline
        "TORCH_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_NO_INDEX": "1",
        "PIP_NO_CACHE_DIR": "1",
        "PIP_TARGET": str(tmp_path / "site"),  # never this environment, where torch is installed already
    }
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", line],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert not ran.exists(), f"{path}: `{line}` ran the pip module planted in the checkout"
    assert proc.returncode != 0 and "ERROR:" in proc.stderr, proc.stdout + proc.stderr  # the real pip said no


def test_downloaded_artifacts_land_outside_the_checkout() -> None:
    downloads = [
        (path, step)
        for path in WORKFLOWS
        for step in steps(path)
        if str(step.get("uses", "")).startswith("actions/download-artifact@")
    ]
    assert downloads
    for path, step in downloads:
        target = step.get("with", {}).get("path", "")
        assert target.startswith("${{ runner.temp }}/"), f"{path}: {step['name']} downloads into the workspace"
