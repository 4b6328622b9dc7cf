"""The alert channels against real servers: a Slack webhook stand-in over HTTP, aiosmtpd, the local GitHub API."""

from __future__ import annotations

import email
import email.policy
import re
import time

import pytest

from llmci.config import EmailConfig
from llmci.eval.http import HttpRetryPolicy
from llmci.monitor.notify import AlertGroup, EmailSender, GitHubIssueSender, Notice, NotifyError, SlackSender
from llmci.monitor.report import DeployMark
from tests.monitor.conftest import (
    PASSWORD,
    SLACK_PATH,
    USER,
    SlackReceiver,
    SmtpServer,
    free_port,
    github_client,
)
from tests.report.github_server import Fault, GitHubServer, Token

FAST = HttpRetryPolicy(retries=2, backoff_s=0.05)
DASHBOARD = "https://octo.github.io/widgets/monitor/production.html"
ROLLBACK = "https://github.com/octo/widgets/actions/workflows/deploy.yml"
DEPLOY_RUN = "https://github.com/octo/widgets/actions/runs/4100"


def notice(kind: str = "firing", *, rule: str = "latency_p95_ms", level: str = "critical", **fields) -> Notice:
    base = {
        "fingerprint": f"{rule}/production/router@3",
        "kind": kind,
        "rule": rule,
        "level": level,
        "model": "router",
        "version": 3,
        "message": "p95 latency 2,400 ms is above the critical threshold 2,000 ms",
        "first_fired": "2026-11-27T12:00:00+00:00",
        "value": 2400.0,
        "threshold": 2000.0,
        "deploy": DeployMark(
            at="2026-11-27T11:40:00+00:00", action="deployed", model="router", version=3, workflow_run_url=DEPLOY_RUN
        ),
    }
    return Notice(**(base | fields))


def group(*notices: Notice) -> AlertGroup:
    return AlertGroup(
        env="production",
        notices=notices or (notice(),),
        generated_at="2026-11-27T12:00:00+00:00",
        dashboard=DASHBOARD,
        rollback=ROLLBACK,
        run="https://github.com/octo/widgets/actions/runs/4200",
    )


def slack_sender(receiver: SlackReceiver, policy: HttpRetryPolicy = FAST) -> SlackSender:
    return SlackSender("SLACK_WEBHOOK_URL", env={"SLACK_WEBHOOK_URL": receiver.url}, policy=policy)


# -- Slack ----------------------------------------------------------------------------------


def test_slack_gets_one_block_kit_message_with_links_to_dashboard_deploy_and_rollback(slack: SlackReceiver) -> None:
    error_rate = notice(
        rule="error_rate", level="warning", value=0.034, threshold=0.01, fingerprint="error_rate/production/router@3"
    )
    delivery = slack_sender(slack).send(group(notice(), error_rate))

    assert delivery.sent == ["latency_p95_ms/production/router@3", "error_rate/production/router@3"]
    (payload,) = slack.payloads
    blocks = payload["blocks"]
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "llmci production: 1 critical, 1 warning"},
    }
    first, second = (b for b in blocks if b["type"] == "section")
    assert ":red_circle: *CRITICAL latency_p95_ms on router@3*" in first["text"]["text"]
    fields = {f["text"].split("\n")[0]: f["text"].split("\n", 1)[1] for f in first["fields"]}
    assert fields["*Value*"] == "2,400 ms" and fields["*Threshold*"] == "2,000 ms"
    assert fields["*Firing since*"] == "2026-11-27 12:00 UTC"
    assert fields["*Last deploy*"] == "deployed router@3 at 2026-11-27 11:40 UTC"
    assert fields["*Deploy run*"] == f"<{DEPLOY_RUN}|workflow run>"
    assert "3.40%" in str(second["fields"]) and "1.00%" in str(second["fields"])
    (actions,) = [b for b in blocks if b["type"] == "actions"]
    buttons = {e["text"]["text"]: e["url"] for e in actions["elements"]}
    assert buttons["Dashboard"] == DASHBOARD and buttons["Roll back"] == ROLLBACK
    context = " ".join(e["text"] for b in blocks if b["type"] == "context" for e in b["elements"])
    assert "`llmci deploy rollback --env production`" in context
    assert payload["text"].startswith("llmci production: 1 critical, 1 warning\n- CRITICAL latency_p95_ms on router@3")
    assert "llmci deploy rollback --env production" in payload["text"]


