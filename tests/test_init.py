"""`llmci init`: what it writes passes llmci's own checks and GitHub's, and it never clobbers a file."""

from __future__ import annotations

import itertools
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from llmci import scaffold
from llmci.config import parse_config
from llmci.errors import UsageError
from tests.conftest import REPO, run_llmci
from tests.test_actions_files import tool

SHA = "0123456789abcdef0123456789abcdef01234567"
ALL = "lint,eval,train,deploy,monitor"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    return tmp_path


def written(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and ".git" not in p.parts}


def uses(root: Path) -> list[str]:
    found = []
    for path in sorted((root / ".github" / "workflows").glob("*.yml")):
        found += [job["uses"] for job in yaml.safe_load(path.read_text())["jobs"].values()]
    return found


def test_init_writes_a_project_that_passes_every_check(repo: Path) -> None:
    target = "openai:https://api.example.com/v1#gpt-4o-mini"
    args = ("init", "--with", ALL, "--ref", SHA, "--repo", "acme/llmci", "--target", target)
    first = run_llmci(*args, cwd=repo)
    assert first.code == 0, first.stderr
    assert written(repo) == {
        "llmci.yaml",
        "prompts/example.j2",
        "data/example.jsonl",
        "data/train.jsonl",
        ".github/workflows/llmci-pr.yml",
        ".github/workflows/llmci-deploy.yml",
        ".github/workflows/llmci-release.yml",
        ".github/workflows/llmci-monitor.yml",
    }
    for said in ("wrote llmci.yaml", "OPENAI_API_KEY", "required reviewers"):
        assert said in first.stdout
    workflows = sorted(map(str, (repo / ".github" / "workflows").glob("*.yml")))
    assert uses(repo) and all(re.fullmatch(rf"acme/llmci/\.github/workflows/[\w-]+\.yml@{SHA}", u) for u in uses(repo))
    assert (REPO / ".github/workflows/pr-checks.yml").is_file()
    pr = yaml.safe_load((repo / ".github/workflows/llmci-pr.yml").read_text())["jobs"]["llmci"]
    assert pr["with"] == {"suite": "example", "target": target} and "api-key" in pr["secrets"]

    check = run_llmci("config", "check", cwd=repo)
    assert check.code == 0, check.stderr
    lint = run_llmci("lint", "--strict", cwd=repo)
    assert lint.code == 0, lint.stdout + lint.stderr
    schema = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *workflows],
        capture_output=True,
        text=True,
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr
    zizmor = subprocess.run(
        [tool("zizmor"), "--offline", "--persona", "pedantic", "--no-progress", *workflows],
        capture_output=True,
        text=True,
    )
    assert zizmor.returncode == 0, zizmor.stdout + zizmor.stderr

    before = {name: (repo / name).stat().st_mtime_ns for name in written(repo)}
    again = run_llmci(*args, cwd=repo)
    assert again.code == 0, again.stderr
    assert again.stdout.strip() == "nothing to do: every file is already there"
    assert {name: (repo / name).stat().st_mtime_ns for name in written(repo)} == before


def test_init_with_lint_writes_only_lint(repo: Path) -> None:
    result = run_llmci("init", str(repo), "--with", "lint", "--ref", SHA, cwd=repo.parent)
    assert result.code == 0, result.stderr
    assert written(repo) == {"llmci.yaml", "prompts/example.j2", ".github/workflows/llmci-pr.yml"}
    config = yaml.safe_load((repo / "llmci.yaml").read_text())
    assert set(config) == {"prompts", "lint"}
    job = yaml.safe_load((repo / ".github/workflows/llmci-pr.yml").read_text())["jobs"]["llmci"]
    assert "with" not in job and job["uses"].endswith(f"@{SHA}")  # no target: the reusable workflow only lints
    assert run_llmci("lint", cwd=repo).code == 0


def test_init_pins_the_checkout_it_runs_from_by_default(repo: Path) -> None:
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    result = run_llmci("init", cwd=repo)
    assert result.code == 0, result.stderr
    assert uses(repo) == [f"{scaffold.DEFAULT_REPOSITORY}/.github/workflows/pr-checks.yml@{head}"]
    assert f"@{head} (HEAD of the llmci checkout" in result.stdout


