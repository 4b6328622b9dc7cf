"""`llmci report`: a comparison as a sticky pull-request comment, a job summary and a check run.

`report` renders a comparison (and lint findings), writes it, and posts it
where a `PullRequest` and a token allow, giving an `Outcome`;
`pull_request_from_environment` and `credentials_from_environment` read
where from the Actions environment. `load_comparison` and `load_lint` read
and validate the files `llmci compare` and `llmci lint` wrote
(`validate_comparison`, `validate_findings`); `build_comparison` is how
`llmci compare` writes its `ComparisonDocument` (`COMPARISON_FORMAT`).
`fit` renders the Markdown within a size limit (`COMMENT_LIMIT`) and
`headline` sums a comparison up in one sentence; `GitHub` is how every stage
posts to GitHub (`GitHubRetryPolicy`); `inline`, `block` and `html` escape
untrusted text for Markdown.

The names are loaded on first use: importing this package imports neither
Jinja2 nor PyGithub (`llmci --help` starts as fast as click).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmci.lazy import exports

if TYPE_CHECKING:
    from llmci.report.comparison import (
        COMPARISON_FORMAT,
        ComparisonDocument,
        FindingDocument,
        build_comparison,
        validate_comparison,
        validate_findings,
    )
    from llmci.report.github import GitHub, GitHubRetryPolicy, PermissionDenied
    from llmci.report.markdown import Markdown, block, html, inline
    from llmci.report.publish import (
        Outcome,
        PullRequest,
        credentials_from_environment,
        load_comparison,
        load_lint,
        pull_request_from_environment,
        report,
    )
    from llmci.report.render import COMMENT_LIMIT, fit, headline

_WHERE = {
    "COMPARISON_FORMAT": "comparison",
    "ComparisonDocument": "comparison",
    "FindingDocument": "comparison",
    "build_comparison": "comparison",
    "validate_comparison": "comparison",
    "validate_findings": "comparison",
    "GitHub": "github",
    "GitHubRetryPolicy": "github",
    "PermissionDenied": "github",
    "Markdown": "markdown",
    "block": "markdown",
    "html": "markdown",
    "inline": "markdown",
    "Outcome": "publish",
    "PullRequest": "publish",
    "credentials_from_environment": "publish",
    "load_comparison": "publish",
    "load_lint": "publish",
    "pull_request_from_environment": "publish",
    "report": "publish",
    "COMMENT_LIMIT": "render",
    "fit": "render",
    "headline": "render",
}

__all__ = [
    "COMMENT_LIMIT",
    "COMPARISON_FORMAT",
    "ComparisonDocument",
    "FindingDocument",
    "GitHub",
    "GitHubRetryPolicy",
    "Markdown",
    "Outcome",
    "PermissionDenied",
    "PullRequest",
    "block",
    "build_comparison",
    "credentials_from_environment",
    "fit",
    "headline",
    "html",
    "inline",
    "load_comparison",
    "load_lint",
    "pull_request_from_environment",
    "report",
    "validate_comparison",
    "validate_findings",
]


__getattr__, __dir__ = exports(__name__, _WHERE)
