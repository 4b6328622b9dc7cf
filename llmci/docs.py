"""Regenerate the parts of docs/ that restate the code: `python -m llmci.docs [--check]`.

Three reference tables would drift if they were written by hand, so they are
generated from the code that defines them:

- docs/lint-rules.md, region `rules`: `llmci.lint.rules.RULES` (id, default
  severity, summary, help);
- docs/exit-codes.md, region `exit-codes`: `llmci.errors.ExitCode` and the `#:`
  comment above each member;
- docs/configuration.md, region `config-schema`: the JSON Schema of
  `llmci.config.Config` (what `llmci config schema` prints): one table of keys,
  types, defaults and descriptions per section.

Only the text between `<!-- generated: NAME ... -->` and `<!-- end generated -->`
is rewritten; the prose around it is written by hand. `--check` rewrites nothing
and exits 1 naming the stale pages (tests/test_docs.py runs the same check).
This is a development tool: it reads and writes the repository's docs/ folder.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
COMMAND = "python -m llmci.docs"

_REGION = re.compile(r"(<!-- generated: (?P<name>[a-z-]+)[^\n]*?-->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading's text: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _cell(text: str) -> str:
    """Text for one Markdown table cell: on one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


# -- lint rules ------------------------------------------------------------------------------


def lint_rules() -> str:
    from llmci.lint.rules import RULES

    lines = ["| id | default | what |", "| --- | --- | --- |"]
    lines += [f"| [`{r.id}`](#{slug(r.id)}) | {r.severity.value} | {_cell(r.summary)} |" for r in RULES.values()]
    for rule in RULES.values():
        lines += ["", f"### `{rule.id}`", "", f"Default: **{rule.severity.value}**. {rule.summary}.", "", rule.help]
    return "\n".join(lines) + "\n"


# -- exit codes ------------------------------------------------------------------------------


def exit_code_docs() -> dict[int, str]:
    """Each ExitCode member's value -> the `#:` comment lines above it, joined."""
    from llmci.errors import ExitCode

    source = inspect.getsource(ExitCode)
    lines = source.splitlines()
    docs: dict[int, str] = {}
    for node in ast.parse(source).body[0].body:  # type: ignore[attr-defined]
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)):
            continue
        comment: list[str] = []
        row = node.lineno - 2  # the line above, 0-based
        while row >= 0 and lines[row].strip().startswith("#:"):
            comment.insert(0, lines[row].strip()[2:].strip())
            row -= 1
        member = ExitCode[node.targets[0].id]
        if not comment:
            raise ValueError(f"ExitCode.{member.name} has no `#:` comment to document it")
        docs[int(member)] = " ".join(comment)
    missing = [code.name for code in ExitCode if int(code) not in docs]
    if missing:
        raise ValueError(f"ExitCode members not found in the source: {missing}")
    return docs


def exit_codes() -> str:
    from llmci.errors import ExitCode

    docs = exit_code_docs()
    lines = ["| code | name | meaning |", "| --- | --- | --- |"]
    lines += [f"| {int(code)} | `{code.name}` | {_cell(docs[int(code)])} |" for code in ExitCode]
    return "\n".join(lines) + "\n"


# -- configuration ---------------------------------------------------------------------------


def config_schema() -> str:
    """One table per section of llmci.yaml, from its JSON Schema (defaults of lists and maps from the models)."""
    from pydantic import BaseModel

    from llmci.config import Config, json_schema

    schema = json_schema()
    defs: dict[str, Any] = schema["$defs"]
    models: dict[str, type[BaseModel]] = {}

    def collect(model: type[BaseModel]) -> None:
        models[model.__name__] = model
        for field in model.model_fields.values():
            for inner in _models_in(field.annotation):
                if inner.__name__ not in models:
                    collect(inner)

    collect(Config)
    sections: list[tuple[str, str, dict[str, Any]]] = []  # (key path, model name, its schema)
    anchors: dict[str, str] = {}  # model name -> key path of its section (its heading)

    def walk(path: str, name: str) -> None:
        if name in anchors:
            return
        anchors[name] = path
        node = defs.get(name, schema)
        sections.append((path, name, node))
        for key, prop in node.get("properties", {}).items():
            ref, suffix = _ref_in(prop)
            if ref is not None:
                walk(f"{path}.{key}{suffix}" if path != _TOP else f"{key}{suffix}", ref)

    walk(_TOP, "Config")
    out: list[str] = []
    for path, name, node in sections:
        out += [f"### {path}" if path == _TOP else f"### `{path}`", ""]
        if node.get("description") and name != "Config":
            out += [node["description"], ""]
        out += ["| key | type | default | description |", "| --- | --- | --- | --- |"]
        required = set(node.get("required", []))
        for key, prop in node.get("properties", {}).items():
            field = models[name].model_fields[key]
            default = "*required*" if key in required else _default(prop, field)
            out.append(f"| `{key}` | {_type(prop, anchors)} | {default} | {_cell(prop.get('description', ''))} |")
        out.append("")
    return "\n".join(out)