def test_slack_text_that_looks_like_markup_is_escaped_and_a_file_dashboard_is_not_a_button(
    slack: SlackReceiver,
) -> None:
    tricky = notice(message="<!channel> p95 > 2s & rising")
    sender = slack_sender(slack)
    sender.send(AlertGroup("production", (tricky,), "2026-11-27T12:00:00+00:00", dashboard="site/production.html"))
    (payload,) = slack.payloads
    section = next(b for b in payload["blocks"] if b["type"] == "section")
    assert "&lt;!channel&gt; p95 &gt; 2s &amp; rising" in section["text"]["text"]
    assert not [b for b in payload["blocks"] if b["type"] == "actions"]  # Slack refuses a button to a file path
    assert "Dashboard: site/production.html" in str(payload["blocks"])


def test_slack_429_waits_for_retry_after_then_delivers_once(slack: SlackReceiver) -> None:
    slack.fail(429, body="rate_limited", headers={"Retry-After": "1"})
    started = time.monotonic()
    slack_sender(slack).send(group())
    assert time.monotonic() - started >= 1.0
    assert slack.requests == 2 and len(slack.payloads) == 1


def test_slack_5xx_is_retried_with_backoff_and_gives_up_after_three_attempts(slack: SlackReceiver) -> None:
    slack.fail(500, times=2)
    slack_sender(slack).send(group())
    assert slack.requests == 3 and len(slack.payloads) == 1

    slack.fail(503, times=3, body="service unavailable")
    with pytest.raises(NotifyError) as caught:
        slack_sender(slack).send(group())
    assert str(caught.value) == (
        "the Slack webhook ($SLACK_WEBHOOK_URL) answered HTTP 503: service unavailable after 3 attempts"
    )
    assert len(slack.payloads) == 1


def test_slack_4xx_fails_at_once_with_slacks_reason_and_never_shows_the_webhook(slack: SlackReceiver) -> None:
    slack.fail(404, body="channel_not_found")
    with pytest.raises(NotifyError) as caught:
        slack_sender(slack).send(group())
    assert str(caught.value) == "the Slack webhook ($SLACK_WEBHOOK_URL) answered HTTP 404: channel_not_found"
    assert slack.requests == 1
    assert SLACK_PATH.rsplit("/", 1)[1] not in str(caught.value)


def test_slack_retry_after_longer_than_a_minute_is_not_waited_for(slack: SlackReceiver) -> None:
    slack.fail(429, body="rate_limited", headers={"Retry-After": "600"})
    started = time.monotonic()
    with pytest.raises(NotifyError, match=r"HTTP 429: rate_limited$"):
        slack_sender(slack).send(group())
    assert time.monotonic() - started < 5


def test_slack_unreachable_names_the_variable_not_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/services/T1/B2/topsecret"
    sender = SlackSender("ALERTS_HOOK", env={"ALERTS_HOOK": url}, policy=FAST)
    with pytest.raises(NotifyError) as caught:
        sender.send(group())
    message = str(caught.value)
    assert message.startswith("cannot reach the Slack webhook ($ALERTS_HOOK): ") and "after 3 attempts" in message
    assert "topsecret" not in message and "127.0.0.1" not in message


def test_slack_without_its_variable_says_which_to_set() -> None:
    with pytest.raises(NotifyError) as caught:
        SlackSender("SLACK_WEBHOOK_URL", env={}).send(group())
    assert str(caught.value) == (
        "the Slack webhook is not set: environment variable SLACK_WEBHOOK_URL is missing or empty; "
        "set it from a secret, or change monitor.alerts.slack.webhook_env"
    )


def test_slack_with_a_variable_that_is_no_url_says_so_without_showing_it() -> None:
    with pytest.raises(NotifyError) as caught:
        SlackSender("SLACK_WEBHOOK_URL", env={"SLACK_WEBHOOK_URL": "xoxb-s3cr3t"}).send(group())
    assert str(caught.value) == (
        "environment variable SLACK_WEBHOOK_URL does not hold a webhook URL (https://hooks.slack.com/...)"
    )


def test_slack_caps_a_large_group_within_slacks_block_limit(slack: SlackReceiver) -> None:
    many = [notice(fingerprint=f"latency_p95_ms/production/m{i}@1", model=f"m{i}", version=1) for i in range(60)]
    slack_sender(slack).send(group(*many))
    (payload,) = slack.payloads  # the receiver refuses more than 50 blocks, as Slack does
    assert sum(b["type"] == "section" for b in payload["blocks"]) == 20
    assert "and 40 more on the dashboard" in str(payload["blocks"])


# -- e-mail ---------------------------------------------------------------------------------


def email_config(server: SmtpServer, **fields) -> EmailConfig:
    base = {
        "host": server.host,
        "port": server.port,
        "starttls": False,
        "sender": "llmci@example.com",
        "to": ["oncall@example.com", "ml@example.com"],
    }
    return EmailConfig(**(base | fields))


