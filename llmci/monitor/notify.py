"""Telling people about alerts: a Slack incoming webhook, e-mail over SMTP, GitHub issues.

`llmci.monitor.alerts` decides what to say; this module says it. A run's
notices for one environment travel as one `AlertGroup`: Slack and e-mail get
one message per group (Alertmanager's `group_by: [env]`); GitHub gets one
issue per incident, commented on when the alert repeats or changes level,
closed (with a comment saying why) when it resolves, and reopened if it fires
again before the state forgot it.

What a notice says comes partly from request records and the alert state
(model names, finding messages), so it is escaped for each channel: Slack's
`&`, `<` and `>` (no `<!channel>`, no links), HTML in e-mail, and
`llmci.report.markdown.inline` in GitHub issues (no mentions, links, images or
HTML); issue titles are one plain line of at most 256 characters.

Every message links the dashboard, the deploy that preceded the breach and
the rollback (the deploy workflow's page, and the `llmci deploy rollback`
command).

A sender raises `NotifyError` (one line, never the webhook URL or a password)
when its message did not go out after its retries; Slack retries 429 after
`Retry-After` and 5xx or connection errors with backoff, SMTP retries 4xx
replies and connection errors; any other refusal fails at once.
"""

from __future__ import annotations

import html
import re
import smtplib
import ssl
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any, Literal, Protocol

from llmci.config import AlertsConfig, EmailConfig
from llmci.errors import AlertsUndelivered, GitHubError, first_line
from llmci.eval.http import HttpRetryPolicy
from llmci.monitor.metrics import format_metric
from llmci.monitor.report import DeployMark
from llmci.redact import redact_userinfo, without_userinfo
from llmci.report.markdown import inline

if TYPE_CHECKING:
    from pydantic import JsonValue

    from llmci.report.github import GitHub

NoticeKind = Literal["firing", "reopened", "repeat", "level_changed", "resolved"]

#: Slack: 3 attempts; a Retry-After over a minute (llmci.eval.http.MAX_RETRY_AFTER_S) fails for the next run.
SLACK_POLICY = HttpRetryPolicy(retries=2, backoff_s=2.0)
SMTP_POLICY = HttpRetryPolicy(retries=2, backoff_s=5.0)
#: Slack allows 50 blocks a message; alerts past this many are counted, not shown (the dashboard lists them all).
SLACK_MAX_NOTICES = 20
#: GitHub refuses an issue title longer than this.
TITLE_MAX = 256


class NotifyError(AlertsUndelivered):
    """A channel's message did not go out (after its retries); the next run sends it again."""


@dataclass(frozen=True)
class Notice:
    """One alert to tell a channel about, as of this run."""

    fingerprint: str
    kind: NoticeKind
    rule: str
    #: The alert's level (for `resolved`: the level it had while firing).
    level: str
    model: str
    version: int
    message: str
    first_fired: str
    value: float | None = None
    threshold: float | None = None
    previous_level: str | None = None
    resolved_at: str | None = None
    #: Resolved because it is no longer checked (its version no longer serves, its rule is gone): `message` says why.
    retired: bool = False
    #: The incident's GitHub issue, once one was opened.
    issue: int | None = None
    #: The newest deploy of the version (what probably caused the breach).
    deploy: DeployMark | None = None

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    def headline(self) -> str:
        what = f"{self.rule} on {self.ref}"
        level = self.level.upper()
        if self.kind == "resolved":
            return f"RESOLVED (no longer checked) {what}" if self.retired else f"RESOLVED {what}"
        if self.kind == "level_changed":
            return f"{(self.previous_level or '?').upper()} → {level} {what}"
        if self.kind == "repeat":
            return f"still {level} {what}"
        if self.kind == "reopened":
            return f"{level} again {what}"
        return f"{level} {what}"

    def facts(self) -> list[tuple[str, str]]:
        """Label and text of what a reader needs to judge the alert, in order."""
        found: list[tuple[str, str]] = []
        if self.value is not None:
            found.append(("Value", format_metric(self.rule, self.value, seconds=False)))
        if self.threshold is not None:
            found.append(("Threshold", format_metric(self.rule, self.threshold, seconds=False)))
        found.append(("Firing since", format_time(self.first_fired)))
        if self.resolved_at:
            found.append(("Resolved at", format_time(self.resolved_at)))
        if self.deploy is not None:
            found.append(("Last deploy", f"{self.deploy.action} {self.ref} at {format_time(self.deploy.at)}"))
        return found