_TOP = "Top level"


def _models_in(annotation: Any) -> list[Any]:
    import typing

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _ref_in(prop: dict[str, Any]) -> tuple[str | None, str]:
    """The section a property holds (directly, optionally, in a list or a map) and its key-path suffix."""
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[1], ""
    for option in prop.get("anyOf", []):
        found = _ref_in(option)
        if found[0] is not None:
            return found
    if isinstance(prop.get("items"), dict):
        ref, suffix = _ref_in(prop["items"])
        return ref, "[]" + suffix
    values = prop.get("additionalProperties")
    if isinstance(values, dict):
        ref, suffix = _ref_in(values)
        return ref, ".NAME" + suffix
    for values in prop.get("patternProperties", {}).values():
        ref, suffix = _ref_in(values)
        return ref, ".NAME" + suffix
    return None, ""


def _type(prop: dict[str, Any], anchors: dict[str, str]) -> str:
    if "$ref" in prop:
        path = anchors[prop["$ref"].rsplit("/", 1)[1]]
        return f"section [`{path}`](#{slug(path)})"
    options = prop.get("anyOf")
    if options:
        kinds = [_type(option, anchors) for option in options if option.get("type") != "null"]
        nullable = any(option.get("type") == "null" for option in options)
        return " or ".join(kinds) + (" or null" if nullable else "")
    if "enum" in prop:
        return " \\| ".join(f"`{json.dumps(value)}`" for value in prop["enum"])
    kind = prop.get("type")
    if kind == "array":
        items = prop.get("items", {})
        text = f"list of {_type(items, anchors)}" if items else "list"
        return text + (f" (at least {prop['minItems']})" if "minItems" in prop else "")
    if kind == "object":
        values = prop.get("additionalProperties")
        patterns = prop.get("patternProperties", {})
        if isinstance(values, dict):
            return f"map: name → {_type(values, anchors)}"
        if patterns:
            pattern, values = next(iter(patterns.items()))
            limit = prop.get("propertyNames", {}).get("maxLength")
            names = f"name matching `{pattern}`" + (f", at most {limit} characters" if limit else "")
            return f"map: {names} → {_type(values, anchors)}"
        return "mapping"
    words = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}
    text = words.get(kind, kind or "any")
    bounds = [
        f"{sign} {_number(prop[key])}"
        for key, sign in (("exclusiveMinimum", ">"), ("minimum", "≥"), ("exclusiveMaximum", "<"), ("maximum", "≤"))
        if key in prop
    ]
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _default(prop: dict[str, Any], field: Any) -> str:
    if "default" in prop:
        value = prop["default"]
    elif field.default_factory is not None:
        value = field.get_default(call_default_factory=True)
        if hasattr(value, "model_dump"):
            return ""  # a section: its own table says its defaults
    else:
        return ""
    return f"`{_cell(json.dumps(value, ensure_ascii=False))}`"


# -- pages -----------------------------------------------------------------------------------

#: page (relative to the repository) -> region name -> what writes it
PAGES: dict[str, dict[str, Callable[[], str]]] = {
    "docs/lint-rules.md": {"rules": lint_rules},
    "docs/exit-codes.md": {"exit-codes": exit_codes},
    "docs/configuration.md": {"config-schema": config_schema},
}


def render(page: str, text: str) -> str:
    """`text` with each generated region of `page` rewritten; ValueError when a region is missing or unknown."""
    writers = PAGES[page]
    found = [match.group("name") for match in _REGION.finditer(text)]
    unknown = sorted(set(found) - set(writers))
    missing = sorted(set(writers) - set(found))
    if unknown or missing:
        raise ValueError(f"{page}: generated regions missing {missing}, unknown {unknown}")
    return _REGION.sub(lambda m: m.group(1) + writers[m.group("name")]() + m.group(4), text)


def stale_pages(root: Path | None = None) -> list[str]:
    """The pages (under `root`, default the repository) whose generated regions differ from the code."""
    root = root or REPO
    return [page for page in PAGES if render(page, text := (root / page).read_text(encoding="utf-8")) != text]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["--check"]):
        print(f"usage: {COMMAND} [--check]", file=sys.stderr)
        return 2
    if args == ["--check"]:
        stale = stale_pages()
        for page in stale:
            print(f"{page} is stale: run {COMMAND}", file=sys.stderr)
        return 1 if stale else 0
    for page in PAGES:
        path = REPO / page
        text = path.read_text(encoding="utf-8")
        new = render(page, text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"rewrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
