from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Real third-party data vendored into the repository (sources, licenses and commits: tests/data/README.md).
CORPORA = REPO / "tests" / "data"
QUICKSTART = REPO / "examples" / "quickstart"


@pytest.fixture(scope="session", autouse=True)
def private_cache_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lint cache's signing key of every llmci the tests run: never the one in the user's home."""
    path = tmp_path_factory.mktemp("cache-key") / "cache-key"
    os.environ.setdefault("LLMCI_CACHE_KEY_FILE", str(path))
    return path


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text) if text.startswith("\n") else text, encoding="utf-8")
    return root


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def run_llmci(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60) -> Result:
    """Run the installed `llmci` the way a user does: a new process, real exit code."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    proc = subprocess.run(
        [sys.executable, "-m", "llmci", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def project(tmp_path: Path):
    """Write files into a fresh project folder and return it."""

    def make(files: dict[str, str]) -> Path:
        return write_tree(tmp_path, files)

    return make


@pytest.fixture(scope="session")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart's tiny base model, built once with the quickstart's own script."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_base_model", QUICKSTART / "build_base_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(tmp_path_factory.mktemp("base") / "base-model")
