"""The catalogue of lint rules: stable ids, default severities, help.

`summary` and `help` are the rules' documentation: SARIF carries them, and docs/lint-rules.md
is generated from them (`python -m llmci.docs`).

Ids never change once released; they appear in config (`lint.rules`), inline
suppressions (`{# llmci: disable=ID #}`), SARIF and every output format.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 0, "warning": 1, "info": 2}[self.value]


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    summary: str
    help: str


RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (
        Rule(
            "syntax-error",
            Severity.ERROR,
            "Template does not parse",
            "Jinja2 cannot parse the template (or the file is not UTF-8); the finding is at the line Jinja "
            "reports. Nothing else about the template can be checked until it parses.",
        ),
        Rule(
            "undefined-variable",
            Severity.ERROR,
            "Variable used but not an input",
            "The template reads a name that is not a declared input (`prompts[].variables`, or the "
            "chat-template contract for `kind: chat-template`), a global (Jinja's, `lint.globals` or the "
            "entry's `globals`), or assigned on every path before the read (`set`, `for`, macro and "
            "call-block arguments, `with`, imports). Inside a macro, names are those of the macro's "
            "definition scope as they are where the macro is called. Rendering with StrictUndefined would "
            "fail. The message says which contract the name is missing from. Declare the input, assign it, or guard it "
            "with `is defined` / `| default(...)`.",
        ),
        Rule(
            "possibly-undefined",
            Severity.WARNING,
            "Variable set on only some paths",
            "The name is assigned on some paths before this read but not on all of them (for example in "
            "the `if` branch only). A `set` inside a `for` body is gone at the next iteration, so a name "
            "set only when `loop.first` is undefined from the second iteration on. Assign it before the "
            "branch or in every branch; carry a value across iterations in a `namespace`.",
        ),
        Rule(
            "unused-input",
            Severity.WARNING,
            "Declared input never used",
            "An input declared in `prompts[].variables` is never read by the template: the caller "
            "computes it for nothing, or the template forgot it.",
        ),
        Rule(
            "optional-argument",
            Severity.INFO,
            "Optional chat-template argument",
            "A `kind: chat-template` template tests a name that is not in the apply_chat_template contract "
            "(`{% if enable_thinking %}`, `is defined`, `| default(...)`) and never uses it unguarded: it is "
            "an optional keyword argument that callers may pass to apply_chat_template. Listed so a team "
            "sees which arguments a template accepts; a name rendered or iterated without a guard is "
            "`undefined-variable` instead.",
        ),
        Rule(
            "unsafe-access",
            Severity.ERROR,
            "Sandbox-escape shape",
            "Access to underscore attributes or items (`__class__`, `__globals__`, ...), `mro`, frame and "
            "code objects, dynamic attribute names through `attr`, or format strings that reach "
            "underscore attributes: the shapes of server-side template injection. Prompts never need them.",
        ),
        Rule(
            "unknown-filter",
            Severity.ERROR,
            "Unknown filter",
            "The filter is not a Jinja2 built-in nor declared in `lint.filters`. Rendering would fail.",
        ),
        Rule(
            "unknown-test",
            Severity.ERROR,
            "Unknown test",
            "The test (`is NAME`) is not a Jinja2 built-in nor declared in `lint.tests`. Rendering would fail.",
        ),
        Rule(
            "missing-template",
            Severity.ERROR,
            "Included template not found",
            "`include`, `import`, `from ... import` or `extends` names a template that exists in no folder "
            "of the search path (the template's own folder, then `lint.search_path`).",
        ),
        Rule(
            "token-budget",
            Severity.WARNING,
            "Static text over the token budget",
            "The estimated token count of the template's static text alone exceeds `max_tokens`, before any "
            "input is added. The estimate needs no tokenizer and is within about 25% of common BPE "
            "tokenizers on English text.",
        ),
        Rule(
            "undelimited-untrusted",
            Severity.WARNING,
            "Untrusted input without delimiters",
            "An input listed in `untrusted` (or a value derived from one by `for` or `set`) is rendered "
            "without a delimiter around it, so its text can pass for instructions (prompt injection). "
            "Delimiters: a code fence (``` or ~~~) on both sides, an XML-style tag pair (`<name>...</name>`), "
            "triple quotes, or double quotes, in the static text right before and after the expression; or "
            "the `tojson` filter.",
        ),
        Rule(
            "trailing-whitespace",
            Severity.INFO,
            "Trailing whitespace",
            "Spaces or tabs at the end of a line reach the model as tokens and change prompts invisibly.",
        ),
        Rule(
            "mixed-indentation",
            Severity.INFO,
            "Tabs mixed with spaces",
            "The line's indentation mixes tabs and spaces.",
        ),
        Rule(
            "missing-final-newline",
            Severity.INFO,
            "No final newline",
            "The file does not end with a newline.",
        ),
        Rule(
            "conditional-injection",
            Severity.ERROR,
            "Template branches on message content to inject text",
            "A chat template tests what a message says (a substring, prefix, suffix, regular expression or "
            "equality on `content`, not on roles or types) and the branch emits natural-language text or "
            "changes the system prompt: the shape of a backdoor that stays silent until a trigger phrase "
            "appears. Templates that strip reasoning (`'</think>' in content`) emit no text and are not "
            "flagged.",
        ),
        Rule(
            "hidden-instruction",
            Severity.ERROR,
            "Instruction to the model hidden in a chat template",
            'Static text of a chat template tells the model to override its instructions ("ignore previous '
            'instructions"), to conceal something ("do not reveal", "without telling the user"), to take '
            "on a jailbreak persona, to send data away (exfiltration), or to always answer, say or recommend "
            "something. A template formats "
            'messages; it has no business instructing the model. Forced-behaviour phrases ("always '
            "answer\") inside the template's default system prompt (text after a system-role marker, or "
            "assigned to a `*system*` variable) are its documented default and are not flagged.",
        ),
        Rule(
            "invisible-characters",
            Severity.ERROR,
            "Invisible or bidirectional-control characters",
            "Zero-width characters, bidirectional controls (Trojan Source), Unicode tag characters "
            '(U+E0000-U+E007F, "ASCII smuggling": text a reviewer cannot see but a model reads) and other '
            "default-ignorable code points. A reviewer sees something other than what runs. Checked "
            "anywhere in any template, comments included; emoji joiners and presentation selectors between "
            "non-ASCII symbols, and a byte-order mark at the start of the file, are allowed.",
        ),
        Rule(
            "encoded-payload",
            Severity.ERROR,
            "Encoded text in a chat template",
            "A long base64, hex, `\\x`/`\\u` escaped, percent-encoded or HTML-entity run in a chat template "
            "decodes to readable text: a way to hide instructions from a reviewer. Binary-looking runs (hashes, "
            "alphabets) that do not decode to text are not flagged.",
        ),
        Rule(
            "remote-reference",
            Severity.ERROR,
            "URL or script tag in a chat template",
            "A chat template emits a URL (`http://`, `https://`, `ftp://`, `ws://`) or a `<script>` / "
            "`<iframe>` tag: a prompt that links or loads remote content is a way to exfiltrate a "
            "conversation or plant content in the assistant's answer. Comments are not checked.",
        ),
    )
}
