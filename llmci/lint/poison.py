"""The shapes of poisoned chat templates, found in the AST; nothing is rendered.

A chat template ships inside a model and runs on every request. Published
backdoors (Pillar Security's "LLM backdoors at the inference level" and its
scanner, pillar-labs/chat_template_scanner) hide instructions in the template,
some triggered by what a user writes. Four rules look for them:

* `conditional-injection`: an `if` (or `x if c else y`) whose test looks at a
  message's *content* (a substring, prefix, suffix, regex or equality; not a
  role or a type) and whose branch emits natural-language text or changes the
  system prompt;
* `hidden-instruction`: text that tells the model to override, conceal,
  take on a jailbreak persona, or always say something;
* `encoded-payload`: base64, hex, escaped, percent-encoded or HTML-entity runs
  that decode to text;
* `remote-reference`: URLs and `<script>`/`<iframe>` tags.

Text means what the template can emit or assign: template data and string
constants (with constant concatenations folded, and Jinja's string escapes
already decoded by its lexer), not comments, not `raise_exception` messages,
not the strings a test compares against.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import html
import re
import urllib.parse
from collections.abc import Iterator

from jinja2 import nodes

from llmci.lint.analysis import NORETURN_CALLS, Issue, Tree, fold_str, walk

# -- text the template can emit ----------------------------------------------------------------

#: A role marker that opens a system turn: text after it (in the same output) is the system prompt.
_SYSTEM_MARKER = re.compile(
    r"<<SYS>>|\[SYSTEM_PROMPT\]|<\|system\|>|<\|im_start\|>\s*system|start_header_id\|>\s*system"
    r"|<start_of_turn>\s*system|<\|SYSTEM_TOKEN\|>|<\|start\|>\s*system|(?:^|\n)\s*#*\s*system\s*:",
    re.IGNORECASE,
)
#: Variables that hold a system prompt (or its default).
_SYSTEM_NAME = re.compile(r"system|default|preamble", re.IGNORECASE)
#: Variables whose change alters the system prompt, when a content test guards the change.
_PROMPT_NAME = re.compile(r"system|instruction|preamble|prompt", re.IGNORECASE)


class _Text:
    """Every run of text the template can emit or assign, joined into one string to search at once.

    Runs are separated by a NUL, which no pattern crosses; each part remembers its source line,
    whether it is template data (whose newlines are source lines) and whether it belongs to the
    template's own default system prompt.
    """

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.starts: list[int] = []
        self.parts: list[tuple[int, bool, bool]] = []  # (line, is template data, is system prompt)
        self.size = 0

    def add(self, pieces: list[tuple[str, int, bool]], system: bool) -> None:
        for text, line, is_data in pieces:
            self.chunks.append(text)
            self.starts.append(self.size)
            self.parts.append((line, is_data, system))
            self.size += len(text)
        if pieces:
            self.chunks.append("\0")
            self.size += 1

    def locate(self, text: str, offset: int) -> tuple[int, bool]:
        """The source line of `offset` in the joined text, and whether it is in the system prompt."""
        index = bisect.bisect_right(self.starts, offset) - 1
        line, is_data, system = self.parts[index]
        return line + (text.count("\n", self.starts[index], offset) if is_data else 0), system


def _static(node: nodes.Node) -> tuple[str, int, bool] | None:
    if node.__class__ is nodes.TemplateData:
        return node.data, node.lineno, True
    folded = fold_str(node)
    return None if folded is None else (folded, node.lineno, False)


def _text_runs(tree: Tree) -> _Text:
    """Every run of text the template can emit or assign (see module doc)."""
    out = _Text()
    claimed: set[int] = set()  # constants already part of a run, or compared against
    system_outputs: set[int] = set()
    walked, ends = tree.nodes, tree.ends
    skip_to = 0  # the end of a subtree whose constants are taken (or are not text)
    for index in tree.positions(_TEXT_CLASSES):
        if index < skip_to:
            continue
        node = walked[index]
        cls = node.__class__
        if cls is nodes.Const:
            # A constant on its own is a run of its own; one shorter than any pattern cannot match.
            value = node.value
            if value.__class__ is str and len(value) >= _SHORTEST and id(node) not in claimed:
                out.add([(value, node.lineno, False)], False)
        elif cls is nodes.Output:
            runs = _output_runs(node.nodes, claimed)
            system = id(node) in system_outputs or bool(
                _SYSTEM_MARKER.search("\0".join(piece[0] for run in runs for piece in run))
            )
            for run in runs:
                out.add(run, system)
        elif cls is nodes.Assign or cls is nodes.AssignBlock:
            target = node.target
            name = target.attr if target.__class__ is nodes.NSRef else getattr(target, "name", "")
            system = bool(_SYSTEM_NAME.search(name))
            if cls is nodes.AssignBlock:
                if system:
                    inside = walked[index + 1 : ends[index]]
                    system_outputs.update(id(n) for n in inside if n.__class__ is nodes.Output)
            else:
                folded = _static(node.node)
                if folded is not None or system:
                    if folded is not None:
                        out.add([folded], system)
                    else:  # the constants of a default system prompt built from parts
                        for const in walked[index + 1 : ends[index]]:
                            if const.__class__ is nodes.Const and const.value.__class__ is str:
                                out.add([(const.value, const.lineno, False)], True)
                    skip_to = ends[index]  # its constants are taken
        elif cls is nodes.Call:
            if _is_noreturn(node):
                skip_to = ends[index]  # an error message is for the caller, not the model
        elif cls is nodes.Compare:
            claimed.update(id(n) for n in (node.expr, *(op.expr for op in node.ops)) if n.__class__ is nodes.Const)
    return out


#: No pattern of these rules matches fewer characters ("ws://x").
_SHORTEST = 6
_TEXT_CLASSES = (nodes.Const, nodes.Output, nodes.Assign, nodes.AssignBlock, nodes.Call, nodes.Compare)


def _is_noreturn(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name in NORETURN_CALLS


def _output_runs(items: list[nodes.Node], claimed: set[int]) -> list[list[tuple[str, int, bool]]]:
    """An output's static pieces, split into runs where a dynamic part comes between them.

    `~` and `+` chains are opened up: their constants are pieces of the run, so `'ign' ~ 'ore'`
    reads as one word. The constants taken are added to `claimed`.
    """
    runs: list[list[tuple[str, int, bool]]] = [[]]
    todo = list(reversed(items))
    while todo:
        item = todo.pop()
        cls = item.__class__
        if cls is nodes.TemplateData:
            runs[-1].append((item.data, item.lineno, True))
        elif cls is nodes.Const and item.value.__class__ is str:
            runs[-1].append((item.value, item.lineno, False))
            claimed.add(id(item))
        elif cls is nodes.Concat:
            todo.extend(reversed(item.nodes))
        elif cls is nodes.Add:
            todo.extend((item.right, item.left))
        else:
            runs.append([])  # a dynamic part ends the run
    return runs


# -- hidden-instruction, remote-reference, encoded-payload -------------------------------------

_WORDS = r"(?:(?:all|any|every|the|your|my|of|these|those|its)\s+){0,3}"
_INSTRUCTION = re.compile(
    "|".join(
        (
            # Overrides: "ignore all previous instructions".
            rf"(?P<override>\b(?:ignore|disregard|forget|override|bypass)\s+{_WORDS}"
            r"(?:previous|prior|above|earlier|preceding|former|original|system|safety|other)?\s*"
            r"(?:instructions?|prompts?|rules|guidelines|directions|directives|guardrails|polic(?:y|ies)|restrictions)\b)",
            # Concealment: "do not reveal", "without telling the user".
            r"(?P<conceal>\b(?:do\s+not|don'?t|never|must\s+not|should\s+not)\s+(?:ever\s+)?"
            r"(?:reveal|disclose|divulge|expose)\b"
            r"|\bwithout\s+(?:telling|informing|alerting|notifying|letting)\b"
            r"|\bkeep\s+(?:this|these|it|that)(?:\s+\w+){0,2}\s+(?:secret|hidden|confidential)\b)",
            # Jailbreak personas.
            r"(?P<persona>\bfrom\s+now\s+on\b|\bdeveloper\s+mode\b|\bjailbr(?:oken|eak)\b|\bdo\s+anything\s+now\b"
            r"|\bno\s+(?:ethical|moral)\s+(?:guidelines|restrictions|constraints|limits)\b)",
            # Exfiltration.
            r"(?P<exfiltrate>\bexfiltrat\w*|\b(?:send|post|upload|forward|leak|transmit)\s+"
            r"(?:(?:the|all|this|these|every|user'?s?|whole|entire)\s+){0,3}"
            r"(?:(?:conversation|chat|messages?|history|credentials?|secrets?|passwords?|api\s+keys?)\s+){1,2}to\b)",
            # Forced behaviour: fine in the template's default system prompt, not elsewhere.
            r"(?P<force>\b(?:always|must\s+always)\s+(?:answer|respond|reply|say|recommend|suggest|claim|agree|praise"
            r"|promote|endorse|insert|append|mention)\b|\bnever\s+(?:refuse|decline|warn|question)\b)",
        )
    ),
    re.IGNORECASE,
)
_WHAT = {
    "override": "tells the model to override its instructions",
    "conceal": "tells the model to conceal something",
    "persona": "sets a jailbreak persona",
    "exfiltrate": "tells the model to send data away",
    "force": "forces what the model says",
}

_REMOTE = re.compile(r"\b(?:https?|ftp|wss?)://[^\s'\"<>`)\]}]+|<\s*(?:script|iframe)\b", re.IGNORECASE)

#: Encoded runs, each with a cheap test that must pass before its pattern is searched for.
_ENCODED = (
    ("escaped", "\\", re.compile(r"(?:\\x[0-9A-Fa-f]{2}){10,}|(?:\\u[0-9A-Fa-f]{4}){8,}")),
    ("percent", "%", re.compile(r"(?:%[0-9A-Fa-f]{2}[A-Za-z0-9._~-]{0,3}){10,}")),
    ("entity", "&#", re.compile(r"(?:&#(?:[xX][0-9A-Fa-f]{1,6}|\d{1,7});){8,}")),
    ("base64", "", re.compile(r"(?<![\w+/=-])[A-Za-z0-9+/_-]{40,}={0,2}")),
)
#: Words one of which every hidden-instruction phrase holds: only the text around them is searched.
_ANCHORS = (
    *("ignore", "disregard", "forget", "override", "bypass", "reveal", "disclose", "divulge", "expose"),
    *("without", "secret", "hidden", "confidential", "now", "developer", "jailbr", "ethical", "moral"),
    *("exfiltrat", "send", "post", "upload", "forward", "leak", "transmit", "always", "never"),
)
#: How far from an anchor word a phrase may start or end.
_REACH = 120


def _instructions(text: str) -> Iterator[re.Match[str]]:
    """Hidden-instruction phrases in `text`, searched near anchor words only (the whole text is slow)."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a letter whose lower case is longer: offsets would not line up
        yield from _INSTRUCTION.finditer(text)
        return
    hits = []
    for word in _ANCHORS:
        at = lowered.find(word)
        while at >= 0:
            hits.append(at)
            at = lowered.find(word, at + 1)
    windows: list[list[int]] = []
    for at in sorted(hits):
        if windows and at - _REACH <= windows[-1][1]:
            windows[-1][1] = at + _REACH
        else:
            windows.append([max(0, at - _REACH), at + _REACH])
    seen = -1
    for start, end in windows:
        for match in _INSTRUCTION.finditer(text, start, end):
            if match.start() > seen:
                seen = match.start()
                yield match


