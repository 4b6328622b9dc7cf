"""README.md and docs/: generated parts current, links resolving, commands and examples real."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from llmci import docs
from llmci.cli import cli
from llmci.config import parse_config
from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def test_generated_pages_are_current() -> None:
    stale = docs.stale_pages()
    assert not stale, f"{', '.join(stale)}: stale generated docs; run `.venv/bin/python -m llmci.docs`"


def test_generator_rewrites_only_the_marked_regions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(docs.PAGES, "page.md", {"table": lambda: "| new |\n"})
    region = "<!-- generated: table (do not edit) -->\n| old |\n<!-- end generated -->\n"
    text = f"# Title\n\nprose\n\n{region}\nmore prose\n"
    assert docs.render("page.md", text) == text.replace("| old |", "| new |")
    with pytest.raises(ValueError, match=r"page.md: generated regions missing \['table'\], unknown \['other'\]"):
        docs.render("page.md", "<!-- generated: other -->\n<!-- end generated -->\n")


def test_check_mode_names_a_stale_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    for page in docs.PAGES:
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / page).write_text((REPO / page).read_text())
    page = tmp_path / "docs/exit-codes.md"
    page.write_text(page.read_text().replace("| 70 |", "| 71 |"))
    monkeypatch.setattr(docs, "REPO", tmp_path)
    assert docs.main(["--check"]) == 1
    assert capsys.readouterr().err == "docs/exit-codes.md is stale: run python -m llmci.docs\n"
    assert docs.main([]) == 0 and docs.main(["--check"]) == 0  # rewritten
    assert "| 70 |" in page.read_text()


def test_every_exit_code_is_documented_in_errors_py() -> None:
    from llmci.errors import ExitCode

    assert sorted(docs.exit_code_docs()) == sorted(int(code) for code in ExitCode)


# -- links ------------------------------------------------------------------------------------


def _inline_text(token: Token) -> str:
    return "".join(child.content for child in token.children or [] if child.type in ("text", "code_inline"))


def _anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the page: one per heading (duplicates numbered), plus HTML ids."""
    tokens = MARKDOWN.parse(path.read_text(encoding="utf-8"))
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            slug = docs.slug(_inline_text(tokens[index + 1]))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
        if token.type in ("html_block", "inline"):
            html = token.content
            anchors.update(re.findall(r"""<a\s[^>]*(?:id|name)=["']([^"']+)["']""", html))
    return anchors


def _links(path: Path) -> list[str]:
    found = []
    for token in MARKDOWN.parse(path.read_text(encoding="utf-8")):
        for child in token.children or []:
            if child.type == "link_open":
                found.append(str(child.attrs["href"]))
            elif child.type == "image":
                found.append(str(child.attrs["src"]))
    return found


def test_every_relative_link_resolves() -> None:
    broken = []
    checked = 0
    for page in PAGES:
        for href in _links(page):
            if re.match(r"^[a-z][a-z0-9+.-]*:", href):  # https:, mailto:: not checked here
                continue
            checked += 1
            target, _, anchor = href.partition("#")
            file = (page.parent / target).resolve() if target else page
            where = f"{page.relative_to(REPO)}: {href}"
            if not file.is_relative_to(REPO) or not file.exists():
                broken.append(f"{where}: no such file")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
                broken.append(f"{where}: no heading with that anchor in {file.relative_to(REPO)}")
    assert not broken, "\n".join(broken)
    assert checked > 50  # the parse found the links


def test_the_link_checker_sees_a_broken_anchor(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("# A `code` title\n\n## Two\n\n## Two\n\n| x |\n| - |\n| [t](#two-1) |\n\n![i](img.png)\n")
    assert _anchors(page) == {"a-code-title", "two", "two-1"}
    assert _links(page) == ["#two-1", "img.png"]


# -- what the README promises ------------------------------------------------------------------


def _code(path: Path) -> list[str]:
    """The code spans and code blocks of a page."""
    code = []
    for token in MARKDOWN.parse(path.read_text(encoding="utf-8")):
        if token.type in ("fence", "code_block"):  # without its comments (`# ... llmci reaches ...`)
            code.append(re.sub(r"(^|\s)#.*", "", token.content, flags=re.M))
        code += [child.content for child in token.children or [] if child.type == "code_inline"]
    return code


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_command_named_exists(page: Path) -> None:
    """`llmci WORD [WORD]` in the page's code is a command of the CLI (and a subcommand where it is a group)."""
    ctx = click.Context(cli)
    unknown = []
    for code in _code(page):
        for match in re.finditer(r"(?<![\w.-])llmci ([a-z][a-z-]*)(?: ([a-z][a-z-]*)\b(?![@:/.]))?", code):
            name, sub = match.groups()
            command = cli.get_command(ctx, name)
            missing_sub = sub and isinstance(command, click.Group) and command.get_command(ctx, sub) is None
            if command is None or missing_sub:
                unknown.append(match.group(0))
    assert not unknown, f"{page.name} names commands llmci does not have: {sorted(set(unknown))}"


def test_readme_states_the_two_commands_before_anything_else() -> None:
    readme = (REPO / "README.md").read_text()
    intro = readme.split("\n## ", 1)[0]
    assert "`scripts/demo`" in intro and "`scripts/test`" in intro
    assert "scripts/test   # the whole test suite (what CI runs)" in readme
    assert "exec scripts/test" in (REPO / ".ci/run").read_text()


def test_readme_example_config_is_valid() -> None:
    readme = (REPO / "README.md").read_text()
    example = readme.split("## `llmci.yaml`\n\n```yaml\n", 1)[1].split("```", 1)[0]
    assert len(example.splitlines()) <= 12
    config = parse_config(example, "README.md")
    assert config.eval.suites["routing"].metrics[0].key == "ExactMatch"


def test_configuration_example_is_valid() -> None:
    page = (REPO / "docs/configuration.md").read_text()
    example = page.split("## A complete example\n\n```yaml\n", 1)[1].split("```", 1)[0]
    config = parse_config(example, "docs/configuration.md")
    suite = config.eval.suites["routing"]
    assert suite.metrics[1].key == "helpfulness" and config.eval.suites["legacy"].pytest == ["tests/evals"]