def test_an_existing_file_is_kept_without_force_and_replaced_with_it(repo: Path) -> None:
    (repo / "llmci.yaml").write_text("lint: {}\n")
    kept = run_llmci("init", "--ref", SHA, cwd=repo)
    assert kept.code == 0, kept.stderr
    assert "skipped llmci.yaml: it exists and differs; --force replaces it" in kept.stdout
    assert (repo / "llmci.yaml").read_text() == "lint: {}\n"
    assert (repo / ".github/workflows/llmci-pr.yml").is_file()  # the rest was written

    again = run_llmci("init", "--ref", SHA, cwd=repo)
    assert again.code == 0 and "skipped llmci.yaml" in again.stdout
    assert "nothing to do: no file was written" in again.stdout

    forced = run_llmci("init", "--ref", SHA, "--force", cwd=repo)
    assert forced.code == 0, forced.stderr
    assert forced.stdout.splitlines()[0] == "replaced llmci.yaml"
    assert "eval" in yaml.safe_load((repo / "llmci.yaml").read_text())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--with", "lint,evals"), "unknown stage 'evals'; did you mean 'eval'?"),
        (("--target", "gpt-4o"), "--target gpt-4o: unknown target"),
        (("--target", "registry:my-model"), "is not a model reference"),
        (("--target", "openai:https://me:sk-secret@api.example.com/v1#m"), "a key in the URL"),
        (("--target", "hf:models/my model"), "can be written into a workflow"),
        (("--with", "lint", "--target", "recorded"), "add eval to --with"),
        (("--ref", "v1.0"), "--ref v1.0: not a full commit SHA"),
        (("--repo", "not a repo"), "expected OWNER/NAME"),
    ],
)
def test_bad_options_are_refused_and_nothing_is_written(repo: Path, args: tuple[str, ...], message: str) -> None:
    result = run_llmci("init", *args, cwd=repo)
    assert result.code == 2 and message in result.stderr, result.stderr
    assert written(repo) == set()


def test_without_a_known_commit_init_asks_for_ref(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scaffold, "_installed_from", lambda: (None, None))
    monkeypatch.setattr(scaffold, "_checkout", lambda: None)
    with pytest.raises(UsageError, match="pass --ref with the full 40-hex commit SHA"):
        scaffold.resolve_pin(None, None)
    assert scaffold.resolve_pin(SHA.upper(), None) == scaffold.Pin(scaffold.DEFAULT_REPOSITORY, SHA, "--ref")


def test_a_git_install_gives_its_commit_and_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scaffold, "_installed_from", lambda: ("https://github.com/acme/llmci.git", SHA))
    monkeypatch.setattr(scaffold, "_checkout", lambda: None)
    assert scaffold.resolve_pin(None, None) == scaffold.Pin("acme/llmci", SHA, "the commit pip installed llmci from")
    assert scaffold.resolve_pin(None, "other/fork").repository == "other/fork"
    for url in (
        "git@github.com:acme/llmci.git",
        "git+https://github.com/acme/llmci@main",
        "https://github.com/acme/llmci/",
    ):
        assert scaffold._github_repository(url) == "acme/llmci", url
    assert scaffold._github_repository("https://gitlab.com/acme/llmci") is None


@pytest.mark.parametrize("count", range(1, len(scaffold.STAGES) + 1))
def test_every_choice_of_stages_gives_a_valid_config(tmp_path: Path, count: int) -> None:
    pin = scaffold.Pin("acme/llmci", SHA, "--ref")
    for stages in itertools.combinations(scaffold.STAGES, count):
        for target in ("registry:bot@production", "hf:models/bot", "openai:http://localhost:8000/v1#m", "recorded"):
            plan = scaffold.plan(tmp_path, stages=stages, target=target if "eval" in stages else None, pin=pin)
            config = parse_config(plan.files[0].text, "llmci.yaml", root=tmp_path)
            assert bool(config.prompts) == ("lint" in stages)
            assert bool(config.eval.suites) == ("eval" in stages)
            assert (config.train is not None) == ("train" in stages)
            assert bool(config.deploy.environments) == ("deploy" in stages)
            if "eval" not in stages:
                break


def test_the_starter_workflows_are_the_rendered_templates() -> None:
    """workflows/*.yml are generated: edit templates/workflows/*.yml.j2, then run `python -m llmci.scaffold`."""
    rendered = scaffold.render_starters()
    assert sorted(rendered) == sorted(p.name for p in (REPO / "workflows").glob("*.yml"))
    for name, text in rendered.items():
        assert (REPO / "workflows" / name).read_text() == text, (
            f"workflows/{name} differs from templates/{scaffold.WORKFLOWS[name][0]}: "
            "edit the template and run `python -m llmci.scaffold`"
        )


def test_the_templates_ship_in_the_package() -> None:
    """One copy in git: llmci/_templates links to templates/, and package-data puts the files in the wheel."""
    link = REPO / "llmci" / "_templates"
    assert link.is_symlink() and link.resolve() == REPO / "templates"
    assert scaffold.templates_root().resolve() == REPO / "templates"
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    shipped = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["llmci"]
    assert {"_templates/*", "_templates/*/*"} <= set(shipped)
    assert max(len(p.relative_to(REPO / "templates").parts) for p in (REPO / "templates").rglob("*")) <= 2
