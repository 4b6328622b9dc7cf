"""The content-hash cache: hits when nothing changed, never serves a stale answer."""

from __future__ import annotations

from pathlib import Path

from llmci.config import load_config
from llmci.lint.engine import Linter
from tests.conftest import write_tree

CONFIG = "prompts:\n  - path: 'p/*.j2'\n    variables: [x]\n"


def lint(root: Path):
    return Linter(load_config(root / "llmci.yaml"), cache_dir=root / ".cache").lint()


def test_second_run_is_served_from_cache_with_the_same_findings(tmp_path: Path) -> None:
    write_tree(tmp_path, {"llmci.yaml": CONFIG, "p/a.j2": "{{ x }} {{ y }}\n", "p/b.j2": "{{ x }}\n"})
    first, second = lint(tmp_path), lint(tmp_path)
    assert (first.cached, second.cached) == (0, 2)
    assert second.findings == first.findings
    assert [f.rule for f in second.findings] == ["undefined-variable"]


def test_a_changed_file_is_linted_again(tmp_path: Path) -> None:
    write_tree(tmp_path, {"llmci.yaml": CONFIG, "p/a.j2": "{{ x }}\n"})
    lint(tmp_path)
    (tmp_path / "p/a.j2").write_text("{{ x }} {{ z }}\n")
    report = lint(tmp_path)
    assert report.cached == 0 and [f.message for f in report.findings] == ["'z' is used but is not an input"]


def test_changed_config_is_a_miss(tmp_path: Path) -> None:
    write_tree(tmp_path, {"llmci.yaml": CONFIG, "p/a.j2": "{{ x }} {{ z }}\n"})
    lint(tmp_path)
    (tmp_path / "llmci.yaml").write_text(CONFIG.replace("[x]", "[x, z]"))
    report = lint(tmp_path)
    assert report.cached == 0 and report.findings == []


def test_included_template_created_later_is_seen_despite_cache(tmp_path: Path) -> None:
    write_tree(tmp_path, {"llmci.yaml": CONFIG, "p/a.j2": '{% include "part.j2" %}{{ x }}\n'})
    assert [f.rule for f in lint(tmp_path).findings] == ["missing-template"]
    (tmp_path / "p/part.j2").write_text("part {{ x }}\n")
    report = lint(tmp_path)
    assert report.cached == 1  # a.j2 itself did not change
    assert report.findings == []


def test_moved_file_hits_and_reports_its_new_path(tmp_path: Path) -> None:
    write_tree(tmp_path, {"llmci.yaml": CONFIG, "p/a.j2": "{{ x }}{{ y }}\n"})
    lint(tmp_path)
    (tmp_path / "p/a.j2").rename(tmp_path / "p/b.j2")
    report = lint(tmp_path)
    assert report.cached == 1 and report.findings[0].path.endswith("p/b.j2")


def test_corrupt_cache_file_is_ignored_and_rewritten(tmp_path: Path) -> None:
    write_tree(tmp_path, {"llmci.yaml": CONFIG, "p/a.j2": "{{ x }}{{ y }}\n", ".cache/lint-cache.json": "{not json"})
    assert [f.rule for f in lint(tmp_path).findings] == ["undefined-variable"]
    assert lint(tmp_path).cached == 1
