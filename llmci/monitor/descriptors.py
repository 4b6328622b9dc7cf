"""Descriptors of one request's text, computed where the text is (the serving replica).

They are recorded whatever the privacy setting, so drift in prompt length or
script is seen even when prompts are hashed or dropped. Pure Python: the
serving path imports no numpy for them.
"""

from __future__ import annotations

import re
import unicodedata

#: Unicode script families a prompt's letters are counted in; the most frequent names its `charset`.
_SCRIPTS = (
    ("latin", "LATIN"),
    ("cyrillic", "CYRILLIC"),
    ("greek", "GREEK"),
    ("arabic", "ARABIC"),
    ("hebrew", "HEBREW"),
    ("devanagari", "DEVANAGARI"),
    ("hangul", "HANGUL"),
    ("kana", "HIRAGANA"),
    ("kana", "KATAKANA"),
    ("cjk", "CJK"),
    ("thai", "THAI"),
)

#: Openings of an answer that declines (in the style of instruction-tuned models).
_REFUSAL = re.compile(
    r"^\s*(i('m| am) (sorry|unable|not able)|i can(no|')t (help|assist|do|answer)|sorry, (but )?i|as an ai\b)",
    re.IGNORECASE,
)


def charset(text: str) -> str:
    """The script most of the text's letters are written in: latin, cyrillic, cjk, ...; `none` without letters."""
    counts: dict[str, int] = {}
    for char in text:
        if char.isascii():
            if char.isalpha():
                counts["latin"] = counts.get("latin", 0) + 1
            continue
        if not char.isalpha():
            continue
        name = unicodedata.name(char, "")
        family = next((family for family, prefix in _SCRIPTS if name.startswith(prefix)), "other")
        counts[family] = counts.get(family, 0) + 1
    return max(counts, key=counts.__getitem__) if counts else "none"


def non_ascii_share(text: str) -> float:
    if not text:
        return 0.0
    return sum(1 for char in text if not char.isascii()) / len(text)


def is_empty_or_refusal(output: str | None) -> bool:
    """An answer with nothing in it, or one that declines."""
    return output is None or not output.strip() or _REFUSAL.match(output) is not None