@dataclass(frozen=True)
class AlertGroup:
    """Every notice of one environment in one run: one Slack message, one e-mail."""

    env: str
    notices: tuple[Notice, ...]
    generated_at: str
    dashboard: str | None = None
    rollback: str | None = None
    run: str | None = None

    @property
    def rollback_command(self) -> str:
        return f"llmci deploy rollback --env {self.env}"

    def title(self) -> str:
        counts = Counter("resolved" if n.kind == "resolved" else n.level for n in self.notices)
        parts = [f"{counts[k]} {k}" for k in ("critical", "warning", "resolved") if counts[k]]
        return f"llmci {self.env}: {', '.join(parts)}"


@dataclass
class Delivery:
    """What a sender managed: fingerprints sent and failed (with why), GitHub issue numbers."""

    sent: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    issues: dict[str, int] = field(default_factory=dict)
    #: One line on what was done (`issue #12 opened`), or a problem that is not retried (refused recipients).
    detail: str = ""
    problem: str | None = None


class Sender(Protocol):
    channel: str

    def send(self, group: AlertGroup) -> Delivery:
        """Send the group; NotifyError (or another LlmciError) when none of it went out."""
        ...


def senders_from_config(
    config: AlertsConfig,
    *,
    env: Mapping[str, str],
    github: GitHub | None,
    ssl_context: ssl.SSLContext | None = None,
    slack_policy: HttpRetryPolicy = SLACK_POLICY,
    smtp_policy: HttpRetryPolicy = SMTP_POLICY,
) -> list[Sender]:
    """A sender per channel `monitor.alerts` configures (a channel that cannot work fails when it sends)."""
    senders: list[Sender] = []
    if config.slack is not None:
        senders.append(SlackSender(config.slack.webhook_env, env=env, policy=slack_policy))
    if config.email is not None:
        senders.append(EmailSender(config.email, env=env, ssl_context=ssl_context, policy=smtp_policy))
    if config.github_issues is not None:
        senders.append(GitHubIssueSender(github, labels=config.github_issues.labels))
    return senders


# -- formatting -----------------------------------------------------------------------------


def format_time(iso: str) -> str:
    """`2026-03-01 12:05 UTC` (what an on-call reads at a glance) from an ISO 8601 time."""
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _http(url: str | None) -> str | None:
    """`url` when a browser can open it (Slack refuses buttons to anything else), without userinfo."""
    return without_userinfo(url) if url and url.startswith(("https://", "http://")) else None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: What would end or split a link's target in Markdown (`)`, a space) or in Slack (`|`, `>`): percent-encoded.
_URL_BREAKERS = re.compile(r"[\s()<>|\[\]`\"'\\]")


def plain(text: str, limit: int) -> str:
    """`text` on one line (control characters and runs of white space become one space), at most `limit` long."""
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _encoded_url(url: str) -> str:
    """`url` with every character that could end its link's target percent-encoded (the same address)."""
    return _URL_BREAKERS.sub(lambda match: "".join(f"%{byte:02X}" for byte in match.group().encode()), url)


def render_text(group: AlertGroup) -> str:
    """The plain-text message: the e-mail's text part."""
    lines = [group.title(), ""]
    for notice in group.notices:
        lines.append(f"[{notice.headline()}]")
        lines.append(f"  {notice.message}")
        lines += [f"  {label}: {text}" for label, text in notice.facts()]
        if notice.deploy is not None and notice.deploy.workflow_run_url:
            lines.append(f"  Deploy run: {without_userinfo(notice.deploy.workflow_run_url)}")
        lines.append("")
    lines += _links_text(group)
    return "\n".join(lines) + "\n"