def parsed(envelope) -> email.message.EmailMessage:
    return email.message_from_bytes(envelope.content, policy=email.policy.default)


def test_email_is_one_message_with_a_text_and_an_html_part(smtp: SmtpServer) -> None:
    delivery = EmailSender(email_config(smtp), env={}, policy=FAST).send(group())
    assert delivery.sent == ["latency_p95_ms/production/router@3"] and delivery.problem is None
    (envelope,) = smtp.inbox.messages
    assert envelope.mail_from == "llmci@example.com"
    assert envelope.rcpt_tos == ["oncall@example.com", "ml@example.com"]
    message = parsed(envelope)
    assert message["Subject"] == "llmci production: 1 critical"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    page = message.get_body(("html",)).get_content()
    assert "[CRITICAL latency_p95_ms on router@3]" in text
    assert "Value: 2,400 ms" in text and "Threshold: 2,000 ms" in text
    assert f"Deploy run: {DEPLOY_RUN}" in text and f"Dashboard: {DASHBOARD}" in text
    assert f"Roll back: llmci deploy rollback --env production (or run the deploy workflow: {ROLLBACK})" in text
    assert f'<a href="{DASHBOARD}">Dashboard</a>' in page and f'<a href="{DEPLOY_RUN}">workflow run</a>' in page
    assert "<code>llmci deploy rollback --env production</code>" in page


def test_email_over_starttls_logs_in_with_the_named_variables(tls_smtp: SmtpServer) -> None:
    config = email_config(tls_smtp, starttls=True, username_env="SMTP_USER", password_env="SMTP_PASSWORD")
    sender = EmailSender(
        config, env={"SMTP_USER": USER, "SMTP_PASSWORD": PASSWORD}, ssl_context=tls_smtp.client_context, policy=FAST
    )
    sender.send(group())
    assert tls_smtp.inbox.logins == [USER] and len(tls_smtp.inbox.messages) == 1


def test_email_wrong_password_fails_at_once_naming_the_variables(tls_smtp: SmtpServer) -> None:
    config = email_config(tls_smtp, starttls=True, username_env="SMTP_USER", password_env="SMTP_PASSWORD")
    sender = EmailSender(
        config, env={"SMTP_USER": USER, "SMTP_PASSWORD": "wrong"}, ssl_context=tls_smtp.client_context, policy=FAST
    )
    with pytest.raises(NotifyError) as caught:
        sender.send(group())
    assert str(caught.value) == (
        f"SMTP 127.0.0.1:{tls_smtp.port} answered 535 5.7.8 Authentication credentials invalid "
        "(check SMTP_USER and SMTP_PASSWORD)"
    )
    assert not tls_smtp.inbox.messages


def test_email_refuses_a_certificate_it_cannot_verify(tls_smtp: SmtpServer) -> None:
    sender = EmailSender(email_config(tls_smtp, starttls=True), env={}, policy=FAST)  # the system's trust store
    with pytest.raises(NotifyError, match=r"^TLS with SMTP 127\.0\.0\.1:\d+ failed: .*certificate verify failed"):
        sender.send(group())


def test_email_starttls_against_a_relay_without_tls_says_how_to_turn_it_off(smtp: SmtpServer) -> None:
    with pytest.raises(NotifyError) as caught:
        EmailSender(email_config(smtp, starttls=True), env={}, policy=FAST).send(group())
    assert str(caught.value).startswith(f"SMTP 127.0.0.1:{smtp.port} does not support what llmci asked")
    assert str(caught.value).endswith("for a relay without TLS set monitor.alerts.email.starttls: false")


def test_email_login_without_its_password_variable_names_it(smtp: SmtpServer) -> None:
    config = email_config(smtp, username_env="SMTP_USER", password_env="SMTP_PASSWORD")
    with pytest.raises(NotifyError, match=r"environment variable SMTP_PASSWORD is missing or empty"):
        EmailSender(config, env={"SMTP_USER": USER}, policy=FAST).send(group())


def test_email_transient_4xx_is_retried_and_5xx_fails_at_once(smtp: SmtpServer) -> None:
    smtp.inbox.replies = ["451 4.3.0 Mail server temporarily rejected message"]
    EmailSender(email_config(smtp), env={}, policy=FAST).send(group())
    assert len(smtp.inbox.messages) == 1

    smtp.inbox.replies = ["554 5.7.1 Message rejected as spam"]
    with pytest.raises(NotifyError) as caught:
        EmailSender(email_config(smtp), env={}, policy=FAST).send(group())
    assert str(caught.value) == f"SMTP 127.0.0.1:{smtp.port} answered 554 5.7.1 Message rejected as spam"
    assert len(smtp.inbox.messages) == 1


