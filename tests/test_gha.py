"""Workflow commands, outputs and summaries exactly as the Actions runner parses them."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from llmci import gha


def parse_output_file(text: str) -> dict[str, str]:
    """The runner's parser for GITHUB_OUTPUT's heredoc form."""
    values, lines = {}, iter(text.split("\n"))
    for line in lines:
        if not line:
            continue
        name, delimiter = line.split("<<", 1)
        body = []
        for value_line in lines:
            if value_line == delimiter:
                break
            body.append(value_line)
        values[name] = "\n".join(body)
    return values


def test_escaping_follows_the_runner() -> None:
    assert gha.escape_data("50%\r\ndone: a,b") == "50%25%0D%0Adone: a,b"
    assert gha.escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


def test_annotation_with_all_properties() -> None:
    line = gha.annotation(
        "warning", "bad\nthing", file="p/a,b.j2", line=3, col=4, end_line=5, end_column=6, title="T: x"
    )
    assert line == "::warning file=p/a%2Cb.j2,line=3,col=4,endLine=5,endColumn=6,title=T%3A x::bad%0Athing"
    with pytest.raises(ValueError):
        gha.annotation("fatal", "x")


def test_outputs_survive_multiline_and_tricky_values(tmp_path: Path) -> None:
    out = tmp_path / "output"
    env = {"GITHUB_OUTPUT": str(out)}
    assert gha.set_output("simple", "1", env)
    assert gha.set_output("multi", "line one\nline two\nEOF\nkey=value", env)
    assert parse_output_file(out.read_text()) == {"simple": "1", "multi": "line one\nline two\nEOF\nkey=value"}
    delimiters = re.findall(r"<<(ghadelimiter_\S+)", out.read_text())
    assert len(set(delimiters)) == 2  # random per value
    assert not gha.set_output("x", "y", {})


def test_summary_appends(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    gha.append_summary("# one", env)
    gha.append_summary("two\n", env)
    assert summary.read_text() == "# one\ntwo\n"
    assert not gha.append_summary("x", {})


def test_mask_and_group(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    gha.add_mask("outside-actions", out=stream)  # outside Actions nobody reads it: print nothing
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    gha.add_mask("s3cr%t\nx", out=stream)
    gha.add_mask("", out=stream)  # nothing to mask: no command
    with gha.group("Install", out=stream):
        print("inside", file=stream)
    assert stream.getvalue() == "::add-mask::s3cr%25t%0Ax\n::group::Install\ninside\n::endgroup::\n"
    assert gha.in_actions({"GITHUB_ACTIONS": "true"}) and not gha.in_actions({})
