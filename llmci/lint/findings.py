"""What the linter works with and gives back: template specs and sources, findings, per-file results, the report.

Plain frozen dataclasses: the engine builds them, the cache stores and
restores them, the output formats print them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from llmci.errors import InputError
from llmci.lint.rules import Severity
from llmci.templating import TemplateKind


@dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int
    column: int
    rule: str
    severity: Severity
    message: str

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


@dataclass(frozen=True)
class TemplateSpec:
    """What the linter knows about one template (from its `prompts` entry, if any)."""

    kind: TemplateKind = "prompt"
    variables: frozenset[str] = frozenset()
    untrusted: frozenset[str] = frozenset()
    max_tokens: int | None = None
    #: Rule id -> "off" | severity, already merged (entry over `lint.rules`).
    settings: tuple[tuple[str, str], ...] = ()
    #: False for a template no `prompts` entry matches: syntax and safety only.
    declared: bool = False
    #: Filters, tests and globals the entry adds to `lint.filters`, `lint.tests` and `lint.globals`.
    filters: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()
    globals: tuple[str, ...] = ()
    #: Whitespace rules: off for templates read out of a model, whose whitespace nobody edits.
    style: bool = True

    def fingerprint(self) -> str:
        return repr(
            (
                self.kind,
                sorted(self.variables),
                sorted(self.untrusted),
                self.max_tokens,
                self.settings,
                self.declared,
                self.filters,
                self.tests,
                self.globals,
                self.style,
            )
        )


@dataclass(frozen=True)
class PendingRef:
    """A template reference checked at report time, so cached results stay right when files appear."""

    names: tuple[str, ...]
    line: int
    column: int
    severity: Severity
    message: str


@dataclass
class FileResult:
    findings: list[Finding] = field(default_factory=list)
    refs: list[PendingRef] = field(default_factory=list)


@dataclass(frozen=True)
class Source:
    """One template to lint: how findings name it, its bytes (read when linted), its spec and include folders."""

    display: str
    spec: TemplateSpec
    search: tuple[str, ...]
    path: Path | None = None
    data: bytes | None = None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        try:
            return self.path.read_bytes()
        except OSError as exc:
            raise InputError(f"{self.display}: cannot read: {exc.strerror}") from None


@dataclass
class LintReport:
    findings: list[Finding]
    files: int
    cached: int = 0

    def count(self, severity: Severity) -> int:
        return sum(1 for finding in self.findings if finding.severity is severity)
