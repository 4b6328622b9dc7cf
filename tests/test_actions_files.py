"""The Action and workflow files: valid for GitHub, clean for zizmor, inputs only through env."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

ACTIONS = [REPO / "action.yml", *sorted((REPO / "actions").glob("*/action.yml"))]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


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
    ("schema", "files"), [("vendor.github-actions", ACTIONS), ("vendor.github-workflows", WORKFLOWS)]
)
def test_files_match_githubs_schemas(schema: str, files: list[Path]) -> None:
    proc = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", schema, *map(str, files)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_finds_nothing() -> None:
    proc = subprocess.run(
        [tool("zizmor"), "--offline", "--persona", "pedantic", "--no-progress", str(REPO)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def steps(path: Path) -> list[dict]:
    data = yaml.safe_load(path.read_text())
    if "runs" in data:
        return data["runs"]["steps"]
    return [step for job in data["jobs"].values() for step in job.get("steps", [])]


@pytest.mark.parametrize("path", ACTIONS + WORKFLOWS, ids=lambda p: str(p.relative_to(REPO)))
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
