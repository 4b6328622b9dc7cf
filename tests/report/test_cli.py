"""`llmci report` as a workflow step runs it: a new process, Actions' environment, real exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import run_llmci
from tests.report.conftest import SHA_NEW, comparison, regression, write_json
from tests.report.github_server import GitHubServer, Token

PASS = comparison([("bug", "bug")] * 10)


def actions_env(tmp_path: Path, server: GitHubServer | None, *, token: str | None, fork: bool = False) -> dict:
    head_repo = "mallory/widgets" if fork else "octo/widgets"
    event = {
        "number": 7,
        "pull_request": {
            "number": 7,
            "head": {"sha": SHA_NEW, "repo": {"full_name": head_repo}},
            "base": {"sha": "c" * 40, "repo": {"full_name": "octo/widgets"}},
        },
    }
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "octo/widgets",
        "GITHUB_EVENT_PATH": str(write_json(tmp_path / "event.json", event)),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
        "GITHUB_RUN_ID": "4242",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_WORKFLOW": "PR checks",
        "GITHUB_SERVER_URL": "https://github.com",
    }
    if server is not None:
        env["GITHUB_API_URL"] = server.api_url
    if token:
        env["GITHUB_TOKEN"] = token
    return env


def outputs(tmp_path: Path) -> dict[str, str]:
    """The step outputs, from the heredoc blocks in GITHUB_OUTPUT."""
    text = (tmp_path / "output.txt").read_text()
    return {name: value for name, _, value in re.findall(r"^([\w-]+)<<(\S+)\n(.*?)\n\2$", text, flags=re.M | re.S)}


def test_in_actions_it_comments_sets_outputs_and_exits_with_the_verdict(tmp_path: Path, github: GitHubServer) -> None:
    github.tokens["ghs_actions"] = Token(login=None)
    path = write_json(tmp_path / "comparison.json", regression())
    result = run_llmci("report", str(path), cwd=tmp_path, env=actions_env(tmp_path, github, token="ghs_actions"))
    assert result.code == 1, result.stderr
    (comment,) = github.comments_on(7)
    assert "::add-mask::ghs_actions" in result.stdout
    assert f"llmci report: comment created: {comment['html_url']}" in result.stdout
    assert outputs(tmp_path) == {"verdict": "regression", "comment-url": comment["html_url"]}
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("### ❌ llmci: **regression**") and "<!-- llmci-report" not in summary
    assert "[Workflow run and artifacts](https://github.com/octo/widgets/actions/runs/4242)" in comment["body"]
    assert github.check_runs[0]["head_sha"] == SHA_NEW and github.check_runs[0]["conclusion"] == "failure"


def test_a_fork_gets_the_summary_and_a_warning_and_the_verdicts_exit_code(tmp_path: Path, github: GitHubServer) -> None:
    github.tokens["ghs_fork"] = Token(login=None, permissions=frozenset())
    path = write_json(tmp_path / "comparison.json", PASS)
    result = run_llmci(
        "report", str(path), cwd=tmp_path, env=actions_env(tmp_path, github, token="ghs_fork", fork=True)
    )
    assert result.code == 0, result.stderr
    assert "::warning title=llmci::this pull request comes from a fork" in result.stdout
    assert (tmp_path / "summary.md").read_text().startswith("### ✅ llmci: **pass**")
    assert outputs(tmp_path) == {"verdict": "pass", "comment-url": ""}
    assert not github.comments_on(7)


def test_a_missing_permission_exits_8_with_one_line(tmp_path: Path, github: GitHubServer) -> None:
    github.tokens["ghs_ro"] = Token(login=None, permissions=frozenset())
    path = write_json(tmp_path / "comparison.json", PASS)
    result = run_llmci("report", str(path), cwd=tmp_path, env=actions_env(tmp_path, github, token="ghs_ro"))
    assert result.code == 8
    assert result.stderr.strip().splitlines() == [
        "llmci: error: GitHub refused the comment on pull request #7 (HTTP 403: Resource not accessible by "
        "integration); grant the job the permission `issues: write` or `pull-requests: write`"
    ]
    assert (tmp_path / "summary.md").exists()  # written before GitHub was asked


def test_without_a_token_the_markdown_goes_to_stdout_and_cannot_run_workflow_commands(tmp_path: Path) -> None:
    hostile = "::error file=app.py,line=1::owned\n::set-output name=verdict::pass"
    path = write_json(tmp_path / "comparison.json", regression(output=hostile))
    result = run_llmci("report", str(path), cwd=tmp_path, env=actions_env(tmp_path, None, token=None))
    assert result.code == 1
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("::stop-commands::"))
    resume = "::" + lines[start].split("::")[2] + "::"
    end = lines.index(resume)
    inside = [i for i, line in enumerate(lines) if line.startswith("::error file=app.py")]
    assert inside and all(start < i < end for i in inside)
    assert lines[start + 1].startswith("### ❌ llmci: **regression**")


def test_outside_actions_it_writes_the_report_file(tmp_path: Path) -> None:
    path = write_json(tmp_path / "comparison.json", PASS)
    lint = write_json(
        tmp_path / "lint.json",
        [
            {
                "path": "prompts/a.j2",
                "line": 3,
                "column": 1,
                "severity": "warning",
                "rule": "unused-variable",
                "message": "x",
            }
        ],
    )
    result = run_llmci("report", str(path), "--lint", str(lint), "--output", "out/comment.md", cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert result.stdout == "llmci report: out/comment.md\n"
    text = (tmp_path / "out" / "comment.md").read_text()
    assert "**Lint**: 0 errors, 1 warning" in text and "| ⚠️ | prompts/a.j2:3 | unused-variable | x |" in text


def test_a_file_that_is_not_a_comparison_is_a_one_line_usage_error(tmp_path: Path) -> None:
    path = write_json(tmp_path / "results.json", {"format": "llmci.eval-results/1"})
    result = run_llmci("report", str(path), cwd=tmp_path)
    assert result.code == 2
    assert result.stderr == f"llmci: error: {path}: not a comparison (format is not 'llmci.comparison/1')\n"
    assert json.loads(path.read_text())  # untouched


def _damaged(edit) -> dict:
    data = json.loads(json.dumps(regression(n=3)))
    edit(data)
    return data


DAMAGED = {
    "metrics is a mapping": (lambda d: d.update(metrics={"a": 1}), "metrics: Input should be a valid list"),
    "a metric without suite": (lambda d: d["metrics"][0].pop("suite"), "metrics[0].suite: Field required"),
    "ci of one number": (lambda d: d["metrics"][0]["score"].update(ci=[0.1]), "metrics[0].score.ci[1]: Field required"),
    "a delta that is text": (lambda d: d["metrics"][0]["score"].update(delta="-1"), "metrics[0].score.delta: "),
    "cases not a list": (lambda d: d["metrics"][0].update(regressed_cases=7), "metrics[0].regressed_cases: "),
    "latency not a mapping": (lambda d: d["suites"][0].update(latency_ms=[1, 2]), "suites[0].latency_ms: "),
    "settings of the wrong type": (lambda d: d.update(settings={"confidence": "high"}), "settings.confidence: "),
}


@pytest.mark.parametrize("damage", DAMAGED, ids=list(DAMAGED))
def test_a_damaged_comparison_is_one_line_naming_the_field(tmp_path: Path, damage: str) -> None:
    edit, where = DAMAGED[damage]
    path = write_json(tmp_path / "comparison.json", _damaged(edit))
    result = run_llmci("report", str(path), "--output", "comment.md", cwd=tmp_path)
    assert result.code == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"llmci: error: {path}: {where}"), result.stderr
    assert not (tmp_path / "comment.md").exists()


def test_damaged_lint_findings_are_one_line_naming_the_field(tmp_path: Path) -> None:
    path = write_json(tmp_path / "comparison.json", PASS)
    lint = write_json(tmp_path / "lint.json", [{"path": "a.j2", "line": "three", "rule": "r", "message": "m"}])
    result = run_llmci("report", str(path), "--lint", str(lint), "--output", "comment.md", cwd=tmp_path)
    assert result.code == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"llmci: error: {lint}: [0].line: "), result.stderr


def test_credentials_in_a_comparisons_target_never_reach_the_report(tmp_path: Path) -> None:
    """A comparison written by an older llmci may carry a target URL with its key."""
    data = json.loads(json.dumps(regression(n=3)))
    data["candidate"]["target"] = "openai:https://ci:sk-live-123@llm.example/v1#m"
    data["metrics"][0]["regressed_cases"][0]["candidate"]["reason"] = (
        "POST https://ci:sk-live-123@llm.example/v1 failed"
    )
    path = write_json(tmp_path / "comparison.json", data)
    result = run_llmci("report", str(path), "--output", "comment.md", cwd=tmp_path)
    assert result.code == 1, result.stderr
    text = (tmp_path / "comment.md").read_text()
    assert "sk-live-123" not in text + result.stdout + result.stderr
    assert "llm.example/v1\\#m" in text
