"""Lint templates: find them, pick each one's spec, analyse, and turn issues into findings."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path

import jinja2
from jinja2.parser import Parser

from llmci.config import Config, LoadedConfig, PromptSpec, locate
from llmci.errors import ConfigError, InputError, UsageError
from llmci.fsutil import display_path
from llmci.lint import embedded
from llmci.lint.analysis import Issue, TemplateRef, check_nodes, walk_tree
from llmci.lint.cache import LintCache
from llmci.lint.columns import SourceIndex
from llmci.lint.findings import FileResult, Finding, LintReport, PendingRef, Source, TemplateSpec
from llmci.lint.flow import FlowAnalyzer
from llmci.lint.invisible import invisible_issues
from llmci.lint.poison import injection_issues, text_issues
from llmci.lint.rules import RULES, Severity
from llmci.lint.suppressions import suppressions
from llmci.lint.tokens import estimate_tokens
from llmci.lint.whitespace import whitespace_issues
from llmci.templating import CHAT_TEMPLATE_GLOBALS, CHAT_TEMPLATE_INPUTS, TemplateKind, make_environment

#: Suffixes of the files a folder given on the command line is searched for.
TEMPLATE_SUFFIXES = (".j2", ".jinja", ".jinja2")

#: Rules for templates that match no `prompts` entry: their inputs are unknown,
#: so only what does not depend on inputs is checked (syntax and safety).
UNDECLARED_RULES = frozenset(
    {"syntax-error", "unsafe-access", "unknown-filter", "unknown-test", "missing-template", "invisible-characters"}
)

#: Where a chat template's names and filters come from, for the messages that say one is missing.
CHAT_CONTRACT = "the chat-template contract (apply_chat_template's inputs) nor the entry's `variables` or `globals`"
CHAT_ENVIRONMENT = "in the chat-template environment (Jinja's built-ins, as apply_chat_template has them)"

#: What `llmci lint registry:NAME@VERSION` starts with.
REGISTRY_PREFIX = "registry:"


class Linter:
    """Lints templates under one configuration; environments and globs are built once."""

    def __init__(self, loaded: LoadedConfig, *, cache_dir: Path | None = None) -> None:
        self.loaded = loaded
        self.config: Config = loaded.config
        self.root = loaded.root.resolve()
        self.search_path = [str((self.root / folder).resolve()) for folder in self.config.lint.search_path]
        #: Where the templates the config names may be: the project and the search path (links resolved).
        self._allowed = [self.root, *map(Path, self.search_path)]
        self.cache_dir = cache_dir
        self.cache = LintCache(cache_dir, self._engine_fingerprint()) if cache_dir else None
        self._environments: dict[tuple[TemplateKind, tuple[str, ...], tuple[str, ...]], jinja2.Environment] = {}

    # -- which templates, with which spec -------------------------------------------------

    @cached_property
    def _entry_matches(self) -> list[set[Path]]:
        # Globbing from the resolved root yields absolute paths; normpath folds the `..` of `../shared/*.j2`.
        matches = []
        for index, entry in enumerate(self.config.prompts):
            paths = {p for p in self.root.glob(entry.path) if p.is_file()}
            if ".." in Path(entry.path).parts:
                paths = {Path(os.path.normpath(p)) for p in paths}
            # A pull request can change llmci.yaml and commit links: what a glob matches must not lead outside.
            escaped = _first_outside(paths, self._allowed)
            if escaped is not None:
                raise ConfigError(
                    f"{locate(self.loaded, 'prompts', index, 'path')}: matches {display_path(escaped)}, which is "
                    "outside the folder of llmci.yaml and lint.search_path once links are resolved; remove the link "
                    "or add its target's folder to lint.search_path"
                )
            matches.append(paths)
        return matches

    def discover(self, paths: Sequence[str | Path]) -> list[Path]:
        """The template files to lint: the given files and folders, or every `prompts` entry's matches."""
        if not paths:
            if not self.config.prompts:
                raise UsageError("nothing to lint", hint="give template paths, or declare `prompts` in llmci.yaml")
            return sorted(set().union(*self._entry_matches))
        found: set[Path] = set()
        for given in map(Path, paths):
            if given.is_dir():
                folder = given.resolve()
                # Files given by name are the user's choice; the files a folder holds are whatever was committed.
                in_folder = {p for p in folder.rglob("*") if p.suffix in TEMPLATE_SUFFIXES and p.is_file()}
                escaped = _first_outside(in_folder, [folder, *self._allowed])
                if escaped is not None:
                    raise InputError(
                        f"{display_path(escaped)}: a link to outside the folders being linted",
                        hint="name the file itself on the command line to lint it",
                    )
                found.update(in_folder)
                found.update(p for matches in self._entry_matches for p in matches if folder in p.parents)
            elif given.is_file():
                found.add(given.resolve())
            else:
                raise InputError(f"{given}: no such file or folder", hint="check the path passed to `llmci lint`")
        return sorted(found)

    def spec_for(self, path: Path) -> TemplateSpec:
        """The first `prompts` entry whose glob matches `path` (resolved, as `discover` gives) decides."""
        for entry, matches in zip(self.config.prompts, self._entry_matches, strict=True):
            if path in matches:
                return self._spec(entry)
        return TemplateSpec(settings=tuple(sorted(self.config.lint.rules.items())))

    def _spec(self, entry: PromptSpec) -> TemplateSpec:
        settings = {**self.config.lint.rules, **entry.rules}
        return TemplateSpec(
            kind=entry.kind,
            variables=frozenset(entry.variables),
            untrusted=frozenset(entry.untrusted),
            max_tokens=entry.max_tokens,
            settings=tuple(sorted(settings.items())),
            declared=True,
            filters=tuple(sorted(entry.filters)),
            tests=tuple(sorted(entry.tests)),
            globals=tuple(sorted(entry.globals)),
        )

    def model_spec(self, path: Path | None) -> TemplateSpec:
        """A template read out of a model: the chat-template contract, or the `prompts` entry its file matches."""
        spec = self.spec_for(path) if path is not None else None
        if spec is None or not spec.declared or spec.kind != "chat-template":
            spec = TemplateSpec(kind="chat-template", settings=tuple(sorted(self.config.lint.rules.items())))
        return dataclasses.replace(spec, declared=True, style=False)

    # -- model folders, model files and registry versions -------------------------------------

    def sources(self, paths: Sequence[str | Path] = ()) -> list[Source]:
        """What `lint(paths)` lints: template files, and the chat templates of models and registry versions."""
        templates: list[str | Path] = []
        found: list[Source] = []
        for given in paths:
            text = str(given)
            if text.startswith(REGISTRY_PREFIX):
                found += self._registry_sources(text[len(REGISTRY_PREFIX) :])
                continue
            path = Path(given)
            if path.is_dir() and embedded.is_model_folder(path):
                for name in embedded.folder_files(path):
                    found += self._model_sources(path / name, name, f"{display_path(path)}/{name}")
            elif path.is_file() and embedded.is_template_file(path.name) and path.suffix != ".jinja":
                found += self._model_sources(path, path.name, display_path(path))
            else:
                templates.append(given)
        if templates or not paths:
            for path in self.discover(templates):
                spec = self.spec_for(path)
                if path.name == embedded.TEMPLATE_FILE and not spec.declared:
                    spec = self.model_spec(path)  # a model's chat_template.jinja, named on its own
                found.append(Source(display_path(path), spec, (str(path.parent), *self.search_path), path=path))
        return found

    def _model_sources(self, path: Path, name: str, display: str) -> list[Source]:
        spec = self.model_spec(path.resolve())
        search = (str(path.parent.resolve()), *self.search_path)
        templates = embedded.file_templates(name, display, path=path)
        return [Source(t.display, spec, search, data=t.source) for t in templates]

    def _registry_sources(self, ref: str) -> list[Source]:
        """The chat templates of a registry version, read from the registry (every byte verified)."""
        from llmci.registry import open_registry

        registry = open_registry(self.loaded, os.environ.get("LLMCI_REGISTRY"), cache=self.cache_dir)
        manifest = registry.resolve(ref, serving_only=False)
        spec = self.model_spec(None)
        return [Source(t.display, spec, (), data=t.source) for t in embedded.registry_templates(registry, manifest)]

    # -- linting --------------------------------------------------------------------------

    def lint(self, paths: Sequence[str | Path] = ()) -> LintReport:
        return self.lint_sources(self.sources(paths))

    def lint_sources(self, sources: Sequence[Source]) -> LintReport:
        findings: list[Finding] = []
        cached = 0
        for source in sources:
            display, spec = source.display, source.spec
            data = source.read()
            key = hashlib.sha256(spec.fingerprint().encode() + b"\0" + data).hexdigest()
            result = self.cache.get(key, display) if self.cache else None
            if result is None:
                result = self.lint_bytes(data, display, spec)
                if self.cache:
                    self.cache.put(key, result)
            else:
                cached += 1
            findings.extend(result.findings)
            findings.extend(
                Finding(display, ref.line, ref.column, "missing-template", ref.severity, ref.message)
                for ref in result.refs
                if not any(os.path.isfile(os.path.join(folder, name)) for folder in source.search for name in ref.names)
            )
        if self.cache:
            self.cache.save()
        return LintReport(sorted(findings), len(sources), cached)

    def lint_bytes(self, data: bytes, display: str, spec: TemplateSpec) -> FileResult:
        try:
            source = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            issue = Issue("syntax-error", line, f"not UTF-8 (byte {exc.start}): templates must be UTF-8 text")
            return _Findings(display, "", spec).build([issue], [])
        return self.lint_source(source, display, spec)

    def lint_source(self, source: str, display: str, spec: TemplateSpec) -> FileResult:
        issues: list[Issue] = []
        refs: list[TemplateRef] = []
        if spec.declared and spec.style:
            issues.extend(whitespace_issues(source))
        if not source.isascii():  # what a reviewer cannot see is never ASCII
            issues.extend(invisible_issues(source))
        env = self._environment(spec)
        chat = spec.kind == "chat-template"
        try:
            template = parse(env, source)
            tree = walk_tree(template)
            environment = CHAT_ENVIRONMENT if chat else "a Jinja built-in"
            checks = check_nodes(template, env.filters, env.tests, environment, tree)
            found = checks.issues
            if chat:
                found += injection_issues(tree) + text_issues(tree)
            if spec.declared:
                found += self._flow_issues(template, spec, env, tree.nodes)
        except jinja2.TemplateSyntaxError as exc:
            issues.append(Issue("syntax-error", exc.lineno or 1, exc.message or "syntax error"))
        except RecursionError:
            # A hostile template can nest an expression thousands deep: Jinja's parser or the checks give up.
            issues.append(Issue("syntax-error", 1, "expressions nest too deeply to check; split them up"))
        else:
            issues.extend(found)
            refs = checks.refs
        return _Findings(display, source, spec).build(issues, refs)

    def _flow_issues(
        self, template: jinja2.nodes.Template, spec: TemplateSpec, env: jinja2.Environment, walked: list | None = None
    ) -> list[Issue]:
        chat = spec.kind == "chat-template"
        contract = CHAT_TEMPLATE_INPUTS | CHAT_TEMPLATE_GLOBALS if chat else frozenset()
        inputs = spec.variables | contract
        globals_ = set(env.globals) | set(self.config.lint.globals) | set(spec.globals)
        analyzer = FlowAnalyzer(
            inputs,
            globals_,
            spec.untrusted,
            chat=chat,
            contract=CHAT_CONTRACT if chat else "",
            collect_text=spec.max_tokens is not None,
        )
        flow = analyzer.run(template, walked)
        issues = flow.issues
        for name in sorted(spec.variables - flow.used_inputs - contract):
            issues.append(Issue("unused-input", 1, f"declared input '{name}' is never used"))
        if spec.max_tokens is not None:
            tokens = estimate_tokens("".join(flow.static_text))
            if tokens > spec.max_tokens:
                issues.append(
                    Issue("token-budget", 1, f"static text is ~{tokens} tokens, over max_tokens {spec.max_tokens}")
                )
        return issues

    def _environment(self, spec: TemplateSpec) -> jinja2.Environment:
        key = (spec.kind, spec.filters, spec.tests)
        if key not in self._environments:
            lint = self.config.lint
            filters, tests = [*lint.filters, *spec.filters], [*lint.tests, *spec.tests]
            self._environments[key] = make_environment(spec.kind, filters=filters, tests=tests)
        return self._environments[key]

    def _engine_fingerprint(self) -> str:
        """Changes whenever the linter's code, Jinja or the config's lint section change."""
        digest = hashlib.sha256(jinja2.__version__.encode())
        package = Path(__file__).resolve().parent
        for source in sorted([*package.glob("*.py"), package.parent / "templating.py"]):
            digest.update(source.read_bytes())
        digest.update(self.config.lint.model_dump_json().encode())
        return digest.hexdigest()