def test_email_to_a_server_that_is_down_is_retried_then_fails() -> None:
    server = SmtpServer("127.0.0.1", free_port(), inbox=None)  # nothing listens there
    with pytest.raises(NotifyError, match=r"^cannot reach SMTP 127\.0\.0\.1:\d+: .* after 3 attempts$"):
        EmailSender(email_config(server), env={}, policy=FAST).send(group())


def test_email_refused_for_one_recipient_reaches_the_others_and_reports_the_refusal(smtp: SmtpServer) -> None:
    smtp.inbox.refuse_rcpt = {"ml@example.com": "550 5.1.1 No such user"}
    delivery = EmailSender(email_config(smtp), env={}, policy=FAST).send(group())
    (envelope,) = smtp.inbox.messages
    assert envelope.rcpt_tos == ["oncall@example.com"]
    assert delivery.sent == ["latency_p95_ms/production/router@3"]
    assert delivery.problem == f"SMTP 127.0.0.1:{smtp.port} refused ml@example.com: 550 5.1.1 No such user"


# -- GitHub issues --------------------------------------------------------------------------


def test_an_incident_issue_is_opened_commented_closed_and_reopened(github_api: GitHubServer) -> None:
    sender = GitHubIssueSender(github_client(github_api), labels=["llmci-incident", "production"])
    first = sender.send(group(notice("firing")))
    (number,) = first.issues.values()
    issue = github_api.issues[number]
    assert number == 8  # after pull request 7: issues and pull requests share numbers
    assert issue["title"] == "CRITICAL: latency_p95_ms on router@3 in production"
    assert [label["name"] for label in issue["labels"]] == ["llmci-incident", "production"]
    assert issue["body"].startswith("<!-- llmci-incident key=latency_p95_ms/production/router@3/2026-11-27T12")
    assert r"**CRITICAL latency\_p95\_ms on router@3** in `production`" in issue["body"]
    assert f"| Deploy run | [workflow run]({DEPLOY_RUN}) |" in issue["body"]
    assert f"[Dashboard]({DASHBOARD}) · roll back with the [deploy workflow]({ROLLBACK})" in issue["body"]
    assert issue["user"]["login"] == "github-actions[bot]"

    sender.send(group(notice("repeat", issue=number)))
    sender.send(group(notice("resolved", issue=number, resolved_at="2026-11-27T14:00:00+00:00")))
    assert github_api.issue_states() == {8: "closed"} and github_api.issues[8]["state_reason"] == "completed"
    sender.send(group(notice("reopened", issue=number)))
    assert github_api.issue_states() == {8: "open"}
    bodies = [c["body"] for c in github_api.comments_on(8)]
    assert [b.split("\n")[0] for b in bodies] == [
        r"**still CRITICAL latency\_p95\_ms on router@3** in `production`",
        r"**RESOLVED latency\_p95\_ms on router@3** in `production`",
        r"**CRITICAL again latency\_p95\_ms on router@3** in `production`",
    ]
    assert "| Resolved at | 2026-11-27 14:00 UTC |" in bodies[1]


def test_a_create_whose_answer_was_lost_is_found_not_duplicated(github_api: GitHubServer) -> None:
    github_api.faults.append(Fault("POST", r"/issues$", 502, after=True))
    delivery = GitHubIssueSender(github_client(github_api), labels=["llmci-incident"]).send(group())
    assert len(github_api.issues) == 1 and delivery.issues == {"latency_p95_ms/production/router@3": 8}
    assert delivery.detail == "1 issue(s) found open"


def test_github_without_issues_permission_fails_every_notice_with_the_permission_to_grant(
    github_api: GitHubServer,
) -> None:
    github_api.tokens["ghs_readonly"] = Token(login=None, permissions=frozenset({"pull_requests"}))
    two = group(notice(), notice(fingerprint="error_rate/production/router@3", rule="error_rate"))
    delivery = GitHubIssueSender(github_client(github_api, "ghs_readonly"), labels=["llmci-incident"]).send(two)
    assert delivery.sent == [] and not github_api.issues
    assert set(delivery.failed.values()) == {
        "GitHub refused the issue 'CRITICAL: latency_p95_ms on router@3 in production' (HTTP 403: Resource not "
        "accessible by integration); grant the job the permission `issues: write`"
    }
    assert len(delivery.failed) == 2


