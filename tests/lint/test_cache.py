"""The content-hash cache: hits when nothing changed, never serves a stale answer."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from pathlib import Path

import pytest

from llmci.config import load_config
from llmci.lint.engine import Linter
from tests.conftest import run_llmci, write_tree

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


def rewrite_cache(folder: Path, change) -> None:
    """Apply `change` to the cache file's data and write it back, signed with this test's key.

    As if an older or broken llmci had written it: the signature is right, the shapes are not.
    """
    path = folder / "lint-cache.json"
    data = json.loads(json.loads(path.read_text())["body"])
    change(data)
    body = json.dumps(data)
    key = Path(os.environ["LLMCI_CACHE_KEY_FILE"]).read_bytes()
    path.write_text(json.dumps({"mac": hmac.new(key, body.encode(), hashlib.sha256).hexdigest(), "body": body}))


def each_entry(change):
    def apply(data: dict) -> None:
        for key in data["entries"]:
            data["entries"][key] = change(data["entries"][key])

    return apply


def with_findings(rows):
    return each_entry(lambda entry: {**entry, "f": rows})


# Valid JSON, wrong shapes (an older or broken llmci, a disk error, a hand edit): each is a miss, never a crash.
BAD_SHAPES = {
    "entries is a list": lambda data: data.update(entries=[1, 2]),
    "entry is a string": each_entry(lambda entry: "x"),
    "entry lacks refs": each_entry(lambda entry: {"f": entry["f"]}),
    "findings is a mapping": with_findings({"a": 1}),
    "finding of 3 fields": with_findings([[1, 2, "undefined-variable"]]),
    "finding with a string line": with_findings([["1", 2, "undefined-variable", "error", "m"]]),
    "finding with a list message": with_findings([[1, 2, "undefined-variable", "error", ["m"]]]),
    "finding with an unknown severity": with_findings([[1, 2, "undefined-variable", "fatal", "m"]]),
    "finding with an unknown rule": with_findings([[1, 2, "no-such-rule", "error", "m"]]),
    "ref with a string for names": each_entry(lambda entry: {**entry, "r": [["a.j2", 1, 1, "error", "m"]]}),
    "ref of 2 fields": each_entry(lambda entry: {**entry, "r": [[["a.j2"], 1]]}),
}


@pytest.mark.parametrize("change", BAD_SHAPES.values(), ids=BAD_SHAPES.keys())
def test_a_cache_entry_of_the_wrong_shape_is_a_miss(tmp_path: Path, change) -> None:
    write_tree(tmp_path, {"llmci.yaml": CONFIG, "p/a.j2": "{{ x }}{{ y }}\n"})
    first = lint(tmp_path)
    rewrite_cache(tmp_path / ".cache", lambda data: None)
    assert lint(tmp_path).cached == 1  # a rewritten, well-formed file is trusted: the shape is what is tested
    rewrite_cache(tmp_path / ".cache", change)
    again = lint(tmp_path)
    assert again.cached == 0 and again.findings == first.findings
    assert lint(tmp_path).cached == 1  # and the entry was written afresh


def test_a_bad_cache_file_does_not_crash_the_cli(tmp_path: Path) -> None:
    write_tree(tmp_path, {"llmci.yaml": CONFIG, "p/a.j2": "{{ x }}{{ y }}\n"})
    cache = tmp_path / "cache"
    assert run_llmci("lint", "--cache-dir", str(cache), cwd=tmp_path).code == 1
    rewrite_cache(cache, with_findings([[1, 2, "undefined-variable", "fatal", "m"]]))
    result = run_llmci("lint", "--cache-dir", str(cache), cwd=tmp_path)
    assert result.code == 1 and "Traceback" not in result.stderr
    assert result.stdout == "p/a.j2:1:11: error undefined-variable 'y' is used but is not an input\n"


UNSAFE = "prompts:\n  - path: 'p/*.j2'\n    variables: [x]\n"
UNSAFE_TEMPLATE = "{{ x.__class__.__mro__[1].__subclasses__() }}\n"


def forge(path: Path, key: bytes | None = None) -> None:
    """What a pull request can do to a cache file: empty every entry's findings (and sign with its own key)."""
    data = json.loads(path.read_text())
    body = json.loads(data["body"]) if "body" in data else data
    for entry in body["entries"].values():
        entry["f"] = []
    if "body" in data:
        data["body"] = json.dumps(body)
        if key is not None:
            data["mac"] = hmac.new(key, data["body"].encode(), hashlib.sha256).hexdigest()
    path.write_text(json.dumps(data))


