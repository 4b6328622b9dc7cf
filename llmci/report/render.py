"""The report as Markdown: the comparison (and lint findings) through `templates/report.md.j2`.

One template serves the PR comment, the job summary and the check-run
summary; they differ in how much detail fits. `fit` renders with all detail
and gives up detail (regressed-case sections, then lint rows) until the text
fits the limit, and only then truncates, with a note pointing at the full
report: a report is never refused for its size.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmci import __version__
from llmci.report.markdown import Markdown, block, html, inline

if TYPE_CHECKING:
    from jinja2 import Environment

    from llmci.report.comparison import ComparisonDocument, FindingDocument

#: GitHub refuses issue-comment bodies longer than this (characters).
COMMENT_LIMIT = 65536
#: Regressed cases shown per metric when there is room; the comparison lists up to 20.
CASES_PER_METRIC = 5
#: Lint findings listed when there is room; the counts are always complete.
LINT_ROWS = 30

ICONS = {
    "pass": "✅",
    "regression": "❌",
    "inconclusive": "⚠️",
    "error": "❌",
    "warning": "⚠️",
    "info": "ℹ️",  # noqa: RUF001 (the emoji is meant)
}
_SHA = re.compile(r"[0-9a-f]{7,40}")
_REPO_URL = re.compile(r"https://[\w.-]+(?::\d+)?/[\w.-]+/[\w.-]+")


@dataclass(frozen=True)
class Detail:
    """How much of the report to show."""

    cases_per_metric: int = CASES_PER_METRIC
    lint_rows: int = LINT_ROWS


@functools.cache
def _environment() -> Environment:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("llmci.report", "templates"),
        undefined=StrictUndefined,
        finalize=inline,  # every {{ value }} is untrusted text unless it is Markdown
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(
        num=_num, delta=_delta, rates=_rates, change=_change, commit=_commit, dataset=_dataset, block=block, html=html
    )
    return env


def headline(comparison: ComparisonDocument) -> str:
    """One sentence under the verdict: how many metrics did what."""
    metrics = comparison["metrics"]
    if not metrics:
        return "no metric was compared"
    plural = "s" if len(metrics) != 1 else ""
    regressed = sum(m["status"] == "regression" for m in metrics)
    inconclusive = sum(m["status"] == "inconclusive" for m in metrics)
    parts = [f"{regressed} regressed"] * bool(regressed) + [f"{inconclusive} inconclusive"] * bool(inconclusive)
    if not parts:
        return f"no regression in {len(metrics)} metric{plural}"
    return f"{', '.join(parts)} of {len(metrics)} metric{plural}"


def render(
    comparison: ComparisonDocument,
    *,
    lint: list[FindingDocument] | None = None,
    marker: str = "",
    run_url: str | None = None,
    detail: Detail | None = None,
) -> str:
    """The report as Markdown, with as much detail as `detail` allows."""
    detail = detail or Detail()
    # Cases are detailed for the metrics that did not pass: that is what the reviewer has to look at.
    regressed = [m for m in comparison["metrics"] if m["status"] != "pass" and m.get("n_regressed_cases")]
    detailed = [
        {**m, "shown": m["regressed_cases"][: detail.cases_per_metric]} for m in regressed if detail.cases_per_metric
    ]
    settings = comparison.get("settings", {})
    links = Markdown(f"[Workflow run and artifacts]({run_url}) · ") if run_url else Markdown("")
    context = {
        "marker": Markdown(marker),
        "icon": {key: Markdown(value) for key, value in ICONS.items()},
        "verdict": comparison["verdict"],
        "headline": headline(comparison),
        "warnings": comparison.get("warnings", []),
        "confidence": Markdown(f"{settings.get('confidence', 0.95):.0%}"),
        "metrics": comparison["metrics"],
        "detailed": detailed,
        "omitted_details": len(regressed) - len(detailed),
        "suites": comparison.get("suites", []),
        "lint": _lint(lint, detail.lint_rows),
        "baseline": _side(comparison.get("baseline")),
        "candidate": _side(comparison.get("candidate")),
        "links": links,
        "version": __version__,
        "resamples": settings.get("resamples"),
        "seed": settings.get("seed"),
    }
    return _environment().get_template("report.md.j2").render(context)


def fit(
    comparison: ComparisonDocument,
    limit: int,
    *,
    lint: list[FindingDocument] | None = None,
    marker: str = "",
    run_url: str | None = None,
) -> str:
    """The most detailed report within `limit` characters; truncated with a note as the last resort."""
    text = ""
    for detail in (Detail(), Detail(cases_per_metric=2), Detail(cases_per_metric=0), Detail(0, lint_rows=0)):
        text = render(comparison, lint=lint, marker=marker, run_url=run_url, detail=detail)
        if len(text) <= limit:
            return text
    where = f"[the workflow run]({run_url})" if run_url else "the job summary"
    note = (
        f"\n\n---\n_The report was truncated to fit GitHub's limit of {limit:,} characters; "
        f"the full report is in {where}._\n"
    )
    cut = text.rfind("\n", 0, limit - len(note))
    return text[: max(cut, 0)] + note


def _side(meta: Mapping[str, object] | None) -> dict[str, object]:
    """A side's metadata with every field the template shows (older or partial tables lack some)."""
    meta = meta or {}
    return {
        key: meta.get(key) for key in ("target", "model_version", "git_commit", "git_repo", "dataset", "dataset_sha256")
    }


