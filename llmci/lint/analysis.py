"""What a parsed template does, found by walking its AST; nothing is rendered.

Two passes:

* `check_nodes` looks at every node on its own (flow does not matter):
  sandbox-escape shapes, unknown filters and tests, referenced templates.
* `Flow analysis` (`analyze_flow`) follows the template's control flow to
  find reads of names that are not inputs, with definite assignment: a name
  is "defined" at a read when every path to it assigned the name, "maybe"
  when only some did. Jinja scoping is followed: `if` does not open a scope;
  `for`, macros, call blocks, `with`, filter blocks and blocks do, and what
  they assign does not leak out. `break`/`continue` and a call to
  `raise_exception` end a path, so a branch that raises does not count
  against a name set in the other branches.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

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


def children(node: nodes.Node) -> list[nodes.Node]:
    """Child nodes in source order: `Node.iter_child_nodes` without its filtering (a hot path)."""
    out = []
    for name in node.fields:
        value = getattr(node, name)
        if isinstance(value, nodes.Node):
            out.append(value)
        elif value.__class__ is list:
            out.extend(item for item in value if isinstance(item, nodes.Node))
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


def check_nodes(template: nodes.Template, filters: Iterable[str], tests: Iterable[str]) -> NodeChecks:
    known_filters, known_tests = set(filters), set(tests)
    out = NodeChecks()
    seen: dict[tuple[int, str], int] = {}

    def report(rule: str, node: nodes.Node, message: str, needle: str) -> None:
        # Count every node with this needle on the line, reported or not, so the column
        # of the second `__class__` on a line points at the second one.
        occurrence = seen[(node.lineno, needle)] - 1
        out.issues.append(Issue(rule, node.lineno, message, needle, occurrence))

    for node in walk(template):
        if not isinstance(node, _CHECKED):
            continue
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
                report("unknown-filter", node, f"unknown filter '{node.name}'", node.name)
            for message in _attribute_filter_problems(node):
                report("unsafe-access", node, message, node.name)
        elif isinstance(node, nodes.Test):
            if node.name not in known_tests:
                report("unknown-test", node, f"unknown test '{node.name}'", node.name)
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


# -- pass 2: definite assignment along the control flow ---------------------------------------


class _Flow:
    """Names assigned on every path so far (`defined`) and on some path (`maybe`)."""

    __slots__ = ("defined", "maybe")

    def __init__(self, defined: set[str], maybe: set[str]) -> None:
        self.defined = defined
        self.maybe = maybe

    def copy(self) -> _Flow:
        return _Flow(set(self.defined), set(self.maybe))

    def plus(self, names: Iterable[str]) -> _Flow:
        names = set(names)
        if not names or names <= self.defined:
            return self
        return _Flow(self.defined | names, self.maybe)


def _merge(branches: Iterable[_Flow | None]) -> _Flow | None:
    """Join the paths of a branch: None stands for a path that ended (break, raise)."""
    live = [branch for branch in branches if branch is not None]
    if not live:
        return None
    defined = set.intersection(*(branch.defined for branch in live))
    maybe = set().union(*(branch.maybe | branch.defined for branch in live)) - defined
    return _Flow(defined, maybe)


def _guards(test: nodes.Node) -> tuple[set[str], set[str]]:
    """Names known defined when `test` is true, and when it is false (`x is defined` and friends)."""
    if isinstance(test, nodes.Test) and isinstance(test.node, nodes.Name):
        if test.name == "defined":
            return {test.node.name}, set()
        if test.name == "undefined":
            return set(), {test.node.name}
    if isinstance(test, nodes.Not):
        when_true, when_false = _guards(test.node)
        return when_false, when_true
    if isinstance(test, nodes.And):
        return _guards(test.left)[0] | _guards(test.right)[0], set()
    if isinstance(test, nodes.Or):
        return set(), _guards(test.left)[1] | _guards(test.right)[1]
    return set(), set()


def _target_names(target: nodes.Node) -> Iterator[str]:
    if isinstance(target, nodes.Name):
        yield target.name
    elif isinstance(target, (nodes.Tuple, nodes.List)):
        for item in target.items:
            yield from _target_names(item)


_FENCES = ("```", "~~~")
_OPEN_TAG = re.compile(r"<([A-Za-z][\w.:-]*)(?:\s[^<>]*)?>$")
_QUOTES = ('"""', "'''", '"')


