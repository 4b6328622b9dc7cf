"""`llmci report`: the comparison as a sticky PR comment, a job summary and a check run.

What it does, in order, so nothing is lost when GitHub refuses something:

1. render the full report; write it to `--output` (atomically) and append it
   to the job summary in Actions;
2. with a token, a repository and a pull request: upsert the sticky comment
   (shrunk to GitHub's size limit), then a check run on the head commit, or a
   commit status where check runs are not permitted;
3. without them: print the Markdown (unless it went to `--output`).

A pull request from a fork gets a read-only token: GitHub's 403 then becomes a
warning and the report stays in the job summary. The exit code is the
verdict's (0 pass, 1 regression, 3 inconclusive) unless GitHub failed for
another reason (8).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from llmci import gha
from llmci.errors import InputError
from llmci.fsutil import atomic_write_text
from llmci.report.comparison import ComparisonDocument, FindingDocument, validate_comparison, validate_findings
from llmci.report.github import CheckAnnotation, GitHub, GitHubRetryPolicy, Marker, PermissionDenied
from llmci.report.render import COMMENT_LIMIT, fit, headline

#: The job summary takes up to 1 MiB per step; leave room for other steps' sections.
SUMMARY_LIMIT = 512 * 1024
#: Check runs: inconclusive is a failure too, because GitHub counts "neutral" as passing a required check.
CONCLUSION = {"pass": "success", "regression": "failure", "inconclusive": "failure"}
_ANNOTATION_LEVEL = {"error": "failure", "warning": "warning", "info": "notice"}


@dataclass(frozen=True)
class PullRequest:
    """Where the report goes: from the options, else from the Actions environment and event."""

    repository: str | None
    number: int | None
    sha: str | None
    from_fork: bool = False
    run_id: int | None = None
    run_attempt: int | None = None
    run_url: str | None = None
    api_url: str = "https://api.github.com"
    workflow: str | None = None


@dataclass
class Outcome:
    verdict: str
    markdown: str
    comment_url: str | None = None
    comment_action: str | None = None
    check_url: str | None = None
    warnings: list[str] = field(default_factory=list)


def pull_request_from_environment(
    environ: Mapping[str, str] = os.environ,
    *,
    repository: str | None = None,
    number: int | None = None,
    sha: str | None = None,
) -> PullRequest:
    event = gha.event_payload(environ)
    pr = event.get("pull_request") or {}
    issue = event.get("issue") or {}
    repository = repository or environ.get("GITHUB_REPOSITORY")
    if number is None:  # pull_request events, or a comment on a pull request (issue_comment)
        found = pr.get("number") or (issue.get("number") if issue.get("pull_request") else None)
        number = found if isinstance(found, int) else None
    head, base = pr.get("head") or {}, pr.get("base") or {}
    head_repo = (head.get("repo") or {}).get("full_name")
    base_repo = (base.get("repo") or {}).get("full_name")
    server = environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    run_id = environ.get("GITHUB_RUN_ID")
    return PullRequest(
        repository=repository,
        number=number,
        sha=sha or head.get("sha") or environ.get("GITHUB_SHA"),
        # A deleted fork leaves head.repo null: treat it as a fork (its token cannot write either).
        from_fork=bool(pr) and head_repo != base_repo,
        run_id=int(run_id) if run_id and run_id.isdigit() else None,
        run_attempt=int(environ["GITHUB_RUN_ATTEMPT"]) if environ.get("GITHUB_RUN_ATTEMPT", "").isdigit() else None,
        run_url=f"{server}/{repository}/actions/runs/{run_id}" if repository and run_id else None,
        api_url=environ.get("GITHUB_API_URL", "https://api.github.com"),
        workflow=environ.get("GITHUB_WORKFLOW"),
    )


def credentials_from_environment(environ: Mapping[str, str] = os.environ) -> tuple[str | None, str | None]:
    """`GITHUB_TOKEN` (masked in the Actions log from here on) and `LLMCI_COMMENT_AUTHOR`; None when unset or empty."""
    token = environ.get("GITHUB_TOKEN") or None
    if token:
        gha.add_mask(token)
    return token, environ.get("LLMCI_COMMENT_AUTHOR") or None


def load_comparison(path: Path) -> ComparisonDocument:
    """A comparison JSON from `llmci compare`, validated so that rendering cannot trip on it."""
    return validate_comparison(_read_json(path, "the comparison", "llmci compare --out"), str(path))


def load_lint(path: Path) -> list[FindingDocument]:
    """Findings from `llmci lint --format json`."""
    return validate_findings(_read_json(path, "the lint findings", "llmci lint --format json"), str(path))


def _read_json(path: Path, what: str, producer: str) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise InputError(f"{path}: not JSON ({exc})", hint=f"pass the file `{producer}` wrote") from None


def sticky_key(comparison: ComparisonDocument, workflow: str | None) -> str:
    """One comment per workflow and set of suites."""
    suites = sorted({m["suite"] for m in comparison["metrics"]}) or ["none"]
    return f"{workflow or 'llmci'}/{'+'.join(suites)}"


def report(
    comparison: ComparisonDocument,
    *,
    lint: list[FindingDocument] | None,
    pull_request: PullRequest,
    token: str | None,
    output: Path | None,
    key: str | None = None,
    check: bool = True,
    policy: GitHubRetryPolicy | None = None,
    comment_author: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Outcome:
    """Render, save, and post where possible; see the module docstring for the order."""
    full = fit(comparison, SUMMARY_LIMIT, lint=lint, run_url=pull_request.run_url)
    outcome = Outcome(verdict=comparison["verdict"], markdown=full)
    if output is not None:
        atomic_write_text(output, full)
    gha.append_summary(full, environ)

    pr = pull_request
    if not (token and pr.repository and pr.number):
        return outcome
    key = key or sticky_key(comparison, pr.workflow)
    github = GitHub(
        api_url=pr.api_url, token=token, repository=pr.repository, policy=policy, comment_author=comment_author
    )
    try:
        marker = Marker(key, pr.sha or "", pr.run_id, pr.run_attempt)
        body = fit(comparison, COMMENT_LIMIT, lint=lint, marker=marker.render(), run_url=pr.run_url)
        try:
            posted = github.upsert_comment(pr.number, marker, body)
            outcome.comment_url, outcome.comment_action = posted.url, posted.action
        except PermissionDenied as exc:
            if not pr.from_fork:
                raise
            outcome.warnings.append(
                "this pull request comes from a fork, whose token cannot write to the repository: "
                f"the report is in the job summary only ({exc.message})"
            )
            return outcome
        if posted.action == "kept":
            outcome.warnings.append(
                f"a later run already reported on pull request #{pr.number}; its comment stays: {posted.url}"
            )
        if check and pr.sha:
            # The comment's body minus its marker line: already fitted, and under the check run's 65,535.
            summary = body.split("\n", 1)[1]
            outcome.check_url = _check(github, comparison, lint, pr, key, summary, outcome)
    finally:
        github.close()
    return outcome


def _check(
    github: GitHub,
    comparison: ComparisonDocument,
    lint: list[FindingDocument] | None,
    pr: PullRequest,
    key: str,
    summary: str,
    outcome: Outcome,
) -> str | None:
    """A check run on the head commit; a commit status where check runs are not permitted; else a warning."""
    assert pr.sha is not None
    verdict = comparison["verdict"]
    title = f"{verdict}: {headline(comparison)}"
    annotations: list[CheckAnnotation] = [
        {
            "path": f["path"],
            "start_line": int(f["line"]),
            "end_line": int(f["line"]),
            "annotation_level": _ANNOTATION_LEVEL.get(f.get("severity") or "", "notice"),
            "message": str(f.get("message", "")),
            "title": f"llmci {f.get('rule', 'lint')}",
        }
        for f in (lint or [])
    ]
    try:
        return github.create_check_run(
            name=f"llmci / {key}",
            sha=pr.sha,
            conclusion=CONCLUSION[verdict],
            title=title,
            summary=summary,
            annotations=annotations,
            details_url=pr.run_url,
        ).url
    except PermissionDenied as check_denied:
        try:
            github.create_status(
                context=f"llmci / {key}",
                sha=pr.sha,
                state="success" if verdict == "pass" else "failure",
                description=title,
                target_url=pr.run_url,
            )
            return None
        except PermissionDenied as status_denied:
            outcome.warnings.append(
                f"no check run or commit status was created: {check_denied.message}; {status_denied.message}; "
                "grant the job the permission `checks: write` (or `statuses: write`)"
            )
            return None
