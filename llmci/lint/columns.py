"""Columns of findings: Jinja's AST knows lines only."""

from __future__ import annotations

import bisect
import re


class SourceIndex:
    """Finds columns: Jinja's AST knows lines only, so the column is where the needle is in code.

    Code is what lies between `{{ }}` / `{% %}`; the same word in the static
    text around it ("question: {{ question }}") is not a match.
    """

    _CODE = re.compile(r"\{[{%].*?[}%]\}", re.DOTALL)

    def __init__(self, source: str) -> None:
        self.source = source
        self._line_starts: list[int] | None = None
        self._code: list[tuple[int, int]] | None = None

    def column(self, line: int, needle: str | None, occurrence: int = 0) -> int:
        if needle is None or not self.source:
            return 1
        if self._line_starts is None:
            self._line_starts = [0] + [m.end() for m in re.finditer("\n", self.source)]
            self._code = [m.span() for m in self._CODE.finditer(self.source)]
        if not 0 < line <= len(self._line_starts):
            return 1
        start = self._line_starts[line - 1]
        end = self._line_starts[line] if line < len(self._line_starts) else len(self.source)
        pattern = re.compile(rf"(?<!\w){re.escape(needle)}(?!\w)")
        in_code = [m.start() for m in pattern.finditer(self.source, start, end) if self._in_code(m.start())]
        if in_code:
            return in_code[min(occurrence, len(in_code) - 1)] - start + 1
        index = self.source.find(needle, start, end)
        return index - start + 1 if index >= 0 else 1

    def _in_code(self, offset: int) -> bool:
        assert self._code is not None
        index = bisect.bisect_right(self._code, (offset, float("inf"))) - 1
        return index >= 0 and self._code[index][0] <= offset < self._code[index][1]
