"""The llmci package itself: importing it has no side effects; it ships its type information."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

ENVIRON_AFTER = """
import json, os
before = dict(os.environ)
import llmci, llmci.cli, llmci.config, llmci.errors, llmci.gha
print(json.dumps({"changed": dict(set(os.environ.items()) ^ set(before.items()))}))
"""

DEEPEVAL_ENVIRON = """
import os
import llmci.eval.metrics
print(os.environ.get("DEEPEVAL_TELEMETRY_OPT_OUT"))
"""


def _python(code: str, env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _environ_without_telemetry_setting() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "DEEPEVAL_TELEMETRY_OPT_OUT"}


def test_importing_llmci_leaves_the_environment_alone() -> None:
    out = json.loads(_python(ENVIRON_AFTER, _environ_without_telemetry_setting()))
    assert out == {"changed": {}}


def test_deepeval_is_imported_with_telemetry_off() -> None:
    """The one place llmci imports DeepEval sets the opt-out first, and leaves a caller's own setting alone."""
    assert _python(DEEPEVAL_ENVIRON, _environ_without_telemetry_setting()) == "1"
    assert (
        _python(DEEPEVAL_ENVIRON, {**_environ_without_telemetry_setting(), "DEEPEVAL_TELEMETRY_OPT_OUT": "YES"})
        == "YES"
    )


def test_the_package_ships_its_type_information() -> None:
    """PEP 561: llmci/py.typed exists and pyproject's package-data puts it in the wheel."""
    assert (REPO / "llmci" / "py.typed").is_file()
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    shipped = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["llmci"]
    assert "py.typed" in shipped


#: The packages of llmci's stages: each names its entry points in `__all__` and loads them on first use.
STAGES = ("lint", "train", "eval", "compare", "report", "registry", "deploy", "serve", "monitor")
#: What importing a stage's package must not import (`llmci --help` starts as fast as click).
HEAVY = ("deepeval", "pandas", "pyarrow", "scipy", "torch", "transformers", "ray")

STAGE_API = """
import sys, types
import llmci.{stage} as stage
heavy = [m for m in {heavy!r} if m in sys.modules]
assert heavy == [], heavy
assert sorted(set(stage.__all__)) == sorted(stage.__all__) and set(stage.__all__) <= set(dir(stage))
where = getattr(stage, "_WHERE", None)
assert where is None or set(where) == set(stage.__all__), set(where) ^ set(stage.__all__)
named = {{name: getattr(stage, name) for name in stage.__all__}}
odd = [n for n, v in named.items() if isinstance(v, types.ModuleType) or not (callable(v) or n.isupper())]
assert odd == [], odd
print(len(stage.__all__))
"""


@pytest.mark.parametrize("stage", STAGES)
def test_stage_package_exports_its_entry_points_without_loading_them(stage: str) -> None:
    """`import llmci.STAGE` loads nothing heavy; every name of its `__all__` resolves, to a function, a class or
    a CONSTANT (never to a submodule of the same name).

    A fresh interpreter each: what the test session imported already would hide an eager import.
    """
    count = int(_python(STAGE_API.format(stage=stage, heavy=HEAVY), dict(os.environ)).splitlines()[-1])
    assert count >= 3