def parse(env: jinja2.Environment, source: str) -> jinja2.nodes.Template:
    """`env.parse(source)` less the last step, attaching `env` to every node: that is for compiling.

    The linter never compiles, and that walk is a tenth of parsing.
    """
    return jinja2.nodes.Template(Parser(env, source).subparse(), lineno=1)


def _first_outside(paths: Iterable[Path], folders: Sequence[Path]) -> Path | None:
    """The first of `paths` (sorted) whose real location, links resolved, is in none of `folders`.

    Resolving every file is slow on big trees; a folder is resolved once, and a
    file only when it is itself a link.
    """
    prefixes = [os.path.join(str(folder), "") for folder in folders]  # "/a/b/": so "/a/bc" is not inside "/a/b"
    real_folders: dict[str, str] = {}
    outside = []
    for path in paths:
        name = str(path)
        parent = os.path.dirname(name)
        if parent not in real_folders:
            real_folders[parent] = os.path.realpath(parent)
        real = os.path.realpath(name) if os.path.islink(name) else os.path.join(real_folders[parent], path.name)
        if not any(real.startswith(prefix) for prefix in prefixes):
            outside.append(path)
    return min(outside, default=None)


class _Findings:
    """Turns issues into findings: severity from config, inline suppressions, columns."""

    def __init__(self, display: str, source: str, spec: TemplateSpec) -> None:
        self.display = display
        self.source = SourceIndex(source)
        self.settings = dict(spec.settings)
        self.allowed = None if spec.declared else UNDECLARED_RULES
        self.file_off, self.line_off = suppressions(source)

    def severity(self, rule: str, line: int) -> Severity | None:
        if self.allowed is not None and rule not in self.allowed:
            return None
        if rule in self.file_off or "all" in self.file_off:
            return None
        off_here = self.line_off.get(line, ())
        if rule in off_here or "all" in off_here:
            return None
        setting = self.settings.get(rule, RULES[rule].severity.value)
        return None if setting == "off" else Severity(setting)

    def build(self, issues: Iterable[Issue], refs: Iterable[TemplateRef]) -> FileResult:
        result = FileResult()
        for issue in issues:
            severity = self.severity(issue.rule, issue.line)
            if severity is not None:
                column = issue.column or self.source.column(issue.line, issue.needle, issue.occurrence)
                result.findings.append(Finding(self.display, issue.line, column, issue.rule, severity, issue.message))
        for ref in refs:
            severity = self.severity("missing-template", ref.line)
            if severity is not None:
                shown = " or ".join(f"'{name}'" for name in ref.names)
                message = f"{ref.statement} of {shown}, which is not on the search path"
                column = self.source.column(ref.line, ref.names[0])
                result.refs.append(PendingRef(ref.names, ref.line, column, severity, message))
        return result