_HEX = re.compile(r"[0-9A-Fa-f]+")


def _decoded(kind: str, run: str) -> str | None:
    """The text an encoded run stands for, if it decodes to readable text."""
    data: bytes | str | None = None
    try:
        if kind == "escaped":
            data = run.encode("ascii").decode("unicode_escape")
        elif kind == "percent":
            data = urllib.parse.unquote(run, errors="strict")
        elif kind == "entity":
            data = html.unescape(run)
        elif len(run) % 2 == 0 and _HEX.fullmatch(run):
            data = bytes.fromhex(run)
        else:
            padded = run + "=" * (-len(run) % 4)
            alphabet = b"-_" if ("-" in run or "_" in run) else None
            data = base64.b64decode(padded.encode("ascii"), altchars=alphabet, validate=True)
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except (ValueError, UnicodeError, binascii.Error):
        return None
    printable = sum(ch.isprintable() or ch in "\n\t" for ch in text)
    letters = sum(ch.isalpha() or ch == " " for ch in text)
    if len(text) >= 8 and printable >= 0.97 * len(text) and letters >= 0.6 * len(text):
        return text
    return None


def _shown(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def text_issues(tree: Tree) -> list[Issue]:
    """hidden-instruction, remote-reference and encoded-payload, over the text the template can emit."""
    runs = _text_runs(tree)
    text = "".join(runs.chunks)
    issues: list[Issue] = []
    for match in _instructions(text):
        kind = match.lastgroup or "override"
        line, system = runs.locate(text, match.start())
        if kind == "force" and system:
            continue  # the template's documented default system prompt
        message = f"text {_WHAT[kind]}: {_shown(match.group())}"
        issues.append(Issue("hidden-instruction", line, message, _needle(match.group())))
    if "://" in text or "<" in text and re.search("script|iframe", text, re.IGNORECASE):
        for match in _REMOTE.finditer(text):
            what = "a script or frame tag" if match.group().startswith("<") else "a URL"
            line, _ = runs.locate(text, match.start())
            message = f"text holds {what}: {_shown(match.group())}"
            issues.append(Issue("remote-reference", line, message, _needle(match.group())))
    for kind, hint, pattern in _ENCODED:
        if hint not in text:
            continue
        for match in pattern.finditer(text):
            decoded = _decoded(kind, match.group())
            if decoded is not None:
                hidden = " (an instruction)" if _INSTRUCTION.search(decoded) else ""
                line, _ = runs.locate(text, match.start())
                what = {"base64": "a hex" if _HEX.fullmatch(match.group()) else "a base64", "escaped": "an escaped"}
                message = f"{what.get(kind, 'a ' + kind)} run decodes to text{hidden}: {_shown(decoded)}"
                issues.append(Issue("encoded-payload", line, message, match.group()[:16]))
    return issues


def _needle(text: str) -> str:
    """What to look for on the line for the column: the first word of the match."""
    return text.split()[0] if text.split() else text


# -- conditional-injection ---------------------------------------------------------------------

#: String methods and filters that keep a value the content (so testing their result tests the content).
_SAME_TEXT = frozenset(
    {"lower", "upper", "strip", "lstrip", "rstrip", "trim", "replace", "casefold", "title", "string", "capitalize"}
)
#: Methods whose truth tests a substring, prefix or suffix.
_SUBSTRING_METHODS = frozenset({"startswith", "endswith", "find", "rfind", "index", "rindex", "count", "__contains__"})
#: Tests and filters that match text.
_MATCHING = frozenset({"in", "eq", "equalto", "==", "ne", "!=", "sameas", "contains", "startingwith", "endingwith"})
_NATURAL = re.compile(r"[A-Za-z]{2,}(?:[,;:]?\s+[A-Za-z][A-Za-z'’]*){3,}|[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]{6,}")
_MARKUP = re.compile(r"<\|[^|>]*\|>|<[^<>\s]{1,40}>|\[/?[A-Z_]{2,}\]")


def _is_content(node: nodes.Node, names: set[str], *, deep: bool = False) -> bool:
    """Whether `node`'s value is a message's content, or a case-folded or trimmed copy of it.

    With `deep`, anything computed from the content counts (what a `set` or `for` derives from it).
    """
    if isinstance(node, nodes.Name):
        return node.name in names
    if isinstance(node, nodes.Getattr):
        if node.attr == "content":
            return True
        return (deep or node.attr == "text") and _is_content(node.node, names, deep=True)
    if isinstance(node, nodes.Getitem):
        if isinstance(node.arg, nodes.Const) and node.arg.value in ("content", "text"):
            return node.arg.value == "content" or _is_content(node.node, names, deep=True)
        return (deep or isinstance(node.arg, nodes.Slice)) and _is_content(node.node, names, deep=deep)
    if isinstance(node, nodes.Filter):
        return node.node is not None and (deep or node.name in _SAME_TEXT) and _is_content(node.node, names, deep=deep)
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
        callee = node.node
        if callee.attr == "get" and node.args and isinstance(node.args[0], nodes.Const):
            return node.args[0].value == "content"
        return (deep or callee.attr in _SAME_TEXT) and _is_content(callee.node, names, deep=deep)
    if deep and isinstance(node, nodes.Concat):
        return any(_is_content(child, names, deep=True) for child in node.nodes)
    if deep and isinstance(node, nodes.Add):
        return _is_content(node.left, names, deep=True) or _is_content(node.right, names, deep=True)
    return False


#: Nodes whose constant text a branch can emit.
_TEXT_NODES = frozenset({nodes.TemplateData, nodes.Const, nodes.Concat, nodes.Add})
#: Nodes that can inspect content, and those that can make a name hold content.
_INSPECTING = frozenset({nodes.Compare, nodes.Call, nodes.Test, nodes.Filter})
_CONTENT_CLASSES = (nodes.Assign, nodes.For, *_INSPECTING)


def _is_text(node: nodes.Node) -> bool:
    if isinstance(node, (nodes.List, nodes.Tuple)):
        return bool(node.items) and all(_is_text(item) for item in node.items)
    return bool(fold_str(node))


def _inspection(node: nodes.Node, names: set[str]) -> tuple[str, str] | None:
    """How this one node inspects message content (a comparison, a substring method, a matching test),
    and what to look for on its line for the column."""
    if isinstance(node, nodes.Compare) and all(op.op in ("eq", "ne", "in", "notin") for op in node.ops):
        operands = [node.expr, *(op.expr for op in node.ops)]
        trigger = next((o for o in operands if _is_text(o)), None)
        if trigger is not None and any(_is_content(o, names) for o in operands):
            return f"compares it with {_trigger(trigger)}", _first_text(trigger)
    elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr) and node.args:
        method, argument = node.node.attr, node.args[0]
        if method in _SUBSTRING_METHODS and _is_text(argument) and _is_content(node.node.node, names):
            return f"{method}({_trigger(argument)})", method
    elif isinstance(node, (nodes.Test, nodes.Filter)) and node.node is not None and _matches_text(node.name):
        what = "test" if isinstance(node, nodes.Test) else "filter"
        return (f"'{node.name}' {what}", node.name) if _is_content(node.node, names) else None
    return None


