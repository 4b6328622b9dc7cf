"""Posting the report to GitHub through PyGithub: the sticky comment, the check run or status.

Requests are few and counted: PyGithub objects are lazy (no request until a
field is read) and comments are listed 100 per page, so an upsert is at most
three requests (who am I, the comments, the write) plus one per extra 100
comments.

The sticky comment starts with a hidden marker line,
`<!-- llmci-report key=KEY sha=SHA run=RUN attempt=N -->`. Only a comment
whose first line is such a marker with our key, written by the account that
posts (the token's user, `github-actions[bot]` for an Actions token, or
`LLMCI_COMMENT_AUTHOR`), is ours: a marker quoted inside someone else's
comment, or in model output further down, is never matched. Run ids grow with
time, so a comment left by a later run (a newer push) is never overwritten by
an earlier one still finishing or re-run.

Faults: 429 and rate-limit 403s wait for `Retry-After` or the rate-limit reset
when that is within `max_wait_s`; 5xx and dropped connections back off and
retry. A retried upsert first lists the comments again, so a create that
reached GitHub before its answer was lost is edited, not duplicated. Any other
4xx is not retried; a 403 names the permission the workflow must grant.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict, TypeVar
from urllib.parse import quote, unquote

from llmci.errors import GitHubError, UsageError

if TYPE_CHECKING:
    from github.Deployment import Deployment
    from github.GithubException import GithubException
    from pydantic import JsonValue

T = TypeVar("T")

ACTIONS_BOT = "github-actions[bot]"
_MARKER = re.compile(r"<!-- llmci-report key=(\S+) sha=(\S*) run=(\d*) attempt=(\d*) -->")


class CheckAnnotation(TypedDict):
    """One annotation of a check run's output, as GitHub's API takes it."""

    path: str
    start_line: int
    end_line: int
    #: notice, warning or failure.
    annotation_level: str
    message: str
    title: str


@dataclass(frozen=True)
class Marker:
    key: str
    sha: str = ""
    run: int | None = None
    attempt: int | None = None

    def render(self) -> str:
        run = "" if self.run is None else self.run
        attempt = "" if self.attempt is None else self.attempt
        return f"<!-- llmci-report key={quote(self.key, safe='/')} sha={self.sha} run={run} attempt={attempt} -->"

    @classmethod
    def parse(cls, body: str) -> Marker | None:
        """The marker on the first line of a comment body, if there is one."""
        match = _MARKER.fullmatch(body.split("\n", 1)[0].strip())
        if not match:
            return None
        key, sha, run, attempt = match.groups()
        return cls(unquote(key), sha, int(run) if run else None, int(attempt) if attempt else None)

    def may_replace(self, other: Marker) -> bool:
        """False when `other` was written by a later run (a newer push): ours must then leave it alone."""
        if self.run is None or other.run is None:
            return True
        return (self.run, self.attempt or 0) >= (other.run, other.attempt or 0)


@dataclass(frozen=True)
class GitHubRetryPolicy:
    retries: int = 4
    backoff_s: float = 1.0
    #: The longest wait for a rate-limit reset or Retry-After; beyond it the report fails with the reset time.
    max_wait_s: float = 300.0


@dataclass(frozen=True)
class CommentResult:
    url: str
    action: str  # "created", "updated", "unchanged" or "kept" (a later run's comment stands)


@dataclass(frozen=True)
class CheckResult:
    url: str | None
    kind: str  # "check run" or "commit status"


@dataclass(frozen=True)
class IssueResult:
    number: int
    url: str
    action: str  # "created", or "found" (an open issue of ours with the same key)


class PermissionDenied(GitHubError):
    """A 403 that is not a rate limit: the token lacks a permission (or, on a fork, cannot write at all)."""


class GitHub:
    """One repository's pull request, as llmci reports to it."""

    def __init__(
        self,
        *,
        api_url: str,
        token: str,
        repository: str,
        policy: GitHubRetryPolicy | None = None,
        comment_author: str | None = None,
    ) -> None:
        try:
            from github import Auth, Github
        except ImportError:
            raise UsageError("posting to GitHub needs PyGithub", hint="pip install 'llmci[github]'") from None

        self.policy = policy or GitHubRetryPolicy()
        self._author = comment_author
        # Our own retry loop (below) knows which writes are safe to repeat; PyGithub's would retry POSTs blindly.
        # Its pacing (0.25 s per request, 1 s per write) is for bulk clients; a report makes a handful of requests.
        self._client = Github(
            base_url=api_url.rstrip("/"),
            auth=Auth.Token(token),
            per_page=100,
            lazy=True,
            retry=None,
            timeout=30,
            seconds_between_requests=None,
            seconds_between_writes=None,
            user_agent="llmci",
        )
        self.repository = repository
        self._repo = self._client.get_repo(repository)

    def close(self) -> None:
        self._client.close()

    # -- the sticky comment -------------------------------------------------------------------

    def upsert_comment(self, pr: int, marker: Marker, body: str) -> CommentResult:
        """Create the sticky comment, or edit ours in place; leave a later run's comment alone."""
        author = self._comment_author()
        issue = self._repo.get_issue(pr)

        def attempt() -> CommentResult:
            ours, existing = None, None
            for comment in issue.get_comments():
                found = Marker.parse(comment.body or "")
                if found and found.key == marker.key and comment.user.login == author:
                    ours, existing = comment, found
                    break
            if ours is None or existing is None:
                return CommentResult(issue.create_comment(body).html_url, "created")
            if not marker.may_replace(existing):
                return CommentResult(ours.html_url, "kept")
            if ours.body == body:
                return CommentResult(ours.html_url, "unchanged")
            ours.edit(body)
            return CommentResult(ours.html_url, "updated")

        return self._call(f"the comment on pull request #{pr}", attempt, permission="pull-requests: write")

    def _comment_author(self) -> str:
        if self._author is None:
            try:
                self._author = self._call("the token's user", lambda: self._client.get_user().login)
            except PermissionDenied:
                # Installation tokens (GITHUB_TOKEN, GitHub Apps) may not read /user; Actions posts as its bot.
                self._author = ACTIONS_BOT
        return self._author

    # -- check run, or commit status --------------------------------------------------------

    def create_check_run(
        self,
        *,
        name: str,
        sha: str,
        conclusion: str,
        title: str,
        summary: str,
        annotations: list[CheckAnnotation],
        details_url: str | None,
    ) -> CheckResult:
        from github.GithubObject import NotSet

        output = {"title": title[:255], "summary": summary, "annotations": annotations[:50]}
        check = self._call(
            f"the check run on {sha[:10]}",
            lambda: self._repo.create_check_run(
                name=name,
                head_sha=sha,
                status="completed",
                conclusion=conclusion,
                output=output,
                details_url=details_url or NotSet,
            ),
            permission="checks: write",
        )
        return CheckResult(check.html_url, "check run")

    def create_status(
        self, *, context: str, sha: str, state: str, description: str, target_url: str | None
    ) -> CheckResult:
        from github.GithubObject import NotSet

        self._call(
            f"the commit status on {sha[:10]}",
            lambda: self._repo.get_commit(sha).create_status(
                state=state, target_url=target_url or NotSet, description=description[:140], context=context
            ),
            permission="statuses: write",
        )
        return CheckResult(target_url, "commit status")

    # -- deployments ------------------------------------------------------------------------

    def create_deployment(
        self, *, ref: str, environment: str, description: str, payload: dict[str, JsonValue], production: bool
    ) -> Deployment:
        """A GitHub Deployment of `ref` to `environment` (no required contexts: llmci's own checks gate it)."""
        return self._call(
            f"a deployment to {environment}",
            lambda: self._repo.create_deployment(
                ref=ref,
                environment=environment,
                payload=payload,
                description=description[:140],
                required_contexts=[],
                auto_merge=False,
                transient_environment=False,
                production_environment=production,
            ),
            permission="deployments: write",
        )

    def deployment_status(
        self,
        deployment: Deployment,
        state: str,
        *,
        description: str,
        environment_url: str | None,
        log_url: str | None,
    ) -> None:
        from github.GithubObject import NotSet

        self._call(
            f"the {state} status of deployment {deployment.id}",
            lambda: deployment.create_status(
                state,
                target_url=log_url or NotSet,  # GitHub's log_url (target_url is its older name)
                description=description[:140],
                environment_url=environment_url or NotSet,
                auto_inactive=False,  # llmci marks the one it replaced, and only that one
            ),
            permission="deployments: write",
        )

    def active_deployments(self, environment: str, *, newest: int = 10) -> list[Deployment]:
        """The environment's recent deployments whose latest status is success."""

        def find() -> list[Deployment]:
            found = []
            for deployment in self._repo.get_deployments(environment=environment)[:newest]:
                latest = next(iter(deployment.get_statuses()), None)  # newest first
                if latest is not None and latest.state == "success":
                    found.append(deployment)
            return found

        return self._call(f"the deployments to {environment}", find, permission="deployments: read")

    # -- incident issues --------------------------------------------------------------------

    def open_issue(self, *, key: str, title: str, body: str, labels: list[str]) -> IssueResult:
        """Our open issue for `key`, else a new one with `labels`.

        The issue's body starts with a hidden `<!-- llmci-incident key=KEY -->` line; only an open issue
        with that first line, written by the account that posts, is ours. Each retry looks again before
        creating, so a create that reached GitHub before its answer was lost is found, not duplicated.
        """
        author = self._comment_author()
        marker = f"<!-- llmci-incident key={quote(key, safe='/@')} -->"

        def attempt() -> IssueResult:
            from github.GithubObject import NotSet

            for issue in self._repo.get_issues(state="open", labels=labels or NotSet):
                if (issue.body or "").split("\n", 1)[0].strip() == marker and issue.user.login == author:
                    return IssueResult(issue.number, issue.html_url, "found")
            issue = self._repo.create_issue(title=title[:256], body=f"{marker}\n{body}", labels=labels)
            return IssueResult(issue.number, issue.html_url, "created")

        return self._call(f"the issue '{title}'", attempt, permission="issues: write")

    def comment_issue(self, number: int, body: str) -> str:
        """Add a comment to issue `number`; its URL."""
        issue = self._repo.get_issue(number)
        comment = self._call(
            f"a comment on issue #{number}", lambda: issue.create_comment(body), permission="issues: write"
        )
        return comment.html_url

    def set_issue_state(self, number: int, state: str) -> None:
        """Close (`closed`, as completed) or reopen (`open`) issue `number`; repeating it changes nothing."""
        issue = self._repo.get_issue(number)
        reason = "completed" if state == "closed" else "reopened"
        self._call(
            f"{'closing' if state == 'closed' else 'reopening'} issue #{number}",
            lambda: issue.edit(state=state, state_reason=reason),
            permission="issues: write",
        )

    # -- retries and errors -----------------------------------------------------------------

    def _call(self, what: str, operation: Callable[[], T], permission: str | None = None) -> T:
        """Run `operation` (a few PyGithub calls), retrying what may be retried; errors become one line."""
        import requests
        from github import GithubException

        attempt = 0
        while True:
            attempt += 1
            try:
                return operation()
            except GithubException as exc:
                status, headers = exc.status, {k.lower(): v for k, v in (exc.headers or {}).items()}
                message = _message(exc)
                wait = self._rate_limit_wait(status, headers, message, what)
                if wait is None and status >= 500 and attempt <= self.policy.retries:
                    wait = self.policy.backoff_s * 2 ** (attempt - 1)
                if wait is None:
                    raise self._error(what, status, message, headers, permission, attempt) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt > self.policy.retries:
                    raise GitHubError(f"cannot reach GitHub for {what} after {attempt} attempts: {exc}") from None
                wait = self.policy.backoff_s * 2 ** (attempt - 1)
            time.sleep(wait)

    def _rate_limit_wait(self, status: int, headers: dict[str, str], message: str, what: str) -> float | None:
        """Seconds to wait out a rate limit, None when this is no rate limit; fails when the wait is too long."""
        from llmci.eval.http import parse_retry_after

        limited = status == 429 or (
            status == 403
            and (
                "retry-after" in headers
                or headers.get("x-ratelimit-remaining") == "0"
                or "rate limit" in message.lower()
            )
        )
        if not limited:
            return None
        wait = parse_retry_after(headers.get("retry-after"))
        if wait is None and headers.get("x-ratelimit-reset", "").isdigit():
            wait = max(0.0, int(headers["x-ratelimit-reset"]) - time.time()) + 1  # the reset's second is not exact
        if wait is None:
            wait = 60.0  # GitHub's advice for a secondary limit that names no time
        if wait > self.policy.max_wait_s:
            raise GitHubError(
                f"GitHub rate limit (HTTP {status}) for {what}: it resets in {wait:.0f} s, more than the "
                f"{self.policy.max_wait_s:.0f} s llmci waits",
                hint="re-run the job later, or use a token with its own rate limit",
            )
        return wait

    def _error(
        self, what: str, status: int, message: str, headers: dict[str, str], permission: str | None, attempt: int
    ) -> GitHubError:
        tries = f" after {attempt} attempts" if attempt > 1 else ""
        if status == 401:
            return GitHubError(f"GitHub rejected the token (HTTP 401) for {what}", hint="check GITHUB_TOKEN")
        if status == 403:
            # GitHub names what it wanted in X-Accepted-GitHub-Permissions (e.g. "pull_requests=write; issues=write").
            accepted = [p.strip() for p in headers.get("x-accepted-github-permissions", "").split(";") if p.strip()]
            named = " or ".join(f"`{p.replace('_', '-').replace('=', ': ')}`" for p in accepted)
            wanted = named or (f"`{permission}`" if permission else None)
            return PermissionDenied(
                f"GitHub refused {what} (HTTP 403: {message})",
                hint=f"grant the job the permission {wanted}" if wanted else None,
            )
        if status == 404:
            return GitHubError(
                f"GitHub found nothing for {what} in {self.repository} (HTTP 404: {message})",
                hint="check GITHUB_REPOSITORY, the pull request number and that the token can see the repository",
            )
        return GitHubError(f"GitHub failed {what} (HTTP {status}: {message}){tries}")


def _message(exc: GithubException) -> str:
    data = exc.data
    if isinstance(data, dict):
        text = str(data.get("message") or "")
        details = [str(e.get("message") or e.get("code")) for e in data.get("errors") or [] if isinstance(e, dict)]
        return "; ".join([text, *details]) if details else text or "no message"
    return " ".join(str(data or "no message").split())[:200]
