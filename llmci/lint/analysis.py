"""What a parsed template does, node by node, found by walking its AST; nothing is rendered.

`check_nodes` looks at every node on its own (flow does not matter):
sandbox-escape shapes, unknown filters and tests, referenced templates. The
control flow (definite assignment) is `llmci.lint.flow`; the shapes of
poisoned chat templates are `llmci.lint.poison`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import NamedTuple

from jinja2 import nodes
from jinja2.sandbox import (
    UNSAFE_ASYNC_GENERATOR_ATTRIBUTES,
    UNSAFE_COROUTINE_ATTRIBUTES,
    UNSAFE_FUNCTION_ATTRIBUTES,
    UNSAFE_GENERATOR_ATTRIBUTES,
    UNSAFE_METHOD_ATTRIBUTES,
)

#: Attributes without a leading underscore that still reach interpreter internals.
UNSAFE_ATTRIBUTES = (
    frozenset({"mro", "func_globals", "func_code", "func_closure", "f_globals", "f_locals", "f_builtins"})
    | frozenset({"f_back", "f_code", "tb_frame", "tb_next", "co_code", "gi_yieldfrom", "cr_await"})
    | UNSAFE_FUNCTION_ATTRIBUTES
    | UNSAFE_METHOD_ATTRIBUTES
    | UNSAFE_GENERATOR_ATTRIBUTES
    | UNSAFE_COROUTINE_ATTRIBUTES
    | UNSAFE_ASYNC_GENERATOR_ATTRIBUTES
)

#: Names Jinja itself provides in some scopes, beyond the environment's globals.
JINJA_SPECIAL_NAMES = frozenset({"self"})

#: Filters whose first argument (or `attribute=`) is an attribute path looked up on items.
ATTRIBUTE_FILTERS = frozenset({"map", "selectattr", "rejectattr", "sort", "groupby", "sum", "unique", "min", "max"})

#: Filters that make any value safe to place in a prompt: the output is a quoted, escaped literal.
ENCODING_FILTERS = frozenset({"tojson"})

#: Calls that never return (they raise): the path through them ends.
NORETURN_CALLS = frozenset({"raise_exception"})


def is_unsafe_attribute(name: str) -> bool:
    return name.startswith("_") or name in UNSAFE_ATTRIBUTES


@dataclass(frozen=True)
class Issue:
    """A finding before severity, suppression and column are applied."""

    rule: str
    line: int
    message: str
    #: Text to look for on the line to give the column (first match), if any.
    needle: str | None = None
    #: Which match of `needle` in the line's code (0 = first), when a name occurs twice.
    occurrence: int = 0
    #: The column, when the analysis knows it exactly (1-based).
    column: int | None = None


@dataclass(frozen=True)
class TemplateRef:
    """An include/import/extends of constant name(s); any one existing is enough."""

    names: tuple[str, ...]
    line: int
    statement: str


@dataclass
class NodeChecks:
    issues: list[Issue] = field(default_factory=list)
    refs: list[TemplateRef] = field(default_factory=list)


# -- constant folding, so that '__cla' ~ 'ss__' is seen for what it is -------------------------


def fold_str(node: nodes.Node) -> str | None:
    """The string an expression always evaluates to, if it is built from constants only.

    Our own evaluation of a few pure string operations; no template code runs.
    """
    if isinstance(node, nodes.Const):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, nodes.Concat):
        parts = [fold_str(child) for child in node.nodes]
        return None if None in parts else "".join(parts)  # type: ignore[arg-type]
    if isinstance(node, nodes.Add):
        left, right = fold_str(node.left), fold_str(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, nodes.Filter) and node.node is not None:
        return _fold_filter(node)
    return None


def _fold_filter(node: nodes.Filter) -> str | None:
    if node.name == "join" and isinstance(node.node, (nodes.List, nodes.Tuple)):
        items = [fold_str(item) for item in node.node.items]
        sep = fold_str(node.args[0]) if node.args else ""
        return None if None in items or sep is None else sep.join(items)  # type: ignore[arg-type]
    value = fold_str(node.node)
    if value is None:
        return None
    args = [fold_str(arg) if not isinstance(arg, nodes.Const) else arg.value for arg in node.args]
    if node.name in ("lower", "upper", "title", "capitalize", "trim"):
        return {"lower": str.lower, "upper": str.upper, "title": str.title, "capitalize": str.capitalize}.get(
            node.name, str.strip
        )(value)
    if node.name == "reverse":
        return value[::-1]
    if node.name == "replace" and len(args) >= 2 and all(isinstance(a, str) for a in args[:2]):
        return value.replace(args[0], args[1])
    if node.name == "format" and None not in args:
        try:
            return value % tuple(args)
        except (TypeError, ValueError):
            return None
    return None


def _format_fields_unsafe(fmt: str) -> str | None:
    """The first unsafe attribute a str.format pattern reaches ('{0.__class__}'), if any."""
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError:
        return None
    for _, field_name, _, _ in parsed:
        if field_name:
            for part in re.split(r"[.\[\]]", field_name)[1:]:
                if part and is_unsafe_attribute(part):
                    return part
    return None


# -- walking the AST ---------------------------------------------------------------------------


#: Fields of Jinja's own nodes that never hold a node (names, flags, operators, values).
_SCALAR_FIELDS = frozenset(
    {"name", "attr", "ctx", "op", "data", "recursive", "scoped", "required", "with_context", "ignore_missing"}
    | {"identifier", "importname"}
)
_SCALAR_FIELDS_OF = {
    nodes.Const: {"value"},
    nodes.Keyword: {"key"},
    nodes.Import: {"target"},
    nodes.FromImport: {"names"},
}
_NODE_FIELDS: dict[type, tuple[str, ...]] = {}


def _node_fields(cls: type[nodes.Node]) -> tuple[str, ...]:
    """The fields of `cls` that can hold nodes: all of them for a node class from an extension."""
    fields = _NODE_FIELDS.get(cls)
    if fields is None:
        scalar = _SCALAR_FIELDS | _SCALAR_FIELDS_OF.get(cls, set()) if cls.__module__ == "jinja2.nodes" else ()
        fields = _NODE_FIELDS[cls] = tuple(name for name in cls.fields if name not in scalar)
    return fields


def children(node: nodes.Node) -> list[nodes.Node]:
    """Child nodes in source order: `Node.iter_child_nodes` without its filtering (a hot path)."""
    out = []
    for name in _node_fields(node.__class__):
        value = getattr(node, name)
        if value.__class__ is list:
            out += [item for item in value if isinstance(item, nodes.Node)]
        elif isinstance(value, nodes.Node):
            out.append(value)
    return out


def walk(node: nodes.Node) -> list[nodes.Node]:
    """Every node below `node`, in source order (what `find_all` visits, faster)."""
    out: list[nodes.Node] = []
    stack = children(node)[::-1]
    while stack:
        current = stack.pop()
        out.append(current)
        stack.extend(children(current)[::-1])
    return out


class Tree(NamedTuple):
    """A template's nodes in source order, with where each subtree ends and where each class of node is.

    The descendants of `nodes[i]` are `nodes[i + 1 : ends[i]]`; `where[cls]` lists the positions of
    the nodes of class `cls`. The checks look at the classes they care about, not at every node.
    """

    nodes: list[nodes.Node]
    ends: list[int]
    where: dict[type, list[int]]

    def positions(self, classes: Iterable[type]) -> list[int]:
        """Where the nodes of these classes are, in source order."""
        found = [self.where[cls] for cls in classes if cls in self.where]
        return found[0] if len(found) == 1 else sorted(chain.from_iterable(found))


def walk_tree(node: nodes.Node) -> Tree:
    """What `walk(node)` gives, as a Tree. Iterative: expressions can nest deeper than Python recurses.

    The hottest loop of the linter, so `children` is inlined.
    """
    out: list[nodes.Node] = []
    ends: list[int] = []
    where: dict[type, list[int]] = {}
    node_class = nodes.Node
    stack: list = children(node)[::-1]
    while stack:
        item = stack.pop()
        cls = item.__class__
        if cls is int:  # all of a node's descendants are out: its subtree ends here
            ends[item] = len(out)
            continue
        index = len(out)
        stack.append(index)
        out.append(item)
        ends.append(0)
        bucket = where.get(cls)
        if bucket is None:
            where[cls] = [index]
        else:
            bucket.append(index)
        fields = _NODE_FIELDS.get(cls)
        if fields is None:
            fields = _node_fields(cls)
        if not fields:
            continue
        kids: list[nodes.Node] = []
        for name in fields:
            value = getattr(item, name)
            if value.__class__ is list:
                kids += [entry for entry in value if isinstance(entry, node_class)]
            elif isinstance(value, node_class):
                kids.append(value)
        kids.reverse()
        stack += kids
    return Tree(out, ends, where)


# -- pass 1: every node on its own ------------------------------------------------------------

_CHECKED = (
    nodes.Getattr,
    nodes.Getitem,
    nodes.Filter,
    nodes.Test,
    nodes.Call,
    nodes.Include,
    nodes.Import,
    nodes.FromImport,
    nodes.Extends,
)


def check_nodes(
    template: nodes.Template,
    filters: Iterable[str],
    tests: Iterable[str],
    environment: str = "a Jinja built-in",
    tree: Tree | None = None,
) -> NodeChecks:
    """Issues of single nodes; `environment` says where filters and tests come from, for the messages.

    `tree` is `walk_tree(template)` when the caller has it already.
    """
    known_filters, known_tests = set(filters), set(tests)
    out = NodeChecks()
    seen: dict[tuple[int, str], int] = {}

    def report(rule: str, node: nodes.Node, message: str, needle: str) -> None:
        # Count every node with this needle on the line, reported or not, so the column
        # of the second `__class__` on a line points at the second one.
        occurrence = seen[(node.lineno, needle)] - 1
        out.issues.append(Issue(rule, node.lineno, message, needle, occurrence))

    tree = tree or walk_tree(template)
    for index in tree.positions(_CHECKED):
        node = tree.nodes[index]
        needle = getattr(node, "attr", None) or getattr(node, "name", None)
        if isinstance(needle, str):
            seen[(node.lineno, needle)] = seen.get((node.lineno, needle), 0) + 1
        if isinstance(node, nodes.Getattr):
            if is_unsafe_attribute(node.attr):
                report("unsafe-access", node, _unsafe(f"access to attribute '{node.attr}'"), node.attr)
        elif isinstance(node, nodes.Getitem):
            key = fold_str(node.arg)
            if key is not None and is_unsafe_attribute(key):
                out.issues.append(Issue("unsafe-access", node.lineno, _unsafe(f"access to item '{key}'"), key))
        elif isinstance(node, nodes.Filter):
            if node.name not in known_filters:
                message = f"unknown filter '{node.name}': not {environment}, nor declared in `filters`"
                report("unknown-filter", node, message, node.name)
            for message in _attribute_filter_problems(node):
                report("unsafe-access", node, message, node.name)
        elif isinstance(node, nodes.Test):
            if node.name not in known_tests:
                message = f"unknown test '{node.name}': not {environment}, nor declared in `tests`"
                report("unknown-test", node, message, node.name)
        elif isinstance(node, nodes.Call):
            callee = node.node
            if isinstance(callee, nodes.Getattr) and callee.attr in ("format", "format_map"):
                fmt = fold_str(callee.node)
                reached = _format_fields_unsafe(fmt) if fmt is not None else None
                if reached:
                    message = _unsafe(f"format string reaches attribute '{reached}'")
                    out.issues.append(Issue("unsafe-access", node.lineno, message, callee.attr))
        else:
            ref = _template_ref(node)
            if ref is not None:
                out.refs.append(ref)
    return out


def _unsafe(what: str) -> str:
    return f"{what}: a sandbox-escape shape; prompts never need it"


def _attribute_filter_problems(node: nodes.Filter) -> Iterator[str]:
    """Unsafe attribute names reached through `attr`, `map(attribute=...)` and friends."""
    if node.name == "attr":
        name = fold_str(node.args[0]) if node.args else None
        if name is None:
            yield _unsafe("dynamic attribute name passed to 'attr'")
        elif is_unsafe_attribute(name):
            yield _unsafe(f"access to attribute '{name}' through 'attr'")
        return
    if node.name not in ATTRIBUTE_FILTERS:
        return
    candidates = [kw.value for kw in node.kwargs if kw.key == "attribute"]
    if node.name in ("selectattr", "rejectattr", "groupby") and node.args:
        candidates.append(node.args[0])
    for candidate in candidates:
        path = fold_str(candidate)
        for part in (path or "").split("."):
            if part and is_unsafe_attribute(part):
                yield _unsafe(f"access to attribute '{part}' through '{node.name}'")


def _template_ref(node: nodes.Node) -> TemplateRef | None:
    if isinstance(node, nodes.Include) and node.ignore_missing:
        return None
    target = node.template  # type: ignore[attr-defined]
    if isinstance(target, (nodes.List, nodes.Tuple)):
        names = tuple(fold_str(item) for item in target.items)
    else:
        names = (fold_str(target),)
    if not names or None in names:
        return None  # a name computed at render time cannot be checked here
    statement = {nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "import"}.get(
        type(node), "extends"
    )
    return TemplateRef(names, node.lineno, statement)  # type: ignore[arg-type]
