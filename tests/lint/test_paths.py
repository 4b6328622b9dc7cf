"""Which files lint reads: the config keeps to the project, the command line is the user's choice."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_llmci, write_tree


def project(tmp_path: Path, config: str) -> Path:
    """`repo/project/llmci.yaml` in a repository, a shared folder beside it and a secret outside it."""
    write_tree(
        tmp_path,
        {
            "secret.txt": "{{ x.__class__ }}\n",
            "repo/common/header.j2": "Header {{ title }}\n",
            "repo/project/llmci.yaml": config,
            "repo/project/p/a.j2": "{{ x }}\n",
        },
    )
    (tmp_path / "repo/.git").mkdir()
    return tmp_path / "repo/project"


def test_a_matched_link_to_outside_the_project_is_refused(tmp_path: Path) -> None:
    root = project(tmp_path, "prompts:\n  - path: 'p/*.j2'\n    variables: [x]\n")
    (root / "p/evil.j2").symlink_to(tmp_path / "secret.txt")
    result = run_llmci("lint", cwd=root)
    assert result.code == 2 and result.stdout == ""
    assert result.stderr == (
        "llmci: error: llmci.yaml:2: prompts[0].path: matches p/evil.j2, which is outside the folder of "
        "llmci.yaml and lint.search_path once links are resolved; remove the link or add its target's folder "
        "to lint.search_path\n"
    )


def test_a_link_to_outside_found_in_a_folder_given_on_the_command_line_is_refused(tmp_path: Path) -> None:
    root = project(tmp_path, "prompts: []\n")
    (root / "p/evil.j2").symlink_to(tmp_path / "secret.txt")
    result = run_llmci("lint", "p", cwd=root)
    assert result.code == 2 and result.stdout == ""
    assert result.stderr == (
        "llmci: error: p/evil.j2: a link to outside the folders being linted; "
        "name the file itself on the command line to lint it\n"
    )


def test_files_named_on_the_command_line_may_be_anywhere(tmp_path: Path) -> None:
    root = project(tmp_path, "prompts: []\n")
    (root / "p/evil.j2").symlink_to(tmp_path / "secret.txt")
    for path in (str(tmp_path / "secret.txt"), "p/evil.j2"):
        result = run_llmci("lint", path, cwd=root)
        assert result.code == 1 and "error unsafe-access" in result.stdout, result.stderr


def test_search_path_lets_prompts_match_templates_outside_the_project(tmp_path: Path) -> None:
    config = "lint:\n  search_path: [../common]\nprompts:\n  - path: '../common/*.j2'\n    variables: [title]\n"
    root = project(tmp_path, config)
    result = run_llmci("lint", cwd=root)
    assert (result.code, result.stdout) == (0, "")
    assert result.stderr == "llmci lint: 1 templates, 0 errors, 0 warnings\n"