def is_delimited(before: str, after: str) -> bool:
    """Whether static text on both sides of an expression delimits it (see rule help)."""
    before, after = before.rstrip(), after.lstrip()
    last_line = before.rsplit("\n", 1)[-1].lstrip()
    if last_line.startswith(_FENCES) and after.startswith(last_line[:3]):
        return True
    tag = _OPEN_TAG.search(before)
    if tag and after.startswith(f"</{tag.group(1)}>"):
        return True
    return any(before.endswith(quote) and after.startswith(quote) for quote in _QUOTES)


@dataclass
class FlowResult:
    issues: list[Issue]
    used_inputs: set[str]
    static_text: list[str]


class FlowAnalyzer:
    """Walks statements in order, carrying which names are assigned (see module doc)."""

    def __init__(self, inputs: Iterable[str], globals_: Iterable[str], untrusted: Iterable[str] = ()) -> None:
        self.inputs = frozenset(inputs)
        self.globals = frozenset(globals_) | JINJA_SPECIAL_NAMES
        self.untrusted = frozenset(untrusted)
        self.tainted = set(untrusted)
        self.used: set[str] = set()
        self._template: nodes.Template | None = None
        self._occurrences: dict[int, int] | None = None
        self.issues: list[Issue] = []
        self.static_text: list[str] = []
        self._reported: set[tuple[str, str]] = set()

    def run(self, template: nodes.Template) -> FlowResult:
        self._template = template
        self.body(template.body, _Flow(set(), set()))
        return FlowResult(self.issues, self.used, self.static_text)

    # statements ---------------------------------------------------------------------------

    def body(self, statements: Iterable[nodes.Node], flow: _Flow | None) -> _Flow | None:
        for statement in statements:
            if flow is None:
                return None  # the rest cannot run: the path ended
            flow = self.statement(statement, flow)
        return flow

    def inner(self, statements: Iterable[nodes.Node], flow: _Flow, names: Iterable[str] = ()) -> None:
        """A scope of its own: sees the outer names, leaks nothing back."""
        self.body(statements, flow.copy().plus(names) if names else flow.copy())

    def statement(self, node: nodes.Node, flow: _Flow) -> _Flow | None:
        handler = getattr(self, f"stmt_{type(node).__name__}", None)
        if handler is not None:
            return handler(node, flow)
        # A statement from an extension we do not know: check its expressions, scope its body.
        for child in children(node):
            if isinstance(child, nodes.Stmt):
                self.inner([child], flow)
            else:
                self.expr(child, flow)
        return flow

    def stmt_Output(self, node: nodes.Output, flow: _Flow) -> _Flow | None:
        pieces: list[str | nodes.Expr] = []
        for child in node.nodes:
            pieces.extend(self._pieces(child))
        ends = False
        for index, piece in enumerate(pieces):
            if isinstance(piece, str):
                self.static_text.append(piece)
                continue
            self.expr(piece, flow)
            ends = ends or self._is_noreturn(piece)
            if self.tainted and self._is_tainted(piece):
                before = "".join(reversed(list(_static_run(reversed(pieces[:index])))))
                after = "".join(_static_run(pieces[index + 1 :]))
                if not is_delimited(before, after):
                    names = [piece] if isinstance(piece, nodes.Name) else piece.find_all(nodes.Name)
                    name = next(n for n in names if n.name in self.tainted)
                    what = (
                        f"input '{name.name}'"
                        if name.name in self.untrusted
                        else f"value '{name.name}' (derived from an untrusted input)"
                    )
                    message = f"untrusted {what} is rendered without a delimiter around it"
                    self.issues.append(self._issue_at("undelimited-untrusted", name, message))
        return None if ends else flow

    def stmt_ExprStmt(self, node: nodes.ExprStmt, flow: _Flow) -> _Flow | None:
        self.expr(node.node, flow)
        return None if self._is_noreturn(node.node) else flow

    def stmt_Assign(self, node: nodes.Assign, flow: _Flow) -> _Flow:
        self.expr(node.node, flow)
        return self._assign(node.target, flow, tainted=self._is_tainted(node.node))

    def stmt_AssignBlock(self, node: nodes.AssignBlock, flow: _Flow) -> _Flow:
        if node.filter is not None:
            self.expr(node.filter, flow)
        self.inner(node.body, flow)
        return self._assign(node.target, flow, tainted=False)

    def stmt_If(self, node: nodes.If, flow: _Flow) -> _Flow | None:
        branches: list[_Flow | None] = []
        remaining = flow
        for test, body in [(node.test, node.body)] + [(elif_.test, elif_.body) for elif_ in node.elif_]:
            self.expr(test, remaining)
            when_true, when_false = _guards(test)
            branches.append(self.body(body, remaining.copy().plus(when_true)))
            remaining = remaining.plus(when_false)
        branches.append(self.body(node.else_, remaining.copy()))
        return _merge(branches)

    def stmt_For(self, node: nodes.For, flow: _Flow) -> _Flow:
        self.expr(node.iter, flow)
        targets = set(_target_names(node.target))
        if self._is_tainted(node.iter):
            self.tainted |= targets
        if node.test is not None:
            self.expr(node.test, flow.plus(targets))
        loop_names = targets | {"loop"}
        self.inner(node.body, flow, loop_names)
        self.inner(node.else_, flow)
        return flow  # nothing assigned in a loop leaks out of it

    def stmt_Macro(self, node: nodes.Macro, flow: _Flow) -> _Flow:
        for default in node.defaults:
            self.expr(default, flow)
        params = {arg.name for arg in node.args} | {"varargs", "kwargs", "caller"}
        self.inner(node.body, flow, params)
        return flow.copy().plus({node.name})

    def stmt_CallBlock(self, node: nodes.CallBlock, flow: _Flow) -> _Flow:
        self.expr(node.call, flow)
        for default in node.defaults:
            self.expr(default, flow)
        self.inner(node.body, flow, {arg.name for arg in node.args} | {"varargs", "kwargs"})
        return flow

    def stmt_FilterBlock(self, node: nodes.FilterBlock, flow: _Flow) -> _Flow:
        self.expr(node.filter, flow)
        self.inner(node.body, flow)
        return flow

    def stmt_With(self, node: nodes.With, flow: _Flow) -> _Flow:
        for value in node.values:
            self.expr(value, flow)
        self.inner(node.body, flow, {name for target in node.targets for name in _target_names(target)})
        return flow

    def stmt_Block(self, node: nodes.Block, flow: _Flow) -> _Flow:
        self.inner(node.body, flow, {"super"})
        return flow

    def stmt_Scope(self, node: nodes.Scope, flow: _Flow) -> _Flow:
        self.inner(node.body, flow)
        return flow

    def stmt_ScopedEvalContextModifier(self, node: nodes.ScopedEvalContextModifier, flow: _Flow) -> _Flow:
        self.inner(node.body, flow)
        return flow

    def stmt_OverlayScope(self, node: nodes.OverlayScope, flow: _Flow) -> _Flow:
        self.expr(node.context, flow)
        self.inner(node.body, flow)
        return flow

    def stmt_Include(self, node: nodes.Include, flow: _Flow) -> _Flow:
        self.expr(node.template, flow)
        return flow

    def stmt_Extends(self, node: nodes.Extends, flow: _Flow) -> _Flow:
        self.expr(node.template, flow)
        return flow

    def stmt_Import(self, node: nodes.Import, flow: _Flow) -> _Flow:
        self.expr(node.template, flow)
        return flow.copy().plus({node.target})

    def stmt_FromImport(self, node: nodes.FromImport, flow: _Flow) -> _Flow:
        self.expr(node.template, flow)
        names = {name[1] if isinstance(name, tuple) else name for name in node.names}
        return flow.copy().plus(names)

    def stmt_Break(self, node: nodes.Break, flow: _Flow) -> None:
        return None

    stmt_Continue = stmt_Break

    def stmt_EvalContextModifier(self, node: nodes.EvalContextModifier, flow: _Flow) -> _Flow:
        return flow

    # expressions --------------------------------------------------------------------------

    def expr(self, node: nodes.Node, flow: _Flow) -> None:
        if isinstance(node, nodes.Name):
            if node.ctx == "load":
                self.load(node, flow)
            return
        if isinstance(node, nodes.NSRef):
            self.load(node, flow)
            return
        if (
            isinstance(node, (nodes.Test, nodes.Filter))
            and isinstance(node.node, nodes.Name)
            and node.name in ("defined", "undefined", "default", "d")
        ):
            # `x is defined` and `x | default(...)` read x knowing it may be missing.
            if node.node.name in self.inputs:
                self.used.add(node.node.name)
            for child in (*node.args, *node.kwargs):
                self.expr(child, flow)
            return
        if isinstance(node, nodes.CondExpr):
            self.expr(node.test, flow)
            when_true, when_false = _guards(node.test)
            self.expr(node.expr1, flow.plus(when_true))
            if node.expr2 is not None:
                self.expr(node.expr2, flow.plus(when_false))
            return
        if isinstance(node, (nodes.And, nodes.Or)):
            self.expr(node.left, flow)
            when_true, when_false = _guards(node.left)
            self.expr(node.right, flow.plus(when_true if isinstance(node, nodes.And) else when_false))
            return
        for child in children(node):
            self.expr(child, flow)

    def load(self, node: nodes.Name | nodes.NSRef, flow: _Flow) -> None:
        name = node.name
        if name in flow.defined:
            return
        if name in self.inputs:
            self.used.add(name)
            return
        if name in self.globals:
            return
        if name in flow.maybe:
            rule, message = "possibly-undefined", f"'{name}' is assigned on some paths only before this use"
        else:
            rule, message = "undefined-variable", f"'{name}' is used but is not an input"
        if (rule, name) not in self._reported:  # one finding per name is enough to act on
            self._reported.add((rule, name))
            self.issues.append(self._issue_at(rule, node, message))

    def _issue_at(self, rule: str, node: nodes.Name | nodes.NSRef, message: str) -> Issue:
        """An issue pointing at this very occurrence of the name on its line."""
        if self._occurrences is None:
            # Built only when there is something to report: which match of its name on its
            # line each Name node is, counting in source order.
            seen: dict[tuple[int, str], int] = {}
            self._occurrences = {}
            assert self._template is not None
            for name_node in walk(self._template):
                if not isinstance(name_node, (nodes.Name, nodes.NSRef)):
                    continue
                key = (name_node.lineno, name_node.name)
                self._occurrences[id(name_node)] = seen.get(key, 0)
                seen[key] = seen.get(key, 0) + 1
        return Issue(rule, node.lineno, message, node.name, self._occurrences.get(id(node), 0))

    # helpers ------------------------------------------------------------------------------

    def _assign(self, target: nodes.Node, flow: _Flow, *, tainted: bool) -> _Flow:
        if isinstance(target, nodes.NSRef):
            self.load(target, flow)  # the namespace must exist already
            return flow
        names = set(_target_names(target))
        if tainted:
            self.tainted |= names
        return flow.copy().plus(names)

    def _pieces(self, node: nodes.Node) -> list[str | nodes.Expr]:
        """Split an output expression into static strings and dynamic parts, in order."""
        if isinstance(node, nodes.TemplateData):
            return [node.data]
        if isinstance(node, nodes.Const) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, nodes.Concat):
            return [piece for child in node.nodes for piece in self._pieces(child)]
        if isinstance(node, nodes.Add):
            return self._pieces(node.left) + self._pieces(node.right)
        return [node]

    def _is_tainted(self, node: nodes.Node) -> bool:
        if isinstance(node, nodes.Filter) and node.name in ENCODING_FILTERS:
            return False
        if isinstance(node, nodes.Name):
            return node.name in self.tainted
        if isinstance(node, nodes.CondExpr):
            return self._is_tainted(node.expr1) or (node.expr2 is not None and self._is_tainted(node.expr2))
        return any(self._is_tainted(child) for child in children(node))

    @staticmethod
    def _is_noreturn(node: nodes.Node) -> bool:
        return isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name in NORETURN_CALLS


def _static_run(pieces: Iterable[str | nodes.Expr]) -> Iterator[str]:
    """The static strings next to an expression, up to the next dynamic part."""
    for piece in pieces:
        if not isinstance(piece, str):
            return
        yield piece
