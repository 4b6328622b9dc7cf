"""Credentials out of what llmci records and prints.

A URL may carry `user:token@` (`openai:https://user:sk-...@host/v1#m`, a git
remote): whatever llmci writes to a results table, a comparison, a comment, an
error message or a log gets the URL without it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# scheme://userinfo@ : the userinfo stops at the first '/', '?', '#' or whitespace before the '@'.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s@]+@")


def without_userinfo(url: str) -> str:
    """`url` minus any `user:password@` in its authority."""
    parsed = urlsplit(url)
    if parsed.scheme and "@" in parsed.netloc:
        return urlunsplit(parsed._replace(netloc=parsed.netloc.rsplit("@", 1)[1]))
    return url


def redact_userinfo(text: str) -> str:
    """Every `scheme://user:password@` in free text (an error message, a log line) minus its userinfo."""
    return _USERINFO.sub(r"\g<scheme>", text)


def userinfo_secrets(text: str) -> list[str]:
    """The userinfo parts (and their password halves) found in `text`, to mask in Actions logs."""
    found = []
    for match in _USERINFO.finditer(text):
        userinfo = match.group(0)[len(match.group("scheme")) : -1]
        found.append(userinfo)
        if ":" in userinfo:
            found.append(userinfo.split(":", 1)[1])
    return [secret for secret in found if secret]
