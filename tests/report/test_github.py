"""Posting to GitHub through PyGithub, against a local GitHub REST server over HTTP."""

from __future__ import annotations

import time

import pytest

from llmci.errors import ExitCode, GitHubError
from llmci.report.github import ACTIONS_BOT, GitHubRetryPolicy, Marker
from llmci.report.publish import PullRequest, report
from tests.report.conftest import SHA_NEW, SHA_OLD, comparison, regression
from tests.report.github_server import Fault, GitHubServer, Token

FAST = GitHubRetryPolicy(retries=3, backoff_s=0.05, max_wait_s=5)
PASS = comparison([("bug", "bug")] * 10)


def pull_request(server: GitHubServer, *, sha: str = SHA_NEW, run: int = 200, fork: bool = False) -> PullRequest:
    return PullRequest(
        repository="octo/widgets",
        number=7,
        sha=sha,
        from_fork=fork,
        run_id=run,
        run_attempt=1,
        run_url=f"https://github.com/octo/widgets/actions/runs/{run}",
        api_url=server.api_url,
        workflow="PR checks",
    )


def post(server: GitHubServer, data: dict, token: str = "ghs_actions", lint: list | None = None, **kwargs):
    server.tokens.setdefault("ghs_actions", Token(login=None))
    pr = kwargs.pop("pr", None) or pull_request(server)
    return report(data, lint=lint, pull_request=pr, token=token, output=None, policy=FAST, **kwargs)


def comment_requests(server: GitHubServer, since: int) -> list[tuple[str, str]]:
    return [r for r in server.requests[since:] if "/check-runs" not in r[1] and "/statuses/" not in r[1]]


def test_the_comment_is_created_once_then_edited_in_place_in_three_requests(github: GitHubServer) -> None:
    first = post(github, regression(), pr=pull_request(github, sha=SHA_OLD, run=100))
    assert first.comment_action == "created"
    assert len(comment_requests(github, 0)) == 3  # GET /user (403 for an Actions token), list, create
    before = len(github.requests)

    second = post(github, PASS, pr=pull_request(github, sha=SHA_NEW, run=101))
    (comment,) = github.comments_on(7)
    assert second.comment_action == "updated" and second.comment_url == first.comment_url == comment["html_url"]
    assert comment["user"]["login"] == ACTIONS_BOT
    assert Marker.parse(comment["body"]) == Marker("PR checks/routing", SHA_NEW, 101, 1)
    assert "llmci: **pass**" in comment["body"]
    assert [m for m, _ in comment_requests(github, before)] == ["GET", "GET", "PATCH"]

    (check,) = [c for c in github.check_runs if c["head_sha"] == SHA_NEW]
    assert check["conclusion"] == "success" and check["name"] == "llmci / PR checks/routing"
    assert check["output"]["title"] == "pass: no regression in 1 metric"
    assert check["details_url"] == "https://github.com/octo/widgets/actions/runs/101"


def test_lint_findings_become_check_run_annotations(github: GitHubServer) -> None:
    lint = [
        {
            "path": "prompts/a.j2",
            "line": 4,
            "column": 2,
            "severity": "error",
            "rule": "undefined-variable",
            "message": "m",
        },
        {
            "path": "prompts/b.j2",
            "line": 9,
            "column": 1,
            "severity": "info",
            "rule": "trailing-whitespace",
            "message": "w",
        },
    ]
    post(github, PASS, lint=lint)
    (check,) = github.check_runs
    assert check["output"]["annotations"] == [
        {
            "path": "prompts/a.j2",
            "start_line": 4,
            "end_line": 4,
            "annotation_level": "failure",
            "message": "m",
            "title": "llmci undefined-variable",
        },
        {
            "path": "prompts/b.j2",
            "start_line": 9,
            "end_line": 9,
            "annotation_level": "notice",
            "message": "w",
            "title": "llmci trailing-whitespace",
        },
    ]
    assert "**Lint**: 1 error, 0 warnings, 1 note" in github.comments_on(7)[0]["body"]


def test_finding_the_comment_costs_one_request_per_100_comments(github: GitHubServer) -> None:
    github.tokens["ghp_user"] = Token(login="octocat")
    for i in range(250):
        github.add_comment(7, f"comment {i}", "someone")
    post(github, PASS, token="ghp_user", check=False)
    before = len(github.requests)
    post(github, regression(), token="ghp_user", check=False, pr=pull_request(github, run=300))
    # /user, 3 pages of 100, PATCH: the comment llmci wrote is the 251st
    assert [m for m, _ in github.requests[before:]] == ["GET", "GET", "GET", "GET", "PATCH"]
    assert github.comments_on(7)[-1]["user"]["login"] == "octocat"
    assert len(github.comments_on(7)) == 251


def test_a_marker_in_someone_elses_comment_is_ignored(github: GitHubServer) -> None:
    forged = Marker("PR checks/routing", SHA_NEW, 999, 1).render() + "\nall good, merge it"
    github.add_comment(7, forged, "mallory")
    github.add_comment(7, "quoting:\n" + Marker("PR checks/routing").render(), ACTIONS_BOT)
    result = post(github, regression())
    assert result.comment_action == "created"
    bodies = [c["body"] for c in github.comments_on(7)]
    assert bodies[0] == forged and len(bodies) == 3


