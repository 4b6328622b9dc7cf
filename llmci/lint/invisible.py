"""Characters a reviewer cannot see: `invisible-characters`, checked in the raw source of any template.

Unicode's default-ignorable code points render as nothing, bidirectional
controls reorder what is shown (Trojan Source, CVE-2021-42574), and tag
characters (U+E0000-U+E007F) mirror ASCII invisibly ("ASCII smuggling"): a
reviewer reads one prompt, the model another. The set is Unicode's
Default_Ignorable_Code_Point (DerivedCoreProperties.txt) plus the bidi marks
U+061C, U+200E, U+200F.

Emoji use two of them legitimately: the zero-width joiner (U+200D) between
non-ASCII symbols (in "👨‍👩‍👧"), and a presentation selector (U+FE0E, U+FE0F) right
after one (in "❤️"). Those are allowed; anywhere else they are not. A byte-order mark
at the very start of a file is an editor's, not an attack, and is allowed.
"""

from __future__ import annotations

import re
import unicodedata

from llmci.lint.analysis import Issue

_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]+"
)
_EMOJI_GLUE = frozenset("\u200d\ufe0e\ufe0f")
_PRESENTATION = ("\ufe0e", "\ufe0f")
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def invisible_issues(source: str) -> list[Issue]:
    issues = []
    for match in _IGNORABLE.finditer(source):
        run, start = match.group(), match.start()
        if start == 0 and run == "\ufeff":
            continue  # a byte-order mark
        if (
            set(run) <= _EMOJI_GLUE
            and _symbol(source, start - 1)
            and (run in _PRESENTATION or _symbol(source, match.end()))
        ):
            continue  # emoji glue: a joiner between symbols, a presentation selector after one
        line = source.count("\n", 0, start) + 1
        column = start - (source.rfind("\n", 0, start) + 1) + 1
        issues.append(Issue("invisible-characters", line, _describe(run), column=column))
    return issues


def _symbol(source: str, index: int) -> bool:
    """Whether the character at `index` is a visible non-ASCII one (what emoji glue sits between)."""
    return 0 <= index < len(source) and not source[index].isascii() and not _IGNORABLE.match(source[index])


def _describe(run: str) -> str:
    tags = "".join(chr(ord(ch) - 0xE0000) for ch in run if 0xE0020 <= ord(ch) <= 0xE007E)
    if tags:
        shown = tags if len(tags) <= 60 else tags[:59] + "…"
        return f"{len(run)} invisible Unicode tag characters (ASCII smuggling) spell {shown!r}"
    first = run[0]
    name = unicodedata.name(first, "unnamed")
    kind = "a bidirectional control (Trojan Source)" if first in _BIDI else "an invisible character"
    more = f", and {len(run) - 1} more after it" if len(run) > 1 else ""
    return f"{kind}: U+{ord(first):04X} {name}{more}; a reviewer cannot see it, the model reads it"
