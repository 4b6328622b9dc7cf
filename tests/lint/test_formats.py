"""Each output format, as the tools that read it expect it."""

from __future__ import annotations

import json
import re
from html import escape

from markdown_it import MarkdownIt

from llmci.lint.findings import Finding, LintReport
from llmci.lint.formats import render, summary_markdown
from llmci.lint.rules import RULES, Severity

FINDINGS = [
    Finding("prompts/a.j2", 3, 7, "undefined-variable", Severity.ERROR, "'x' is used but is not an input"),
    Finding("prompts/a,b: c.j2", 1, 1, "unused-input", Severity.WARNING, "50% done\nnext line"),
    Finding("prompts/c.j2", 9, 2, "trailing-whitespace", Severity.INFO, "trailing whitespace | <b>"),
]
REPORT = LintReport(FINDINGS, files=3)


def test_text_is_path_line_col_severity_rule_message() -> None:
    assert render(REPORT, "text").splitlines()[0] == (
        "prompts/a.j2:3:7: error undefined-variable 'x' is used but is not an input"
    )


def test_json_is_a_list_of_finding_objects() -> None:
    data = json.loads(render(REPORT, "json"))
    assert data[0] == {
        "path": "prompts/a.j2",
        "line": 3,
        "column": 7,
        "rule": "undefined-variable",
        "severity": "error",
        "message": "'x' is used but is not an input",
    }
    assert len(data) == 3


def test_sarif_2_1_0_has_rules_and_located_results() -> None:
    log = json.loads(render(REPORT, "sarif"))
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(RULES)
    assert all(r["shortDescription"]["text"] and r["help"]["text"] for r in rules)
    first = run["results"][0]
    assert first["ruleId"] == "undefined-variable" and first["level"] == "error"
    assert rules[first["ruleIndex"]]["id"] == "undefined-variable"
    location = first["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "prompts/a.j2"
    assert location["region"] == {"startLine": 3, "startColumn": 7}
    assert [r["level"] for r in run["results"]] == ["error", "warning", "note"]


def test_github_annotations_escape_properties_and_data() -> None:
    lines = render(REPORT, "github").splitlines()
    assert lines[0] == (
        "::error file=prompts/a.j2,line=3,col=7,title=llmci undefined-variable::'x' is used but is not an input"
    )
    # ',' and ':' in the file name would end the property; '%' and newlines would break the message.
    assert lines[1] == (
        "::warning file=prompts/a%2Cb%3A c.j2,line=1,col=1,title=llmci unused-input::50%25 done%0Anext line"
    )
    assert lines[2].startswith("::notice ")


def test_summary_table_lists_errors_and_warnings_safely() -> None:
    table = summary_markdown(REPORT)
    assert table.splitlines()[0] == "### :x: llmci lint: 1 errors, 1 warnings, 1 notes in 3 templates"
    assert "| `prompts/a.j2:3:7` | error | `undefined-variable` | 'x' is used but is not an input |" in table
    assert "trailing whitespace" not in table  # notes are counted, not listed
    clean = summary_markdown(LintReport([], files=2))
    assert clean.startswith("### :white_check_mark:")


# GitHub renders the job summary as CommonMark + GFM tables, with a subset of HTML allowed.
MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def test_summary_table_cannot_be_broken_by_hostile_file_names_or_messages() -> None:
    hostile = [
        Finding("a`[x](https://evil.example)`@octocat.j2", 1, 1, "undefined-variable", Severity.ERROR, "m"),
        Finding("b``|`` <img src=x>.j2", 2, 3, "unused-input", Severity.WARNING, "x | y"),
        Finding("c.j2", 4, 5, "missing-template", Severity.ERROR, "include of '[x](https://evil.example) @octocat'"),
        Finding("d\\|e.j2", 6, 7, "unsafe-access", Severity.ERROR, "<script>alert(1)</script>\n# Heading"),
    ]
    html = MARKDOWN.render(summary_markdown(LintReport(hostile, files=4)))
    assert "https://evil.example" not in re.findall(r'href="([^"]*)"', html) and "<a " not in html
    assert "<img" not in html and "<script" not in html and "<h1>" not in html
    # A live mention is an @ before a name outside code; each @ here is inside a code span or broken up.
    text_only = re.sub(r"<code>.*?</code>", "", html.replace("<!-- -->", "\0"))
    text_only = re.sub(r"<[^>]+>", " ", text_only)
    assert not re.search(r"(?<![A-Za-z0-9_])@(?!\0)[A-Za-z0-9]", text_only)
    rows = re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)
    assert len(rows) == 1 + len(hostile) and all(row.count("<t") == 4 for row in rows)  # the table held
    # Each location reads back exactly, in one code span.
    locations = [re.search(r"<td>(.*?)</td>", row, flags=re.S).group(1) for row in rows[1:]]
    assert locations == [f"<code>{escape(f'{f.path}:{f.line}:{f.column}', quote=False)}</code>" for f in hostile]