def test_a_run_for_an_older_commit_never_overwrites_a_newer_report(github: GitHubServer) -> None:
    post(github, PASS, pr=pull_request(github, sha=SHA_NEW, run=500))
    newer = github.comments_on(7)[0]["body"]
    stale = post(github, regression(), pr=pull_request(github, sha=SHA_OLD, run=400))
    assert stale.comment_action == "kept" and github.comments_on(7)[0]["body"] == newer
    assert any("a later run already reported" in w for w in stale.warnings)
    # A re-run of the newer run (same id, next attempt) may replace it.
    rerun = pull_request(github, sha=SHA_NEW, run=500)
    rerun = PullRequest(**{**rerun.__dict__, "run_attempt": 2})
    assert post(github, regression(), pr=rerun).comment_action == "updated"


def test_an_oversized_report_is_shrunk_to_fit_and_posted(github: GitHubServer) -> None:
    big = regression(n=20, output="x" * 5000)
    data = {**big, "metrics": [{**m, "suite": f"suite-{i}"} for i in range(1500) for m in big["metrics"]]}
    result = post(github, data)
    (comment,) = github.comments_on(7)
    assert result.comment_action == "created"
    assert 60000 < len(comment["body"]) <= 65536
    assert "The report was truncated to fit GitHub's limit of 65,536 characters" in comment["body"]
    assert len(result.markdown) > 65536  # the job summary keeps everything


def test_5xx_and_lost_answers_are_retried_without_duplicate_comments(github: GitHubServer) -> None:
    github.faults = [
        Fault("GET", r"/comments$", 502),
        Fault("POST", r"/comments$", 502, after=True),  # created, but the answer was lost
        Fault("POST", r"/check-runs$", 503),
    ]
    result = post(github, regression())
    assert len(github.comments_on(7)) == 1 and result.comment_action == "unchanged"
    assert len(github.check_runs) == 1 and not github.faults


def test_429_and_rate_limit_403_wait_for_retry_after_and_the_reset(github: GitHubServer) -> None:
    reset = str(int(time.time()) + 2)
    github.faults = [
        Fault("GET", r"/comments$", 429, {"Retry-After": "1"}),
        Fault("POST", r"/comments$", 403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}),
    ]
    started = time.monotonic()
    result = post(github, regression(), check=False)
    assert time.monotonic() - started >= 2.0
    assert result.comment_action == "created" and len(github.comments_on(7)) == 1


def test_a_rate_limit_reset_beyond_the_maximum_wait_fails_with_when(github: GitHubServer) -> None:
    reset = str(int(time.time()) + 3600)
    github.faults = [Fault("GET", r"/comments$", 403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})]
    started = time.monotonic()
    with pytest.raises(GitHubError, match=r"GitHub rate limit \(HTTP 403\) .* resets in 3\d\d\d s, more than"):
        post(github, regression())
    assert time.monotonic() - started < 2


def test_a_missing_permission_is_not_retried_and_names_the_permission(github: GitHubServer) -> None:
    github.tokens["ghs_readonly"] = Token(login=None, permissions=frozenset({"checks", "statuses"}))
    with pytest.raises(GitHubError) as raised:
        post(github, regression(), token="ghs_readonly")
    assert raised.value.exit_code == ExitCode.GITHUB
    assert str(raised.value) == (
        "GitHub refused the comment on pull request #7 (HTTP 403: Resource not accessible by integration); "
        "grant the job the permission `issues: write` or `pull-requests: write`"
    )
    assert github.count("POST") == 1 and not github.comments_on(7)


def test_a_fork_pull_request_degrades_to_the_summary_with_a_warning(github: GitHubServer) -> None:
    github.tokens["ghs_fork"] = Token(login=None, permissions=frozenset())
    result = post(github, regression(), token="ghs_fork", pr=pull_request(github, fork=True))
    assert result.comment_url is None and result.verdict == "regression"
    assert "comes from a fork" in result.warnings[0] and "job summary" in result.warnings[0]
    assert not github.comments_on(7) and not github.check_runs


def test_without_check_run_permission_a_commit_status_is_set(github: GitHubServer) -> None:
    github.tokens["ghs_nochecks"] = Token(login=None, permissions=frozenset({"pull_requests", "statuses"}))
    result = post(github, regression(), token="ghs_nochecks")
    assert not github.check_runs and result.check_url is None
    (status,) = github.statuses
    assert status["state"] == "failure" and status["sha"] == SHA_NEW
    assert status["description"] == "regression: 1 regressed of 1 metric"

    github.tokens["ghs_comment_only"] = Token(login=None, permissions=frozenset({"pull_requests"}))
    result = post(github, regression(), token="ghs_comment_only")
    assert (
        result.comment_url
        and "grant the job the permission `checks: write` (or `statuses: write`)" in result.warnings[0]
    )


def test_a_bad_token_fails_with_status_401(github: GitHubServer) -> None:
    with pytest.raises(GitHubError, match=r"GitHub rejected the token \(HTTP 401\).*check GITHUB_TOKEN"):
        post(github, PASS, token="wrong")


def test_an_unknown_pull_request_is_a_404_naming_the_repository(github: GitHubServer) -> None:
    pr = PullRequest(**{**pull_request(github).__dict__, "number": 99})
    with pytest.raises(
        GitHubError, match=r"found nothing for the comment on pull request #99 in octo/widgets \(HTTP 404"
    ):
        post(github, PASS, pr=pr)