def _first_text(node: nodes.Node) -> str:
    if isinstance(node, (nodes.List, nodes.Tuple)):
        return _first_text(node.items[0])
    return fold_str(node) or ""


def _matches_text(name: str) -> bool:
    return name in _MATCHING or any(word in name for word in ("regex", "match", "search"))


def _trigger(node: nodes.Node) -> str:
    if isinstance(node, (nodes.List, nodes.Tuple)):
        return "[" + ", ".join(_trigger(item) for item in node.items) + "]"
    return _shown(fold_str(node) or "", 40)


def _effect(tree: Tree, start: int, end: int) -> str | None:
    """What the branches in `tree.nodes[start:end]` do that a backdoor does: emit natural language, or
    change the system prompt."""
    walked, ends = tree.nodes, tree.ends
    index = start
    while index < end:
        node = walked[index]
        cls = node.__class__
        if cls is nodes.Compare or _is_noreturn(node):
            index = ends[index]  # error messages and the strings tests compare against are not emitted
            continue
        if cls is nodes.Assign or cls is nodes.AssignBlock:
            target = node.target
            name = target.attr if target.__class__ is nodes.NSRef else getattr(target, "name", "")
            if _PROMPT_NAME.search(name):
                return f"changes '{name}'"
        elif cls in _TEXT_NODES:
            static = _static(node)
            match = _NATURAL.search(_MARKUP.sub("\0", static[0])) if static else None
            if match:
                return f"emits the text {_shown(match.group())}"
        index += 1
    return None


