"""Definite assignment along a template's control flow; nothing is rendered.

A name is "defined" at a read when every path to it assigned the name, "maybe"
when only some did. Jinja's scoping is followed: `if` does not open a scope;
`for`, macros, call blocks, `with`, filter blocks and blocks do, and what they
assign does not leak out. `break`/`continue` and a call to `raise_exception`
end a path, so a branch that raises does not count against a name set in the
other branches.

Macros resolve free names when they are called, not where they are defined:
a macro may call a macro defined further down, call itself, or read a
`{% set %}` that comes after it. So a macro's body is analysed at each call
site, with the names its definition scope has at that moment (a loop variable
of the call site is not among them: Jinja's scoping is lexical). Recursion is
followed once; a macro that is never called is analysed with the names its
scope has at the end, so a name defined nowhere is still found.

A `for` body starts afresh at each iteration: a name set in it only when
`loop.first` is gone from the second iteration on. Such reads are reported
as possibly undefined, saying so.

Chat templates (`chat=True`) are rendered by transformers with Jinja's lenient
`Undefined`: testing a missing name is false, not an error. A name that is only
tested (`{% if x %}`, `x is defined`, `x | default(...)`, `x == 'a'`) is an
optional argument of apply_chat_template, reported as info; inside the branch
where the test holds, the name is defined. A name rendered, iterated or
dereferenced without such a guard is still an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from jinja2 import nodes

from llmci.lint.analysis import ENCODING_FILTERS, JINJA_SPECIAL_NAMES, NORETURN_CALLS, Issue, children, walk

#: Tests that are false for a missing name under jinja2.Undefined: when they hold, the name is defined.
_DEFINING_TESTS = frozenset(
    {"defined", "string", "mapping", "number", "integer", "float", "boolean", "true", "false", "none"}
    | {"eq", "equalto", "==", "sameas", "in"}
)
#: Comparisons that do not fail on a missing name under jinja2.Undefined (ordering ones do).
_LENIENT_COMPARISONS = frozenset({"eq", "ne", "in", "notin"})
#: Tests and filters that read a name knowing it may be missing, in every kind of template.
_MISSING_AWARE = frozenset({"defined", "undefined", "default", "d"})


class _Flow:
    """Names assigned on every path so far (`defined`) and on some path (`maybe`).

    Never changed once made (`plus` makes a new one), so paths share flows freely.
    """

    __slots__ = ("defined", "maybe")

    def __init__(self, defined: set[str], maybe: set[str]) -> None:
        self.defined = defined
        self.maybe = maybe

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
    if all(branch is live[0] for branch in live):
        return live[0]  # no branch assigned anything
    defined = set.intersection(*(branch.defined for branch in live))
    maybe = set().union(*(branch.maybe | branch.defined for branch in live)) - defined
    return _Flow(defined, maybe)


def _guards(test: nodes.Node, lenient: bool) -> tuple[set[str], set[str]]:
    """Names known defined when `test` is true, and when it is false.

    Always: `x is defined` / `x is undefined`. With `lenient` (jinja2.Undefined,
    as in chat templates) also what is false for a missing name: `x`, `x is
    string`, `x == 'a'`, `'a' in x`.
    """
    if isinstance(test, nodes.Test) and isinstance(test.node, nodes.Name):
        if test.name == "defined" or (lenient and test.name in _DEFINING_TESTS):
            return {test.node.name}, set()
        if test.name == "undefined":
            return set(), {test.node.name}
    if isinstance(test, nodes.Not):
        when_true, when_false = _guards(test.node, lenient)
        return when_false, when_true
    if isinstance(test, nodes.And):
        return _guards(test.left, lenient)[0] | _guards(test.right, lenient)[0], set()
    if isinstance(test, nodes.Or):
        return set(), _guards(test.left, lenient)[1] | _guards(test.right, lenient)[1]
    if lenient:
        if isinstance(test, nodes.Name):
            return {test.name}, set()
        if isinstance(test, nodes.Compare) and len(test.ops) == 1 and test.ops[0].op in _LENIENT_COMPARISONS:
            names = {side.name for side in (test.expr, test.ops[0].expr) if isinstance(side, nodes.Name)}
            return (names, set()) if test.ops[0].op in ("eq", "in") else (set(), names)
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
    #: Names a chat template only tests: the optional arguments of apply_chat_template it accepts.
    optional: set[str] = field(default_factory=set)


@dataclass(eq=False)
class _Macro:
    node: nodes.Macro
    #: How many scopes enclose the definition (0: the template's top level).
    depth: int
    analyzed: bool = False

    @property
    def params(self) -> set[str]:
        return {arg.name for arg in self.node.args} | {"varargs", "kwargs", "caller"}


class FlowAnalyzer:
    """Walks statements in order, carrying which names are assigned (see module doc)."""

    def __init__(
        self,
        inputs: Iterable[str],
        globals_: Iterable[str],
        untrusted: Iterable[str] = (),
        *,
        chat: bool = False,
        contract: str = "",
        collect_text: bool = True,
    ) -> None:
        self.inputs = frozenset(inputs)
        self.globals = frozenset(globals_) | JINJA_SPECIAL_NAMES
        self.untrusted = frozenset(untrusted)
        self.tainted = set(untrusted)
        #: Chat templates: missing names are lenient (jinja2.Undefined), so tests of them are fine.
        self.chat = chat
        #: Where a missing name is missing from, for the message ("" for prompts: their variables).
        self.contract = contract
        #: Whether to gather the static text (for the token budget).
        self.collect_text = collect_text
        self.used: set[str] = set()
        self.optional: set[str] = set()
        self._template: nodes.Template | None = None
        self._walked: list[nodes.Node] | None = None
        self._occurrences: dict[int, int] | None = None
        self.issues: list[Issue] = []
        self.static_text: list[str] = []
        self._text_seen: set[int] = set()
        self._reported: set[tuple[str, str]] = set()
        #: Flows of the enclosing scopes, each as it was when the next inner scope began.
        self._outer: list[_Flow] = []
        #: Macros visible in the current scope, by name; and those each open scope defined.
        self._macros: dict[str, _Macro] = {}
        self._defined_here: list[list[_Macro]] = [[]]
        self._done: set[tuple[int, frozenset[str], frozenset[str]]] = set()
        self._active: set[int] = set()
        #: The `for` statements around the statement being analysed (for the loop message).
        self._loops: list[nodes.For] = []
        self._loop_sets: dict[int, set[str]] = {}

    def run(self, template: nodes.Template, walked: list[nodes.Node] | None = None) -> FlowResult:
        """The analysis of `template`; `walked` is `walk(template)` when the caller has it already."""
        self._template = template
        self._walked = walked
        start = _Flow(set(), set())
        end = self.body(template.body, start)
        self._close_scope(end or start)
        issues = list(dict.fromkeys(self.issues))  # a macro analysed at several call sites says things once
        return FlowResult(issues, self.used, self.static_text, self.optional)

    # statements ---------------------------------------------------------------------------

    def body(self, statements: Iterable[nodes.Node], flow: _Flow | None) -> _Flow | None:
        for statement in statements:
            if flow is None:
                return None  # the rest cannot run: the path ended
            flow = self.statement(statement, flow)
        return flow

    def inner(self, statements: Iterable[nodes.Node], flow: _Flow, names: Iterable[str] = ()) -> None:
        """A scope of its own: sees the outer names, leaks nothing back (macros included)."""
        start = flow.plus(names)
        macros = self._macros
        self._outer.append(flow)
        self._macros = dict(macros)
        self._defined_here.append([])
        try:
            end = self.body(statements, start)
            self._close_scope(end or start)
        finally:
            self._defined_here.pop()
            self._macros = macros
            self._outer.pop()

    def _close_scope(self, flow: _Flow) -> None:
        """Macros of this scope that nothing called: analysed with the names the scope ends with."""
        for macro in self._defined_here[-1]:
            if not macro.analyzed:
                self._call(macro, flow)

    def statement(self, node: nodes.Node, flow: _Flow) -> _Flow | None:
        handler = _HANDLERS.get(node.__class__)
        if handler is None:
            handler = _HANDLERS[node.__class__] = getattr(FlowAnalyzer, f"stmt_{type(node).__name__}", False)
        if handler:
            return handler(self, node, flow)
        # A statement from an extension we do not know: check its expressions, scope its body.
        for child in children(node):
            if isinstance(child, nodes.Stmt):
                self.inner([child], flow)
            else:
                self.expr(child, flow)
        return flow

    def stmt_Output(self, node: nodes.Output, flow: _Flow) -> _Flow | None:
        if not self.tainted and not self.collect_text:
            # Nothing to measure or delimit: only the expressions matter.
            ends = False
            for child in node.nodes:
                if child.__class__ is not nodes.TemplateData:
                    self.expr(child, flow)
                    ends = ends or self._is_noreturn(child)
            return None if ends else flow
        pieces: list[str | nodes.Expr] = []
        for child in node.nodes:
            pieces.extend(self._pieces(child))
        first_time = id(node) not in self._text_seen  # a macro's text counts once, however often it is called
        self._text_seen.add(id(node))
        ends = False
        for index, piece in enumerate(pieces):
            if isinstance(piece, str):
                if first_time:
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
        guarded: set[str] = set()  # names a test proved defined in a branch
        assigned: set[str] = set()  # names a branch assigned
        remaining = flow
        for test, body in [(node.test, node.body)] + [(elif_.test, elif_.body) for elif_ in node.elif_]:
            self.cond(test, remaining)
            when_true, when_false = _guards(test, self.chat)
            guarded |= when_true | when_false
            start = remaining.plus(when_true)
            branches.append(self._branch(body, start, assigned))
            remaining = remaining.plus(when_false)
        branches.append(self._branch(node.else_, remaining, assigned))
        merged = _merge(branches)
        # A name only tested, in some branches, is no more "assigned on some paths" after the `if` than before.
        leaked = (guarded - assigned - flow.maybe) & merged.maybe if merged is not None else set()
        return _Flow(merged.defined, merged.maybe - leaked) if leaked else merged

    def _branch(self, body: list[nodes.Node], start: _Flow, assigned: set[str]) -> _Flow | None:
        end = self.body(body, start)
        if end is not None and end is not start:
            assigned |= (end.defined - start.defined) | (end.maybe - start.maybe)
        return end

    def stmt_For(self, node: nodes.For, flow: _Flow) -> _Flow:
        self.expr(node.iter, flow)
        targets = set(_target_names(node.target))
        if self._is_tainted(node.iter):
            self.tainted |= targets
        if node.test is not None:
            self.cond(node.test, flow.plus(targets))
        self._loops.append(node)
        try:
            self.inner(node.body, flow, targets | {"loop"})
        finally:
            self._loops.pop()
        self.inner(node.else_, flow)
        return flow  # nothing assigned in a loop leaks out of it

    def stmt_Macro(self, node: nodes.Macro, flow: _Flow) -> _Flow:
        for default in node.defaults:
            self.expr(default, flow)
        # The body is analysed where the macro is called (see module doc), or when its scope closes.
        macro = _Macro(node, len(self._outer))
        self._macros[node.name] = macro
        self._defined_here[-1].append(macro)
        return flow.plus({node.name})

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
        return flow.plus({node.target})

    def stmt_FromImport(self, node: nodes.FromImport, flow: _Flow) -> _Flow:
        self.expr(node.template, flow)
        names = {name[1] if isinstance(name, tuple) else name for name in node.names}
        return flow.plus(names)

    def stmt_Break(self, node: nodes.Break, flow: _Flow) -> None:
        return None

    stmt_Continue = stmt_Break

    def stmt_EvalContextModifier(self, node: nodes.EvalContextModifier, flow: _Flow) -> _Flow:
        return flow

    # macros -------------------------------------------------------------------------------

    def _call(self, macro: _Macro, flow: _Flow) -> None:
        """Analyse a macro's body as called here: its definition scope's names as they are now."""
        node_id = id(macro.node)
        if node_id in self._active:
            return  # recursion: the body is being analysed already, with the same scope
        scope = flow if len(self._outer) == macro.depth else self._outer[macro.depth]
        key = (node_id, frozenset(scope.defined), frozenset(scope.maybe))
        if key in self._done:
            return  # analysed before with the same names: it would say the same
        self._done.add(key)
        macro.analyzed = True
        outer, loops = self._outer, self._loops
        self._outer, self._loops = outer[: macro.depth], []  # lexical scoping: the call site's locals are unseen
        self._active.add(node_id)
        try:
            self.inner(macro.node.body, scope, macro.params)
        finally:
            self._active.discard(node_id)
            self._outer, self._loops = outer, loops

    # expressions --------------------------------------------------------------------------

    def cond(self, node: nodes.Node, flow: _Flow) -> None:
        """An expression used for its truth (an `if`, a conditional, a loop filter, an and/or operand).

        In a chat template a missing name tested here is false, not an error: an optional argument.
        """
        if not self.chat:
            self.expr(node, flow)
        elif isinstance(node, nodes.Name):
            if node.ctx == "load":
                self.load(node, flow, tested=True)
        elif isinstance(node, nodes.Not):
            self.cond(node.node, flow)
        elif isinstance(node, (nodes.And, nodes.Or)):
            self.cond(node.left, flow)
            when_true, when_false = _guards(node.left, True)
            self.cond(node.right, flow.plus(when_true if isinstance(node, nodes.And) else when_false))
        elif isinstance(node, nodes.Compare) and all(op.op in _LENIENT_COMPARISONS for op in node.ops):
            for operand in (node.expr, *(op.expr for op in node.ops)):
                if isinstance(operand, nodes.Name):
                    self.load(operand, flow, tested=True)
                else:
                    self.expr(operand, flow)
        else:
            self.expr(node, flow)

    def expr(self, node: nodes.Node, flow: _Flow) -> None:
        cls = node.__class__
        if cls is nodes.Name:
            if node.ctx == "load":
                self.load(node, flow)
            return
        if cls is nodes.Const or cls is nodes.TemplateData:
            return
        if cls is nodes.Getattr or cls is nodes.Getitem:
            self.expr(node.node, flow)
            if cls is nodes.Getitem:
                self.expr(node.arg, flow)
            return
        if cls is nodes.NSRef:
            self.load(node, flow)
            return
        if (cls is nodes.Test or cls is nodes.Filter) and node.node.__class__ is nodes.Name:
            if self.chat and (isinstance(node, nodes.Test) or node.name in _MISSING_AWARE):
                # Any test, and `| default`, of a missing name is fine under jinja2.Undefined.
                self.load(node.node, flow, tested=True)
                for child in (*node.args, *node.kwargs):
                    self.expr(child, flow)
                return
            if node.name in _MISSING_AWARE:
                # `x is defined` and `x | default(...)` read x knowing it may be missing.
                if node.node.name in self.inputs:
                    self.used.add(node.node.name)
                for child in (*node.args, *node.kwargs):
                    self.expr(child, flow)
                return
        if self.chat and isinstance(node, nodes.Compare) and all(op.op in _LENIENT_COMPARISONS for op in node.ops):
            self.cond(node, flow)  # `x == ''` of a missing name is false under jinja2.Undefined, wherever it is
            return
        if isinstance(node, nodes.CondExpr):
            self.cond(node.test, flow)
            when_true, when_false = _guards(node.test, self.chat)
            self.expr(node.expr1, flow.plus(when_true))
            if node.expr2 is not None:
                self.expr(node.expr2, flow.plus(when_false))
            return
        if isinstance(node, (nodes.And, nodes.Or)):
            self.cond(node.left, flow)
            when_true, when_false = _guards(node.left, self.chat)
            self.expr(node.right, flow.plus(when_true if isinstance(node, nodes.And) else when_false))
            return
        for child in children(node):
            self.expr(child, flow)
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name):
            macro = self._macros.get(node.node.name)
            if macro is not None and node.node.name in flow.defined:
                self._call(macro, flow)

    def load(self, node: nodes.Name | nodes.NSRef, flow: _Flow, *, tested: bool = False) -> None:
        name = node.name
        if name in flow.defined:
            return
        if name in self.inputs:
            self.used.add(name)
            return
        if name in self.globals:
            return
        if tested:
            # Only reached for chat templates: a tested name that nothing assigned is an optional argument.
            if name not in self.optional and name not in flow.maybe and not self._set_in_loop(name):
                self.optional.add(name)
                message = f"optional template argument '{name}': tested, never required; callers may pass it"
                self.issues.append(self._issue_at("optional-argument", node, message))
            return
        in_loop = self._set_in_loop(name)
        if in_loop:
            rule = "possibly-undefined"
            message = (
                f"'{name}' is set in this loop's body on some iterations only: a `set` inside a `for` is gone "
                "at the next iteration (carry the value in a namespace)"
            )
        elif name in flow.maybe:
            rule, message = "possibly-undefined", f"'{name}' is assigned on some paths only before this use"
        elif self.contract:
            rule, message = "undefined-variable", f"'{name}' is used but is in neither {self.contract}"
        else:
            rule, message = "undefined-variable", f"'{name}' is used but is not an input"
        if (rule, name) not in self._reported:  # one finding per name is enough to act on
            self._reported.add((rule, name))
            self.issues.append(self._issue_at(rule, node, message))

    def _set_in_loop(self, name: str) -> bool:
        """Whether an enclosing `for` body assigns `name` somewhere (so it is set on some iterations)."""
        for loop in self._loops:
            assigned = self._loop_sets.get(id(loop))
            if assigned is None:
                assigned = self._loop_sets[id(loop)] = {
                    target
                    for statement in walk(loop)
                    if isinstance(statement, (nodes.Assign, nodes.AssignBlock))
                    for target in _target_names(statement.target)
                }
            if name in assigned:
                return True
        return False

    def _issue_at(self, rule: str, node: nodes.Name | nodes.NSRef, message: str) -> Issue:
        """An issue pointing at this very occurrence of the name on its line."""
        if self._occurrences is None:
            # Built only when there is something to report: which match of its name on its
            # line each Name node is, counting in source order.
            seen: dict[tuple[int, str], int] = {}
            self._occurrences = {}
            assert self._template is not None
            for name_node in self._walked if self._walked is not None else walk(self._template):
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
        for name in names:
            self._macros.pop(name, None)  # the name no longer calls the macro
        return flow.plus(names)

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
        if not self.tainted:
            return False
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


#: Statement handlers by node class (False: none, a statement from an extension).
_HANDLERS: dict[type, object] = {}


def _static_run(pieces: Iterable[str | nodes.Expr]) -> Iterator[str]:
    """The static strings next to an expression, up to the next dynamic part."""
    for piece in pieces:
        if not isinstance(piece, str):
            return
        yield piece
