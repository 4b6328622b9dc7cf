"""Content-hash cache of lint results, so an unchanged tree re-lints in milliseconds.

One JSON file per cache folder. The key of a template is the hash of its
bytes and its spec; the whole cache is dropped when the linter's code, Jinja
or the `lint` config section change (the engine fingerprint). Results are
stored without the path, so a moved file still hits. References to other
templates are stored unresolved and checked on every run, so creating or
deleting an included file is always seen. Entries not used in a run are
dropped when it saves, so the file never grows without bound.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmci.fsutil import atomic_write_text
from llmci.lint.rules import Severity

if TYPE_CHECKING:
    from llmci.lint.engine import FileResult

CACHE_FILE = "lint-cache.json"


class LintCache:
    def __init__(self, folder: Path, fingerprint: str) -> None:
        self.path = folder / CACHE_FILE
        self.fingerprint = fingerprint
        self._old: dict[str, Any] = {}
        self._new: dict[str, Any] = {}
        self._dirty = False
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # no cache yet, or an unreadable one: start afresh
        if isinstance(data, dict) and data.get("fingerprint") == fingerprint:
            self._old = data.get("entries", {})

    def get(self, key: str, display: str) -> FileResult | None:
        from llmci.lint.engine import FileResult, Finding, PendingRef

        entry = self._old.get(key)
        if entry is None:
            return None
        self._new[key] = entry
        return FileResult(
            [Finding(display, line, col, rule, Severity(sev), msg) for line, col, rule, sev, msg in entry["f"]],
            [PendingRef(tuple(names), line, col, Severity(sev), msg) for names, line, col, sev, msg in entry["r"]],
        )

    def put(self, key: str, result: FileResult) -> None:
        self._dirty = True
        self._new[key] = {
            "f": [[f.line, f.column, f.rule, f.severity.value, f.message] for f in result.findings],
            "r": [[list(r.names), r.line, r.column, r.severity.value, r.message] for r in result.refs],
        }

    def save(self) -> None:
        if not self._dirty and self._new.keys() == self._old.keys():
            return  # nothing new and nothing to prune: skip the write
        payload = {"fingerprint": self.fingerprint, "entries": self._new}
        # A read-only checkout still lints; it only loses the speed-up.
        with contextlib.suppress(OSError):
            atomic_write_text(self.path, json.dumps(payload, separators=(",", ":")))