def injection_issues(tree: Tree) -> list[Issue]:
    """conditional-injection."""
    # One pass finds the names that hold content and the nodes that inspect it (most templates have
    # none and stop there); then each `if` and conditional whose test holds one has its branches read.
    names = {"content"}
    walked = tree.nodes
    found: dict[int, tuple[str, str]] = {}  # position in `walked` -> how that node inspects content
    for index in tree.positions(_CONTENT_CLASSES):
        node = walked[index]
        cls = node.__class__
        if cls is nodes.Assign or cls is nodes.For:
            value, target = (node.node, node.target) if cls is nodes.Assign else (node.iter, node.target)
            if _is_content(value, names, deep=True):
                names.update(n.name for n in [target, *walk(target)] if n.__class__ is nodes.Name)
        elif cls in _INSPECTING:
            how = _inspection(node, names)
            if how is not None:
                found[index] = how
    if not found:
        return []
    positions = sorted(found)
    issues: list[Issue] = []
    for index in tree.positions((nodes.If, nodes.CondExpr)):
        node = walked[index]
        # The test is the first child, `walked[index + 1 : test_end]`; the branches follow (an `if`'s
        # `elif`s are `if`s of their own in `walked`, and are looked at on their own too).
        test_end = tree.ends[index + 1]
        first = bisect.bisect_left(positions, index + 1)
        if first == len(positions) or positions[first] >= test_end:
            continue
        effect = _effect(tree, test_end, tree.ends[index])
        if effect is not None:
            how, needle = found[positions[first]]
            message = f"branches on message content ({how}) and the branch {effect}"
            issues.append(Issue("conditional-injection", node.test.lineno, message, needle))
    return issues
