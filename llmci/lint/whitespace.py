"""The whitespace rules: trailing whitespace, mixed indentation, a missing final newline."""

from __future__ import annotations

import re

from llmci.lint.analysis import Issue

_TRAILING = re.compile(r"[ \t]+(?=\r?$)", re.MULTILINE)
# Indentation holding both characters must have a space next to a tab somewhere.
_MIXED = re.compile(r"^[ \t]*(?: \t|\t )", re.MULTILINE)


def whitespace_issues(source: str) -> list[Issue]:
    issues = []
    checks = []
    # Searching costs more than these tests of whether there can be a match at all.
    if " \n" in source or "\t\n" in source or " \r" in source or "\t\r" in source or source.endswith((" ", "\t")):
        checks.append((_TRAILING, "trailing-whitespace", "trailing whitespace"))
    if "\t" in source:
        checks.append((_MIXED, "mixed-indentation", "indentation mixes tabs and spaces"))
    for pattern, rule, message in checks:
        line, counted = 1, 0
        for match in pattern.finditer(source):
            line += source.count("\n", counted, match.start())
            counted = match.start()
            line_start = source.rfind("\n", 0, match.start()) + 1
            column = 1 if rule == "mixed-indentation" else match.start() - line_start + 1
            issues.append(Issue(rule, line, message, column=column))
    if source and not source.endswith("\n"):
        last = source.rsplit("\n", 1)[-1]
        issues.append(
            Issue("missing-final-newline", source.count("\n") + 1, "no newline at end of file", column=len(last) + 1)
        )
    return issues
