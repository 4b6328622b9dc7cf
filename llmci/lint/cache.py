"""Content-hash cache of lint results, so an unchanged tree re-lints in milliseconds.

One JSON file per cache folder. The key of a template is the hash of its
bytes and its spec; the whole cache is dropped when the linter's code, Jinja
or the `lint` config section change (the engine fingerprint). Results are
stored without the path, so a moved file still hits. References to other
templates are stored unresolved and checked on every run, so creating or
deleting an included file is always seen. Entries not used in a run are
dropped when it saves, so the file never grows without bound.

The file is not trusted. Anyone who can write it (a pull request that commits
`.llmci/cache/lint-cache.json`, say) could empty the findings of a template.
So the file is signed: an HMAC-SHA256 over its body, with a random key kept
outside any checkout (`$XDG_CACHE_HOME/llmci/cache-key`, created 0600 on first
use). A file whose signature does not verify is ignored, and every entry is
checked for its shape before it is used: a bad entry is a miss, never a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from llmci.fsutil import atomic_write_text, synced_temporary
from llmci.lint.findings import FileResult, Finding, PendingRef
from llmci.lint.rules import RULES, Severity

CACHE_FILE = "lint-cache.json"
#: Overrides where the signing key is kept (tests; a shared machine account).
KEY_FILE_ENV = "LLMCI_CACHE_KEY_FILE"
KEY_BYTES = 32


def key_file() -> Path:
    """Where the signing key lives: in the user's cache folder, never in a project."""
    if os.environ.get(KEY_FILE_ENV):
        return Path(os.environ[KEY_FILE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "llmci" / "cache-key"


def signing_key() -> bytes | None:
    """The key, created on first use; None when it can be neither read nor created (no caching then)."""
    path = key_file()
    try:
        with contextlib.suppress(FileNotFoundError):
            key = path.read_bytes()
            if len(key) >= KEY_BYTES:
                return key
        fresh = secrets.token_bytes(KEY_BYTES)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The temporary file is created 0600 and linked into place whole: no one ever reads half a key.
        with synced_temporary(path, fresh) as tmp:
            try:
                os.link(tmp, path)
            except FileExistsError:
                existing = path.read_bytes()
                if len(existing) >= KEY_BYTES:
                    return existing  # another llmci created it first: use theirs
                os.replace(tmp, path)  # a truncated key: replace it
        return fresh
    except OSError:
        return None


class LintCache:
    def __init__(self, folder: Path, fingerprint: str) -> None:
        self.path = folder / CACHE_FILE
        self.fingerprint = fingerprint
        self._key = signing_key()
        self._old: dict[str, Any] = {}
        self._new: dict[str, Any] = {}
        self._dirty = False
        if self._key is None:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            body, mac = data["body"], data["mac"]
            if not (isinstance(body, str) and isinstance(mac, str) and hmac.compare_digest(self._sign(body), mac)):
                return  # not written by us (or by us with another key): trust none of it
            data = json.loads(body)
        except (OSError, ValueError, TypeError, KeyError):
            return  # no cache yet, or an unreadable one: start afresh
        if isinstance(data, dict) and data.get("fingerprint") == fingerprint and isinstance(data.get("entries"), dict):
            self._old = data["entries"]

    def _sign(self, body: str) -> str:
        assert self._key is not None
        return hmac.new(self._key, body.encode("utf-8"), hashlib.sha256).hexdigest()

    def get(self, key: str, display: str) -> FileResult | None:
        entry = self._old.get(key)
        try:
            result = FileResult([_finding(display, row) for row in entry["f"]], [_ref(row) for row in entry["r"]])
        except (TypeError, ValueError, KeyError):
            return None  # absent, or not a shape this code wrote: lint the file again
        self._new[key] = entry
        return result

    def put(self, key: str, result: FileResult) -> None:
        self._dirty = True
        self._new[key] = {
            "f": [[f.line, f.column, f.rule, f.severity.value, f.message] for f in result.findings],
            "r": [[list(r.names), r.line, r.column, r.severity.value, r.message] for r in result.refs],
        }

    def save(self) -> None:
        if self._key is None or (not self._dirty and self._new.keys() == self._old.keys()):
            return  # no key to sign with, or nothing new and nothing to prune: skip the write
        body = json.dumps({"fingerprint": self.fingerprint, "entries": self._new}, separators=(",", ":"))
        # A read-only checkout still lints; it only loses the speed-up.
        with contextlib.suppress(OSError):
            atomic_write_text(self.path, json.dumps({"mac": self._sign(body), "body": body}))


def _finding(display: str, row: Any) -> Finding:
    """A cached finding, checked field by field (ValueError or TypeError when it is not one)."""
    line, column, rule, severity, message = row
    if not (_position(line) and _position(column) and isinstance(message, str) and rule in RULES):
        raise ValueError("not a cached finding")
    return Finding(display, line, column, rule, Severity(severity), message)


def _ref(row: Any) -> PendingRef:
    names, line, column, severity, message = row
    if not (
        isinstance(names, list)
        and names
        and all(isinstance(name, str) for name in names)
        and _position(line)
        and _position(column)
        and isinstance(message, str)
    ):
        raise ValueError("not a cached reference")
    return PendingRef(tuple(names), line, column, Severity(severity), message)


def _position(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