def test_a_forged_cache_in_the_checkout_cannot_hide_findings(tmp_path: Path) -> None:
    write_tree(tmp_path, {"llmci.yaml": UNSAFE, "p/a.j2": UNSAFE_TEMPLATE})
    first = run_llmci("lint", cwd=tmp_path)
    assert first.code == 1 and first.stdout.count("error unsafe-access") == 3
    forge(tmp_path / ".llmci/cache/lint-cache.json")
    again = run_llmci("lint", cwd=tmp_path)
    assert (again.code, again.stdout) == (1, first.stdout)


def test_a_cache_signed_with_another_key_is_ignored(tmp_path: Path, cache_key_file: Path) -> None:
    """The pull request's author made the file on their machine, with their own key."""
    write_tree(tmp_path, {"llmci.yaml": UNSAFE, "p/a.j2": UNSAFE_TEMPLATE})
    theirs = tmp_path / "their-key"
    first = run_llmci("lint", cwd=tmp_path, env={"LLMCI_CACHE_KEY_FILE": str(theirs)})
    assert first.code == 1
    forge(tmp_path / ".llmci/cache/lint-cache.json", key=theirs.read_bytes() if theirs.exists() else None)
    assert run_llmci("lint", cwd=tmp_path, env={"LLMCI_CACHE_KEY_FILE": str(theirs)}).code == 0  # their key: a hit
    again = run_llmci("lint", cwd=tmp_path)  # ours
    assert (again.code, again.stdout) == (1, first.stdout)


def test_the_key_is_created_once_private_outside_the_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMCI_CACHE_KEY_FILE")
    write_tree(tmp_path, {"project/llmci.yaml": CONFIG, "project/p/a.j2": "{{ x }}\n"})
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    assert run_llmci("lint", cwd=tmp_path / "project", env=env).code == 0
    key = tmp_path / "xdg/llmci/cache-key"
    assert len(key.read_bytes()) == 32 and stat.S_IMODE(key.stat().st_mode) == 0o600
    first = key.read_bytes()
    assert run_llmci("lint", cwd=tmp_path / "project", env=env).code == 0
    assert key.read_bytes() == first


def test_in_github_actions_the_cache_lives_under_runner_temp(tmp_path: Path) -> None:
    write_tree(tmp_path, {"project/llmci.yaml": CONFIG, "project/p/a.j2": "{{ x }}\n"})
    env = {
        "GITHUB_ACTIONS": "true",
        "RUNNER_TEMP": str(tmp_path / "runner-temp"),
        "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    assert run_llmci("lint", cwd=tmp_path / "project", env=env).code == 0
    assert (tmp_path / "runner-temp/llmci-cache/lint-cache.json").is_file()
    assert not (tmp_path / "project/.llmci").exists()


@pytest.mark.parametrize(
    "text",
    ["[]", '{"mac": 1, "body": "{}"}', '{"mac": "x", "body": 1}', '{"mac": "\\u00e9", "body": "{}"}', '{"body": "{}"}'],
)
def test_a_cache_file_of_the_wrong_shape_is_a_miss(tmp_path: Path, text: str) -> None:
    write_tree(tmp_path, {"llmci.yaml": CONFIG, "p/a.j2": "{{ x }}{{ y }}\n", ".cache/lint-cache.json": text})
    report = lint(tmp_path)
    assert report.cached == 0 and [f.rule for f in report.findings] == ["undefined-variable"]
    assert lint(tmp_path).cached == 1


def test_a_truncated_key_is_replaced_and_an_unusable_one_means_no_cache(tmp_path: Path, cache_key_file: Path) -> None:
    write_tree(tmp_path, {"llmci.yaml": CONFIG, "p/a.j2": "{{ x }}{{ y }}\n"})
    cache_key_file.write_bytes(b"short")
    lint(tmp_path)
    assert len(cache_key_file.read_bytes()) == 32 and lint(tmp_path).cached == 1
    cache_key_file.unlink()
    cache_key_file.mkdir()  # neither readable as a key nor replaceable
    assert [f.rule for f in lint(tmp_path).findings] == ["undefined-variable"]
    assert lint(tmp_path).cached == 0