def _links_text(group: AlertGroup) -> list[str]:
    lines = []
    if group.dashboard:
        lines.append(f"Dashboard: {without_userinfo(group.dashboard)}")
    rollback = f"Roll back: {group.rollback_command}"
    if group.rollback:
        rollback += f" (or run the deploy workflow: {without_userinfo(group.rollback)})"
    lines.append(rollback)
    if group.run:
        lines.append(f"Check run: {without_userinfo(group.run)}")
    return lines


def render_html(group: AlertGroup) -> str:
    """The e-mail's HTML part: the same content, with links."""

    def link(url: str | None, text: str) -> str:
        url = _http(url)
        return f'<a href="{html.escape(url)}">{html.escape(text)}</a>' if url else html.escape(text)

    colors = {"critical": "#b91c1c", "warning": "#b45309"}
    parts = [f"<h2>{html.escape(group.title())}</h2>"]
    for notice in group.notices:
        color = "#15803d" if notice.kind == "resolved" else colors.get(notice.level, "#111827")
        rows = "".join(
            f"<tr><th align='left'>{html.escape(label)}</th><td>{html.escape(text)}</td></tr>"
            for label, text in notice.facts()
        )
        if notice.deploy is not None and notice.deploy.workflow_run_url:
            run = link(notice.deploy.workflow_run_url, "workflow run")
            rows += f"<tr><th align='left'>Deploy run</th><td>{run}</td></tr>"
        parts.append(
            f"<h3 style='color:{color}'>{html.escape(notice.headline())}</h3>"
            f"<p>{html.escape(notice.message)}</p><table>{rows}</table>"
        )
    parts.append(
        "<p>"
        + (link(group.dashboard, "Dashboard") + " &middot; " if group.dashboard else "")
        + (link(group.rollback, "Roll back (deploy workflow)") + " or " if group.rollback else "Roll back: ")
        + f"<code>{html.escape(group.rollback_command)}</code></p>"
    )
    return "<!DOCTYPE html><html><body>" + "".join(parts) + "</body></html>\n"


