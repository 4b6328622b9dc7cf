"""Untrusted text (model outputs, dataset rows, reasons) made safe for a GitHub comment.

The report templates are rendered with `finalize=inline`: every `{{ value }}`
is escaped unless it is `Markdown` (text that llmci built itself), the way
HTML templates autoescape. Escaped text cannot

* break the Markdown: table pipes, emphasis, links and code spans are
  backslash-escaped and newlines folded, so a value stays in its table cell;
* inject HTML: `&`, `<` and `>` become entities (no `<details>`, `<img>` or
  `<!-- -->` from the data, so no fake sticky-comment marker either);
* mention people or teams: an empty HTML comment after each `@` keeps GitHub
  from linking `@someone` while the reader still sees `@someone`;
* become a link: GitHub autolinks bare `https://...`, `www....` and e-mail
  addresses; an empty HTML comment inside each (`https<!-- -->://`,
  `www<!-- -->.`, `name@<!-- -->host`) splits the text GitHub scans, and the
  reader still sees the address.

Credentials in URLs (`https://user:key@host`) are dropped from every value.

Multi-line text goes into a fenced code block (`block`) whose fence is longer
than any backtick run inside, so the text cannot close it; nothing inside a
code block is rendered, linked or mentioned.
"""

from __future__ import annotations

import re

from llmci.redact import redact_userinfo

#: Characters that mean something inline in GitHub Markdown (CommonMark + GFM tables and strikethrough).
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_BACKTICKS = re.compile(r"`+")
#: An `@` GitHub would read as a mention: not after a word character (so `name@1` stays as it is).
#: A backtick is not a word character: "`@admin" (the backtick escaped) still mentions.
_MENTION = re.compile(r"(?<![A-Za-z0-9_])@(?=[A-Za-z0-9])")
#: What GFM's autolink extension turns into links: URL schemes, `www.` names, and e-mail addresses.
_SCHEME = re.compile(r"(?i)\b(https?|ftp|mailto|xmpp):")
_WWW = re.compile(r"(?i)\b(www)\.")
_EMAIL_AT = re.compile(r"(?<=[A-Za-z0-9_.+-])@(?=[A-Za-z0-9-]+\.[A-Za-z])")
_BREAK = "<!-- -->"


class Markdown(str):
    """Markdown llmci wrote itself: the templates print it as it is."""


def _clip(text: str, limit: int | None) -> str:
    if limit is not None and len(text) > limit:
        return text[: max(0, limit - 1)] + "…"
    return text


def inline(value: object, limit: int | None = None) -> Markdown:
    """Any value as literal text on one line of Markdown (a table cell, a sentence)."""
    if isinstance(value, Markdown):
        return value
    if value is None:
        return Markdown("")
    text = _clip(" ".join(_CONTROL.sub(" ", redact_userinfo(str(value))).split()), limit)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _SPECIAL.sub(r"\\\1", text)
    return Markdown(_unlink(text))


def html(value: object, limit: int | None = 200) -> Markdown:
    """Literal text inside an HTML element (a `<summary>`), where Markdown escapes would show."""
    text = _clip(" ".join(_CONTROL.sub(" ", "" if value is None else redact_userinfo(str(value))).split()), limit)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return Markdown(_unlink(text))


def _unlink(text: str) -> str:
    """Text GitHub would turn into a link or a mention, with an invisible break where it looks."""
    text = _SCHEME.sub(r"\1" + _BREAK + ":", text)
    text = _WWW.sub(r"\1" + _BREAK + ".", text)
    text = _EMAIL_AT.sub("@" + _BREAK, text)
    return _MENTION.sub("@" + _BREAK, text)


def block(value: object, limit: int | None = 2000, language: str = "text") -> Markdown:
    """Multi-line text as a fenced code block that the text cannot close."""
    text = _clip(_CONTROL.sub("", "" if value is None else redact_userinfo(str(value))), limit)
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return Markdown(f"{fence}{language}\n{text}\n{fence}")