def _lint(findings: Sequence[FindingDocument] | None, rows: int) -> dict[str, Any] | None:
    if findings is None:
        return None
    order = {"error": 0, "warning": 1, "info": 2}
    ranked = sorted(findings, key=lambda f: (order.get(f.get("severity"), 3), f.get("path", ""), f.get("line", 0)))
    return {
        "errors": sum(f.get("severity") == "error" for f in findings),
        "warnings": sum(f.get("severity") == "warning" for f in findings),
        "notes": sum(f.get("severity") == "info" for f in findings),
        "total": len(findings),
        "shown": [
            {**f, "severity": f.get("severity") if f.get("severity") in ICONS else "info"} for f in ranked[:rows]
        ],
    }


def _num(value: float | None) -> Markdown:
    return Markdown("–" if value is None else f"{value:.4f}")


def _delta(stats: dict[str, Any]) -> Markdown:
    if stats.get("delta") is None:
        return Markdown("–")
    low, high = stats["ci"]
    interval = f" [{low:+.4f}, {high:+.4f}]" if low is not None and high is not None else ""
    return Markdown(f"{stats['delta']:+.4f}{interval}")


def _rates(stats: dict[str, Any] | None) -> Markdown:
    if not stats or stats.get("baseline") is None:
        return Markdown("–")
    counts = [f"{stats[key]} {key}" for key in ("regressed", "fixed") if stats.get(key)]
    changed = f" ({', '.join(counts)})" if counts else ""
    return Markdown(f"{stats['baseline']:.1%} → {stats['candidate']:.1%}{changed}")


def _change(baseline: float | None, candidate: float | None, unit: str) -> Markdown:
    def show(value: float | None) -> str:
        if value is None:
            return "–"
        return f"{value:,.0f}" if unit == "ms" else f"{value:.4f}"

    text = f"{show(baseline)} → {show(candidate)}"
    if baseline and candidate is not None:
        text += f" ({(candidate - baseline) / baseline:+.0%})"
    return Markdown(text)


def _commit(side: dict[str, Any]) -> Markdown:
    """A short commit, linked to the repository when both look like what llmci itself records."""
    sha, repo = side.get("git_commit"), side.get("git_repo")
    if not isinstance(sha, str) or not _SHA.fullmatch(sha):
        return Markdown("–")
    if isinstance(repo, str) and _REPO_URL.fullmatch(repo):
        return Markdown(f"[`{sha[:10]}`]({repo}/commit/{sha})")
    return Markdown(f"`{sha[:10]}`")


def _dataset(side: dict[str, Any]) -> Markdown:
    """The dataset path and the start of its sha256 (which tells whether both sides used the same data)."""
    name = inline(side.get("dataset") or "–")
    digest = side.get("dataset_sha256")
    return Markdown(f"{name} `{digest[:12]}`" if isinstance(digest, str) and _SHA.fullmatch(digest[:12]) else name)
