"""Lint findings as text, JSON, SARIF 2.1.0, GitHub annotations and a job-summary table."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from llmci import __version__
from llmci.lint.findings import Finding, LintReport
from llmci.lint.rules import RULES, Severity

FORMATS = ("text", "json", "sarif", "github")

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
_ANNOTATION_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def render(report: LintReport, fmt: str) -> str:
    return {"text": to_text, "json": to_json, "sarif": to_sarif, "github": to_github}[fmt](report.findings)


def to_text(findings: Sequence[Finding]) -> str:
    return "".join(f"{f.path}:{f.line}:{f.column}: {f.severity.value} {f.rule} {f.message}\n" for f in findings)


def to_json(findings: Sequence[Finding]) -> str:
    return json.dumps([f.to_dict() for f in findings], indent=2) + "\n"


def to_github(findings: Sequence[Finding]) -> str:
    from llmci import gha

    return "".join(
        gha.annotation(
            _ANNOTATION_LEVEL[f.severity], f.message, file=f.path, line=f.line, col=f.column, title=f"llmci {f.rule}"
        )
        + "\n"
        for f in findings
    )


def to_sarif(findings: Sequence[Finding]) -> str:
    rule_ids = list(RULES)
    rules = [
        {
            "id": rule.id,
            "name": rule.id.title().replace("-", ""),
            "shortDescription": {"text": rule.summary},
            "fullDescription": {"text": rule.help},
            "help": {"text": rule.help, "markdown": f"**{rule.summary}**\n\n{rule.help}"},
            "defaultConfiguration": {"level": _SARIF_LEVEL[rule.severity]},
        }
        for rule in RULES.values()
    ]
    results = [
        {
            "ruleId": f.rule,
            "ruleIndex": rule_ids.index(f.rule),
            "level": _SARIF_LEVEL[f.severity],
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.path, "uriBaseId": "%SRCROOT%"},
                        "region": {"startLine": f.line, "startColumn": f.column},
                    }
                }
            ],
        }
        for f in findings
    ]
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "llmci",
                        "version": __version__,
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"


def summary_markdown(report: LintReport) -> str:
    """A job-summary table: counts first, then every error and warning."""
    from llmci.report.markdown import inline

    errors, warnings, infos = (report.count(s) for s in (Severity.ERROR, Severity.WARNING, Severity.INFO))
    icon = ":x:" if errors else (":warning:" if warnings else ":white_check_mark:")
    lines = [
        f"### {icon} llmci lint: {errors} errors, {warnings} warnings, {infos} notes in {report.files} templates",
        "",
    ]
    shown = [f for f in report.findings if f.severity is not Severity.INFO]
    if shown:
        lines += ["| Location | Severity | Rule | Message |", "| --- | --- | --- | --- |"]
        lines += [
            f"| {_code_span(f'{f.path}:{f.line}:{f.column}')} | {f.severity.value} | {_code_span(f.rule)} "
            f"| {inline(f.message)} |"
            for f in shown
        ]
    return "\n".join(lines) + "\n"


def _code_span(text: str) -> str:
    """Any text as one Markdown code span in a table cell: shown as it is, never a link, mention or HTML.

    The delimiter is one backtick longer than any run inside (so a file name
    cannot close the span early), a space pads a span that starts or ends with
    a backtick, line breaks are folded (a row is one line), and `|` is escaped
    for the table (GFM removes that backslash, even inside code).
    """
    text = re.sub(r"[\r\n]+", " ", text).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