def test_github_issues_without_a_client_say_what_to_set() -> None:
    with pytest.raises(
        NotifyError, match=r"GITHUB_TOKEN or GITHUB_REPOSITORY is not set; give the job `issues: write`"
    ):
        GitHubIssueSender(None, labels=[]).send(group())


# -- text from records and the state is shown, never obeyed ---------------------------------

HOSTILE = (
    "@octo/security ![pixel](https://evil.example/p.png) <img src=x onerror=alert(1)> [login](https://evil.example)"
)


def hostile_notice(**fields) -> Notice:
    """A notice whose model name and message came from hostile records (or a hand-edited state)."""
    deploy = DeployMark(
        at="2026-11-27T11:40:00+00:00",
        action="deployed",
        model="router",
        version=3,
        workflow_run_url="https://github.com/octo/widgets/actions/runs/4100|<!channel>) [x](https://evil.example",
    )
    return notice(model="router\n# @octo/admins <!here>", message=HOSTILE, deploy=deploy, **fields)


def test_a_github_issue_escapes_what_came_from_records_and_keeps_its_title_one_plain_bounded_line(
    github_api: GitHubServer,
) -> None:
    sender = GitHubIssueSender(github_client(github_api), labels=["llmci-incident"])
    delivery = sender.send(group(hostile_notice()))
    (number,) = delivery.issues.values()
    issue = github_api.issues[number]
    assert issue["title"] == "CRITICAL: latency_p95_ms on router # @octo/admins <!here>@3 in production"
    body = issue["body"].split("\n", 1)[1]  # after llmci's own marker line
    assert "<img" not in body and "&lt;img src=x onerror=alert\\(1\\)&gt;" in body
    assert "![pixel](" not in body and r"\!\[pixel\]\(https<!-- -->://evil.example/p.png\)" in body
    assert "@octo" not in body.replace("@<!-- -->octo", "")  # no mention: nobody is notified
    assert "\n# " not in body and "<!here>" not in body
    assert "](https://evil.example" not in body  # neither the message's link nor the deploy URL's tail
    assert "| Deploy run | [workflow run](https://github.com/octo/widgets/actions/runs/4100%7C%3C!channel%3E%29" in body

    sender.send(group(notice("resolved", issue=number, message=HOSTILE, resolved_at="2026-11-27T14:00:00+00:00")))
    (comment,) = [c["body"] for c in github_api.comments_on(number)]
    assert "<img" not in comment and "@octo" not in comment.replace("@<!-- -->octo", "")

    titled = sender.send(group(notice(model="m" * 300, fingerprint="latency_p95_ms/production/mmm@3")))
    title = github_api.issues[titled.issues["latency_p95_ms/production/mmm@3"]]["title"]
    assert len(title) == 256 and title.endswith("…") and "\n" not in title


def test_slack_text_cannot_mention_or_link_anywhere_in_the_message(slack: SlackReceiver) -> None:
    slack_sender(slack).send(
        AlertGroup(
            "production",
            (hostile_notice(), notice(message="<!channel> <@U024BE7LH> <https://evil.example|click> & more")),
            "2026-11-27T12:00:00+00:00",
            dashboard=DASHBOARD,
        )
    )
    (payload,) = slack.payloads
    texts = [payload["text"]]
    for block in payload["blocks"]:
        if block["type"] == "section":
            texts += [block["text"]["text"], *(f["text"] for f in block["fields"])]
        if block["type"] == "context":
            texts += [e["text"] for e in block["elements"]]
    markup = [m for text in texts for m in re.findall(r"<[^>]*>", text)]
    # The only markup is llmci's own links to the deploy runs, their targets and texts unable to close them.
    assert markup == [
        "<https://github.com/octo/widgets/actions/runs/4100%7C%3C!channel%3E%29%20%5Bx%5D%28https://evil.example"
        "|workflow run>",
        f"<{DEPLOY_RUN}|workflow run>",
    ]
    assert "&lt;!channel&gt; &lt;@U024BE7LH&gt;" in payload["text"]  # the notification text as well
    assert "&lt;img src=x onerror=alert(1)&gt;" in payload["text"]


def test_email_html_escapes_what_came_from_records(smtp: SmtpServer) -> None:
    EmailSender(email_config(smtp), env={}, policy=FAST).send(group(hostile_notice()))
    message = parsed(smtp.inbox.messages[0])
    page = message.get_body(("html",)).get_content()
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<!here>" not in page and "&lt;!here&gt;" in page
    assert '<a href="https://github.com/octo/widgets/actions/runs/4100|&lt;!channel&gt;)' in page  # an attribute
    assert "\n" not in message["Subject"]
