"""The `llmci` command as a user runs it: a new process, real files, real exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_llmci

CONFIG = """\
prompts:
  - path: "prompts/*.j2"
    variables: [question]
"""
CLEAN = "Q: <q>{{ question }}</q>\n"
WARNING_ONLY = "Q: {{ question }}{% if question %}{% set x = 1 %}{% endif %}{{ x }}\n"
ERROR = "Q: {{ question }} {{ answer }}\n"


def make(project, template: str) -> Path:
    return project({"llmci.yaml": CONFIG, "prompts/a.j2": template})


def test_exit_0_when_clean(project) -> None:
    root = make(project, CLEAN)
    result = run_llmci("lint", cwd=root)
    assert result.code == 0, result.stderr
    assert result.stdout == ""
    assert "1 templates, 0 errors, 0 warnings" in result.stderr


def test_exit_1_on_errors_with_text_findings(project) -> None:
    root = make(project, ERROR)
    result = run_llmci("lint", cwd=root)
    assert result.code == 1
    assert result.stdout == "prompts/a.j2:1:22: error undefined-variable 'answer' is used but is not an input\n"


def test_warnings_pass_unless_strict(project) -> None:
    root = make(project, WARNING_ONLY)
    assert run_llmci("lint", cwd=root).code == 0
    assert run_llmci("lint", "--strict", cwd=root).code == 1


def test_exit_2_on_config_error_naming_file_line_and_key(project) -> None:
    root = project({"llmci.yaml": "prompts:\n  - path: a.j2\n    variabels: [x]\n"})
    result = run_llmci("lint", cwd=root)
    assert result.code == 2
    assert result.stderr.strip() == (
        "llmci: error: llmci.yaml:3: prompts[0].variabels: unknown key; did you mean 'variables'?"
    )


def test_exit_2_on_bad_usage(project) -> None:
    root = make(project, CLEAN)
    bad = run_llmci("lint", "--format", "xml", cwd=root)
    assert bad.code == 2
    assert bad.stderr == (
        "llmci: error: llmci lint: Invalid value for '--format': 'xml' is not one of 'text', 'json', 'sarif', "
        "'github'.; see 'llmci lint --help'\n"
    )
    missing = run_llmci("lint", "nope.j2", cwd=root)
    assert missing.code == 2 and "nope.j2: no such file or folder" in missing.stderr
    empty = project({"sub/x.txt": ""}) / "sub"
    nothing = run_llmci("lint", "--config", str(root / "missing.yaml"), cwd=empty)
    assert nothing.code == 2 and "missing.yaml: no such file" in nothing.stderr


def test_nothing_to_lint_is_a_usage_error(tmp_path: Path) -> None:
    result = run_llmci("lint", "--no-cache", cwd=tmp_path)
    assert result.code == 2
    assert "nothing to lint; give template paths, or declare `prompts` in llmci.yaml" in result.stderr


def test_output_file_and_formats(project) -> None:
    root = make(project, ERROR)
    for fmt in ("text", "json", "sarif", "github"):
        result = run_llmci("lint", "--format", fmt, "--output", f"out/lint.{fmt}", cwd=root)
        assert result.code == 1 and result.stdout == ""
    assert json.loads((root / "out/lint.json").read_text())[0]["rule"] == "undefined-variable"
    assert json.loads((root / "out/lint.sarif").read_text())["runs"][0]["results"][0]["ruleId"] == "undefined-variable"
    assert (root / "out/lint.github").read_text().startswith("::error file=prompts/a.j2,line=1,col=22,")
    assert sorted(p.name for p in (root / "out").iterdir()) == ["lint.github", "lint.json", "lint.sarif", "lint.text"]


def test_in_github_actions_annotates_summarises_and_sets_outputs(project) -> None:
    root = make(project, ERROR)
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(root / "summary.md"),
        "GITHUB_OUTPUT": str(root / "output.txt"),
    }
    result = run_llmci("lint", cwd=root, env=env)
    assert result.code == 1
    assert result.stdout.startswith("::error file=prompts/a.j2,line=1,col=22,title=llmci undefined-variable::")
    assert "| `prompts/a.j2:1:22` | error | `undefined-variable` |" in (root / "summary.md").read_text()
    outputs = (root / "output.txt").read_text().splitlines()
    assert outputs[0].startswith("errors<<ghadelimiter_") and outputs[1] == "1"


def test_errors_in_actions_are_also_annotations(tmp_path: Path) -> None:
    (tmp_path / "llmci.yaml").write_text("lint: [1]\n")
    result = run_llmci("lint", cwd=tmp_path, env={"GITHUB_ACTIONS": "true"})
    assert result.code == 2
    assert result.stdout == "::error title=llmci::llmci.yaml:1: lint: must be a mapping of keys\n"


def test_config_check_and_schema(project) -> None:
    root = make(project, CLEAN)
    check = run_llmci("config", "check", cwd=root)
    assert check.code == 0 and check.stdout.endswith("llmci.yaml: ok (1 prompt entries)\n")
    schema = json.loads(run_llmci("config", "schema", cwd=root).stdout)
    assert schema["title"] == "llmci.yaml" and "prompts" in schema["properties"]


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["lint", "--help"], ["registry", "--help"], ["registry", "publish", "--help"], ["train", "--help"]]
    + [["eval", "--help"], ["compare", "--help"], ["report", "--help"]],
)
def test_help_imports_no_heavy_library(argv: list[str]) -> None:
    """`llmci --help` must start as fast as click: none of the heavy libraries may load."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "llmci", *argv], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 0 and "Usage: llmci" in proc.stdout
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    heavy = {"ray", "torch", "transformers", "deepeval", "boto3", "botocore", "pandas", "github", "numpy"}
    assert imported & heavy == set()
    assert "click" in imported  # the measurement itself works


def test_docs_document_every_rule_and_exit_code() -> None:
    """docs/lint-rules.md and docs/exit-codes.md are generated (tests/test_docs.py checks they are current)."""
    from llmci.errors import ExitCode
    from llmci.lint.rules import RULES

    rules = (REPO / "docs/lint-rules.md").read_text()
    for rule in RULES.values():
        assert f"| [`{rule.id}`](#{rule.id}) | {rule.severity.value} |" in rules, rule.id
    codes = (REPO / "docs/exit-codes.md").read_text()
    for code in ExitCode:
        assert f"\n| {int(code)} | `{code.name}` |" in codes, code