def _mrkdwn(text: str) -> str:
    """Text as Slack shows it literally (Slack reads &, < and > as markup: links, `<!channel>`, `<@U123>`)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(url: str, text: str) -> str:
    """`<url|text>`: a link whose target and text cannot close it or start another."""
    return f"<{_mrkdwn(_encoded_url(url))}|{_mrkdwn(text)}>"


def slack_payload(group: AlertGroup) -> dict[str, JsonValue]:
    """The Block Kit message (header, a section per alert, context, buttons) and its `text` fallback."""
    shown, hidden = group.notices[:SLACK_MAX_NOTICES], len(group.notices) - SLACK_MAX_NOTICES
    blocks: list[JsonValue] = [{"type": "header", "text": {"type": "plain_text", "text": plain(group.title(), 150)}}]
    for notice in shown:
        mark = (
            ":white_check_mark:"
            if notice.kind == "resolved"
            else {"critical": ":red_circle:"}.get(notice.level, ":large_orange_circle:")
        )
        fields: list[JsonValue] = [
            {"type": "mrkdwn", "text": f"*{label}*\n{_mrkdwn(text)}"} for label, text in notice.facts()
        ]
        run_url = _http(notice.deploy.workflow_run_url) if notice.deploy else None
        if run_url:
            fields.append({"type": "mrkdwn", "text": f"*Deploy run*\n{_slack_link(run_url, 'workflow run')}"})
        text = f"{mark} *{_mrkdwn(notice.headline())}*\n{_mrkdwn(notice.message)}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}, "fields": fields[:10]})
    if hidden > 0:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"and {hidden} more on the dashboard"}]}
        )
    context = f"Roll back: `{_mrkdwn(group.rollback_command)}`"
    dashboard, rollback = _http(group.dashboard), _http(group.rollback)
    if group.dashboard and not dashboard:
        context += f"  ·  Dashboard: {_mrkdwn(group.dashboard)}"  # a file path: shown, not linked
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    buttons: list[JsonValue] = []
    if dashboard:
        buttons.append(_button("Dashboard", dashboard, "dashboard", "primary"))
    if rollback:
        buttons.append(_button("Roll back", rollback, "rollback", "danger"))
    if group.run and _http(group.run):
        buttons.append(_button("Check run", _http(group.run) or "", "run", None))
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    # The text of the notification (and of clients without blocks) is mrkdwn too: escaped the same way.
    fallback = [group.title(), *(f"- {n.headline()}: {n.message}" for n in shown)]
    if hidden > 0:
        fallback.append(f"- and {hidden} more")
    fallback.append(f"Roll back: {group.rollback_command}")
    return {"text": _mrkdwn("\n".join(fallback))[:3000], "blocks": blocks}


def _button(text: str, url: str, action_id: str, style: str | None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "url": url[:3000],
        "action_id": action_id,
    }
    if style:
        button["style"] = style
    return button


def render_markdown(notice: Notice, group: AlertGroup) -> str:
    """A GitHub issue body or comment about one alert; what came from records or the state is escaped."""
    lines = [f"**{inline(notice.headline())}** in {_code(group.env)}", "", inline(notice.message, 2000)]
    lines += ["", "| | |", "| --- | --- |"]
    lines += [f"| {label} | {inline(text)} |" for label, text in notice.facts()]
    run_url = _http(notice.deploy.workflow_run_url) if notice.deploy is not None else None
    if run_url:
        lines.append(f"| Deploy run | [workflow run]({_encoded_url(run_url)}) |")
    lines.append("")
    links = []
    dashboard, rollback_url, check_run = _http(group.dashboard), _http(group.rollback), _http(group.run)
    if dashboard:
        links.append(f"[Dashboard]({_encoded_url(dashboard)})")
    rollback = f"roll back with {_code(group.rollback_command)}"
    if rollback_url:
        rollback = (
            f"roll back with the [deploy workflow]({_encoded_url(rollback_url)}) or {_code(group.rollback_command)}"
        )
    links.append(rollback[0].upper() + rollback[1:] if not links else rollback)
    if check_run:
        links.append(f"[check run]({_encoded_url(check_run)})")
    lines.append(" · ".join(links))
    return "\n".join(lines) + "\n"


def _code(text: str) -> str:
    """`text` as a Markdown code span (nothing inside is rendered, linked or mentioned) it cannot close."""
    text = plain(text, 200)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


# -- Slack ----------------------------------------------------------------------------------


class SlackSender:
    """One POST of a Block Kit message to a Slack incoming webhook per group."""

    channel = "slack"

    def __init__(
        self, webhook_env: str, *, env: Mapping[str, str], policy: HttpRetryPolicy = SLACK_POLICY, timeout_s: float = 10
    ) -> None:
        self.webhook_env = webhook_env
        self._env = env
        self.policy = policy
        self.timeout_s = timeout_s

    def send(self, group: AlertGroup) -> Delivery:
        url = self._env.get(self.webhook_env, "").strip()
        if not url:
            raise NotifyError(
                f"the Slack webhook is not set: environment variable {self.webhook_env} is missing or empty",
                hint="set it from a secret, or change monitor.alerts.slack.webhook_env",
            )
        if not url.startswith(("https://", "http://")):  # its value is a secret: described, never shown
            raise NotifyError(
                f"environment variable {self.webhook_env} does not hold a webhook URL (https://hooks.slack.com/...)"
            )
        self._post(url, slack_payload(group))
        return Delivery(sent=[n.fingerprint for n in group.notices], detail="one message")

    def _post(self, url: str, payload: dict[str, JsonValue]) -> None:
        import httpx

        where = f"the Slack webhook (${self.webhook_env})"  # the URL is the secret: never printed
        attempt = 0
        with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as client:
            while True:
                attempt += 1
                status, retry_after = None, None
                try:
                    response = client.post(url, json=payload)
                    status, retry_after = response.status_code, response.headers.get("retry-after")
                    if 200 <= status < 300:
                        return
                    body = " ".join(response.text.split())[:200] or "(empty body)"
                    problem = f"{where} answered HTTP {status}: {body}"
                except httpx.TimeoutException:
                    problem = f"{where} did not answer within {self.timeout_s:g} s"
                except httpx.TransportError as exc:
                    problem = f"cannot reach {where}: {first_line(exc)}"
                wait = self.policy.delay(attempt, status, retry_after)
                if wait is None:
                    tries = f" after {attempt} attempts" if attempt > 1 else ""
                    raise NotifyError(redact_userinfo(problem.replace(url, "$" + self.webhook_env) + tries))
                time.sleep(wait)


# -- e-mail ---------------------------------------------------------------------------------


class EmailSender:
    """One e-mail (plain text and HTML) per group, through an SMTP relay (STARTTLS unless told otherwise)."""

    channel = "email"

    def __init__(
        self,
        config: EmailConfig,
        *,
        env: Mapping[str, str],
        ssl_context: ssl.SSLContext | None = None,
        policy: HttpRetryPolicy = SMTP_POLICY,
        timeout_s: float = 30,
    ) -> None:
        self.config = config
        self._env = env
        self._ssl_context = ssl_context
        self.policy = policy
        self.timeout_s = timeout_s

    @property
    def server(self) -> str:
        return f"SMTP {self.config.host}:{self.config.port}"

    def message(self, group: AlertGroup) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = plain(group.title(), 200)
        msg["From"] = self.config.sender
        msg["To"] = ", ".join(self.config.to)
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = make_msgid(domain=self.config.sender.rpartition("@")[2] or None)
        msg.set_content(render_text(group))
        msg.add_alternative(render_html(group), subtype="html")
        return msg

    def send(self, group: AlertGroup) -> Delivery:
        login = self._login()
        msg = self.message(group)
        attempt = 0
        while True:
            attempt += 1
            try:
                refused = self._deliver(msg, login)
                break
            except smtplib.SMTPNotSupportedError as exc:
                raise NotifyError(
                    f"{self.server} does not support what llmci asked ({first_line(exc)})",
                    hint="for a relay without TLS set monitor.alerts.email.starttls: false",
                ) from None
            except smtplib.SMTPRecipientsRefused as exc:
                codes = [code for code, _ in exc.recipients.values()]
                transient = all(400 <= code < 500 for code in codes)
                problem = f"{self.server} refused every recipient ({_refused(exc.recipients)})"
            except smtplib.SMTPResponseException as exc:
                transient = 400 <= exc.smtp_code < 500
                reason = (
                    exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
                )
                problem = f"{self.server} answered {exc.smtp_code} {' '.join(str(reason).split())}"
                if exc.smtp_code in (530, 534, 535):
                    problem += f" (check {self.config.username_env} and {self.config.password_env})"
            except ssl.SSLError as exc:  # a certificate that does not verify stays so: not retried
                raise NotifyError(f"TLS with {self.server} failed: {first_line(exc)}") from None
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                transient = True
                problem = f"cannot reach {self.server}: {first_line(exc)}"
            except smtplib.SMTPException as exc:
                raise NotifyError(f"{self.server} failed: {first_line(exc)}") from None
            wait = self.policy.delay(attempt, None, None) if transient else None
            if wait is None:
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                raise NotifyError(problem + tries)
            time.sleep(wait)
        sent = [n.fingerprint for n in group.notices]
        recipients = f"{len(self.config.to) - len(refused)} recipient(s)"
        if refused:
            # The others have the mail: sending again would duplicate it for them, so this is reported, not retried.
            return Delivery(sent=sent, detail=recipients, problem=f"{self.server} refused {_refused(refused)}")
        return Delivery(sent=sent, detail=recipients)

    def _login(self) -> tuple[str, str] | None:
        names = (self.config.username_env, self.config.password_env)
        if not any(names):
            return None
        for name in names:
            if not name or not self._env.get(name):
                missing = name or "(none named)"
                raise NotifyError(
                    f"SMTP login needs a user and a password: environment variable {missing} is missing or empty",
                    hint="set monitor.alerts.email.username_env and password_env, and both variables",
                )
        return self._env[names[0] or ""], self._env[names[1] or ""]

    def _deliver(self, msg: EmailMessage, login: tuple[str, str] | None) -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP(self.config.host, self.config.port, timeout=self.timeout_s) as smtp:
            smtp.ehlo()
            if self.config.starttls:
                smtp.starttls(context=self._ssl_context or ssl.create_default_context())
                smtp.ehlo()
            if login is not None:
                smtp.login(*login)
            return smtp.send_message(msg)


def _refused(recipients: Mapping[str, tuple[int, bytes | str]]) -> str:
    def reason(text: bytes | str) -> str:
        return " ".join((text.decode(errors="replace") if isinstance(text, bytes) else text).split())

    return "; ".join(f"{addr}: {code} {reason(text)}" for addr, (code, text) in recipients.items())


# -- GitHub issues --------------------------------------------------------------------------


class GitHubIssueSender:
    """One issue per incident: opened on first fire, commented on, closed on recovery (reopened if it fires again)."""

    channel = "github"

    def __init__(self, github: GitHub | None, *, labels: Sequence[str]) -> None:
        self.github = github
        self.labels = list(labels)

    def send(self, group: AlertGroup) -> Delivery:
        if self.github is None:
            raise NotifyError(
                "GitHub issues need a token and a repository: GITHUB_TOKEN or GITHUB_REPOSITORY is not set",
                hint="give the job `issues: write` and pass GITHUB_TOKEN, or remove monitor.alerts.github_issues",
            )
        delivery = Delivery()
        done: Counter[str] = Counter()
        for index, notice in enumerate(group.notices):
            try:
                number, action = self._apply(notice, group)
            except GitHubError as exc:
                # GitHub refusing one issue (a token, a permission, an outage) refuses the rest: not tried.
                problem = first_line(exc)
                for rest in group.notices[index:]:
                    delivery.failed[rest.fingerprint] = problem
                break
            delivery.sent.append(notice.fingerprint)
            if number is not None:
                delivery.issues[notice.fingerprint] = number
                done[action] += 1
        delivery.detail = ", ".join(f"{count} issue(s) {action}" for action, count in done.items())
        return delivery

    def _apply(self, notice: Notice, group: AlertGroup) -> tuple[int | None, str]:
        assert self.github is not None
        body = render_markdown(notice, group)
        if notice.kind == "resolved":
            if notice.issue is None:
                return None, ""  # no issue was ever opened for it: nothing to close
            self.github.comment_issue(notice.issue, body)
            self.github.set_issue_state(notice.issue, "closed")
            return notice.issue, "closed"
        if notice.issue is None:
            title = plain(f"{notice.level.upper()}: {notice.rule} on {notice.ref} in {group.env}", TITLE_MAX)
            opened = self.github.open_issue(
                key=f"{notice.fingerprint}/{notice.first_fired}", title=title, body=body, labels=self.labels
            )
            return opened.number, "opened" if opened.action == "created" else "found open"
        if notice.kind == "reopened":
            self.github.set_issue_state(notice.issue, "open")
            self.github.comment_issue(notice.issue, body)
            return notice.issue, "reopened"
        self.github.comment_issue(notice.issue, body)
        return notice.issue, "commented"
