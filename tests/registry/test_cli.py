"""`llmci registry` as users run it: new processes, real exit codes, both backends."""

from __future__ import annotations

import json

import pytest

from llmci.errors import ExitCode
from tests.conftest import run_llmci
from tests.registry.conftest import make_model


@pytest.fixture
def project(project):
    """The registry project (tests/registry/conftest.py) with two model folders and a metrics file."""
    root, _ = project
    make_model(root / "model", "a")
    make_model(root / "model2", "b")
    (root / "metrics.json").write_text('{"accuracy": 0.81, "loss": 1.5}')
    return project


def llmci(project, *args: str):
    root, env = project
    return run_llmci("registry", *args, cwd=root, env=env)


def test_publish_approve_promote_pull_round_trip(project) -> None:
    root, _ = project
    first = llmci(project, "publish", "model", "--name", "qa", "--metrics", "metrics.json", "--tag", "team=ml")
    assert (first.code, first.stdout) == (0, "qa@1\n")
    again = llmci(project, "publish", "model", "--name", "qa")
    assert (again.code, again.stdout) == (0, "qa@1\n")
    assert "unchanged: qa@1 already holds this content (nothing uploaded)" in again.stderr
    assert llmci(project, "publish", "model2", "--name", "qa").stdout == "qa@2\n"

    refused = llmci(project, "promote", "qa@1", "--stage", "production")
    assert (
        refused.code == ExitCode.USAGE and "qa@1 is candidate; only approved versions can be promoted" in refused.stderr
    )
    assert llmci(project, "approve", "qa@1", "--by", "alice", "--note", "beats baseline").stdout == "qa@1: approved\n"
    promoted = llmci(project, "promote", "qa@1", "--stage", "production", "--by", "ci", "--note", "ship it")
    assert (promoted.code, promoted.stdout) == (0, "qa@production -> 1\n")

    shown = json.loads(llmci(project, "show", "qa@production", "--json").stdout)
    assert shown["manifest"]["version"] == 1 and shown["status"] == "approved" and shown["stages"] == ["production"]
    assert shown["manifest"]["metrics"] == {"accuracy": 0.81, "loss": 1.5} and shown["manifest"]["tags"] == {
        "team": "ml"
    }
    assert [(e["by"], e["action"], e["after"], e["note"]) for e in shown["history"]] == [
        ("alice", "approve", "approved", "beats baseline"),
        ("ci", "promote", "1", "ship it"),
    ]
    text = llmci(project, "show", "qa@1").stdout
    assert text.startswith("qa@1  approved  in production\n") and "alice  approve: candidate -> approved" in text

    pulled = llmci(project, "pull", "qa@production", "out/qa")
    assert (
        pulled.code == 0
        and (root / "out/qa/model.safetensors").read_bytes() == (root / "model/model.safetensors").read_bytes()
    )


def test_list_and_diff(project) -> None:
    llmci(project, "publish", "model", "--name", "qa", "--metrics", "metrics.json")
    llmci(project, "publish", "model2", "--name", "qa")
    llmci(project, "publish", "model", "--name", "summarizer")
    names = json.loads(llmci(project, "list", "--json").stdout)
    assert [(n["name"], n["versions"], n["latest"]) for n in names] == [("qa", 2, 2), ("summarizer", 1, 1)]
    versions = json.loads(llmci(project, "list", "qa", "--json").stdout)
    assert [(v["version"], v["status"]) for v in versions] == [(1, "candidate"), (2, "candidate")]
    table = llmci(project, "list", "qa").stdout.splitlines()
    assert table[0].split() == ["version", "status", "stages", "created_at", "size", "digest", "metrics"]
    diff = json.loads(llmci(project, "diff", "qa@1", "qa@2", "--json").stdout)
    assert diff["files"] == {"added": 0, "removed": 0, "changed": 2}
    assert {"field": "metric accuracy", "qa@1": 0.81, "qa@2": None, "delta": None} in diff["fields"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["show", "nope@1"], ExitCode.NOT_FOUND, "model 'nope' is not in the registry"),
        (["show", "qa@7"], ExitCode.NOT_FOUND, "qa@7: no such version"),
        (["pull", "qa@staging", "x"], ExitCode.NOT_FOUND, "qa@staging: no version is in staging"),
        (["show", "qa@@1"], ExitCode.USAGE, "is not a version number"),
        (["publish", "missing", "--name", "qa"], ExitCode.USAGE, "missing: not a folder"),
        (["publish", "model", "--name", "-bad"], ExitCode.USAGE, "'-bad' is not a valid model name"),
        (["publish", "model", "--name", "qa", "--tag", "novalue"], ExitCode.USAGE, "--tag 'novalue' is not KEY=VALUE"),
        (["publish", "model", "--name", "qa", "--metrics", "llmci.yaml"], ExitCode.USAGE, "llmci.yaml: not valid JSON"),
        (["approve", "qa@1", "--by", "me"], ExitCode.USAGE, "Missing option '--note'"),
    ],
)
def test_errors_are_one_line_with_their_exit_code(project, args: list[str], code: int, message: str) -> None:
    llmci(project, "publish", "model", "--name", "qa")
    result = llmci(project, *args)
    assert result.code == code, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_publish_in_actions_sets_outputs_and_lineage(project) -> None:
    root, env = project
    env = {
        **env,
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(root / "out.txt"),
        "GITHUB_REPOSITORY": "acme/support-bot",
        "GITHUB_SHA": "0123abcd",
        "GITHUB_RUN_ID": "42",
        "GITHUB_ACTOR": "octocat",
    }
    result = run_llmci("registry", "publish", "model", "--name", "qa", cwd=root, env=env)
    assert result.code == 0
    outputs = (root / "out.txt").read_text()
    assert "\nqa\n" in outputs and "\n1\n" in outputs and "\nqa@1\n" in outputs
    manifest = json.loads(run_llmci("registry", "show", "qa@1", "--json", cwd=root, env=env).stdout)["manifest"]
    assert manifest["created_by"] == "octocat"
    assert manifest["lineage"]["git_repo"] == "https://github.com/acme/support-bot"
    assert manifest["lineage"]["git_commit"] == "0123abcd"
    assert manifest["lineage"]["workflow_run_url"] == "https://github.com/acme/support-bot/actions/runs/42"
