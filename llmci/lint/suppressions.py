"""Inline suppressions: `{# llmci: disable=RULE #}` and `{# llmci: disable-file=RULE #}`."""

from __future__ import annotations

import re

_SUPPRESSION = re.compile(r"\{#-?\s*llmci:\s*(disable|disable-file)\s*=\s*([\w\-, ]+?)\s*-?#\}")


def suppressions(source: str) -> tuple[set[str], dict[int, set[str]]]:
    """Rules disabled for the whole file, and per line.

    `{# llmci: disable=RULE[,RULE] #}` on a line of its own applies to the next
    line; after other text, to its own line. `disable-file=` applies to the
    whole file. `all` disables every rule.
    """
    whole: set[str] = set()
    per_line: dict[int, set[str]] = {}
    if "llmci:" not in source:
        return whole, per_line
    for match in _SUPPRESSION.finditer(source):
        rules = {rule.strip() for rule in match.group(2).split(",") if rule.strip()}
        if match.group(1) == "disable-file":
            whole |= rules
            continue
        line = source.count("\n", 0, match.start()) + 1
        start = source.rfind("\n", 0, match.start()) + 1
        end = source.find("\n", match.end())
        alone = not (source[start : match.start()].strip() or source[match.end() : None if end < 0 else end].strip())
        per_line.setdefault(line + 1 if alone else line, set()).update(rules)
    return whole, per_line
